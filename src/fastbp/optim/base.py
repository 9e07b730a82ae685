"""The optimiser contract: parameters by name, a ``step`` that updates them in place from
their gradients, and a ``state_dict`` that a checkpoint can store and restore."""

import numpy as np

from .._validation import FLOAT_DTYPES, describe
# The one check of scalar options, under the name the optimisers and schedules import.
from .._validation import real_number as check_number  # noqa: F401


def is_decayed(name, decay=None):
    """Whether weight decay applies to the parameter ``name`` under the rule ``decay``.

    ``decay`` None (the default rule): weights, not biases, i.e. every parameter whose
    name's last dotted part is not ``"bias"`` ("0.weight" yes, "0.bias" no; in a plain
    mapping "W1" and "b1" are both decayed). Otherwise ``decay`` is the caller's rule: a
    callable ``name -> bool``, or a collection of the names to decay.
    """
    if decay is None:
        return name.rsplit(".", 1)[-1] != "bias"
    if callable(decay):
        result = decay(name)
        if not isinstance(result, (bool, np.bool_)):
            raise TypeError(f"decay({name!r}) must return a bool, got {describe(result)}")
        return bool(result)
    return name in decay


class Optimizer:
    """Updates named parameter arrays in place.

    ``params`` is either a mapping ``name -> array`` (e.g. ``model.params``) or an object
    with ``params`` and ``grads`` mappings (a ``Sequential`` or a layer); with the latter,
    ``step()`` reads the object's ``grads`` itself. Every array must be a C-contiguous,
    writeable float32 or float64 array: updates are written through flat views of it.

    ``weight_decay`` is lambda in the L2 term ``lambda/2 ||W||^2``, applied to the
    parameters for which ``is_decayed(name, decay)`` holds. ``decay`` names them: an
    iterable of parameter names (each must be one of the parameters) or a callable
    ``name -> bool``; by default (None) every parameter except those whose name's last
    dotted part is ``"bias"`` (a model's biases; in a plain mapping such as CS231n's
    ``{"W1", "b1", ...}`` pass ``decay={"W1", "W2"}``), and, when built from a model,
    except the parameters its layers name in ``no_decay`` (a batch norm's "weight":
    ``model.no_decay``). Built from ``model.params`` (a plain mapping), only the name rule
    applies.
    """

    #: hyper-parameter names, in constructor order; subclasses extend it
    hyper_names = ("lr", "weight_decay")
    #: names of the per-parameter state buffers
    buffer_names = ()

    def __init__(self, params, lr, weight_decay=0.0, decay=None):
        if hasattr(params, "params") and hasattr(params, "grads"):
            self._source = params
            params = params.params
        else:
            self._source = None
        if not hasattr(params, "items"):
            raise TypeError(
                "params must be a mapping name -> array (such as model.params) or a model, "
                f"got {type(params).__name__}"
            )
        self.params = dict(params)
        if not self.params:
            raise ValueError("params is empty: there is nothing to optimise")
        for name, array in self.params.items():
            if not isinstance(array, np.ndarray) or array.dtype not in FLOAT_DTYPES:
                raise TypeError(f"parameter {name!r} must be a float32 or float64 array")
            if not array.flags.c_contiguous or not array.flags.writeable:
                raise ValueError(f"parameter {name!r} must be a C-contiguous, writeable array")
        names = list(self.params)
        for i, name in enumerate(names):
            for other in names[i + 1:]:
                # Exact for C-contiguous arrays: their memory bounds are their memory.
                if np.may_share_memory(self.params[name], self.params[other]):
                    raise ValueError(
                        f"parameters {name!r} and {other!r} share memory: each step would update "
                        "it twice; give every parameter its own array"
                    )
        self.lr = check_number("lr", lr, low=0.0, low_open=True)
        self.weight_decay = check_number("weight_decay", weight_decay, low=0.0)
        if decay is not None and not callable(decay):
            if isinstance(decay, (str, bytes)) or hasattr(decay, "items") or not hasattr(decay, "__iter__"):
                raise TypeError("decay must be an iterable of parameter names or a callable "
                                f"name -> bool, got {describe(decay)}")
            decay = list(decay)
            if not all(isinstance(name, str) for name in decay):
                raise TypeError(f"decay must hold parameter names (str), got {describe(decay)}")
            unknown = sorted(set(decay) - set(self.params))
            if unknown:
                raise ValueError(f"decay names unknown parameters {unknown}; the parameters are "
                                 f"{sorted(self.params)}")
            decay = frozenset(decay)
        # The default rule also spares what the model's layers declare in ``no_decay``
        # (batch norm's scale and shift).
        spared = frozenset(getattr(self._source, "no_decay", ())) if decay is None else frozenset()
        self.decayed = {name: is_decayed(name, decay) and name not in spared for name in self.params}
        self.step_count = 0
        self.buffers = {
            buffer: {name: np.zeros_like(array) for name, array in self.params.items()}
            for buffer in self.buffer_names
        }

    @property
    def lr(self):
        """The learning rate of the next ``step``: > 0 when constructed; a schedule sets it
        each epoch and may bring it down to 0 (no more movement)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_number("lr", value, low=0.0)

    def check_params(self, params):
        """Raise ValueError unless ``params`` (a model's ``params``) holds exactly the arrays
        this optimiser updates: an array replaced after the optimiser was built would
        otherwise be trained by nobody, and the replaced one by an optimiser nobody reads."""
        for name, array in params.items():
            if self.params.get(name) is not array:
                raise ValueError(
                    f"parameter {name!r} is not the array this optimiser updates: it was "
                    "replaced (or added) after the optimiser was built. Write new values into "
                    "the existing array (params[name][...] = value), convert with "
                    "model.to(dtype, optimizer), or build the optimiser again")
        if len(params) != len(self.params):
            missing = sorted(set(self.params) - set(params))
            raise ValueError(f"the model no longer has the parameters {missing} this optimiser "
                             "updates; build the optimiser again")

    def follow(self, params):
        """Update ``params`` (same names and shapes; e.g. converted to another dtype by
        ``model.to``) from now on, its state buffers converted to their dtypes."""
        if set(params) != set(self.params):
            raise ValueError(f"params must have the names {sorted(self.params)}, got {sorted(params)}")
        for name, array in params.items():
            if array.shape != self.params[name].shape:
                raise ValueError(f"parameter {name!r} changed shape: {self.params[name].shape} "
                                 f"-> {array.shape}")
            for buffers in self.buffers.values():
                buffers[name] = buffers[name].astype(array.dtype)
            self.params[name] = array

    def step(self, grads=None):
        """Apply one update from ``grads`` (a mapping with the parameters' names, shapes and
        dtypes; by default the model's ``grads``). When built from a model, first checks
        that the model's parameters are still the arrays it updates (``check_params``)."""
        if self._source is not None:
            self.check_params(self._source.params)
        if grads is None:
            if self._source is None:
                raise ValueError("step() needs grads when the optimiser was built from a mapping")
            grads = self._source.grads
        if not hasattr(grads, "items"):
            raise TypeError(f"grads must be a mapping name -> array, got {type(grads).__name__}")
        checked = {}
        for name, param in self.params.items():
            if name not in grads:
                raise ValueError(f"grads has no entry for parameter {name!r}")
            grad = grads[name]
            if not isinstance(grad, np.ndarray) or grad.shape != param.shape or grad.dtype != param.dtype:
                got = f"{grad.dtype} {grad.shape}" if isinstance(grad, np.ndarray) else type(grad).__name__
                raise ValueError(
                    f"grad {name!r} must be a {param.dtype} array of shape {param.shape}, got {got}"
                )
            checked[name] = np.ascontiguousarray(grad)
        self.step_count += 1
        for name, param in self.params.items():
            decay = self.weight_decay if self.decayed[name] else 0.0
            buffers = [self.buffers[b][name].reshape(-1) for b in self.buffer_names]
            self._update(param.reshape(-1), checked[name].reshape(-1), buffers,
                         param.dtype.type, decay)

    def _update(self, param, grad, buffers, scalar, decay):
        """Update one flat parameter; ``scalar`` casts Python floats to its dtype."""
        raise NotImplementedError

    def hyper(self):
        """The hyper-parameters as a dict of plain Python values."""
        return {name: getattr(self, name) for name in self.hyper_names}

    def state_dict(self):
        """``{"type", "hyper", "step", "decayed", "buffers": {buffer: {param name: array
        copy}}}``; "decayed" lists the parameters weight decay applies to, so that a
        restored optimiser keeps a ``decay=`` rule it was built with."""
        return {
            "type": type(self).__name__,
            "hyper": self.hyper(),
            "step": self.step_count,
            "decayed": sorted(name for name, decayed in self.decayed.items() if decayed),
            "buffers": {b: {n: a.copy() for n, a in arrays.items()} for b, arrays in self.buffers.items()},
        }

    def load_state_dict(self, state):
        """Restore a ``state_dict`` of the same optimiser type over the same parameters."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        for key in ("hyper", "buffers"):
            if not isinstance(state.get(key, {}), dict):
                raise TypeError(f"state[{key!r}] must be a dict, got {type(state[key]).__name__}")
        if state.get("type") != type(self).__name__:
            raise ValueError(f"state is for a {state.get('type')!r} optimiser, not {type(self).__name__}")
        buffers = state.get("buffers", {})
        if set(buffers) != set(self.buffer_names):
            raise ValueError(f"state has buffers {sorted(buffers)}, expected {sorted(self.buffer_names)}")
        for buffer, arrays in buffers.items():
            if set(arrays) != set(self.params):
                raise ValueError(
                    f"state buffer {buffer!r} covers parameters {sorted(arrays)}, "
                    f"but the optimiser has {sorted(self.params)}"
                )
            for name, array in arrays.items():
                target = self.buffers[buffer][name]
                if array.shape != target.shape:
                    raise ValueError(
                        f"state buffer {buffer!r} of {name!r} has shape {array.shape}, "
                        f"expected {target.shape}"
                    )
        hyper = state.get("hyper", {})
        if set(hyper) != set(self.hyper_names):
            raise ValueError(
                f"state has hyper-parameters {sorted(hyper)}, expected {sorted(self.hyper_names)}"
            )
        for name, value in hyper.items():
            current = getattr(self, name)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise TypeError(f"hyper-parameter {name!r} must be a bool, got {value!r}")
                setattr(self, name, value)
            elif name != "lr":
                setattr(self, name, check_number(name, value))
        self.lr = hyper["lr"]
        for buffer, arrays in buffers.items():
            for name, array in arrays.items():
                self.buffers[buffer][name][...] = array
        self.step_count = int(state.get("step", 0))
        if "decayed" in state:  # absent from states saved before it was recorded
            decayed = state["decayed"]
            if not isinstance(decayed, list) or not set(decayed) <= set(self.params):
                raise ValueError(f"state['decayed'] must list parameters of this optimiser, got "
                                 f"{describe(decayed)}")
            self.decayed = {name: name in decayed for name in self.params}

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({len(self.params)} params, {inner})"
