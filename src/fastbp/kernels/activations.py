"""Element-wise activation kernels and their derivatives.

One forward and one backward kernel serve every activation; ``kind`` picks the function
(it is loop-invariant, so LLVM unswitches the branch out of the loop). Arrays are flat
1-D views of contiguous tensors; ``param`` is the leaky slope or the ELU alpha and is
ignored by the others. Strict IEEE semantics: NaN in x gives NaN out of every forward.
"""

import math

from numba import prange

from ._jit import inline_kernel, kernel, serial_kernel, with_serial_twin

RELU, LEAKY_RELU, SIGMOID, TANH, ELU, SOFTPLUS = range(6)


@inline_kernel
def relu_value(v, zero):
    """max(v, 0): NaN stays NaN, -0.0 becomes 0.0. The one definition every kernel that
    computes a ReLU (batch norm's and the residual sum's fused ones too) inlines, so that
    fused and separate steps agree bit for bit."""
    return zero if v <= zero else v


@inline_kernel
def relu_grad(g, v, zero):
    """g where v > 0, else 0 (a select: an infinite g on the flat side gives 0)."""
    return g if v > zero else zero


@serial_kernel
def sigmoid_scalar(v, one):
    """Logistic function without overflow for large |v|."""
    if v >= 0:
        return one / (one + math.exp(-v))
    e = math.exp(v)
    return e / (one + e)


@serial_kernel
def activation_value(kind, v, param, zero, one):
    if kind == RELU:
        return relu_value(v, zero)
    if kind == LEAKY_RELU:
        return v if v > zero else v * param
    if kind == SIGMOID:
        return sigmoid_scalar(v, one)
    if kind == TANH:
        return math.tanh(v)
    if kind == ELU:
        return v if v > zero else param * math.expm1(v)
    # SOFTPLUS: log(1 + e^v) = max(v, 0) + log1p(e^-|v|)
    return (v if v > zero else zero) + math.log1p(math.exp(-abs(v)))


@serial_kernel
def activation_grad(kind, g, v, param, zero, one):
    """g * f'(v). ReLU and leaky ReLU select rather than multiply, so an infinite g on the
    flat side gives 0 (or g * slope), not inf * 0 = NaN."""
    if kind == RELU:
        return relu_grad(g, v, zero)
    if kind == LEAKY_RELU:
        return g if v > zero else g * param
    if kind == SIGMOID:
        s = sigmoid_scalar(v, one)
        return g * (s * (one - s))
    if kind == TANH:
        t = math.tanh(v)
        return g * (one - t * t)
    if kind == ELU:
        return g if v > zero else g * (param * math.exp(v))
    return g * sigmoid_scalar(v, one)


@with_serial_twin
@kernel
def activation_forward(kind, x, param, y):
    """y[i] = f(x[i]) over flat arrays of equal size."""
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    for i in prange(x.size):
        y[i] = activation_value(kind, x[i], param, zero, one)


@with_serial_twin
@kernel
def activation_backward(kind, dy, x, param, dx):
    """dx[i] = dy[i] * f'(x[i]) over flat arrays of equal size."""
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    for i in prange(x.size):
        dx[i] = activation_grad(kind, dy[i], x[i], param, zero, one)


@with_serial_twin
@kernel
def sum_relu(a, b, y):
    """y[i] = relu(a[i] + b[i]) over flat arrays of equal size: a residual sum and the ReLU
    after it, each value rounded once by the sum, as a + b then relu would round it."""
    zero = y.dtype.type(0)
    for i in prange(y.size):
        y[i] = relu_value(a[i] + b[i], zero)
