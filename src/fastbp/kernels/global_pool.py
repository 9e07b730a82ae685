"""Global average pooling: y[n, c] = mean over the plane of x[n, c] (x viewed as (N*C, S)).

Each ``prange`` iteration owns one (n, c) plane and sums it in a fixed order, so results
are the same bits whatever the thread count."""

from numba import prange

from ._jit import kernel, with_serial_twin


@with_serial_twin
@kernel
def global_avg_pool_forward(x, y):
    """y[p] = sum_s x[p, s] / S for every plane p."""
    n_planes, n_sp = x.shape
    for p in prange(n_planes):
        total = 0.0
        for s in range(n_sp):
            total += x[p, s]
        y[p] = total / n_sp


@with_serial_twin
@kernel
def global_avg_pool_backward(dy, dx):
    """dx[p, s] = dy[p] / S: every cell of a plane shares its mean's gradient."""
    n_planes, n_sp = dx.shape
    for p in prange(n_planes):
        g = dy[p] / n_sp
        for s in range(n_sp):
            dx[p, s] = g
