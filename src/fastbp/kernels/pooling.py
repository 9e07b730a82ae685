"""Max and mean pooling kernels, NCHW.

Shapes: x (N, C, H, W), y (N, C, OH, OW) with ``OH = (H + 2 * pad_h - KH) // stride_h + 1``.
Every window holds at least one real cell because the callers require
``pad <= kernel // 2``. All kernels are parallel over (n, c) planes.
"""

import numpy as np
from numba import int64, prange, uint64, uint8

from ._jit import kernel, serial_kernel
from .runs import fill_run
from .windows import tap_columns


@serial_kernel
def later_wins(v, best):
    """Whether a later window cell v replaces the running maximum: larger, or the first NaN."""
    return (v > best) | ((v != v) & (best == best))


SILENT = uint8(4)  # winner bit: no gradient flows back through relu to this window


@kernel
def max_pool2d_2x2_forward(x, relu, y, winner):
    """The 2x2 window, stride 2, no padding (the common case), vectorised:
    y (N, C, H // 2, W // 2) = window maxima; winner (same shape, uint8) = which cell of
    its window holds the maximum, 0..3 in row-major order, under the same rule as
    ``max_pool2d_forward`` (first maximum, first NaN). A last odd row or column is in no
    window.

    With ``relu``, max pooling of relu(x) without computing relu(x): relu commutes with
    max, so y = relu(maxima), and where relu zeroes the maximum every cell of relu(x)
    ties at 0 and the first one (cell 0) wins. Where relu's derivative at the winning
    cell is 0 (a maximum <= 0, or NaN), the ``SILENT`` bit is set as well.
    """
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    zero = x.dtype.type(0)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        for oi in range(out_h):
            top = x[n, c, 2 * oi, :2 * out_w]
            bottom = x[n, c, 2 * oi + 1, :2 * out_w]
            best = y[n, c, oi]
            cell = winner[n, c, oi]
            for j in range(out_w):
                a, b = top[2 * j], top[2 * j + 1]
                d, e = bottom[2 * j], bottom[2 * j + 1]
                right = later_wins(b, a)
                upper = b if right else a
                below_right = later_wins(e, d)
                lower = e if below_right else d
                down = later_wins(lower, upper)
                m = lower if down else upper
                k = (uint8(2) + uint8(below_right)) if down else uint8(right)
                if relu:
                    dead = m <= zero
                    m = zero if dead else m
                    k = SILENT if dead else (k if m > zero else k | SILENT)
                best[j] = m
                cell[j] = k


@kernel
def max_pool2d_2x2_backward(dy, winner, relu, dx):
    """dx (N, C, H, W): each dy cell at its window's winning cell (``winner`` from
    ``max_pool2d_2x2_forward``), zeros elsewhere. With ``relu``, the gradient of max
    pooling of relu(x) with respect to x: none where the forward marked relu's
    derivative 0 (``SILENT``)."""
    n_batch, channels, height, width = dx.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    zero = dx.dtype.type(0)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        grad = dx[n, c].reshape(height * width)
        fill_run(grad, 0, height * width, zero)
        for oi in range(out_h):
            upstream = dy[n, c, oi]
            cell = winner[n, c, oi]
            for j in range(out_w):
                k = cell[j]
                g = upstream[j]
                if relu:
                    g = zero if k & SILENT else g
                grad[uint64((2 * oi + (k >> 1 & 1)) * width + 2 * j + (k & 1))] = g


@serial_kernel
def update_maxima(plane, first, step, count, best, best_at):
    """One window tap over an output row: plane[first + j * step] replaces best[j] (and
    its flat index best_at[j]) when it ``later_wins`` or best_at[j] < 0 (no candidate yet),
    for j < count. Selects rather than branches: which cell wins is unpredictable."""
    run = plane[first:first + step * count]
    for j in range(count):
        v, current, at = run[step * j], best[j], best_at[j]
        take = (at < 0) | later_wins(v, current)
        best[j] = v if take else current
        best_at[j] = (first + step * j) if take else at


@kernel
def max_pool2d_forward(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, y, argmax):
    """y = window maxima; argmax (N, C, OH, OW) int64 holds the flat index ``row * W + col``.

    The first maximum in row-major window order wins; padded cells never win; a NaN in
    the window wins over any number (the first NaN), so NaN propagates as in PyTorch.
    A whole output row is updated per window tap (the 2x2, stride-2 windows have a faster
    pair of kernels that record winners instead: ``max_pool2d_2x2_forward``).
    """
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    out_starts, in_starts, counts = tap_columns(k_w, pad_w, stride_w, width, out_w)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        plane = x[n, c].reshape(height * width)
        for oi in range(out_h):
            best = y[n, c, oi]
            best_at = argmax[n, c, oi]
            best_at[:] = -1  # no candidate yet
            for ki in range(k_h):
                r = oi * stride_h + ki - pad_h
                if r < 0 or r >= height:
                    continue
                for kj in range(k_w):
                    first = int64(r * width + in_starts[kj])
                    out, count = int64(out_starts[kj]), int64(counts[kj])
                    if stride_w == 2:  # a constant stride lets LLVM vectorise the selects
                        update_maxima(plane, first, 2, count, best[out:out + count],
                                      best_at[out:out + count])
                    else:
                        update_maxima(plane, first, stride_w, count, best[out:out + count],
                                      best_at[out:out + count])


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
