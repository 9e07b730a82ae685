"""Max and mean pooling kernels, NCHW.

Shapes: x (N, C, H, W), y (N, C, OH, OW) with ``OH = (H + 2 * pad_h - KH) // stride_h + 1``.
Every window holds at least one real cell because the callers require
``pad <= kernel // 2``. All kernels are parallel over (n, c) planes.
"""

import math

from numba import prange

from ._jit import kernel


@kernel
def max_pool2d_forward(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, y, argmax):
    """y = window maxima; argmax (N, C, OH, OW) int64 holds the flat index ``row * W + col``.

    The first maximum in row-major window order wins; padded cells never win; a NaN in
    the window wins over any number (the first NaN), so NaN propagates as in PyTorch.
    """
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        plane = x[n, c]
        for oi in range(out_h):
            r0 = oi * stride_h - pad_h
            r_lo, r_hi = max(r0, 0), min(r0 + k_h, height)
            for oj in range(out_w):
                c0 = oj * stride_w - pad_w
                c_lo, c_hi = max(c0, 0), min(c0 + k_w, width)
                best = plane[r_lo, c_lo]
                best_at = r_lo * width + c_lo
                for r in range(r_lo, r_hi):
                    for col in range(c_lo, c_hi):
                        v = plane[r, col]
                        if v > best or (math.isnan(v) and not math.isnan(best)):
                            best = v
                            best_at = r * width + col
                y[n, c, oi, oj] = best
                argmax[n, c, oi, oj] = best_at


@kernel
def max_pool2d_backward(dy, argmax, dx):
    """dx (N, C, H, W): each dy cell added to the input cell its window's maximum came from."""
    n_batch, channels, height, width = dx.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        grad = dx[n, c]
        grad[:, :] = 0
        for oi in range(out_h):
            for oj in range(out_w):
                at = argmax[n, c, oi, oj]
                r = at // width
                grad[r, at - r * width] += dy[n, c, oi, oj]


@kernel
def avg_pool2d_forward(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, y):
    """y = window sums / (KH * KW): padded cells count as zeros."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    scale = y.dtype.type(1.0 / (k_h * k_w))
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        plane = x[n, c]
        for oi in range(out_h):
            r0 = oi * stride_h - pad_h
            for oj in range(out_w):
                c0 = oj * stride_w - pad_w
                acc = y.dtype.type(0)
                for r in range(max(r0, 0), min(r0 + k_h, height)):
                    for col in range(max(c0, 0), min(c0 + k_w, width)):
                        acc += plane[r, col]
                y[n, c, oi, oj] = acc * scale


@kernel
def avg_pool2d_backward(dy, k_h, k_w, stride_h, stride_w, pad_h, pad_w, dx):
    """dx (N, C, H, W): each dy cell spread evenly, dy / (KH * KW), over its window."""
    n_batch, channels, height, width = dx.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    scale = dx.dtype.type(1.0 / (k_h * k_w))
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        grad = dx[n, c]
        grad[:, :] = 0
        for oi in range(out_h):
            r0 = oi * stride_h - pad_h
            for oj in range(out_w):
                c0 = oj * stride_w - pad_w
                share = dy[n, c, oi, oj] * scale
                for r in range(max(r0, 0), min(r0 + k_h, height)):
                    for col in range(max(c0, 0), min(c0 + k_w, width)):
                        grad[r, col] += share
