"""Global average pooling: (N, C, H, W) -> (N, C), the mean of every plane."""

import numpy as np

from .._validation import float_array
from ..kernels._jit import for_size
from ..kernels.global_pool import global_avg_pool_backward as _backward_kernel
from ..kernels.global_pool import global_avg_pool_forward


def global_avg_pool2d(x):
    """y (N, C) = the mean of x (N, C, H, W) over H and W."""
    x = float_array("x", x, 4, "(N, C, H, W)")
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"x has empty planes (shape {x.shape})")
    y = np.empty(x.shape[:2], x.dtype)
    for_size(global_avg_pool_forward, x.size)(x.reshape(-1, x.shape[2] * x.shape[3]), y.reshape(-1))
    return y


def global_avg_pool2d_backward(dy, input_shape):
    """dx (input_shape, N C H W): dy[n, c] / (H W) in every cell of plane (n, c)."""
    dy = float_array("dy", dy, 2, "(N, C)")
    n, c, h, w = (int(v) for v in input_shape)
    if dy.shape != (n, c):
        raise ValueError(f"dy has shape {dy.shape}, expected {(n, c)} (the output of global_avg_pool2d)")
    dx = np.empty((n, c, h, w), dy.dtype)
    for_size(_backward_kernel, dx.size)(dy.reshape(-1), dx.reshape(-1, h * w))
    return dx
