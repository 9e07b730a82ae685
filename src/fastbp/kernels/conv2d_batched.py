"""Stride-1 convolution with the batch as the innermost axis: for small output planes.

Shapes as in ``conv2d.py``. On planes copied to (C, Hp, Wp, nb) order (a chunk of nb <=
``CHUNK`` samples innermost, zero-padded), output row i of channel o for all its columns
and samples is one contiguous run of ``OW * nb`` values, and so is the input run each tap
(c, ki, kj) multiplies it by, at ``((c * Hp + i + ki) * Wp + kj) * nb``. A row is then a
sum of shifted runs (``shifted_sums_2``) with no dropped columns, unlike
``conv2d_shifted``, which computes ``Wp - OW`` columns per row for nothing: this layout
wins where that waste is large, i.e. on small planes. The copies in and out of the
layout are the price. The forward's rows for a panel of output channels are also a matrix
product whose k-th row is tap k's run, which the dense tiles read in place
(``packed.tiles_product_at``). The same forward, on dy with the flipped phase kernels,
computes a strided convolution's input gradient phase by phase (``conv2d_phases``).

Every parallel job owns the runs it writes (each kernel says what its jobs are), and the
weight gradient's per-job sums are added in job order, so results do not depend on the
thread count.
"""

import numpy as np
from numba import get_thread_id, prange, uint64

from ._jit import reduction_kernel, serial_kernel
from .conv2d_phases import valid_range
from .conv2d_shifted import tap_offsets
from .gemm import dots_at
from .packed import TILES, into_panels, tile_rows, tiles_product_at
from .partials import sum_partials
from .runs import copy_run, zero
from .shifted import in_four_columns, in_fours, row_offsets, shifted_sums, shifted_sums_2
from .transposed import transpose_blocks
from .workspace import line_up

CHUNK = 64  # samples per chunk: a chunk's input rows for one output row stay in L2
# Output rows of a chunk a thread sums at once: two output channels' by shifted sums, a
# tile's rows by tiles (the largest tile's, whatever this CPU's).
THREAD_ROWS = max(2, *(tile[0] for tile in TILES.values() if tile))


@serial_kernel
def chunk_size(n_batch, chunk):
    """Samples in chunk ``chunk``: CHUNK, but fewer in the last."""
    return min(CHUNK, n_batch - chunk * CHUNK)


