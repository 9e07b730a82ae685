"""Stride-1 convolution with the batch as the innermost axis: for small output planes.

Shapes as in ``conv2d.py``. On planes copied to (C, Hp, Wp, nb) order (a chunk of nb <=
``CHUNK`` samples innermost, zero-padded), output row i of channel o for all its columns
and samples is one contiguous run of ``OW * nb`` values, and so is the input run each tap
(c, ki, kj) multiplies it by, at ``((c * Hp + i + ki) * Wp + kj) * nb``. A row is then a
sum of shifted runs (``shifted_sums_2``) with no dropped columns, unlike
``conv2d_shifted``, which computes ``Wp - OW`` columns per row for nothing: this layout
wins where that waste is large, i.e. on small planes. The copies in and out of the
layout are the price.

Every parallel job owns the runs it writes (each kernel says what its jobs are), and the
weight gradient's per-job sums are added in job order, so results do not depend on the
thread count.
"""

import numpy as np
from numba import get_thread_id, prange

from ._jit import reduction_kernel, serial_kernel
from .conv2d_shifted import tap_offsets
from .partials import sum_partials
from .runs import zero
from .shifted import in_fours, shifted_dots, shifted_sums, shifted_sums_2
from .workspace import line_up

CHUNK = 64  # samples per chunk: a chunk's input rows for one output row stay in L2


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
    blocked = nb - nb % 8
    for r in range(planes.shape[2]):
        dst = out[r + pad_h, pad_w:pad_w + width]
        for n8 in range(0, blocked, 8):  # 8 samples at a time: twice as fast as one
            for q in range(width):
                for n in range(n8, n8 + 8):
                    dst[q, n] = planes[n0 + n, c, r, q]
        for n in range(blocked, nb):
            for q in range(width):
                dst[q, n] = planes[n0 + n, c, r, q]


@serial_kernel
def pack_job(planes, job, pad_h, pad_w, region):
    """Parallel job ``job`` of packing planes (N, C, H, W) into region, chunk after chunk
    in (C, H + 2 pad_h, W + 2 pad_w, nb) order: channel ``job % C`` of chunk ``job // C``."""
    n_batch, channels, height, width = planes.shape
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    size = channels * padded_h * padded_w  # per sample
    chunk, c = job // channels, job % channels
    n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
    packed = region[n0 * size:(n0 + nb) * size].reshape(channels, padded_h, padded_w, nb)
    pack(planes, n0, c, pad_h, pad_w, packed[c])


@serial_kernel
def unpack_row(row, bias, out):
    """out (nb, W) = bias + row (W * nb), one row of nb samples in (W, nb) order. A bias
    of -0.0 copies exactly (x + -0.0 is x for every x, -0.0 included)."""
    n_samples, width = out.shape
    for n in range(n_samples):
        dst = out[n]
        for q in range(width):
            dst[q] = row[q * n_samples + n] + bias


@serial_kernel
def batched_scratch_size(n_batch, c_in, height, width, c_out, out_h, out_w, pad_h, pad_w,
                         threads):
    """Elements of the (chunks, ...) copies of the padded input and of the output, then
    two padded rows of a chunk for each of ``threads`` threads."""
    padded = c_in * (height + 2 * pad_h) * (width + 2 * pad_w)
    rows = threads * line_up(2 * (width + 2 * pad_w) * CHUNK)
    return line_up(n_batch * padded) + line_up(n_batch * c_out * out_h * out_w) + rows


