"""The optimiser contract: parameters by name, a ``step`` that updates them in place from
their gradients, and a ``state_dict`` that a checkpoint can store and restore."""

import math
import numbers

import numpy as np

from .._validation import FLOAT_DTYPES


def is_decayed(name):
    """Weight decay applies to weights, not biases: every parameter whose name's last
    dotted part is not ``"bias"`` ("0.weight" yes, "0.bias" no)."""
    return name.rsplit(".", 1)[-1] != "bias"


def check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float within [low, high] (ends open when asked), else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad = bad or value < low or (low_open and value == low)
    if high is not None:
        bad = bad or value > high or (high_open and value == high)
    if bad:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return value


class Optimizer:
    """Updates named parameter arrays in place.

    ``params`` is either a mapping ``name -> array`` (e.g. ``model.params``) or an object
    with ``params`` and ``grads`` mappings (a ``Sequential`` or a layer); with the latter,
    ``step()`` reads the object's ``grads`` itself. Every array must be a C-contiguous,
    writeable float32 or float64 array: updates are written through flat views of it.

    ``weight_decay`` is lambda in the L2 term ``lambda/2 ||W||^2``, applied to the
    parameters for which ``is_decayed(name)`` holds (weights, not biases).
    """

    #: hyper-parameter names, in constructor order; subclasses extend it
    hyper_names = ("lr", "weight_decay")
    #: names of the per-parameter state buffers
    buffer_names = ()

    def __init__(self, params, lr, weight_decay=0.0):
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
        self.decayed = {name: is_decayed(name) for name in self.params}
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

    def step(self, grads=None):
        """Apply one update from ``grads`` (a mapping with the parameters' names, shapes and
        dtypes; by default the model's ``grads``)."""
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
        """``{"type", "hyper", "step", "buffers": {buffer: {param name: array copy}}}``."""
        return {
            "type": type(self).__name__,
            "hyper": self.hyper(),
            "step": self.step_count,
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

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({len(self.params)} params, {inner})"
