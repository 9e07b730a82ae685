"""Max and mean pooling kernels, NCHW.

Shapes: x (N, C, H, W), y (N, C, OH, OW) with ``OH = (H + 2 * pad_h - KH) // stride_h + 1``.
Every window holds at least one real cell because the callers require
``pad <= kernel // 2``. All kernels are parallel over (n, c) planes.
"""

import numpy as np
from numba import int64, prange, uint64

from ._jit import kernel, serial_kernel
from .windows import tap_columns


@serial_kernel
def later_wins(v, best):
    """Whether a later window cell v replaces the running maximum: larger, or the first NaN."""
    return (v > best) | ((v != v) & (best == best))


@serial_kernel
def max_pool_plane_2x2(plane, width, out_h, out_w, best, best_at):
    """The 2x2, stride-2, unpadded case of one (H * W) plane, branch-free and vectorised.

    Each row of a window is reduced first and the lower row wins only if ``later_wins``,
    which is the row-major first-maximum rule.
    """
    for oi in range(out_h):
        top = uint64(2 * oi * width)
        bottom = top + uint64(width)
        out = uint64(oi * out_w)
        for j in range(uint64(out_w)):
            a, b = plane[top + 2 * j], plane[top + 2 * j + 1]
            c, d = plane[bottom + 2 * j], plane[bottom + 2 * j + 1]
            right = later_wins(b, a)
            upper = b if right else a
            upper_at = top + 2 * j + (uint64(1) if right else uint64(0))
            right = later_wins(d, c)
            lower = d if right else c
            lower_at = bottom + 2 * j + (uint64(1) if right else uint64(0))
            down = later_wins(lower, upper)
            best[out + j] = lower if down else upper
            best_at[out + j] = int64(lower_at if down else upper_at)


@kernel
def max_pool2d_forward(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, y, argmax):
    """y = window maxima; argmax (N, C, OH, OW) int64 holds the flat index ``row * W + col``.

    The first maximum in row-major window order wins; padded cells never win; a NaN in
    the window wins over any number (the first NaN), so NaN propagates as in PyTorch.
    2x2 windows with stride 2 and no padding have their own loop (``max_pool_plane_2x2``);
    otherwise a whole output row is updated per window tap.
    """
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    out_starts, in_starts, counts = tap_columns(k_w, pad_w, stride_w, width, out_w)
    step = uint64(stride_w)
    two_by_two = (k_h == 2 and k_w == 2 and stride_h == 2 and stride_w == 2
                  and pad_h == 0 and pad_w == 0)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        plane = x[n, c].reshape(height * width)
        if two_by_two:
            max_pool_plane_2x2(plane, width, out_h, out_w, y[n, c].reshape(out_h * out_w),
                               argmax[n, c].reshape(out_h * out_w))
            continue
        for oi in range(out_h):
            best = y[n, c, oi]
            best_at = argmax[n, c, oi]
            best_at[:] = -1  # no candidate yet
            for ki in range(k_h):
                r = oi * stride_h + ki - pad_h
                if r < 0 or r >= height:
                    continue
                for kj in range(k_w):
                    first = uint64(r * width) + in_starts[kj]
                    out = out_starts[kj]
                    for j in range(counts[kj]):
                        v = plane[first + j * step]
                        if best_at[out + j] < 0 or later_wins(v, best[out + j]):
                            best[out + j] = v
                            best_at[out + j] = first + j * step


@kernel
def max_pool2d_backward(dy, argmax, dx):
    """dx (N, C, H, W): each dy cell added to the input cell its window's maximum came from."""
    n_batch, channels, height, width = dx.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        grad = dx[n, c].reshape(height * width)
        grad[:] = 0
        sources = argmax[n, c].reshape(out_h * out_w)
        upstream = dy[n, c].reshape(out_h * out_w)
        for p in range(out_h * out_w):
            grad[sources[p]] += upstream[p]


@kernel
def avg_pool2d_forward(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, y):
    """y = window sums / (KH * KW): padded cells count as zeros.

    Row by row: every window tap adds the input cells it reaches to a whole row of sums.
    """
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    scale = y.dtype.type(1.0 / (k_h * k_w))
    out_starts, in_starts, counts = tap_columns(k_w, pad_w, stride_w, width, out_w)
    step = uint64(stride_w)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        plane = x[n, c].reshape(height * width)
        for oi in range(out_h):
            sums = y[n, c, oi]
            sums[:] = 0
            for ki in range(k_h):
                r = oi * stride_h + ki - pad_h
                if r < 0 or r >= height:
                    continue
                for kj in range(k_w):
                    first = uint64(r * width) + in_starts[kj]
                    out = out_starts[kj]
                    for j in range(counts[kj]):
                        sums[out + j] += plane[first + j * step]
            for oj in range(out_w):
                sums[oj] *= scale


@kernel
def avg_pool2d_backward(dy, k_h, k_w, stride_h, stride_w, pad_h, pad_w, dx):
    """dx (N, C, H, W): each dy cell spread evenly, dy / (KH * KW), over its window.

    Row by row: for every window tap, a whole row of dy shares is added onto the dx
    columns that tap reaches (each share recomputed as dy * scale: the same value each time).
    """
    n_batch, channels, height, width = dx.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    scale = dx.dtype.type(1.0 / (k_h * k_w))
    out_starts, in_starts, counts = tap_columns(k_w, pad_w, stride_w, width, out_w)
    step = uint64(stride_w)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        grad = dx[n, c].reshape(height * width)
        grad[:] = 0
        for oi in range(out_h):
            upstream = dy[n, c, oi]
            for ki in range(k_h):
                r = oi * stride_h + ki - pad_h
                if r < 0 or r >= height:
                    continue
                for kj in range(k_w):
                    first = uint64(r * width) + in_starts[kj]
                    out = out_starts[kj]
                    for j in range(counts[kj]):
                        grad[first + j * step] += upstream[out + j] * scale
