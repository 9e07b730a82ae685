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
from numba import prange

from ._jit import reduction_kernel, serial_kernel
from .conv2d_shifted import tap_offsets
from .partials import sum_partials
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
    out[:, :, :] = 0
    for r in range(planes.shape[2]):
        for q in range(planes.shape[3]):
            dst = out[r + pad_h, q + pad_w]
            for n in range(out.shape[2]):
                dst[n] = planes[n0 + n, c, r, q]


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
def unpack(packed, n, pad_h, pad_w, out):
    """out (C, H, W) = sample n of packed (C, Hp, Wp, nb) without its padding."""
    for c in range(out.shape[0]):
        for r in range(out.shape[1]):
            dst = out[c, r]
            for q in range(out.shape[2]):
                dst[q] = packed[c, r + pad_h, q + pad_w, n]


@serial_kernel
def batched_scratch_size(n_batch, c_in, height, width, c_out, out_h, out_w, pad_h, pad_w):
    """Elements of the (chunks, ...) copies: the padded input, then the output."""
    padded = c_in * (height + 2 * pad_h) * (width + 2 * pad_w)
    return line_up(n_batch * padded) + line_up(n_batch * c_out * out_h * out_w)


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

    for n in prange(n_batch):
        chunk = n // CHUNK
        n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
        rows = outputs[n0 * out_size:(n0 + nb) * out_size].reshape(c_out, out_h, out_w, nb)
        unpack(rows, n - n0, 0, 0, y[n])
        for o in range(c_out):
            y[n, o] += b[o]


@reduction_kernel
def conv2d_batched_backward_input(dy, w, pad_h, pad_w, dx, scratch):
    """dx (N, C, H, W) for stride 1: the full convolution of dy with the flipped kernel,
    per padded dx row r: ``dx[c, r, kj + j, :] += sum_o w[o, c, ki, kj] * dy[o, r - ki, j, :]``
    over the taps that reach row r, two input channels at a time. Jobs are (chunk, channel
    pair, row): each owns its rows. scratch holds dy and the padded dx in chunked order."""
    n_batch, c_in, height, width = dx.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    n_taps = c_in * k_h * k_w
    n_chunks = (n_batch + CHUNK - 1) // CHUNK
    in_size = c_in * padded_h * padded_w
    out_size = c_out * out_h * out_w
    coef = np.zeros((n_taps, in_fours(c_out)), w.dtype)
    coef[:, :c_out] = w.reshape(c_out, n_taps).T
    row_starts = np.zeros(coef.shape[1], np.uint64)  # padding rows read row 0, times zero
    for o in range(c_out):
        row_starts[o] = o * out_h * out_w
    offsets = chunk_offsets(row_starts, n_batch)
    start = line_up(n_batch * out_size)
    grads = scratch[:n_batch * out_size]
    padded = scratch[start:start + n_batch * in_size]

    for job in prange(n_chunks * c_out):
        pack_job(dy, job, 0, 0, grads)

    pairs = (c_in + 1) // 2
    per_channel = k_h * k_w
    for job in prange(n_chunks * pairs * padded_h):
        chunk, rest = job // (pairs * padded_h), job % (pairs * padded_h)
        c, r = 2 * (rest // padded_h), rest % padded_h
        n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
        shifts = offsets[0] if nb == CHUNK else offsets[1]
        src = grads[n0 * out_size:(n0 + nb) * out_size]
        planes = padded[n0 * in_size:(n0 + nb) * in_size].reshape(c_in, padded_h, padded_w * nb)
        length = out_w * nb
        planes[c, r] = 0
        if c + 1 < c_in:
            planes[c + 1, r] = 0
        for ki in range(max(0, r - out_h + 1), min(k_h, r + 1)):
            i = r - ki
            for kj in range(k_w):
                tap = ki * k_w + kj
                dst = planes[c, r, kj * nb:]
                if c + 1 < c_in:
                    shifted_sums_2(coef[c * per_channel + tap], coef[(c + 1) * per_channel + tap],
                                   shifts, src[i * length:], dst, planes[c + 1, r, kj * nb:],
                                   length)
                else:
                    shifted_sums(coef[c * per_channel + tap], shifts, src[i * length:], dst,
                                 length)

    for n in prange(n_batch):
        chunk = n // CHUNK
        n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
        planes = padded[n0 * in_size:(n0 + nb) * in_size].reshape(c_in, padded_h, padded_w, nb)
        unpack(planes, n - n0, pad_h, pad_w, dx[n])


@reduction_kernel
def conv2d_batched_backward_weight(dy, x, pad_h, pad_w, dw, scratch, partial):
    """dw (O, C, KH, KW) for stride 1: per (chunk, output row i) job, the dot products of
    dy's row i (all columns and samples) with the input run of every tap; partial
    (chunks * OH, O, C*KH*KW) holds one sum per job, added in job order. dy is packed
    row-major, (OH, O, OW, nb), so that a job's rows are one contiguous block."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    n_taps = c_in * k_h * k_w
    n_chunks = (n_batch + CHUNK - 1) // CHUNK
    in_size = c_in * padded_h * padded_w
    out_size = c_out * out_h * out_w
    offsets = chunk_offsets(tap_offsets(c_in, k_h, k_w, padded_h, padded_w, n_taps), n_batch)
    start = line_up(n_batch * in_size)
    inputs = scratch[:n_batch * in_size]
    grads = scratch[start:start + n_batch * out_size]

    for job in prange(n_chunks * (c_in + c_out)):
        if job < n_chunks * c_in:
            pack_job(x, job, pad_h, pad_w, inputs)
            continue
        chunk, o = (job - n_chunks * c_in) // c_out, (job - n_chunks * c_in) % c_out
        n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
        rows = grads[n0 * out_size:(n0 + nb) * out_size].reshape(out_h, c_out, out_w, nb)
        pack(dy, n0, o, 0, 0, rows[:, o])

    for job in prange(n_chunks * out_h):
        chunk, i = job // out_h, job % out_h
        n0, nb = chunk * CHUNK, chunk_size(n_batch, chunk)
        shifts = offsets[0] if nb == CHUNK else offsets[1]
        rows = grads[n0 * out_size:(n0 + nb) * out_size].reshape(out_h, c_out, out_w * nb)
        src = inputs[n0 * in_size + i * padded_w * nb:(n0 + nb) * in_size]
        acc = partial[job]
        acc[:, :] = 0
        shifted_dots(rows[i], src, shifts, out_w * nb, acc)

    sum_partials(partial, dw.reshape(c_out, n_taps))
