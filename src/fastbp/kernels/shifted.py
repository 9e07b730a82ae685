"""Products over shifted runs of one flat array: the micro-kernels of stride-1 convolution.

A stride-1 convolution on a zero-padded plane reads, for every tap, the same run of the
flat plane shifted by a fixed offset (see ``conv2d_shifted.py``), so it needs no gathered
patches: only sums of shifted runs (``shifted_sums*``) and dot products with shifted runs
(``shifted_dots``). Offsets are unsigned, so the loops carry no wrap-around check and
vectorise over contiguous memory. Coefficients come in groups of 4 (the caller pads them
with zeros): each pass over a destination adds 4 shifted runs, so a destination value is
loaded and stored once per 4 (or, with two destinations, 8) multiply-adds.
"""

import numpy as np
from numba import uint64

from ._jit import serial_kernel


@serial_kernel
def in_fours(n):
    """n rounded up to a multiple of 4: how many coefficients the shifted sums take."""
    return (n + 3) // 4 * 4


@serial_kernel
def in_four_columns(a):
    """a (M, K) copied into zeros of shape (M, in_fours(K)): coefficients for the shifted
    sums, whose padding columns then add nothing."""
    out = np.zeros((a.shape[0], in_fours(a.shape[1])), a.dtype)
    out[:, :a.shape[1]] = a
    return out


@serial_kernel
def row_offsets(rows, stride, count):
    """uint64 (count,): the offset k * stride of row k for k < rows, then zeros (a padding
    coefficient of ``in_four_columns`` reads row 0, times zero)."""
    offsets = np.zeros(count, np.uint64)
    for k in range(rows):
        offsets[k] = k * stride
    return offsets


@serial_kernel
def shifted_sums(coef, offsets, src, dst, length):
    """dst[j] += sum_q coef[q] * src[offsets[q] + j] for j < length; len(coef) % 4 == 0."""
    for g in range(0, coef.shape[0], 4):
        c0, c1, c2, c3 = coef[g], coef[g + 1], coef[g + 2], coef[g + 3]
        o0, o1, o2, o3 = offsets[g], offsets[g + 1], offsets[g + 2], offsets[g + 3]
        for j in range(uint64(length)):
            dst[j] += c0 * src[o0 + j] + c1 * src[o1 + j] + c2 * src[o2 + j] + c3 * src[o3 + j]


@serial_kernel
def shifted_sums_2(coef0, coef1, offsets, src, dst0, dst1, length):
    """``shifted_sums`` into two destinations at once, sharing every load of src."""
    for g in range(0, coef0.shape[0], 4):
        a0, a1, a2, a3 = coef0[g], coef0[g + 1], coef0[g + 2], coef0[g + 3]
        b0, b1, b2, b3 = coef1[g], coef1[g + 1], coef1[g + 2], coef1[g + 3]
        o0, o1, o2, o3 = offsets[g], offsets[g + 1], offsets[g + 2], offsets[g + 3]
        for j in range(uint64(length)):
            s0, s1, s2, s3 = src[o0 + j], src[o1 + j], src[o2 + j], src[o3 + j]
            dst0[j] += a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3
            dst1[j] += b0 * s0 + b1 * s1 + b2 * s2 + b3 * s3


@serial_kernel
def shifted_dot(a, src, offset, length):
    """sum_p a[p] * src[offset + p] for p < length."""
    total = a.dtype.type(0)
    for p in range(uint64(length)):
        total += a[p] * src[offset + p]
    return total


@serial_kernel
def shifted_dots(a, src, offsets, length, out):
    """out[m, t] += sum_p a[m, p] * src[offsets[t] + p] for p < length; a (M, >= length).

    Dot products in tiles of 4 rows of a by 2 offsets, as ``gemm.gemm_nt``; the last rows
    in tiles of 2 rows, then 1, by 4 offsets.
    """
    m_rows, n_offsets = a.shape[0], offsets.shape[0]
    m_main, t_main = m_rows - m_rows % 4, n_offsets - n_offsets % 2
    zero = out.dtype.type(0)
    for m in range(0, m_main, 4):
        a0, a1, a2, a3 = a[m], a[m + 1], a[m + 2], a[m + 3]
        for t in range(0, t_main, 2):
            u0, u1 = offsets[t], offsets[t + 1]
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zero
            for p in range(uint64(length)):
                u, v = src[u0 + p], src[u1 + p]
                s00 += a0[p] * u
                s01 += a0[p] * v
                s10 += a1[p] * u
                s11 += a1[p] * v
                s20 += a2[p] * u
                s21 += a2[p] * v
                s30 += a3[p] * u
                s31 += a3[p] * v
            out[m, t] += s00
            out[m, t + 1] += s01
            out[m + 1, t] += s10
            out[m + 1, t + 1] += s11
            out[m + 2, t] += s20
            out[m + 2, t + 1] += s21
            out[m + 3, t] += s30
            out[m + 3, t + 1] += s31
        for t in range(t_main, n_offsets):
            for i in range(4):
                out[m + i, t] += shifted_dot(a[m + i], src, offsets[t], length)
    t_fours = n_offsets - n_offsets % 4
    m = m_main
    if m_rows - m >= 2:  # two rows left: tiles of 2 rows by 4 offsets
        a0, a1 = a[m], a[m + 1]
        for t in range(0, t_fours, 4):
            u0, u1, u2, u3 = offsets[t], offsets[t + 1], offsets[t + 2], offsets[t + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            for p in range(uint64(length)):
                v0, v1, v2, v3 = src[u0 + p], src[u1 + p], src[u2 + p], src[u3 + p]
                s00 += a0[p] * v0
                s01 += a0[p] * v1
                s02 += a0[p] * v2
                s03 += a0[p] * v3
                s10 += a1[p] * v0
                s11 += a1[p] * v1
                s12 += a1[p] * v2
                s13 += a1[p] * v3
            out[m, t] += s00
            out[m, t + 1] += s01
            out[m, t + 2] += s02
            out[m, t + 3] += s03
            out[m + 1, t] += s10
            out[m + 1, t + 1] += s11
            out[m + 1, t + 2] += s12
            out[m + 1, t + 3] += s13
        for t in range(t_fours, n_offsets):
            for i in range(2):
                out[m + i, t] += shifted_dot(a[m + i], src, offsets[t], length)
        m += 2
    if m < m_rows:  # the last row, four offsets at a time
        row = a[m]
        for t in range(0, t_fours, 4):
            u0, u1, u2, u3 = offsets[t], offsets[t + 1], offsets[t + 2], offsets[t + 3]
            s0 = s1 = s2 = s3 = zero
            for p in range(uint64(length)):
                r = row[p]
                s0 += r * src[u0 + p]
                s1 += r * src[u1 + p]
                s2 += r * src[u2 + p]
                s3 += r * src[u3 + p]
            out[m, t] += s0
            out[m, t + 1] += s1
            out[m, t + 2] += s2
            out[m, t + 3] += s3
        for t in range(t_fours, n_offsets):
            out[m, t] += shifted_dot(row, src, offsets[t], length)
