"""Depthwise convolution: groups == C input channels, O = C * m output channels (channel
multiplier m), w (O, 1, KH, KW), any stride, padding and dilation.

Output channel o reads input channel ``c = o // m`` alone:
``y[n, o, i, j] = b[o] + sum_{ki, kj} x[n, o // m, i*sh + ki*dh - ph, j*sw + kj*dw - pw] * w[o, 0, ki, kj]``.
Each pass is a per-plane stencil. With stride 1 it runs over the flat zero-padded plane
(below); otherwise it is vectorised along output (or input) rows: for every tap (ki, kj),
one multiply-add over the run of output columns whose input column lies inside the plane
(``windows.valid_columns``). The forward and dx are parallel over (n, channel) planes
(with stride 1, over jobs of consecutive planes), each owning its planes; dw is summed per
fixed group of ``partials.GROUP`` samples and the groups added in order (``sum_partials``), so every
result is bit-identical whatever the thread count.
"""

import numpy as np
from numba import get_thread_id, prange, uint64

from ._jit import inline_kernel, reduction_kernel, serial_kernel
from .conv2d_shifted import tap_offsets
from .gemm import dots_at
from .partials import GROUP, sum_partials
from .runs import copy_run, fill_run, zero
from .windows import valid_columns


@reduction_kernel
def conv2d_depthwise_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, y):
    """y[n, o, i, j] = b[o] + sum_{ki, kj} x[n, o // m, i*sh + ki*dh - ph, j*sw + kj*dw - pw] * w[o, 0, ki, kj],
    taps added in (ki, kj) order onto the bias. Parallel over (n, o) planes."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = y.shape[2], y.shape[3]
    multiplier = c_out // c_in
    for job in prange(n_batch * c_out):
        n = job // c_out
        o = job % c_out
        plane = x[n, o // multiplier]
        out = y[n, o]
        bias = b[o]
        for i in range(out_h):
            row = out[i]
            for j in range(out_w):
                row[j] = bias
        for ki in range(k_h):
            for kj in range(k_w):
                weight = w[o, 0, ki, kj]
                shift = kj * dil_w - pad_w
                lo, hi = valid_columns(shift, stride_w, width, out_w)
                if lo >= hi:
                    continue
                for i in range(out_h):
                    r = i * stride_h + ki * dil_h - pad_h
                    if r < 0 or r >= height:
                        continue
                    src = plane[r]
                    dst = out[i]
                    if stride_w == 1:
                        for j in range(lo, hi):
                            dst[j] += weight * src[j + shift]
                    else:
                        for j in range(lo, hi):
                            dst[j] += weight * src[j * stride_w + shift]


@reduction_kernel
def conv2d_depthwise_backward_input(dy, w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, dx):
    """dx[n, c, r, s] = sum over the m output channels o of c, and the taps (ki, kj) with
    ``r = i*sh + ki*dh - ph``, ``s = j*sw + kj*dw - pw``, of ``dy[n, o, i, j] * w[o, 0, ki, kj]``,
    added in (o, ki, kj, i) order. Parallel over (n, c) planes, each owning its dx plane."""
    n_batch, c_in, height, width = dx.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    multiplier = c_out // c_in
    for job in prange(n_batch * c_in):
        n = job // c_in
        c = job % c_in
        plane = dx[n, c]
        for r in range(height):
            zero(plane[r])
        for o in range(c * multiplier, (c + 1) * multiplier):
            grad = dy[n, o]
            for ki in range(k_h):
                for kj in range(k_w):
                    weight = w[o, 0, ki, kj]
                    shift = kj * dil_w - pad_w
                    lo, hi = valid_columns(shift, stride_w, width, out_w)
                    if lo >= hi:
                        continue
                    for i in range(out_h):
                        r = i * stride_h + ki * dil_h - pad_h
                        if r < 0 or r >= height:
                            continue
                        src = grad[i]
                        dst = plane[r]
                        if stride_w == 1:
                            for j in range(lo, hi):
                                dst[j + shift] += weight * src[j]
                        else:
                            for j in range(lo, hi):
                                dst[j * stride_w + shift] += weight * src[j]


def depthwise_partial_shape(n_batch, c_out, k_h, k_w):
    """Shape of dw's partial sums: one (O, KH*KW) per group of ``GROUP`` samples."""
    return ((n_batch + GROUP - 1) // GROUP, c_out, k_h * k_w)


def depthwise_scratch_size(k_h, k_w, out_w):
    """Scratch per thread, in elements: a row of column sums per tap."""
    return k_h * k_w * out_w


@reduction_kernel
def conv2d_depthwise_backward_weight(dy, x, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, dw,
                                     scratch, partial, accumulate):
    """dw[o, 0, ki, kj] (+)= sum_{n, i, j} dy[n, o, i, j] * x[n, o // m, i*sh + ki*dh - ph, j*sw + kj*dw - pw].

    Parallel over (group of ``GROUP`` samples, o): per tap, the products are added column
    by column into a row of ``out_w`` sums (a vector loop, ``scratch[get_thread_id()]``,
    ``depthwise_scratch_size``) in (n, i) order, and the row is summed in column order
    into ``partial[group, o, tap]`` (``depthwise_partial_shape``); the groups are then
    added in order (and to dw with ``accumulate``)."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    multiplier = c_out // c_in
    n_groups = (n_batch + GROUP - 1) // GROUP
    for job in prange(n_groups * c_out):
        g = job // c_out
        o = job % c_out
        sums = scratch[get_thread_id()]
        for t in range(k_h * k_w):
            sums[t * out_w:(t + 1) * out_w] = 0
        for n in range(g * GROUP, min(n_batch, (g + 1) * GROUP)):
            plane = x[n, o // multiplier]
            grad = dy[n, o]
            for ki in range(k_h):
                for kj in range(k_w):
                    t = ki * k_w + kj
                    acc = sums[t * out_w:(t + 1) * out_w]
                    shift = kj * dil_w - pad_w
                    lo, hi = valid_columns(shift, stride_w, width, out_w)
                    if lo >= hi:
                        continue
                    for i in range(out_h):
                        r = i * stride_h + ki * dil_h - pad_h
                        if r < 0 or r >= height:
                            continue
                        src = plane[r]
                        row = grad[i]
                        if stride_w == 1:
                            for j in range(lo, hi):
                                acc[j] += row[j] * src[j + shift]
                        else:
                            for j in range(lo, hi):
                                acc[j] += row[j] * src[j * stride_w + shift]
        for t in range(k_h * k_w):
            total = sums[t * out_w]
            for j in range(1, out_w):
                total += sums[t * out_w + j]
            partial[g, o, t] = total
    sum_partials(partial, dw.reshape(c_out, k_h * k_w), accumulate)


# -- stride 1: flat runs over zero-padded planes ------------------------------------------
#
# With stride 1, tap (ki, kj) of output cell (i, j) reads cell (i + ki*dh, j + kj*dw) of the
# zero-padded plane: in the flat layout of that plane (rows of Wp) a fixed offset
# ki*dh*Wp + kj*dw from i*Wp + j. So each pass computes a plane as one loop over flat
# positions (``stencil``), its output laid out in rows of Wp ("wide": each row's last
# Wp - OW cells computed and dropped) and copied out row by row. Row by row, a 32-value row
# paid LLVM's runtime alias checks of ten pointers before its two vector steps. A job takes
# ``PLANES_PER_JOB`` planes through one padded buffer whose zero border is written once:
# each plane then copies in only its own cells.

PLANES_PER_JOB = 8


def depthwise_s1_scratch_size(height, width, k_h, k_w, pad_h, pad_w, dil_h, dil_w):
    """Scratch per thread, in elements, for the stride-1 passes: two padded planes (one for
    ``conv2d_depthwise_backward_s1``) and a wide output of their size, for the larger of
    the forward's and dw's padding ((H + 2 ph) x (W + 2 pw)) and dx's ((H + dh (KH - 1)) x
    (W + dw (KW - 1)))."""
    padded = (height + 2 * pad_h) * (width + 2 * pad_w)
    flipped = (height + dil_h * (k_h - 1)) * (width + dil_w * (k_w - 1))
    return 3 * max(padded, flipped)


@inline_kernel
def place_plane(plane, top, left, out, rows, cols):
    """out (flat, rows x cols)[top + r, left + c] = plane[r, c] where that cell lies inside
    out (top and left may be negative: cropped); the rest of out is left as it is."""
    height, width = plane.shape
    c0, c1 = max(0, -left), min(width, cols - left)
    if c1 <= c0:  # cropped across its whole width
        return
    for r in range(max(0, -top), min(height, rows - top)):
        copy_run(plane[r], c0, out, (top + r) * cols + left + c0, c1 - c0)


@inline_kernel
def job_buffers(buffer, size, length):
    """A job's two parts of its thread's scratch ``buffer``: the padded plane (``size``
    cells, zeroed: its border stays zero for every plane of the job) and the wide output
    (``length`` cells)."""
    padded = buffer[:size]
    zero(padded)
    return padded, buffer[size:size + length]


@inline_kernel
def copy_rows_out(wide, cols, plane):
    """plane[r, c] = wide[r * cols + c]: the first W cells of each row of a wide output."""
    height, width = plane.shape
    for r in range(height):
        copy_run(wide, r * cols, plane[r], 0, width)


@serial_kernel
def stencil_offsets(k_h, k_w, rows, cols, dil_h, dil_w):
    """The offsets of ``stencil`` and ``nine_dots``: tap (ki, kj)'s at ki*dh*cols + kj*dw,
    in (ki, kj) order, then zeros up to nine entries. numba's parfor pass hoists
    loop-invariant loads out of a prange loop, out of their branch too: the 3x3 paths'
    nine loads of offsets run whatever the kernel's size."""
    return tap_offsets(1, k_h, k_w, rows, cols, max(k_h * k_w, 9), dil_h, dil_w)