@serial_kernel
def chunk_offsets(per_sample, n_batch):
    """uint64 (2, len(per_sample)): offsets counted in samples, scaled to a full chunk's
    layout (row 0) and to the last chunk's (row 1)."""
    last = chunk_size(n_batch, (n_batch + CHUNK - 1) // CHUNK - 1)
    offsets = np.empty((2, per_sample.shape[0]), np.uint64)
    for t in range(per_sample.shape[0]):
        offsets[0, t] = per_sample[t] * CHUNK
        offsets[1, t] = per_sample[t] * last
    return offsets


@serial_kernel
def pack(planes, n0, c, pad_h, pad_w, out):
    """out (Hp, Wp, nb) = channel c of samples n0 .. n0 + nb of planes (N, C, H, W),
    zero-padded, samples innermost."""
    if pad_h or pad_w:
        out[:, :, :] = 0
    nb, width = out.shape[2], planes.shape[3]
    for r in range(planes.shape[2]):
        transpose_blocks(planes[n0:n0 + nb, c, r], out[r + pad_h, pad_w:pad_w + width])


@serial_kernel
def unpack_row(row, bias, out):
    """out (nb, W) = bias + row (W * nb), one row of nb samples in (W, nb) order; row is
    scratch: the bias is added to it in place. A bias of -0.0 copies exactly (x + -0.0 is
    x for every x, -0.0 included)."""
    n_samples, width = out.shape
    for t in range(row.shape[0]):
        row[t] += bias
    transpose_blocks(row.reshape(width, n_samples), out)


@serial_kernel
def unpack_row_strided(row, bias, out, first, step):
    """out[:, first + q * step] = bias + row[q * nb + n] for q < len(row) / nb: as
    ``unpack_row`` into out (nb, W'), the row's columns ``step`` apart (a separate kernel:
    a runtime step of 1 was 8% slower on LeNet's conv2 than ``unpack_row``)."""
    n_samples = out.shape[0]
    width, start, stride = uint64(row.shape[0] // n_samples), uint64(first), uint64(step)
    for n in range(n_samples):
        dst = out[n]
        for q in range(width):  # unsigned: no wraparound check on the index
            dst[start + q * stride] = row[q * n_samples + n] + bias


@serial_kernel
def row_pair_size(padded_w, phases):
    """Elements of a thread's ``THREAD_ROWS`` rows of a chunk, for output or padded input
    rows, for each of ``phases`` column phases summed at once, and with several phases one
    more row as long as all of theirs, where they are merged."""
    return line_up((THREAD_ROWS + (phases > 1)) * phases * padded_w * CHUNK)


@serial_kernel
def batched_layout(n_batch, c_in, height, width, c_out, out_h, out_w, pad_h, pad_w, phases):
    """The scratch layout, in elements: (grads, rows, forward_rows, row_pair). At 0, one
    chunk of the padded input in (C, Hp, Wp, nb) order; in the backward, one chunk of dy in
    (OH, O, OW, nb) order at ``grads`` and thread t's two padded rows of a chunk at
    ``rows + t * row_pair``; in the forward, which has no dy, those at
    ``forward_rows + t * row_pair``, for each of its ``phases`` column phases."""
    nb = min(n_batch, CHUNK)
    grads = line_up(nb * c_in * (height + 2 * pad_h) * (width + 2 * pad_w))
    rows = grads + line_up(nb * c_out * out_h * out_w)
    return grads, rows, grads, row_pair_size(width + 2 * pad_w, phases)


@serial_kernel
def batched_scratch_size(n_batch, c_in, height, width, c_out, out_h, out_w, pad_h, pad_w,
                         phases, threads):
    """Elements of scratch (``batched_layout``) for ``threads`` threads."""
    _, rows, _, row_pair = batched_layout(n_batch, c_in, height, width, c_out, out_h, out_w,
                                          pad_h, pad_w, phases)
    return rows + threads * row_pair


def batched_partial_shape(n_batch, c_out, n_taps, out_h):
    """Shape of the weight gradient's per-job sums: one (O, C*KH*KW) per (chunk, output row)."""
    return ((n_batch + CHUNK - 1) // CHUNK * out_h, c_out, n_taps)


@reduction_kernel
def conv2d_batched_forward(x, weights, k_h, k_w, b, pad_h, pad_w, y, stride_h, stride_w,
                           shift_h, shift_w, scratch, by_tiles):
    """y (N, M, H', W') = b + the stride-1 correlations of x (N, C, H, W), zero-padded by
    (pad_h, pad_w), with the kernels weights[p] (M, C * KH * KW), one per output phase
    p = a * sw + e (P = sh * sw phases): row i, column j of phase p's output lands at
    ``y[:, :, i*sh + a - shift_h, j*sw + e - shift_w]`` where that lies in y, the rest of
    the correlation is not computed. One phase with strides 1 and shifts 0 is the
    convolution's forward (weights = w.reshape(1, O, C * KH * KW)); the phases of a strided
    convolution's input gradient are the correlations of its padded dy with the flipped
    phase kernels (``conv2d_phases.input_grad_phase_weights``), written interleaved.

    Chunk after chunk (so that a chunk's copies stay in cache): x copied to (C, Hp, Wp, nb)
    order, then jobs (output row, row phase, block of output channels), the row outermost
    so that a row's input runs stay in L2 across blocks and phases, each summing its output
    rows of every column phase in a thread's scratch rows, then moving them out of the
    layout together, so that y's cache lines are written whole (phase by phase, stride 2:
    4 ms -> 3 ms on a 4x4 stride-2 transposed convolution); where the column phases fill
    y's rows, their runs are first merged into one row in y's column order, which then
    moves out in 8 x 8 blocks like a stride-1 row. A block's rows are a panel of
    the tile's rows, the taps' runs read in place by the tiles (``by_tiles``: this CPU has
    a tile for the dtype), or a pair by shifted sums. scratch as ``batched_layout``."""
    n_batch, c_in, height, width = x.shape
    n_phases, c_out, n_taps = weights.shape
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    out_h, out_w = padded_h - k_h + 1, padded_w - k_w + 1  # of the correlation
    in_size = c_in * padded_h * padded_w  # per sample
    rows = tile_rows(y) if by_tiles else 0
    block_out = rows if rows else 2
    blocks = (c_out + block_out - 1) // block_out  # per phase
    panels = np.empty((n_phases, blocks if rows else 0, n_taps * rows), weights.dtype)
    coef = np.zeros((n_phases, c_out, in_fours(n_taps) if not rows else 0), weights.dtype)
    for p in range(n_phases):
        if rows:
            into_panels(weights[p], panels[p])
        else:
            coef[p, :, :n_taps] = weights[p]
    offsets = chunk_offsets(tap_offsets(c_in, k_h, k_w, padded_h, padded_w, in_fours(n_taps),
                                        1, 1), n_batch)
    _, _, rows_start, row_pair = batched_layout(n_batch, c_in, height, width, c_out, out_h,
                                                out_w, pad_h, pad_w, stride_w)
    covered = 0  # columns of y the column phases write
    for e in range(stride_w):
        j0, j1 = valid_range(e, stride_w, shift_w, y.shape[3], out_w)
        covered += j1 - j0
    merge = stride_w > 1 and covered == y.shape[3]
    for chunk in range((n_batch + CHUNK - 1) // CHUNK):
        n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
        shifts = offsets[0] if nb == CHUNK else offsets[1]
        inputs = scratch[:nb * in_size].reshape(c_in, padded_h, padded_w, nb)
        for c in prange(c_in):
            pack(x, n0, c, pad_h, pad_w, inputs[c])
        for job in prange(out_h * stride_h * blocks):
            i, a = job // (stride_h * blocks), job % (stride_h * blocks) // blocks
            o = block_out * (job % blocks)
            i0, i1 = valid_range(a, stride_h, shift_h, y.shape[2], out_h)
            if not i0 <= i < i1:
                continue
            first = rows_start + get_thread_id() * row_pair
            region = block_out * padded_w * nb  # of a column phase's sums
            for e in range(stride_w):  # every column phase of the rows: y's lines written whole
                j0, j1 = valid_range(e, stride_w, shift_w, y.shape[3], out_w)
                length = (j1 - j0) * nb
                at, p = (i * padded_w + j0) * nb, a * stride_w + e
                sums = scratch[first + e * region:][:block_out * length].reshape(block_out,
                                                                                 length)
                if rows:
                    tiles_product_at(panels[p, o // rows:o // rows + 1], scratch, at,
                                     shifts[:n_taps], sums, False)
                else:
                    src = scratch[at:nb * in_size]
                    zero(sums)
                    if o + 1 < c_out:
                        shifted_sums_2(coef[p, o], coef[p, o + 1], shifts, src, sums[0],
                                       sums[1], length)
                    else:
                        shifted_sums(coef[p, o], shifts, src, sums[0], length)
            row = i * stride_h + a - shift_h
            merged = scratch[first + stride_w * region:][:y.shape[3] * nb]
            for q in range(o, min(o + block_out, c_out)):  # out of the layout in cache
                dst = y[n0:n0 + nb, q, row]
                for e in range(stride_w):
                    j0, j1 = valid_range(e, stride_w, shift_w, y.shape[3], out_w)
                    length, column = (j1 - j0) * nb, j0 * stride_w + e - shift_w
                    row_sums = scratch[first + e * region + (q - o) * length:][:length]
                    if merge:
                        for j in range(j1 - j0):
                            copy_run(row_sums, j * nb, merged, (column + j * stride_w) * nb, nb)
                    elif stride_w == 1:
                        unpack_row(row_sums, b[q], dst[:, column:column + j1 - j0])
                    else:
                        unpack_row_strided(row_sums, b[q], dst, column, stride_w)
                if merge:
                    unpack_row(merged, b[q], dst)


@reduction_kernel
def conv2d_batched_backward(dy, x, w, pad_h, pad_w, dx, dw, scratch, partial, accumulate):
    """For stride 1, dx (N, C, H, W) unless dx is None and dw (O, C, KH, KW) unless dw is
    None (then x and partial may be None too), chunk after chunk, from one packed copy of
    the chunk's dy in (OH, O, OW, nb) order (output row i, all channels, is one block) and,
    for dw, one of x in (C, Hp, Wp, nb) order. numba compiles one version per pair of
    gradients asked for, the other pass left out.

    dx is the full convolution of dy with the flipped kernel, per padded dx row r:
    ``dx[c, r, kj + j, :] += sum_o w[o, c, ki, kj] * dy[r - ki, o, j, :]`` over the taps
    that reach row r, two input channels at a time; jobs are (channel pair, row), each
    summing its rows in a thread's scratch rows and moving them out of the layout.

    dw: per (chunk, output row i) job, the dot products of dy's row i (all channels,
    columns and samples) with the input run of every tap; partial
    (``batched_partial_shape``) holds one sum per job, added in job order (and to dw with
    ``accumulate``). scratch as ``batched_layout``.
    """
    n_batch, c_out, out_h, out_w = dy.shape
    c_in, k_h, k_w = w.shape[1], w.shape[2], w.shape[3]
    height, width = out_h + k_h - 1 - 2 * pad_h, out_w + k_w - 1 - 2 * pad_w  # stride 1
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    n_taps = c_in * k_h * k_w
    in_size = c_in * padded_h * padded_w  # per sample
    out_size = c_out * out_h * out_w
    grads_start, rows_start, _, row_pair = batched_layout(n_batch, c_in, height, width, c_out,
                                                          out_h, out_w, pad_h, pad_w, 1)
    coef = in_four_columns(w.reshape(c_out, n_taps).T)
    dx_offsets = chunk_offsets(row_offsets(c_out, out_w, coef.shape[1]), n_batch)
    dw_offsets = chunk_offsets(tap_offsets(c_in, k_h, k_w, padded_h, padded_w, n_taps, 1, 1), n_batch)
    pairs = (c_in + 1) // 2
    per_channel = k_h * k_w
    x_jobs = 0
    if dw is not None:
        x_jobs = c_in
    for chunk in range((n_batch + CHUNK - 1) // CHUNK):
        n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
        length = out_w * nb  # of a packed row
        inputs = scratch[:nb * in_size]
        grads = scratch[grads_start:grads_start + nb * out_size]
        for job in prange(x_jobs + c_out):
            if job < x_jobs:
                if dw is not None:
                    pack(x, n0, job, pad_h, pad_w,
                         inputs.reshape(c_in, padded_h, padded_w, nb)[job])
            else:
                o = job - x_jobs
                pack(dy, n0, o, 0, 0, grads.reshape(out_h, c_out, out_w, nb)[:, o])

        if dx is not None:
            shifts = dx_offsets[0] if nb == CHUNK else dx_offsets[1]
            for job in prange(pairs * height):
                c, r = 2 * (job // height), job % height + pad_h  # padding rows: not needed
                first = rows_start + get_thread_id() * row_pair
                planes = scratch[first:first + 2 * padded_w * nb].reshape(2, padded_w * nb)
                last = min(c + 2, c_in)
                zero(planes)
                for ki in range(max(0, r - out_h + 1), min(k_h, r + 1)):
                    row = grads[(r - ki) * c_out * length:]
                    for kj in range(k_w):
                        tap = ki * k_w + kj
                        dst = planes[0, kj * nb:]
                        if c + 1 < c_in:
                            shifted_sums_2(coef[c * per_channel + tap],
                                           coef[(c + 1) * per_channel + tap], shifts, row, dst,
                                           planes[1, kj * nb:], length)
                        else:
                            shifted_sums(coef[c * per_channel + tap], shifts, row, dst, length)
                for p in range(c, last):
                    unpack_row(planes[p - c, pad_w * nb:(pad_w + width) * nb],
                               dx.dtype.type(-0.0), dx[n0:n0 + nb, p, r - pad_h])

        if dw is not None:
            shifts = dw_offsets[0] if nb == CHUNK else dw_offsets[1]
            rows = grads.reshape(out_h, c_out, length)
            for i in prange(out_h):
                acc = partial[chunk * out_h + i]
                zero(acc)
                dots_at(rows[i], inputs[i * padded_w * nb:], shifts, length, acc, True)
    if dw is not None:
        sum_partials(partial, dw.reshape(c_out, n_taps), accumulate)
