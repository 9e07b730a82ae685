"""2-D convolution kernels (cross-correlation, as in every deep learning library), NCHW.

Shapes: x (N, C, H, W), w (O, C, KH, KW), b (O,), y (N, O, OH, OW) with
``OH = (H + 2 * pad_h - KH) // stride_h + 1`` (likewise OW).

Each pass is a matrix product over patches gathered for one sample and one block of
output rows at a time (never for the whole batch), so the gathered block stays in the
L2 cache and the innermost loops run over contiguous memory. Zero padding is never
stored in the input: the gather writes zeros where a tap falls outside it.
"""

import numpy as np
from numba import prange

from ._jit import reduction_kernel, serial_kernel

TARGET_BLOCK = 512  # output positions per gathered block: a (C*KH*KW, 512) block fits L2


@serial_kernel
def rows_per_block(out_w):
    return max(1, TARGET_BLOCK // out_w)


@serial_kernel
def gather_patches(plane_stack, row_offsets, col_offsets, stride_h, stride_w, r0, r1, out_w, patches):
    """Fill patches (S * len(row_offsets) * len(col_offsets), (r1 - r0) * out_w):

    ``patches[(s, a, b), (i - r0) * out_w + j] = plane_stack[s, i * sh + row_offsets[a], j * sw + col_offsets[b]]``,
    zero where that index falls outside the plane. plane_stack is (S, H, W).
    """
    n_planes, height, width = plane_stack.shape
    k = 0
    for s in range(n_planes):
        plane = plane_stack[s]
        for a in range(row_offsets.shape[0]):
            for bb in range(col_offsets.shape[0]):
                dst = patches[k]
                shift = col_offsets[bb]
                lo = min(out_w, max(0, -(shift // stride_w)))
                hi = max(lo, min(out_w, (width - 1 - shift) // stride_w + 1))
                for i in range(r0, r1):
                    base = (i - r0) * out_w
                    row = i * stride_h + row_offsets[a]
                    if row < 0 or row >= height:
                        for j in range(out_w):
                            dst[base + j] = 0
                        continue
                    src = plane[row]
                    for j in range(lo):
                        dst[base + j] = 0
                    for j in range(lo, hi):
                        dst[base + j] = src[j * stride_w + shift]
                    for j in range(hi, out_w):
                        dst[base + j] = 0
                k += 1


@serial_kernel
def multiply_patches(weights, patches, length, out_row, m):
    """out_row[:length] += weights[m] @ patches[:, :length] (axpy form: contiguous rows)."""
    w_row = weights[m]
    for k in range(weights.shape[1]):
        a = w_row[k]
        src = patches[k]
        for j in range(length):
            out_row[j] += a * src[j]


@reduction_kernel
def conv2d_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, y):
    """y[n, o, i, j] = b[o] + sum_{c, ki, kj} x[n, c, i*sh + ki - ph, j*sw + kj - pw] * w[o, c, ki, kj].

    Parallel over (sample, block of output rows); each owns its block of y.
    """
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = y.shape[2], y.shape[3]
    weights = w.reshape(c_out, c_in * k_h * k_w)
    flat_y = y.reshape(n_batch, c_out, out_h * out_w)
    row_offsets = np.arange(k_h) - pad_h
    col_offsets = np.arange(k_w) - pad_w
    block = rows_per_block(out_w)
    n_blocks = (out_h + block - 1) // block
    for job in prange(n_batch * n_blocks):
        n = job // n_blocks
        r0 = (job - n * n_blocks) * block
        r1 = min(out_h, r0 + block)
        length = (r1 - r0) * out_w
        patches = np.empty((weights.shape[1], length), x.dtype)
        gather_patches(x[n], row_offsets, col_offsets, stride_h, stride_w, r0, r1, out_w, patches)
        for o in range(c_out):
            out_row = flat_y[n, o, r0 * out_w:r1 * out_w]
            out_row[:] = b[o]
            multiply_patches(weights, patches, length, out_row, o)


@serial_kernel
def phase_taps(phase, kernel, edge, stride):
    """Flipped taps a (0 <= a < kernel) whose dilated row ``phase + a - edge`` is a multiple of
    ``stride``, and the matching row offsets ``(phase + a - edge) // stride`` into dy."""
    count = 0
    for a in range(kernel):
        if (phase + a - edge) % stride == 0:
            count += 1
    taps = np.empty(count, np.int64)
    offsets = np.empty(count, np.int64)
    count = 0
    for a in range(kernel):
        if (phase + a - edge) % stride == 0:
            taps[count] = a
            offsets[count] = (phase + a - edge) // stride
            count += 1
    return taps, offsets


@reduction_kernel
def conv2d_backward_input(dy, w, stride_h, stride_w, pad_h, pad_w, dx):
    """dx (N, C, H, W) as the convolution of the stride-dilated upstream gradient with the
    flipped, channel-transposed kernel.

    Dilate ``dy`` by the stride (``stride - 1`` zeros between entries), pad it by
    ``K - 1 - pad`` and correlate it with ``w_t[c, o, a, b] = w[o, c, KH-1-a, KW-1-b]``:
    ``dx[n, c, r, s] = sum_{o, a, b} dy_dilated_padded[n, o, r + a, s + b] * w_t[c, o, a, b]``.
    The dilation zeros are never multiplied: the rows r of one phase ``r % sh`` meet
    non-zero dilated entries only through the flipped taps ``a`` with
    ``(r % sh + a - (KH-1-ph)) % sh == 0``, so each of the ``sh * sw`` phases of dx is a
    plain (stride 1) correlation of dy with that sub-kernel. Parallel over (sample, phase,
    block of rows): each owns its cells of dx.
    """
    n_batch, c_in, height, width = dx.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    edge_h, edge_w = k_h - 1 - pad_h, k_w - 1 - pad_w
    n_phases = stride_h * stride_w
    max_h, max_w = (height + stride_h - 1) // stride_h, (width + stride_w - 1) // stride_w
    block = rows_per_block(max_w)
    n_blocks = (max_h + block - 1) // block
    for job in prange(n_batch * n_phases * n_blocks):
        n = job // (n_phases * n_blocks)
        rest = job - n * n_phases * n_blocks
        phase = rest // n_blocks
        phase_h, phase_w = phase // stride_w, phase - (phase // stride_w) * stride_w
        rows = (height - phase_h + stride_h - 1) // stride_h  # rows of dx in this phase
        cols = (width - phase_w + stride_w - 1) // stride_w
        r0 = (rest - phase * n_blocks) * block
        r1 = min(rows, r0 + block)
        if r0 >= r1 or cols == 0:
            continue
        taps_h, offsets_h = phase_taps(phase_h, k_h, edge_h, stride_h)
        taps_w, offsets_w = phase_taps(phase_w, k_w, edge_w, stride_w)
        n_taps = taps_h.shape[0] * taps_w.shape[0]
        sub_kernel = np.empty((c_in, c_out * n_taps), dx.dtype)
        for c in range(c_in):
            k = 0
            for o in range(c_out):
                for a in taps_h:
                    for bb in taps_w:
                        sub_kernel[c, k] = w[o, c, k_h - 1 - a, k_w - 1 - bb]
                        k += 1
        length = (r1 - r0) * cols
        patches = np.empty((c_out * n_taps, length), dx.dtype)
        gather_patches(dy[n], offsets_h, offsets_w, 1, 1, r0, r1, cols, patches)
        out_row = np.empty(length, dx.dtype)
        for c in range(c_in):
            out_row[:] = 0
            multiply_patches(sub_kernel, patches, length, out_row, c)
            plane = dx[n, c]
            for i in range(r0, r1):
                src = out_row[(i - r0) * cols:(i - r0 + 1) * cols]
                dst = plane[phase_h + i * stride_h]
                for j in range(cols):
                    dst[phase_w + j * stride_w] = src[j]


GROUP = 4  # samples per partial weight gradient: fixed, so sums never depend on thread count


@reduction_kernel
def conv2d_backward_weight(dy, x, stride_h, stride_w, pad_h, pad_w, dw):
    """dw[o, c, ki, kj] = sum_{n, i, j} dy[n, o, i, j] * x[n, c, i*sh + ki - ph, j*sw + kj - pw].

    The correlation of the input with the upstream gradient, as dy @ patches.T per sample.
    Samples are split into fixed groups of ``GROUP``; each group's partial sum is computed
    in parallel and the partials are added in group order.
    """
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    n_taps = c_in * k_h * k_w
    flat_dy = dy.reshape(n_batch, c_out, out_h * out_w)
    row_offsets = np.arange(k_h) - pad_h
    col_offsets = np.arange(k_w) - pad_w
    block = rows_per_block(out_w)
    n_groups = (n_batch + GROUP - 1) // GROUP
    partial = np.empty((n_groups, c_out, n_taps), dw.dtype)
    for g in prange(n_groups):
        acc = partial[g]
        acc[:, :] = 0
        patches = np.empty((n_taps, block * out_w), x.dtype)
        for n in range(g * GROUP, min(n_batch, (g + 1) * GROUP)):
            for r0 in range(0, out_h, block):
                r1 = min(out_h, r0 + block)
                length = (r1 - r0) * out_w
                gather_patches(x[n], row_offsets, col_offsets, stride_h, stride_w, r0, r1, out_w, patches)
                for o in range(c_out):
                    grad_row = flat_dy[n, o, r0 * out_w:r1 * out_w]
                    acc_row = acc[o]
                    for k in range(n_taps):
                        src = patches[k]
                        total = dw.dtype.type(0)
                        for j in range(length):
                            total += grad_row[j] * src[j]
                        acc_row[k] += total
    flat_dw = dw.reshape(c_out, n_taps)
    for o in prange(c_out):
        for k in range(n_taps):
            total = partial[0, o, k]
            for g in range(1, n_groups):
                total += partial[g, o, k]
            flat_dw[o, k] = total


@reduction_kernel
def conv2d_backward_bias(dy, db):
    """db[o] = sum_{n, i, j} dy[n, o, i, j]."""
    n_batch, c_out, out_h, out_w = dy.shape
    flat = dy.reshape(n_batch, c_out, out_h * out_w)
    for o in prange(c_out):
        acc = db.dtype.type(0)
        for n in range(n_batch):
            row = flat[n, o]
            for p in range(row.shape[0]):
                acc += row[p]
        db[o] = acc
