"""Products over shifted runs of one flat array: the micro-kernels of stride-1 convolution.

A stride-1 convolution on a zero-padded plane reads, for every tap, the same run of the
flat plane shifted by a fixed offset (see ``conv2d_shifted.py``), so it needs no gathered
patches: only sums of shifted runs (``shifted_sums*``) and dot products with shifted runs
(``gemm.dots_at``, the micro-kernel of every matrix product). Offsets are unsigned, so
the loops carry no wrap-around check and vectorise over contiguous memory. Coefficients come in groups of 4 (the caller pads them
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
def shifted_sums_4(coef0, coef1, coef2, coef3, offsets, src, dst0, dst1, dst2, dst3, length):
    """``shifted_sums`` into four destinations at once: each load of src feeds 16
    multiply-adds. Its 16 coefficients and 4 sums fit AVX-512's 32 vector registers."""
    for g in range(0, coef0.shape[0], 4):
        a0, a1, a2, a3 = coef0[g], coef0[g + 1], coef0[g + 2], coef0[g + 3]
        b0, b1, b2, b3 = coef1[g], coef1[g + 1], coef1[g + 2], coef1[g + 3]
        c0, c1, c2, c3 = coef2[g], coef2[g + 1], coef2[g + 2], coef2[g + 3]
        d0, d1, d2, d3 = coef3[g], coef3[g + 1], coef3[g + 2], coef3[g + 3]
        o0, o1, o2, o3 = offsets[g], offsets[g + 1], offsets[g + 2], offsets[g + 3]
        for j in range(uint64(length)):
            s0, s1, s2, s3 = src[o0 + j], src[o1 + j], src[o2 + j], src[o3 + j]
            dst0[j] += a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3
            dst1[j] += b0 * s0 + b1 * s1 + b2 * s2 + b3 * s3
            dst2[j] += c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3
            dst3[j] += d0 * s0 + d1 * s1 + d2 * s2 + d3 * s3
