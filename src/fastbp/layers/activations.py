"""Element-wise activation layers."""

import numpy as np

from .. import functional as F
from .._validation import real_number
from .base import Layer, ignored_dtype


class _Activation(Layer):
    """y = f(x) element-wise, any shape; subclasses name the functional ops
    ``_forward(x, **options)`` and ``_backward(dy, x, **options)``, or, with
    ``_from_output``, ``_backward(dy, y=y)`` from the forward's output (kept instead of x)."""

    _from_output = False

    def __init__(self, *, dtype=None, **options):
        super().__init__()
        ignored_dtype(dtype)
        self.options = options

    def config(self):
        return dict(self.options)

    def forward(self, x, training=True):
        x = self._check_input(x)
        y = self._forward(x, **self.options)
        self._cache = y if self._from_output else x
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        kept = self._cached()
        if not input_grad:
            return None
        if self._from_output:
            return self._backward(dy, y=kept, **self.options)
        return self._backward(dy, kept, **self.options)


class ReLU(_Activation):
    """max(x, 0)."""

    _forward = staticmethod(F.relu)
    _backward = staticmethod(F.relu_backward)


class LeakyReLU(_Activation):
    """x if x > 0 else slope * x."""

    _forward = staticmethod(F.leaky_relu)
    _backward = staticmethod(F.leaky_relu_backward)

    def __init__(self, slope=0.01, *, dtype=None):
        super().__init__(dtype=dtype, slope=real_number("slope", slope))


class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""

    _forward = staticmethod(F.sigmoid)
    _backward = staticmethod(F.sigmoid_backward)
    _from_output = True


class Tanh(_Activation):
    _forward = staticmethod(F.tanh)
    _backward = staticmethod(F.tanh_backward)
    _from_output = True


class ELU(_Activation):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    _forward = staticmethod(F.elu)
    _backward = staticmethod(F.elu_backward)

    def __init__(self, alpha=1.0, *, dtype=None):
        super().__init__(dtype=dtype, alpha=real_number("alpha", alpha))


class Softplus(_Activation):
    """log(1 + exp(x))."""

    _forward = staticmethod(F.softplus)
    _backward = staticmethod(F.softplus_backward)