@reduction_kernel
def conv2d_batched_forward(x, w, b, pad_h, pad_w, y, scratch):
    """y (N, O, OH, OW) = b + the stride-1 correlation of x with w; scratch (>=
    ``batched_scratch_size``,) holds x and y in chunked (C, Hp, Wp, nb) / (O, OH, OW, nb)
    order."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = y.shape[2], y.shape[3]
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    n_taps = c_in * k_h * k_w
    n_chunks = (n_batch + CHUNK - 1) // CHUNK
    in_size = c_in * padded_h * padded_w  # per sample
    out_size = c_out * out_h * out_w
    coef = np.zeros((c_out, in_fours(n_taps)), w.dtype)
    coef[:, :n_taps] = w.reshape(c_out, n_taps)
    offsets = chunk_offsets(tap_offsets(c_in, k_h, k_w, padded_h, padded_w, coef.shape[1]), n_batch)
    start = line_up(n_batch * in_size)
    inputs = scratch[:n_batch * in_size]
    outputs = scratch[start:start + n_batch * out_size]

    for job in prange(n_chunks * c_in):
        pack_job(x, job, pad_h, pad_w, inputs)

    pairs = (c_out + 1) // 2
    for job in prange(n_chunks * pairs * out_h):
        chunk, rest = job // (pairs * out_h), job % (pairs * out_h)
        o, i = 2 * (rest // out_h), rest % out_h
        n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
        shifts = offsets[0] if nb == CHUNK else offsets[1]
        src = inputs[n0 * in_size + i * padded_w * nb:(n0 + nb) * in_size]
        rows = outputs[n0 * out_size:(n0 + nb) * out_size].reshape(c_out, out_h, out_w * nb)
        length = out_w * nb
        rows[o, i] = 0
        if o + 1 < c_out:
            rows[o + 1, i] = 0
            shifted_sums_2(coef[o], coef[o + 1], shifts, src, rows[o, i], rows[o + 1, i],
                           length)
        else:
            shifted_sums(coef[o], shifts, src, rows[o, i], length)
        for p in range(o, min(o + 2, c_out)):  # out of the layout while the rows are in cache
            unpack_row(rows[p, i], b[p], y[n0:n0 + nb, p, i])


@reduction_kernel
def conv2d_batched_backward(dy, x, w, pad_h, pad_w, dx, dw, scratch, partial, want_dx, want_dw):
    """For stride 1, dx (N, C, H, W) when ``want_dx`` and dw (O, C, KH, KW) when ``want_dw``,
    from one packed copy of dy in (OH, O, OW, nb) order (a chunk's output row i, all
    channels, is one block) and, for dw, one of x in (C, Hp, Wp, nb) order. Only dx's
    shape is read when dx is not wanted, and only x's when dw is not.

    dx is the full convolution of dy with the flipped kernel, per padded dx row r:
    ``dx[c, r, kj + j, :] += sum_o w[o, c, ki, kj] * dy[r - ki, o, j, :]`` over the taps
    that reach row r, two input channels at a time; jobs are (chunk, channel pair, row),
    each owning its rows, which leave the layout while they are in cache.

    dw: per (chunk, output row i) job, the dot products of dy's row i (all channels,
    columns and samples) with the input run of every tap; partial (chunks * OH, O,
    C*KH*KW) holds one sum per job, added in job order.

    scratch (>= ``batched_scratch_size``) holds packed x, packed dy, then two padded dx
    rows per thread (``numba.get_thread_id``).
    """
    n_batch, c_in, height, width = dx.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    n_taps = c_in * k_h * k_w
    n_chunks = (n_batch + CHUNK - 1) // CHUNK
    in_size = c_in * padded_h * padded_w  # per sample
    out_size = c_out * out_h * out_w
    length = out_w  # of a row, per sample
    start = line_up(n_batch * in_size)
    inputs = scratch[:n_batch * in_size]
    grads = scratch[start:start + n_batch * out_size]
    start += line_up(n_batch * out_size)
    row_pair = line_up(2 * padded_w * CHUNK)

    x_jobs = n_chunks * c_in if want_dw else 0
    for job in prange(x_jobs + n_chunks * c_out):
        if job < x_jobs:
            pack_job(x, job, pad_h, pad_w, inputs)
            continue
        chunk, o = (job - x_jobs) // c_out, (job - x_jobs) % c_out
        n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
        rows = grads[n0 * out_size:(n0 + nb) * out_size].reshape(out_h, c_out, out_w, nb)
        pack(dy, n0, o, 0, 0, rows[:, o])

    if want_dx:
        coef = np.zeros((n_taps, in_fours(c_out)), w.dtype)
        coef[:, :c_out] = w.reshape(c_out, n_taps).T
        row_starts = np.zeros(coef.shape[1], np.uint64)  # padding rows read row 0, times zero
        for o in range(c_out):
            row_starts[o] = o * length
        offsets = chunk_offsets(row_starts, n_batch)
        pairs = (c_in + 1) // 2
        per_channel = k_h * k_w
        for job in prange(n_chunks * pairs * height):
            chunk, rest = job // (pairs * height), job % (pairs * height)
            c, r = 2 * (rest // height), rest % height + pad_h  # padding rows are not needed
            n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
            shifts = offsets[0] if nb == CHUNK else offsets[1]
            src = grads[n0 * out_size:(n0 + nb) * out_size]
            first = start + get_thread_id() * row_pair
            planes = scratch[first:first + 2 * padded_w * nb].reshape(2, padded_w * nb)
            last = min(c + 2, c_in)
            zero(planes)
            for ki in range(max(0, r - out_h + 1), min(k_h, r + 1)):
                row = src[(r - ki) * c_out * length * nb:]
                for kj in range(k_w):
                    tap = ki * k_w + kj
                    dst = planes[0, kj * nb:]
                    if c + 1 < c_in:
                        shifted_sums_2(coef[c * per_channel + tap],
                                       coef[(c + 1) * per_channel + tap], shifts, row, dst,
                                       planes[1, kj * nb:], length * nb)
                    else:
                        shifted_sums(coef[c * per_channel + tap], shifts, row, dst, length * nb)
            for p in range(c, last):
                unpack_row(planes[p - c, pad_w * nb:(pad_w + width) * nb], dx.dtype.type(-0.0),
                           dx[n0:n0 + nb, p, r - pad_h])

    if want_dw:
        offsets = chunk_offsets(tap_offsets(c_in, k_h, k_w, padded_h, padded_w, n_taps), n_batch)
        for job in prange(n_chunks * out_h):
            chunk, i = job // out_h, job % out_h
            n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
            shifts = offsets[0] if nb == CHUNK else offsets[1]
            rows = grads[n0 * out_size:(n0 + nb) * out_size].reshape(out_h, c_out, out_w * nb)
            src = inputs[n0 * in_size + i * padded_w * nb:(n0 + nb) * in_size]
            acc = partial[job]
            zero(acc)
            shifted_dots(rows[i], src, shifts, out_w * nb, acc)
        sum_partials(partial, dw.reshape(c_out, n_taps))
