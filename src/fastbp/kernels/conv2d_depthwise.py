"""Depthwise convolution: groups == C input channels, O = C * m output channels (channel
multiplier m), w (O, 1, KH, KW), any stride, padding and dilation.

Output channel o reads input channel ``c = o // m`` alone:
``y[n, o, i, j] = b[o] + sum_{ki, kj} x[n, o // m, i*sh + ki*dh - ph, j*sw + kj*dw - pw] * w[o, 0, ki, kj]``.
Each pass is a per-plane stencil, vectorised along output (or input) rows: for every tap
(ki, kj), one multiply-add over the run of output columns whose input column lies inside
the plane (``windows.valid_columns``), contiguous when the stride is 1. The forward and dx
are parallel over (n, channel) planes, each owning its plane; dw is summed per fixed group
of ``partials.GROUP`` samples and the groups added in order (``sum_partials``), so every
result is bit-identical whatever the thread count.
"""

from numba import get_thread_id, prange, uint64

from ._jit import reduction_kernel, serial_kernel
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


# -- stride 1: whole rows of a zero-padded copy of the plane ------------------------------
#
# With stride 1 every tap of an output row reads one contiguous run of a padded plane, so
# the passes below copy the plane once, zero-padded, into ``scratch[get_thread_id()]``
# (``depthwise_s1_scratch_size``) and then run over whole rows without bounds checks; a
# 3x3 kernel adds its nine taps in one loop over the row, in the same (ki, kj) order.


def depthwise_s1_scratch_size(height, width, k_h, k_w, pad_h, pad_w, dil_h, dil_w, out_w):
    """Scratch per thread, in elements, for the stride-1 passes: the largest padded plane
    (forward and dw: (H + 2 ph, W + 2 pw); dx: (H + dh (KH - 1), W + dw (KW - 1))), then
    dw's wide dy (OH rows of W + 2 pw, no more than the padded plane)."""
    padded = (height + 2 * pad_h) * (width + 2 * pad_w)
    flipped = (height + dil_h * (k_h - 1)) * (width + dil_w * (k_w - 1))
    return max(padded, flipped) + padded


@serial_kernel
def pad_plane(plane, top, left, out):
    """out (Hp, Wp) = plane (H, W) placed at (top, left) (either may be negative: cropped),
    zero elsewhere."""
    height, width = plane.shape
    cols = out.shape[1]
    lo = min(cols, max(0, left))  # out columns [lo, hi) come from plane columns from lo - left
    hi = max(lo, min(cols, left + width))
    zero_value = out.dtype.type(0)
    for a in range(out.shape[0]):
        dst = out[a]
        r = a - top
        if r < 0 or r >= height:
            fill_run(dst, 0, cols, zero_value)
            continue
        fill_run(dst, 0, lo, zero_value)
        copy_run(plane[r], lo - left, dst, lo, hi - lo)
        fill_run(dst, hi, cols - hi, zero_value)


