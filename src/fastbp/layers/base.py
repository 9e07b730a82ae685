"""The contract every layer follows."""

import numpy as np

from .._validation import FLOAT_DTYPES, float_array, same_shape
from ..kernels.workspace import Workspace


class Layer:
    """A differentiable step: ``forward(x) -> y``, ``backward(dy) -> dx``.

    ``params`` and ``grads`` map names ("weight", "bias") to the live arrays: writing into
    ``params["weight"][...]`` changes the layer. ``backward`` adds into ``grads`` (call
    ``zero_grad`` between steps) and needs the preceding ``forward``'s cached input.
    ``workspace`` keeps the kernels' scratch memory from step to step.
    """

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        if self.dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.params = {}
        self.grads = {}
        self._cache = None
        self.workspace = Workspace()

    def forward(self, x, training=True):
        raise NotImplementedError

    def backward(self, dy, input_grad=True):
        """dx, the gradient w.r.t. the forward's input (shape of x). With
        ``input_grad=False`` only the parameter gradients are accumulated and None is
        returned: for a network's first layer, whose input gradient nobody reads."""
        raise NotImplementedError

    def __call__(self, x, training=True):
        return self.forward(x, training)

    def zero_grad(self):
        for grad in self.grads.values():
            grad[...] = 0

    def _add_param(self, name, value):
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def _grad_targets(self):
        """(grads["weight"], grads["bias"] or None): where a weight layer's backward adds
        its gradients (``add_to`` of the functional backward)."""
        return self.grads["weight"], self.grads.get("bias")

    def _accumulate(self, **grads):
        for name, grad in grads.items():
            if name in self.grads:
                self.grads[name] += grad

    def _check_input(self, x):
        x = np.asarray(x)
        if x.dtype != self.dtype:
            raise TypeError(f"{self!r} holds {self.dtype} parameters but got {x.dtype} input")
        return x

    def _check_grad(self, dy, shape):
        """dy as a contiguous array of the layer's dtype and the given (output) shape."""
        dy = float_array("dy", dy)
        if dy.dtype != self.dtype:
            raise TypeError(f"{self!r} holds {self.dtype} parameters but got {dy.dtype} dy")
        same_shape("dy", dy, shape, f"the output shape of {self!r}")
        return dy

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        return self._cache

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""
