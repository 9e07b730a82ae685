"""Max and mean pooling kernels, NCHW.

Shapes: x (N, C, H, W), y (N, C, OH, OW) with ``OH = (H + 2 * pad_h - KH) // stride_h + 1``.
Every window holds at least one real cell because the callers require
``pad <= kernel // 2``. All kernels are parallel over (n, c) planes.
"""

import numpy as np
from numba import get_thread_id, int64, prange, uint64, uint8

from ._jit import kernel, serial_kernel
from .isa import MASKED_VECTORS
from .runs import copy_run, fill_run
from .transposed import transpose_blocks
from .windows import tap_columns


@serial_kernel
def later_wins(v, best):
    """Whether a later window cell v replaces the running maximum: larger, or the first NaN."""
    return (v > best) | ((v != v) & (best == best))


SILENT = uint8(4)  # winner bit: no gradient flows back through relu to this window


@serial_kernel
def max_pool_pairs(top, bottom, count, relu, best, cell):
    """The 2x2 windows of a pair of rows: for q < count, best[q] = max of top[2q],
    top[2q + 1], bottom[2q], bottom[2q + 1] and cell[q] = which of them (0..3, row-major)
    holds it, the first maximum or the first NaN winning (``later_wins``).

    With ``relu``, max pooling of relu(x) without computing relu(x): relu commutes with
    max, so best = relu(maximum), and where relu zeroes the maximum every cell of relu(x)
    ties at 0 and the first one (cell 0) wins. Where relu's derivative at the winning
    cell is 0 (a maximum <= 0, or NaN), the ``SILENT`` bit is set as well."""
    zero = top.dtype.type(0)
    for q in range(uint64(count)):
        a, b = top[2 * q], top[2 * q + 1]
        d, e = bottom[2 * q], bottom[2 * q + 1]
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
        best[q] = m
        cell[q] = k


