"""Stride-1 convolution on zero-padded "wide" planes: no patches are gathered.

Shapes as in ``conv2d.py``. Pad each (H, W) plane to (Hp, Wp) = (H + 2 ph, W + 2 pw) and
flatten it. With stride 1, output (i, j) reads the padded plane at ``p + ki*dh * Wp + kj*dw``
where ``p = i * Wp + j`` (dilation d; 1 for an ordinary kernel): every tap (c, ki, kj)
reads the same run of positions, shifted by ``offset = c * Hp * Wp + ki*dh * Wp + kj*dw``. Outputs are therefore computed at all "wide"
positions ``p < L = (OH - 1) * Wp + OW`` (row i at ``i * Wp``; the columns j >= OW between
rows are computed and dropped, a (Wp - OW) / OW overhead), and every pass is a sum of
shifted runs or a dot product with shifted runs (``shifted.py``). Wide planes of the
upstream gradient hold zeros in those dropped columns.

Each sample is one parallel job (a fixed group of ``GROUP`` samples for the weight
gradient, combined in group order), so results do not depend on the thread count.
``scratch`` is (threads, n) with n at least ``shifted_layout``'s size: job scratch is the
row of the thread running it (``numba.get_thread_id``), so nothing is allocated per job.
"""

import numpy as np
from numba import get_thread_id, prange

from ._jit import reduction_kernel, serial_kernel
from .gemm import dots_at
from .partials import GROUP, sum_partials
from .runs import copy_run, zero
from .shifted import in_four_columns, row_offsets, shifted_sums, shifted_sums_2
from .workspace import line_up


@serial_kernel
def wide_length(out_h, out_w, padded_w):
    """L: the wide positions from output (0, 0) to (OH - 1, OW - 1) in padded rows."""
    return (out_h - 1) * padded_w + out_w


@serial_kernel
def tap_offsets(c_in, k_h, k_w, padded_h, padded_w, count, dil_h, dil_w):
    """uint64 (count,): offset of tap (c, ki, kj) in (c, ki, kj) order, zero beyond the taps
    (a dilated kernel's taps ``dilation`` apart)."""
    offsets = np.zeros(count, np.uint64)
    t = 0
    for c in range(c_in):
        for ki in range(k_h):
            for kj in range(k_w):
                offsets[t] = c * padded_h * padded_w + ki * dil_h * padded_w + kj * dil_w
                t += 1
    return offsets


@serial_kernel
def pad_planes(planes, pad_h, pad_w, out):
    """out (C * Hp * Wp) = the (C, H, W) planes zero-padded and flattened."""
    c_in, height, width = planes.shape
    padded_w = width + 2 * pad_w
    out[:] = 0
    for c in range(c_in):
        for r in range(height):
            start = (c * (height + 2 * pad_h) + r + pad_h) * padded_w + pad_w
            copy_run(planes[c, r], 0, out, start, width)


@serial_kernel
def widen(planes, padded_w, out):
    """out (O, L) = the (O, OH, OW) planes as wide rows, zeros in the dropped columns."""
    _, out_h, out_w = planes.shape
    zero(out)
    for o in range(planes.shape[0]):
        for i in range(out_h):
            copy_run(planes[o, i], 0, out[o], i * padded_w, out_w)


@serial_kernel
def shifted_layout(c_in, height, width, c_out, out_h, out_w, pad_h, pad_w):
    """A thread's scratch row, in elements: (wide, planes, size). The forward and the
    weight gradient put the zero-padded x planes (C * Hp * Wp) at 0 and the O wide rows of
    L (output or dy) at ``wide``; the input gradient the wide dy rows at 0 and the padded
    dx planes at ``planes``. ``size``: enough for either."""
    padded_w = width + 2 * pad_w
    plane_size = c_in * (height + 2 * pad_h) * padded_w
    wide_size = c_out * wide_length(out_h, out_w, padded_w)
    return line_up(plane_size), line_up(wide_size), line_up(plane_size) + line_up(wide_size)


