"""The contract every layer follows."""

import inspect
import threading

import numpy as np

from .._validation import FLOAT_DTYPES, float_array, native_byte_order, same_shape
from ..functional import Workspace


def float_dtype(dtype):
    """``dtype`` as a NumPy float32 or float64 dtype, else TypeError."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def weight_and_bias(weight_shape, bias_shape, bias):
    """``{"weight": weight_shape, "bias": bias_shape}``, without the bias unless ``bias``
    (a bool, else TypeError): what a weight layer's ``param_shapes`` returns."""
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"bias must be a bool, got {bias!r}")
    return {"weight": weight_shape, "bias": bias_shape} if bias else {"weight": weight_shape}


def ignored_dtype(dtype):
    """Check the ``dtype`` a layer without parameters still accepts from older code; such
    a layer takes its input's dtype."""
    if dtype is not None:
        float_dtype(dtype)


class Layer:
    """A differentiable step: ``forward(x) -> y``, ``backward(dy) -> dx``.

    ``params`` and ``grads`` map names ("weight", "bias") to the live arrays: writing into
    ``params["weight"][...]`` changes the layer. ``backward(dy)`` stores this call's
    parameter gradients in ``grads`` (``accumulate=True`` adds them instead, to sum
    micro-batches) and needs the preceding ``forward``'s cached input.

    A layer with parameters holds them in one ``dtype`` (float32 or float64) and takes
    input of that dtype only; ``to(dtype)`` converts it. A layer without parameters has
    ``dtype`` None and takes float32 or float64 input alike.

    The cached input and the kernels' scratch memory (``workspace``) are kept per calling
    thread, so several threads may run one model at once (each its own forward/backward).
    """

    def __init__(self, dtype=None):
        self.dtype = None if dtype is None else float_dtype(dtype)
        self.params = {}
        self.grads = {}
        self._local = threading.local()
        self.workspace = Workspace()

    @property
    def _cache(self):
        """What this thread's last forward kept for its backward (None before any)."""
        return getattr(self._local, "cache", None)

    @_cache.setter
    def _cache(self, value):
        self._local.cache = value

    def forward(self, x, training=True):
        raise NotImplementedError

    def backward(self, dy, input_grad=True, accumulate=False):
        """dx, the gradient w.r.t. the forward's input (shape of x), after storing the
        parameter gradients in ``grads`` (adding them to it with ``accumulate=True``).
        With ``input_grad=False`` dx is not computed and None is returned: for a network's
        first layer, whose input gradient nobody reads."""
        raise NotImplementedError

    def __call__(self, x, training=True):
        return self.forward(x, training)

    def zero_grad(self):
        """Set every gradient to zero (``backward`` overwrites them anyway, unless it
        accumulates)."""
        for grad in self.grads.values():
            grad[...] = 0

    def to(self, dtype):
        """Convert the parameters and gradients to ``dtype`` (float32 or float64), in place;
        returns the layer. The arrays are new: rebuild optimisers over the layer, or
        convert through ``Sequential.to(dtype, optimizer)``, which carries one along."""
        dtype = float_dtype(dtype)
        if self.dtype is None or dtype == self.dtype:
            return self
        self.dtype = dtype
        for name in self.params:
            self.params[name] = self.params[name].astype(dtype)
            self.grads[name] = self.grads[name].astype(dtype)
        self._local = threading.local()  # a cached input of the old dtype is stale
        return self

    def _add_param(self, name, value):
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def _grad_targets(self, accumulate):
        """``{"add_to" or "out": (grads["weight"], grads["bias"] or None)}``: where a weight
        layer's functional backward adds or writes its gradients."""
        targets = self.grads["weight"], self.grads.get("bias")
        return {"add_to": targets} if accumulate else {"out": targets}

    def _store(self, accumulate, **grads):
        """Write (or add) computed gradients into ``grads``."""
        for name, grad in grads.items():
            if name in self.grads:
                if accumulate:
                    self.grads[name] += grad
                else:
                    self.grads[name][...] = grad

    def _check_input(self, x):
        """x as an array of the layer's dtype (any float dtype for a layer without
        parameters), else TypeError saying how to convert."""
        x = native_byte_order(np.asarray(x))
        if self.dtype is None:
            if x.dtype not in FLOAT_DTYPES:
                raise TypeError(f"{self!r} takes float32 or float64 input, got {x.dtype}")
        elif x.dtype != self.dtype:
            raise TypeError(
                f"{self!r} holds {self.dtype} parameters but got {x.dtype} input: convert the "
                f"input (x.astype(np.{self.dtype})) or the model (model.to(np.{x.dtype}))")
        return x

    def _check_grad(self, dy, shape, dtype):
        """dy as a contiguous array of ``dtype`` (the forward's) and the given output shape."""
        dy = float_array("dy", dy)
        if dy.dtype != dtype:
            raise TypeError(f"{self!r} ran forward in {dtype} but got {dy.dtype} dy")
        if dy.shape != tuple(shape):  # the message names the layer: its repr costs 0.1 ms
            same_shape("dy", dy, shape, f"the output shape of {self!r}")
        return dy

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        return self._cache

    def config(self):
        """The constructor's keyword arguments that rebuild this layer (with fresh weights):
        ``type(layer)(**layer.config())``. JSON-able (tuples become lists): checkpoints
        store it, and ``repr`` shows it. Layers with arguments override it next to their
        ``__init__``; ``dtype`` is included where the layer has one."""
        return {}

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        """``config()`` as arguments, the leading required ones by position:
        ``5, 3, bias=True, dtype='float32'``."""
        parameters = inspect.signature(type(self)).parameters
        parts, by_position = [], True
        for name, value in self.config().items():
            parameter = parameters.get(name)
            by_position = by_position and parameter is not None and parameter.default is parameter.empty \
                and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
            parts.append(repr(value) if by_position else f"{name}={value!r}")
        return ", ".join(parts)
