"""Element-wise activations and their backward passes; any shape (0-d included: the output
has the input's shape), float32 or float64."""

import numpy as np

from .._validation import float_array, real_number, same_dtype, same_shape
from ..kernels import activations as k
from ..kernels._jit import for_size


def _forward(kind, x, param=0.0):
    x = float_array("x", x)
    y = np.empty_like(x)
    for_size(k.FORWARD[kind], x.size)(x.reshape(-1), x.dtype.type(param), y.reshape(-1))
    return y


def _gradient(kernel, dy, kept, name, what, *params):
    """dx = ``kernel(dy, kept, *params, dx)`` over flat views, ``kept`` (named ``name``) the
    activation's input or output (``what``), each param cast to its dtype."""
    kept = float_array(name, kept)
    dy = float_array("dy", dy)
    same_dtype(dy=dy, **{name: kept})
    same_shape("dy", dy, kept.shape, f"the shape of the activation's {what}")
    dx = np.empty_like(kept)
    for_size(kernel, kept.size)(dy.reshape(-1), kept.reshape(-1),
                                *(kept.dtype.type(p) for p in params), dx.reshape(-1))
    return dx


def _backward(kind, dy, x, param=0.0):
    return _gradient(k.BACKWARD[kind], dy, x, "x", "input", param)


def _backward_from_either(kind, dy, x, y):
    """The backward of sigmoid or tanh from its input x or its output y (exactly one)."""
    if (x is None) == (y is None):
        raise ValueError("give either x (the forward's input) or y (its output), not "
                         + ("both" if x is not None else "neither"))
    if x is not None:
        return _backward(kind, dy, x)
    return _gradient(k.BACKWARD_FROM_OUTPUT[kind], dy, y, "y", "output")


def relu(x):
    """max(x, 0); NaN stays NaN."""
    return _forward(k.RELU, x)


def relu_backward(dy, x):
    """dy where x > 0, else 0."""
    return _backward(k.RELU, dy, x)


def add_relu(a, b):
    """relu(a + b) in one pass, bit for bit ``relu(a + b)`` (NaN and the sign of zero
    included): a residual sum and the ReLU after it. a and b of one shape and float dtype.
    Its backward is ``relu_backward(dy, y)`` with y this output: y > 0 exactly where
    a + b > 0."""
    a, b = float_array("a", a), float_array("b", b)
    same_dtype(a=a, b=b)
    same_shape("b", b, a.shape, "the shape of a")
    y = np.empty_like(a)
    for_size(k.sum_relu, a.size)(a.reshape(-1), b.reshape(-1), y.reshape(-1))
    return y


def leaky_relu(x, slope=0.01):
    """x where x > 0, else slope * x; ``slope`` is a finite real number."""
    return _forward(k.LEAKY_RELU, x, real_number("slope", slope))


def leaky_relu_backward(dy, x, slope=0.01):
    return _backward(k.LEAKY_RELU, dy, x, real_number("slope", slope))


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow."""
    return _forward(k.SIGMOID, x)


def sigmoid_backward(dy, x=None, *, y=None):
    """dy * s * (1 - s) with s = sigmoid(x), or s = y, the forward's output (no exp, the
    same values): give x or y."""
    return _backward_from_either(k.SIGMOID, dy, x, y)


def tanh(x):
    return _forward(k.TANH, x)


def tanh_backward(dy, x=None, *, y=None):
    """dy * (1 - t^2) with t = tanh(x), or t = y, the forward's output (no exp, the same
    values): give x or y."""
    return _backward_from_either(k.TANH, dy, x, y)


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * (exp(x) - 1); ``alpha`` is a finite real number."""
    return _forward(k.ELU, x, real_number("alpha", alpha))


def elu_backward(dy, x, alpha=1.0):
    return _backward(k.ELU, dy, x, real_number("alpha", alpha))


def softplus(x):
    """log(1 + exp(x)), stable for large |x|."""
    return _forward(k.SOFTPLUS, x)


def softplus_backward(dy, x):
    """dy * sigmoid(x)."""
    return _backward(k.SOFTPLUS, dy, x)