def shifted_partial_shape(n_batch, c_out, n_taps):
    """Shape of the weight gradient's partial sums: one (O, C*KH*KW) per group of samples."""
    return ((n_batch + GROUP - 1) // GROUP, c_out, n_taps)


@reduction_kernel
def conv2d_shifted_forward(x, x_first, w, b, pad_h, pad_w, y, scratch, dil_h, dil_w):
    """y (N, O, OH, OW) = b + the stride-1 correlation of x's channels from x_first on
    (as many as w (O, C, KH, KW) takes) with w, per sample: wide output rows (O, L) += sum
    over taps of w[o, tap] * padded x shifted by the tap's offset, two output channels per
    pass (``shifted_sums_2``)."""
    n_batch, _, height, width = x.shape
    c_out, c_in, k_h, k_w = w.shape
    out_h, out_w = y.shape[2], y.shape[3]
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    n_taps = c_in * k_h * k_w
    length = wide_length(out_h, out_w, padded_w)
    coef = in_four_columns(w.reshape(c_out, n_taps))
    offsets = tap_offsets(c_in, k_h, k_w, padded_h, padded_w, coef.shape[1], dil_h, dil_w)
    plane_size = c_in * padded_h * padded_w
    start, _, _ = shifted_layout(c_in, height, width, c_out, out_h, out_w, pad_h, pad_w)
    for n in prange(n_batch):
        buffer = scratch[get_thread_id()]
        padded = buffer[:plane_size]
        wide = buffer[start:start + c_out * length].reshape(c_out, length)
        pad_planes(x[n, x_first:x_first + c_in], pad_h, pad_w, padded)
        zero(wide)
        for o in range(0, c_out - 1, 2):
            shifted_sums_2(coef[o], coef[o + 1], offsets, padded, wide[o], wide[o + 1], length)
        if c_out % 2:
            shifted_sums(coef[c_out - 1], offsets, padded, wide[c_out - 1], length)
        for o in range(c_out):
            bias = b[o]
            for i in range(out_h):
                dst = y[n, o, i]
                src = wide[o, i * padded_w:i * padded_w + out_w]
                for j in range(out_w):
                    dst[j] = src[j] + bias


@reduction_kernel
def conv2d_shifted_backward_input(dy, dy_first, w, pad_h, pad_w, dx, scratch, dil_h, dil_w):
    """dx (N, C, H, W) for stride 1: the full convolution of dy's channels from dy_first on
    (O of them) with the flipped kernel w (O, C, KH, KW), in scatter order: for every tap
    (c, ki, kj), the padded dx plane c shifted by the tap's offset += sum_o w[o, c, ki, kj]
    * wide dy row o. Two input channels per pass (their planes never overlap), and the
    padding is dropped at the end."""
    n_batch, c_in, height, width = dx.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    plane = padded_h * padded_w
    n_taps = c_in * k_h * k_w
    per_channel = k_h * k_w
    length = wide_length(out_h, out_w, padded_w)
    coef = in_four_columns(w.reshape(c_out, n_taps).T)
    rows = row_offsets(c_out, length, coef.shape[1])
    _, start, _ = shifted_layout(c_in, height, width, c_out, out_h, out_w, pad_h, pad_w)
    for n in prange(n_batch):
        buffer = scratch[get_thread_id()]
        wide_dy = buffer[:c_out * length]
        padded = buffer[start:start + c_in * plane].reshape(c_in, plane)
        widen(dy[n, dy_first:dy_first + c_out], padded_w, wide_dy.reshape(c_out, length))
        zero(padded)
        for ki in range(k_h):
            for kj in range(k_w):
                shift = ki * dil_h * padded_w + kj * dil_w
                tap = ki * k_w + kj
                for c in range(0, c_in - 1, 2):
                    shifted_sums_2(coef[c * per_channel + tap], coef[(c + 1) * per_channel + tap],
                                   rows, wide_dy, padded[c, shift:], padded[c + 1, shift:],
                                   length)
                if c_in % 2:
                    c = c_in - 1
                    shifted_sums(coef[c * per_channel + tap], rows, wide_dy,
                                 padded[c, shift:], length)
        for c in range(c_in):
            for r in range(height):
                copy_run(padded[c], (r + pad_h) * padded_w + pad_w, dx[n, c, r], 0, width)


@reduction_kernel
def conv2d_shifted_backward_weight(dy, x, dy_first, x_first, pad_h, pad_w, dw, scratch, partial,
                                   accumulate, dil_h, dil_w):
    """dw (O, C, KH, KW) for stride 1, of dy's channels from dy_first on and x's from
    x_first on: dw[o, tap] = sum over samples of the dot product of wide dy row o with the
    padded x shifted by the tap's offset (``gemm.dots_at``). partial
    (``shifted_partial_shape``): one sum per group of samples, added in order (and to dw
    with ``accumulate``)."""
    n_batch, _, height, width = x.shape
    c_out, c_in, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    padded_h, padded_w = height + 2 * pad_h, width + 2 * pad_w
    n_taps = c_in * k_h * k_w
    length = wide_length(out_h, out_w, padded_w)
    offsets = tap_offsets(c_in, k_h, k_w, padded_h, padded_w, n_taps, dil_h, dil_w)
    plane_size = c_in * padded_h * padded_w
    n_groups = (n_batch + GROUP - 1) // GROUP
    start, _, _ = shifted_layout(c_in, height, width, c_out, out_h, out_w, pad_h, pad_w)
    for g in prange(n_groups):
        buffer = scratch[get_thread_id()]
        padded = buffer[:plane_size]
        wide_dy = buffer[start:start + c_out * length].reshape(c_out, length)
        acc = partial[g]
        zero(acc)
        for n in range(g * GROUP, min(n_batch, (g + 1) * GROUP)):
            pad_planes(x[n, x_first:x_first + c_in], pad_h, pad_w, padded)
            widen(dy[n, dy_first:dy_first + c_out], padded_w, wide_dy)
            dots_at(wide_dy, padded, offsets, length, acc, True)
    sum_partials(partial, dw.reshape(c_out, n_taps), accumulate)
