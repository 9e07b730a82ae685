"""Element-wise activation kernels and their derivatives.

``FORWARD[kind]`` and ``BACKWARD[kind]`` are each activation's kernels (and
``BACKWARD_FROM_OUTPUT`` sigmoid's and tanh's from their output), one template compiled
per kind (``_per_kind``); the smooth ones compute exp, expm1, log1p and tanh with
``elementary.py``. Arrays are flat 1-D views of contiguous tensors; ``param`` is the
leaky slope or the ELU alpha and is ignored by the others. Strict IEEE semantics: NaN in
x gives NaN out of every forward.
"""

from types import FunctionType

from numba import prange, uint64

from ._jit import inline_kernel, kernel, with_serial_twin
from .elementary import exp_value, expm1_value, log1p_unit, tanh_value

RELU, LEAKY_RELU, SIGMOID, TANH, ELU, SOFTPLUS = range(6)
KIND_NAMES = ("relu", "leaky_relu", "sigmoid", "tanh", "elu", "softplus")


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


@inline_kernel
def sigmoid_scalar(v, one):
    """Logistic function without overflow for large |v|: 1 / (1 + e) or e / (1 + e) with
    e = exp(-|v|), a select that LLVM vectorises."""
    e = exp_value(-abs(v))
    return (one if v >= 0 else e) / (one + e)


@inline_kernel
def activation_value(kind, v, param, zero, one):
    if kind == RELU:
        return relu_value(v, zero)
    if kind == LEAKY_RELU:
        return v if v > zero else v * param
    if kind == SIGMOID:
        return sigmoid_scalar(v, one)
    if kind == TANH:
        return tanh_value(v)
    if kind == ELU:
        return v if v > zero else param * expm1_value(v)
    # SOFTPLUS: log(1 + e^v) = max(v, 0) + log1p(e^-|v|)
    return (v if v > zero else zero) + log1p_unit(exp_value(-abs(v)))


@inline_kernel
def grad_from_output(kind, g, y, one):
    """g * f'(x) from y = f(x): sigmoid's y (1 - y), tanh's 1 - y^2."""
    if kind == SIGMOID:
        return g * (y * (one - y))
    return g * (one - y * y)


@inline_kernel
def activation_grad(kind, g, v, param, zero, one):
    """g * f'(v). ReLU and leaky ReLU select rather than multiply, so an infinite g on the
    flat side gives 0 (or g * slope), not inf * 0 = NaN."""
    if kind == RELU:
        return relu_grad(g, v, zero)
    if kind == LEAKY_RELU:
        return g if v > zero else g * param
    if kind == SIGMOID:
        return grad_from_output(SIGMOID, g, sigmoid_scalar(v, one), one)
    if kind == TANH:
        return grad_from_output(TANH, g, tanh_value(v), one)
    if kind == ELU:
        return g if v > zero else g * (param * exp_value(v))
    return g * sigmoid_scalar(v, one)


RUN = 4096  # values per parallel job
KIND = RELU  # the kernel templates' activation: bound to each kind in its copy (_per_kind)


@inline_kernel
def run_range(job, size):
    """(start, stop) of job's values, [job * RUN, (job + 1) * RUN) within size, unsigned:
    with signed indices numba wraps negative ones, and the loads are no longer contiguous
    to LLVM (ReLU's forward over 2M values: 3.5 ms, 0.27 unsigned)."""
    start = uint64(job) * uint64(RUN)
    return start, min(start + uint64(RUN), uint64(size))


@inline_kernel
def forward_run(kind, x, param, y, job, zero, one):
    """y = f(x) on ``run_range(job, x.size)``."""
    start, stop = run_range(job, x.size)
    for i in range(start, stop):
        y[i] = activation_value(kind, x[i], param, zero, one)


@inline_kernel
def backward_run(kind, dy, x, param, dx, job, zero, one):
    """dx = dy f'(x) on ``run_range(job, x.size)``."""
    start, stop = run_range(job, x.size)
    for i in range(start, stop):
        dx[i] = activation_grad(kind, dy[i], x[i], param, zero, one)


@inline_kernel
def output_run(kind, dy, y, dx, job, one):
    """dx = dy f'(x) from y = f(x) on ``run_range(job, y.size)``."""
    start, stop = run_range(job, y.size)
    for i in range(start, stop):
        dx[i] = grad_from_output(kind, dy[i], y[i], one)


def _activation_forward(x, param, y):
    """y[i] = f(x[i]) over flat arrays of equal size, f the activation KIND."""
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    for job in prange((x.size + RUN - 1) // RUN):
        forward_run(KIND, x, param, y, job, zero, one)


def _activation_backward(dy, x, param, dx):
    """dx[i] = dy[i] * f'(x[i]) over flat arrays of equal size, f the activation KIND."""
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    for job in prange((x.size + RUN - 1) // RUN):
        backward_run(KIND, dy, x, param, dx, job, zero, one)


def _activation_backward_from_output(dy, y, dx):
    """dx[i] = dy[i] * f'(x[i]) from y = f(x), f the activation KIND (SIGMOID or TANH),
    over flat arrays of equal size: ``BACKWARD[KIND]``'s values bit for bit (the same
    expression of the same y), without recomputing f."""
    one = y.dtype.type(1)
    for job in prange((y.size + RUN - 1) // RUN):
        output_run(KIND, dy, y, dx, job, one)


def _per_kind(template, kinds):
    """``{kind: kernel}``: ``template`` compiled with its global KIND bound to each kind, a
    parallel kernel with a serial twin (``with_serial_twin``), each compiled on first use.

    One kernel taking the kind as an argument holds every kind's loop: with a variable kind
    in one loop it did not vectorise (a sigmoid over 2M float32 values, one core: 19 ms,
    1.2 ms apart), and with a branch per kind it compiled every kind's loop on the first
    call of any (4.6 s for the forward and backward, cold).
    """
    kernels = {}
    for kind in kinds:
        name = f"{template.__name__[1:]}_{KIND_NAMES[kind]}"
        scope = dict(template.__globals__, KIND=kind)  # KIND is a compile-time constant
        function = FunctionType(template.__code__, scope, name)
        function.__qualname__ = name  # its own on-disk cache entry
        function.__module__, function.__doc__ = template.__module__, template.__doc__
        kernels[kind] = with_serial_twin(kernel(function))
    return kernels


@with_serial_twin
@kernel
def sum_relu(a, b, y):
    """y[i] = relu(a[i] + b[i]) over flat arrays of equal size: a residual sum and the ReLU
    after it, each value rounded once by the sum, as a + b then relu would round it."""
    zero = y.dtype.type(0)
    for i in prange(y.size):
        y[i] = relu_value(a[i] + b[i], zero)


FORWARD = _per_kind(_activation_forward, range(len(KIND_NAMES)))
BACKWARD = _per_kind(_activation_backward, range(len(KIND_NAMES)))
BACKWARD_FROM_OUTPUT = _per_kind(_activation_backward_from_output, (SIGMOID, TANH))