@kernel
def max_pool2d_2x2_forward_rows(x, relu, y, winner):
    """The 2x2 window, stride 2, no padding (the common case), one output row per vector
    loop: y (N, C, H // 2, W // 2) = window maxima (of relu(x) with ``relu``); winner
    (same shape, uint8) = which cell of its window holds the maximum and the ``SILENT``
    bit, as ``max_pool_pairs`` sets them. A last odd row or column is in no window.
    The form for long rows with AVX-512, whose masked loops end rows without scalar
    remainders (see ``isa``; ``max_pool2d_2x2_form``)."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        for oi in range(out_h):
            max_pool_pairs(x[n, c, 2 * oi, :2 * out_w], x[n, c, 2 * oi + 1, :2 * out_w],
                           out_w, relu, y[n, c, oi], winner[n, c, oi])


POOL_RUN = 256  # outputs a job of ``max_pool2d_2x2_forward_runs`` computes in one loop at least


@serial_kernel
def pool_rows_per_job(out_w):
    """Output rows per job of ``max_pool2d_2x2_forward_runs``: at least ``POOL_RUN`` outputs."""
    return max(1, (POOL_RUN + out_w - 1) // out_w)


def max_pool2d_2x2_scratch_size(out_w):
    """Elements of scratch per thread that ``max_pool2d_2x2_forward_runs`` needs."""
    return 4 * pool_rows_per_job(out_w) * out_w


@kernel
def max_pool2d_2x2_forward_runs(x, relu, y, winner, scratch):
    """``max_pool2d_2x2_forward_rows``'s results, for CPUs without AVX-512 and for short
    rows with it (``max_pool2d_2x2_form``): the window rows of several output rows (across
    planes) are first copied end to end into ``scratch[get_thread_id()]`` ((threads,
    ``max_pool2d_2x2_scratch_size(OW)``)), so that one vector loop covers ``POOL_RUN``
    outputs or more and never runs as short scalar remainders (AVX2, 64x32x32x32: 17.6 ->
    0.86 ms)."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    planes = n_batch * channels
    rows = planes * out_h
    per_job = pool_rows_per_job(out_w)
    span = 2 * out_w
    x_flat = x.reshape(planes * height * width)
    y_flat = y.reshape(rows * out_w)
    cells = winner.reshape(rows * out_w)
    for job in prange((rows + per_job - 1) // per_job):
        first = job * per_job
        count = min(per_job, rows - first)
        buffer = scratch[get_thread_id()]
        top = buffer[:per_job * span]
        bottom = buffer[per_job * span:2 * per_job * span]
        for r in range(count):
            row = first + r
            plane = row // out_h
            start = (plane * height + 2 * (row - plane * out_h)) * width
            copy_run(x_flat, start, top, r * span, span)
            copy_run(x_flat, start + width, bottom, r * span, span)
        outputs = slice(first * out_w, (first + count) * out_w)
        max_pool_pairs(top, bottom, count * out_w, relu, y_flat[outputs], cells[outputs])


#: Output columns from which the rows form beats the runs form with AVX-512: one core,
#: Intel AVX-512, relu or not, runs / rows time: LeNet's 64x6x28x28 and 64x16x10x10 (14 and
#: 5 outputs a row) 0.56 / 0.43, 64x32x32x32 (16) 0.75-0.88; 32 to 64 outputs a row
#: 1.02-1.14 (two threads 1.15-1.33).
MIN_WIDTH_FOR_ROWS = 32


def max_pool2d_2x2_form(out_w, masked_vectors=MASKED_VECTORS):
    """The 2x2 forward's loop form this CPU runs fastest on rows of ``out_w`` outputs
    (``isa``): "rows" on long rows with AVX-512, else "runs"; both give the same bits."""
    return "rows" if masked_vectors and out_w >= MIN_WIDTH_FOR_ROWS else "runs"


@kernel
def max_pool2d_2x2_backward(dy, winner, relu, dx):
    """dx (N, C, H, W): each dy cell at its window's winning cell (``winner`` from
    ``max_pool2d_2x2_forward``), zeros elsewhere. With ``relu``, the gradient of max
    pooling of relu(x) with respect to x: none where the forward marked relu's
    derivative 0 (``SILENT``)."""
    n_batch, channels, height, width = dx.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    zero = dx.dtype.type(0)
    dx_planes = dx.reshape(n_batch * channels, height * width)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        grad = dx_planes[job]
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
    x_planes = x.reshape(n_batch * channels, height * width)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        plane = x_planes[job]
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


PLANES = 32  # planes side by side in ``max_pool2d_forward_planes``: the vector axis


def max_pool2d_planes_scratch_size(height, width, out_w):
    """Elements of scratch per thread that ``max_pool2d_forward_planes`` needs: the planes
    side by side, and five output rows of them."""
    return (height * width + 5 * out_w) * PLANES


@serial_kernel
def max_pool_lanes(side, first, step, count, best, best_at, new, new_at, out0):
    """One window tap over an output row of ``PLANES`` planes side by side: for j < count
    and every lane, the cell ``first + j * step`` (``side[cell * PLANES + lane]``) against
    output out0 + j's running maximum and its flat index (``best``, ``best_at`` at
    ``(out0 + j) * PLANES + lane``; an index below 0: no candidate yet); the winner goes
    to ``new`` and ``new_at``, as ``later_wins`` decides. Into other arrays, not back into
    best: a select stored over the value it had read compiled to a masked store, which AMD
    Zen 3 runs microcoded (3x3/2 on 64x32x32x32, one core, against the kernel before:
    1.4-1.5x faster with the masked store, 2.0-2.8x without)."""
    for j in range(uint64(count)):
        src = (uint64(first) + j * uint64(step)) * uint64(PLANES)
        dst = (uint64(out0) + j) * uint64(PLANES)
        v_at = side.dtype.type(first + j * step)
        for lane in range(uint64(PLANES)):
            v, current, at = side[src + lane], best[dst + lane], best_at[dst + lane]
            take = (at < 0) | later_wins(v, current)
            new[dst + lane] = v if take else current
            new_at[dst + lane] = v_at if take else at


@kernel
def max_pool2d_forward_planes(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, y, argmax, scratch):
    """``max_pool2d_forward``'s results, vectorised across planes instead of along rows:
    ``PLANES`` planes are transposed side by side into ``scratch[get_thread_id()]``
    ((threads, ``max_pool2d_planes_scratch_size(H, W, OW)``)), cell-major, so that every
    window tap over an output row is one loop of ``PLANES``-wide vector selects whatever
    the window, stride, padding or row length (short rows leave AVX2's vector loops for
    scalar branches: 3x3/2 on 64x32x32x32 took 38 ms there). The taps of an output row
    run in row-major window order, each over the outputs whose window holds it
    (``tap_columns``), so padded cells never win. The winners' flat indices are kept in
    scratch as floats: exact while ``H * W < 2**24`` (the caller's condition)."""
    n_batch, channels, height, width = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    planes, cells, outputs = n_batch * channels, height * width, out_h * out_w
    out_starts, in_starts, counts = tap_columns(k_w, pad_w, stride_w, width, out_w)
    x_planes = x.reshape(planes, cells)
    y_planes = y.reshape(planes, outputs)
    at_planes = argmax.reshape(planes, outputs)
    row = out_w * PLANES
    none_yet = x.dtype.type(-1)
    for job in prange((planes + PLANES - 1) // PLANES):
        first = job * PLANES
        count = min(PLANES, planes - first)
        buffer = scratch[get_thread_id()]
        side = buffer[:cells * PLANES]  # side[cell * PLANES + lane]: cell of plane first + lane
        rows = buffer[cells * PLANES:cells * PLANES + 5 * row]
        best, best_at = rows[:row], rows[row:2 * row]
        new, new_at = rows[2 * row:3 * row], rows[3 * row:4 * row]
        at_lanes = rows[4 * row:].reshape(PLANES, out_w)
        transpose_blocks(x_planes[first:first + count], side.reshape(cells, PLANES)[:, :count])
        for oi in range(out_h):
            best_at[:] = none_yet
            for ki in range(k_h):
                r = oi * stride_h + ki - pad_h
                if r < 0 or r >= height:
                    continue
                for kj in range(k_w):
                    lo, reached = int64(out_starts[kj]), int64(counts[kj])
                    if reached == 0:
                        continue
                    max_pool_lanes(side, r * width + int64(in_starts[kj]), stride_w, reached,
                                   best, best_at, new, new_at, lo)
                    end = (lo + reached) * PLANES  # the outputs the tap does not reach
                    copy_run(best, 0, new, 0, lo * PLANES)
                    copy_run(best_at, 0, new_at, 0, lo * PLANES)
                    copy_run(best, end, new, end, row - end)
                    copy_run(best_at, end, new_at, end, row - end)
                    best, new = new, best
                    best_at, new_at = new_at, best_at
            o0 = oi * out_w
            transpose_blocks(best.reshape(out_w, PLANES)[:, :count],
                             y_planes[first:first + count, o0:o0 + out_w])
            transpose_blocks(best_at.reshape(out_w, PLANES)[:, :count], at_lanes[:count])
            for lane in range(count):
                winners, found = at_planes[first + lane], at_lanes[lane]
                for j in range(out_w):
                    winners[o0 + j] = int64(found[j])


@kernel
def max_pool2d_backward(dy, argmax, dx):
    """dx (N, C, H, W): each dy cell added to the input cell its window's maximum came from."""
    n_batch, channels, height, width = dx.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    dx_planes = dx.reshape(n_batch * channels, height * width)
    argmax_planes = argmax.reshape(n_batch * channels, out_h * out_w)
    dy_planes = dy.reshape(n_batch * channels, out_h * out_w)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        grad = dx_planes[job]
        grad[:] = 0
        sources = argmax_planes[job]
        upstream = dy_planes[job]
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
    x_planes = x.reshape(n_batch * channels, height * width)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        plane = x_planes[job]
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
    dx_planes = dx.reshape(n_batch * channels, height * width)
    for job in prange(n_batch * channels):
        n = job // channels
        c = job - n * channels
        grad = dx_planes[job]
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