@inline_kernel
def stencil(src, offsets, taps, first, out, length):
    """out[p] = first + sum_t taps[t] * src[p + offsets[t]] for p < length, taps added in
    order onto ``first`` (a scalar, or None: onto out[p] itself); nine at once in one loop
    for a 3x3 kernel, otherwise a loop per tap. offsets from ``stencil_offsets``. Onto a
    scalar, out is neither filled first nor read (64x64x32x32 3x3 forward, one core:
    1.12x with AVX-512, 0.99x with AVX2; dx and dw 1.03x / 1.02x)."""
    n = uint64(length)
    if taps.shape[0] != 9:
        if first is not None:
            fill_run(out, 0, length, first)
        for t in range(taps.shape[0]):
            u, weight = offsets[t], taps[t]
            for p in range(n):
                out[p] += weight * src[p + u]
        return
    u0, u1, u2, u3, u4 = offsets[0], offsets[1], offsets[2], offsets[3], offsets[4]
    u5, u6, u7, u8 = offsets[5], offsets[6], offsets[7], offsets[8]
    w0, w1, w2, w3, w4 = taps[0], taps[1], taps[2], taps[3], taps[4]
    w5, w6, w7, w8 = taps[5], taps[6], taps[7], taps[8]
    for p in range(n):
        v = (out[p] if first is None else first) + w0 * src[p + u0]
        v += w1 * src[p + u1]
        v += w2 * src[p + u2]
        v += w3 * src[p + u3]
        v += w4 * src[p + u4]
        v += w5 * src[p + u5]
        v += w6 * src[p + u6]
        v += w7 * src[p + u7]
        v += w8 * src[p + u8]
        out[p] = v