@reduction_kernel
def conv2d_depthwise_forward_s1(x, w, b, pad_h, pad_w, dil_h, dil_w, y, scratch):
    """``conv2d_depthwise_forward`` with stride 1, on a zero-padded copy of each plane:
    ``y[n, o, i, j] = b[o] + sum_{ki, kj} x_padded[n, o // m, i + ki*dh, j + kj*dw] * w[o, 0, ki, kj]``,
    taps added in (ki, kj) order. Parallel over (n, o) planes."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = y.shape[2], y.shape[3]
    multiplier = c_out // c_in
    rows, cols = height + 2 * pad_h, width + 2 * pad_w
    d1, d2 = uint64(dil_w), uint64(2 * dil_w)
    for job in prange(n_batch * c_out):
        n = job // c_out
        o = job % c_out
        padded = scratch[get_thread_id()][:rows * cols].reshape(rows, cols)
        pad_plane(x[n, o // multiplier], pad_h, pad_w, padded)
        out = y[n, o]
        bias = b[o]
        if k_h == 3 and k_w == 3:
            w0, w1, w2 = w[o, 0, 0, 0], w[o, 0, 0, 1], w[o, 0, 0, 2]
            w3, w4, w5 = w[o, 0, 1, 0], w[o, 0, 1, 1], w[o, 0, 1, 2]
            w6, w7, w8 = w[o, 0, 2, 0], w[o, 0, 2, 1], w[o, 0, 2, 2]
            for i in range(out_h):
                p0 = padded[i]
                p1 = padded[i + dil_h]
                p2 = padded[i + 2 * dil_h]
                dst = out[i]
                for j in range(uint64(out_w)):
                    v = bias + w0 * p0[j]
                    v += w1 * p0[j + d1]
                    v += w2 * p0[j + d2]
                    v += w3 * p1[j]
                    v += w4 * p1[j + d1]
                    v += w5 * p1[j + d2]
                    v += w6 * p2[j]
                    v += w7 * p2[j + d1]
                    v += w8 * p2[j + d2]
                    dst[j] = v
            continue
        for i in range(out_h):
            dst = out[i]
            for j in range(uint64(out_w)):
                dst[j] = bias
            for ki in range(k_h):
                src = padded[i + ki * dil_h]
                for kj in range(k_w):
                    weight = w[o, 0, ki, kj]
                    shift = uint64(kj * dil_w)
                    for j in range(uint64(out_w)):
                        dst[j] += weight * src[j + shift]


@reduction_kernel
def conv2d_depthwise_backward_input_s1(dy, w, pad_h, pad_w, dil_h, dil_w, dx, scratch):
    """``conv2d_depthwise_backward_input`` with stride 1, as the correlation of each
    zero-padded dy plane with the flipped kernel:
    ``dx[n, c, r, s] = sum_{o of c} sum_{a, e} dy_padded[n, o, r + a*dh, s + e*dw] * w[o, 0, KH-1-a, KW-1-e]``
    with dy placed at (dh (KH - 1) - ph, dw (KW - 1) - pw); added in (o, a, e) order.
    Parallel over (n, c) planes."""
    n_batch, c_in, height, width = dx.shape
    c_out, _, k_h, k_w = w.shape
    multiplier = c_out // c_in
    top, left = dil_h * (k_h - 1) - pad_h, dil_w * (k_w - 1) - pad_w
    rows, cols = height + dil_h * (k_h - 1), width + dil_w * (k_w - 1)
    d1, d2 = uint64(dil_w), uint64(2 * dil_w)
    for job in prange(n_batch * c_in):
        n = job // c_in
        c = job % c_in
        padded = scratch[get_thread_id()][:rows * cols].reshape(rows, cols)
        plane = dx[n, c]
        for r in range(height):
            zero(plane[r])
        for o in range(c * multiplier, (c + 1) * multiplier):
            pad_plane(dy[n, o], top, left, padded)
            if k_h == 3 and k_w == 3:
                w0, w1, w2 = w[o, 0, 2, 2], w[o, 0, 2, 1], w[o, 0, 2, 0]
                w3, w4, w5 = w[o, 0, 1, 2], w[o, 0, 1, 1], w[o, 0, 1, 0]
                w6, w7, w8 = w[o, 0, 0, 2], w[o, 0, 0, 1], w[o, 0, 0, 0]
                for r in range(height):
                    p0 = padded[r]
                    p1 = padded[r + dil_h]
                    p2 = padded[r + 2 * dil_h]
                    dst = plane[r]
                    for s in range(uint64(width)):
                        v = dst[s] + w0 * p0[s]
                        v += w1 * p0[s + d1]
                        v += w2 * p0[s + d2]
                        v += w3 * p1[s]
                        v += w4 * p1[s + d1]
                        v += w5 * p1[s + d2]
                        v += w6 * p2[s]
                        v += w7 * p2[s + d1]
                        v += w8 * p2[s + d2]
                        dst[s] = v
                continue
            for r in range(height):
                dst = plane[r]
                for a in range(k_h):
                    src = padded[r + a * dil_h]
                    for e in range(k_w):
                        weight = w[o, 0, k_h - 1 - a, k_w - 1 - e]
                        shift = uint64(e * dil_w)
                        for s in range(uint64(width)):
                            dst[s] += weight * src[s + shift]


@reduction_kernel
def conv2d_depthwise_backward_weight_s1(dy, x, pad_h, pad_w, dil_h, dil_w, dw, scratch, partial,
                                        accumulate):
    """``conv2d_depthwise_backward_weight`` with stride 1, on zero-padded x planes (Hp, Wp):
    dy[n, o] is laid out in rows of Wp (``wide``, zero past its OW columns), so each tap's
    sum over the plane is one dot product of that flat run with the flat padded plane
    shifted by the tap's offset ki*dh*Wp + kj*dw (``gemm.dots_at``), not OH dot products of
    OW; added into ``partial[group, o]`` sample by sample, the groups of ``GROUP`` samples
    added in order (64x64x32x32 3x3, one core: 8.3 -> 6.7 ms, AVX2 6.9 -> 6.4)."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    multiplier = c_out // c_in
    rows, cols = height + 2 * pad_h, width + 2 * pad_w
    n_taps = k_h * k_w
    length = (out_h - 1) * cols + out_w  # the last tap's run ends at the plane's last cell
    offsets = tap_offsets(1, k_h, k_w, rows, cols, n_taps, dil_h, dil_w)
    n_groups = (n_batch + GROUP - 1) // GROUP
    for job in prange(n_groups * c_out):
        g = job // c_out
        o = job % c_out
        buffer = scratch[get_thread_id()]
        padded = buffer[:rows * cols]
        wide = buffer[rows * cols:rows * cols + out_h * cols]
        acc = partial[g, o:o + 1]
        zero(acc)
        zero(wide)
        for n in range(g * GROUP, min(n_batch, (g + 1) * GROUP)):
            pad_plane(x[n, o // multiplier], pad_h, pad_w, padded.reshape(rows, cols))
            grad = dy[n, o]
            for i in range(out_h):
                copy_run(grad[i], 0, wide, i * cols, out_w)
            dots_at(wide.reshape(1, out_h * cols), padded, offsets, length, acc, True)
    sum_partials(partial, dw.reshape(c_out, n_taps), accumulate)
