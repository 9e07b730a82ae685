"""Max and mean pooling over 2-D windows, NCHW."""

import numpy as np

from .._validation import float_array, pair, same_dtype, same_shape, window_output_size
from ..kernels.pooling import (
    avg_pool2d_backward as _avg_backward,
    avg_pool2d_forward as _avg_forward,
    max_pool2d_2x2_backward as _max_2x2_backward,
    max_pool2d_2x2_forward as _max_2x2_forward,
    max_pool2d_backward as _max_backward,
    max_pool2d_forward as _max_forward,
)


def pool_geometry(x, kernel_size, stride, padding, what):
    """Validated (x, kernel, stride, padding, output shape); stride defaults to the kernel.

    Padding may be at most half the kernel (as in PyTorch), so every window holds a real cell.
    """
    x = float_array("x", x, 4, "(N, C, H, W)")
    kernel = pair("kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair("stride", stride, 1)
    padding = pair("padding", padding, 0)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(
            f"{what}: padding {padding} must be at most half the kernel size {kernel}"
        )
    out_hw = window_output_size(x.shape[2:], kernel, stride, padding, what)
    return x, kernel, stride, padding, x.shape[:2] + out_hw


def _checked_grad(dy, x, out_shape, what):
    dy = float_array("dy", dy, 4, "(N, C, OH, OW)")
    same_dtype(dy=dy, x=x)
    same_shape("dy", dy, out_shape, f"the shape of {what}'s output")
    return dy


def max_pool2d_with_argmax(x, kernel_size, stride=None, padding=0):
    """(y (N, C, OH, OW), argmax (N, C, OH, OW) int64 flat index ``row * W + col`` into x)."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "max_pool2d"
    )
    y = np.empty(out_shape, x.dtype)
    argmax = np.empty(out_shape, np.int64)
    _max_forward(x, *kernel, *stride, *padding, y, argmax)
    return y, argmax


def is_2x2(kernel, stride, padding):
    """Whether a pooling window is the common 2x2, stride 2, unpadded one, which has its
    own kernels."""
    return kernel == stride == (2, 2) and padding == (0, 0)


def max_pool2d_2x2_with_winner(x, out_shape, relu=False):
    """(y, winner (uint8)) of shape ``out_shape``: ``max_pool2d_2x2_forward`` of a
    validated x, of relu(x) with ``relu``."""
    y = np.empty(out_shape, x.dtype)
    winner = np.empty(out_shape, np.uint8)
    _max_2x2_forward(x, relu, y, winner)
    return y, winner


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """y (N, C, OH, OW): window maxima of x (N, C, H, W); padded cells never win; NaN wins."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "max_pool2d"
    )
    if is_2x2(kernel, stride, padding):
        return max_pool2d_2x2_with_winner(x, out_shape)[0]
    return max_pool2d_with_argmax(x, kernel, stride, padding)[0]


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0):
    """dx (N, C, H, W): dy routed to the first maximum (row-major) of each window."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "max_pool2d"
    )
    dy = _checked_grad(dy, x, out_shape, "max_pool2d")
    dx = np.empty(x.shape, x.dtype)
    if is_2x2(kernel, stride, padding):
        _max_2x2_backward(dy, max_pool2d_2x2_with_winner(x, out_shape)[1], False, dx)
    else:
        _max_backward(dy, max_pool2d_with_argmax(x, kernel, stride, padding)[1], dx)
    return dx


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """y (N, C, OH, OW): window means of x (N, C, H, W); padded cells count as zeros."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "avg_pool2d"
    )
    y = np.empty(out_shape, x.dtype)
    _avg_forward(x, *kernel, *stride, *padding, y)
    return y


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0):
    """dx (N, C, H, W): each dy cell spread as dy / (KH * KW) over its window."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "avg_pool2d"
    )
    dy = _checked_grad(dy, x, out_shape, "avg_pool2d")
    dx = np.empty_like(x)
    _avg_backward(dy, *kernel, *stride, *padding, dx)
    return dx