@inline_kernel
def nine_dots(a, src, offsets, length, out):
    """out[t] += sum_p a[p] * src[p + offsets[t]] for p < length and the nine taps t of a
    3x3 kernel, in one loop: each a[p] is loaded once for its nine products (``dots_at``'s
    tiles of four taps load it three times; 64x64x32x32 dw, one core: 1.16x, AVX2 1.10x).
    offsets from ``stencil_offsets``."""
    u0, u1, u2, u3, u4 = offsets[0], offsets[1], offsets[2], offsets[3], offsets[4]
    u5, u6, u7, u8 = offsets[5], offsets[6], offsets[7], offsets[8]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = out.dtype.type(0)
    for p in range(uint64(length)):
        v = a[p]
        s0 += v * src[p + u0]
        s1 += v * src[p + u1]
        s2 += v * src[p + u2]
        s3 += v * src[p + u3]
        s4 += v * src[p + u4]
        s5 += v * src[p + u5]
        s6 += v * src[p + u6]
        s7 += v * src[p + u7]
        s8 += v * src[p + u8]
    out[0] += s0
    out[1] += s1
    out[2] += s2
    out[3] += s3
    out[4] += s4
    out[5] += s5
    out[6] += s6
    out[7] += s7
    out[8] += s8


@reduction_kernel
def conv2d_depthwise_forward_s1(x, w, b, pad_h, pad_w, dil_h, dil_w, y, scratch):
    """``conv2d_depthwise_forward`` with stride 1, on a zero-padded copy of each plane:
    ``y[n, o, i, j] = b[o] + sum_{ki, kj} x_padded[n, o // m, i + ki*dh, j + kj*dw] * w[o, 0, ki, kj]``,
    taps added in (ki, kj) order. Parallel over jobs of ``PLANES_PER_JOB`` (n, o) planes."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = y.shape[2], y.shape[3]
    multiplier = c_out // c_in
    rows, cols = height + 2 * pad_h, width + 2 * pad_w
    n_taps = k_h * k_w
    offsets = stencil_offsets(k_h, k_w, rows, cols, dil_h, dil_w)
    length = (out_h - 1) * cols + out_w
    taps = w.reshape(c_out, n_taps)
    n_planes = n_batch * c_out
    for job in prange((n_planes + PLANES_PER_JOB - 1) // PLANES_PER_JOB):
        padded, wide = job_buffers(scratch[get_thread_id()], rows * cols, length)
        for plane in range(job * PLANES_PER_JOB, min(n_planes, (job + 1) * PLANES_PER_JOB)):
            n, o = plane // c_out, plane % c_out
            place_plane(x[n, o // multiplier], pad_h, pad_w, padded, rows, cols)
            stencil(padded, offsets, taps[o], b[o], wide, length)
            copy_rows_out(wide, cols, y[n, o])


@serial_kernel
def flipped_taps(w):
    """(O, KH*KW): each kernel of w (O, 1, KH, KW) flipped in both axes, taps in order."""
    c_out, n_taps = w.shape[0], w.shape[2] * w.shape[3]
    taps = w.reshape(c_out, n_taps)
    flipped = np.empty_like(taps)
    for o in range(c_out):
        for t in range(n_taps):
            flipped[o, t] = taps[o, n_taps - 1 - t]
    return flipped


@reduction_kernel
def conv2d_depthwise_backward_input_s1(dy, w, pad_h, pad_w, dil_h, dil_w, dx, scratch):
    """``conv2d_depthwise_backward_input`` with stride 1, as the correlation of each
    zero-padded dy plane with the flipped kernel:
    ``dx[n, c, r, s] = sum_{o of c} sum_{a, e} dy_padded[n, o, r + a*dh, s + e*dw] * w[o, 0, KH-1-a, KW-1-e]``
    with dy placed at (dh (KH - 1) - ph, dw (KW - 1) - pw); added in (o, a, e) order.
    Parallel over jobs of ``PLANES_PER_JOB`` (n, c) planes."""
    n_batch, c_in, height, width = dx.shape
    c_out, _, k_h, k_w = w.shape
    multiplier = c_out // c_in
    top, left = dil_h * (k_h - 1) - pad_h, dil_w * (k_w - 1) - pad_w
    rows, cols = height + dil_h * (k_h - 1), width + dil_w * (k_w - 1)
    offsets = stencil_offsets(k_h, k_w, rows, cols, dil_h, dil_w)
    length = (height - 1) * cols + width
    flipped = flipped_taps(w)
    n_planes = n_batch * c_in
    for job in prange((n_planes + PLANES_PER_JOB - 1) // PLANES_PER_JOB):
        padded, wide = job_buffers(scratch[get_thread_id()], rows * cols, length)
        for plane in range(job * PLANES_PER_JOB, min(n_planes, (job + 1) * PLANES_PER_JOB)):
            n, c = plane // c_in, plane % c_in
            zero(wide)
            for o in range(c * multiplier, (c + 1) * multiplier):
                place_plane(dy[n, o], top, left, padded, rows, cols)
                stencil(padded, offsets, flipped[o], None, wide, length)
            copy_rows_out(wide, cols, dx[n, c])


def pads_alike(k_h, k_w, pad_h, pad_w, dil_h, dil_w):
    """Whether the stride-1 forward's padded planes are the size of dx's (``2 * pad ==
    dil * (k - 1)`` both ways: the output the input's size), so that one padded copy of
    a dy plane serves dx and dw (``conv2d_depthwise_backward_s1``)."""
    return 2 * pad_h == dil_h * (k_h - 1) and 2 * pad_w == dil_w * (k_w - 1)


@reduction_kernel
def conv2d_depthwise_backward_s1(dy, x, w, pad_h, pad_w, dil_h, dil_w, dx, dw, scratch,
                                 partial, accumulate):
    """dx and dw of a stride-1 depthwise convolution with one output channel per input
    channel and padded planes alike (``pads_alike``), from one pass over dy: each dy plane
    is placed once into a zeroed padded plane, where it is both dx's input (the flipped
    kernel's stencil, as ``conv2d_depthwise_backward_input_s1``) and, read from its first
    cell on, dw's run in rows of Wp (as ``conv2d_depthwise_backward_weight_s1``): the same
    sums in the same order as those two, one read of dy (64x64x32x32 3x3, dx and dw: 1.15x
    one core, 1.20x two, AVX2 1.30x). Jobs as dw's, each owning its dx planes."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    rows, cols = height + 2 * pad_h, width + 2 * pad_w
    n_taps, size = k_h * k_w, rows * cols
    offsets = stencil_offsets(k_h, k_w, rows, cols, dil_h, dil_w)
    dw_length = (out_h - 1) * cols + out_w
    dx_length = (height - 1) * cols + width
    dy_at = pad_h * cols + pad_w  # dy's first cell in its padded plane (dx's layout)
    flipped = flipped_taps(w)
    n_groups = (n_batch + GROUP - 1) // GROUP
    n_blocks = (c_out + PLANES_PER_JOB - 1) // PLANES_PER_JOB
    for job in prange(n_groups * n_blocks):
        g = job // n_blocks
        o_lo = (job % n_blocks) * PLANES_PER_JOB
        o_hi = min(c_out, o_lo + PLANES_PER_JOB)
        buffer = scratch[get_thread_id()]
        padded_x = buffer[:size]
        zero(padded_x)
        padded_dy, wide = job_buffers(buffer[size:], size, dx_length)
        grad_row = padded_dy[dy_at:dy_at + dw_length].reshape(1, dw_length)
        zero(partial[g, o_lo:o_hi])
        for n in range(g * GROUP, min(n_batch, (g + 1) * GROUP)):
            for o in range(o_lo, o_hi):
                place_plane(x[n, o], pad_h, pad_w, padded_x, rows, cols)
                place_plane(dy[n, o], pad_h, pad_w, padded_dy, rows, cols)
                if n_taps == 9:
                    nine_dots(padded_dy[dy_at:], padded_x, offsets, dw_length, partial[g, o])
                else:
                    dots_at(grad_row, padded_x, offsets[:n_taps], dw_length,
                            partial[g, o:o + 1], True)
                stencil(padded_dy, offsets, flipped[o], wide.dtype.type(0), wide, dx_length)
                copy_rows_out(wide, cols, dx[n, o])
    sum_partials(partial, dw.reshape(c_out, n_taps), accumulate)


@reduction_kernel
def conv2d_depthwise_backward_weight_s1(dy, x, pad_h, pad_w, dil_h, dil_w, dw, scratch, partial,
                                        accumulate):
    """``conv2d_depthwise_backward_weight`` with stride 1, on zero-padded x planes (Hp, Wp):
    dy[n, o] is laid out in rows of Wp (``wide``, zero past its OW columns), so each tap's
    sum over the plane is one dot product of that flat run with the flat padded plane
    shifted by the tap's offset ki*dh*Wp + kj*dw (``nine_dots`` for a 3x3 kernel, else
    ``gemm.dots_at``), not OH dot products of OW; added into ``partial[group, o]`` sample by sample, the groups of ``GROUP`` samples
    added in order. A job takes a group's samples for ``PLANES_PER_JOB`` channels, sample
    by sample, so that it reads x and dy in the order they lie in memory."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    multiplier = c_out // c_in
    rows, cols = height + 2 * pad_h, width + 2 * pad_w
    n_taps = k_h * k_w
    length = (out_h - 1) * cols + out_w  # the last tap's run ends at the plane's last cell
    offsets = stencil_offsets(k_h, k_w, rows, cols, dil_h, dil_w)
    n_groups = (n_batch + GROUP - 1) // GROUP
    n_blocks = (c_out + PLANES_PER_JOB - 1) // PLANES_PER_JOB
    for job in prange(n_groups * n_blocks):
        g = job // n_blocks
        o_lo = (job % n_blocks) * PLANES_PER_JOB
        o_hi = min(c_out, o_lo + PLANES_PER_JOB)
        padded, wide = job_buffers(scratch[get_thread_id()], rows * cols, length)
        zero(wide)
        zero(partial[g, o_lo:o_hi])
        wide_row = wide.reshape(1, length)  # once: numba's reshape calls out of line
        for n in range(g * GROUP, min(n_batch, (g + 1) * GROUP)):
            for o in range(o_lo, o_hi):
                place_plane(x[n, o // multiplier], pad_h, pad_w, padded, rows, cols)
                place_plane(dy[n, o], 0, 0, wide, out_h, cols)
                if n_taps == 9:
                    nine_dots(wide, padded, offsets, length, partial[g, o])
                else:
                    dots_at(wide_row, padded, offsets[:n_taps], length,
                            partial[g, o:o + 1], True)
    sum_partials(partial, dw.reshape(c_out, n_taps), accumulate)
