"""The matrix-product micro-kernels every dense and convolution kernel is built on.

``dots_at`` computes dot products of rows of ``a`` with runs of a flat array that start at
given offsets: the rows of ``b`` in ``gemm_nt`` (``out = a @ b.T``, offsets ``p * K``), or
the taps of a stride-1 convolution, each a run of the flat padded plane shifted by the
tap's offset (``conv2d_shifted``). Both operands are read along contiguous memory, and
cells are computed in tiles of rows of ``a`` by runs whose running sums stay in vector
registers (LLVM vectorises the shared loop over k, since the reduction kernels allow
re-association), so each loaded vector feeds several FMAs. The tile is the largest the
register file holds (``kernels.isa``): 4 x 4 with AVX-512's 32 vector registers, 4 x 2
with AVX2's or NEON's 16, where the 16 sums of a 4 x 4 tile spill. Measured on one core (Zen 4), GFLOP/s:

    product (M, K, P)      AVX-512 4x2 / 4x4     AVX2 4x2 / 4x4
    256, 784, 256          68.9 / 91.9           73.4 / 52.0
    1020, 1024, 1024       60.2 / 86.4           43.4 / 27.3

A cell's tile depends only on its indices, never on how work was split between threads.
"""

from numba import prange, uint64

from ._jit import inline_kernel, reduction_kernel, serial_kernel
from .isa import MASKED_VECTORS
from .shifted import row_offsets, shifted_sums, shifted_sums_2


@serial_kernel
def gemm_nn(a, b, length, out):
    """out[m, :length] = sum_k a[m, k] * b[k, :length]; a (M, K4) zero beyond column K,
    K4 = in_fours(K) (``shifted.in_four_columns``); b (K, >= length) C-contiguous; out
    (M, >= length).

    The axpy form, no horizontal sums: it beats ``dots_at`` when K is too short for a dot
    product to pay for its final sum. Rows of b are added four at a time into two rows of
    out (``shifted_sums_2``), so each value of out is loaded and stored once per 8
    multiply-adds, not once per one (transposed convolution 64x32x16x16 -> 16, 4x4 stride
    2, one core: its forward 13.7 -> 8.8 ms).
    """
    m_rows = a.shape[0]
    depth, width = b.shape
    offsets = row_offsets(depth, width, a.shape[1])
    src = b.reshape(-1)
    for m in range(0, m_rows - 1, 2):
        out[m, :length] = 0
        out[m + 1, :length] = 0
        shifted_sums_2(a[m], a[m + 1], offsets, src, out[m], out[m + 1], length)
    if m_rows % 2:
        out[m_rows - 1, :length] = 0
        shifted_sums(a[m_rows - 1], offsets, src, out[m_rows - 1], length)


@serial_kernel
def dots_at_4x2(a, src, offsets, length, out, accumulate):
    """out[m, t] (+)= sum_p a[m, p] * src[offsets[t] + p] for p < length, in 4 x 2 tiles.

    a (M, >= length) with contiguous rows; src 1-D; offsets uint64 (T,); out (M, T), any
    2-D view. Every row of b in ``gemm_nt`` and every tap of a stride-1 convolution's
    weight gradient (a run of the flat padded plane, ``conv2d_shifted``) is such a run of
    src. With ``accumulate`` the products are added to out, otherwise they replace it:
    a constant in each of two inlined copies (passed on at run time to every tile's store,
    it cost 4-14%: AMD Zen 3, ``affine.parallel_gemm_nt``).
    """
    if accumulate:
        _dots_at_4x2(a, src, offsets, length, out, True)
    else:
        _dots_at_4x2(a, src, offsets, length, out, False)


@inline_kernel
def _dots_at_4x2(a, src, offsets, length, out, accumulate):
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
            store_4x2(out, m, t, accumulate, s00, s01, s10, s11, s20, s21, s30, s31)
        cells(a, src, offsets, length, out, accumulate, m, m + 4, t_main)
    last_rows(a, src, offsets, length, out, accumulate, m_main)


@serial_kernel
def dots_at_4x4(a, src, offsets, length, out, accumulate):
    """``dots_at_4x2``'s products in 4 x 4 tiles, for CPUs with 32 vector registers."""
    if accumulate:
        _dots_at_4x4(a, src, offsets, length, out, True)
    else:
        _dots_at_4x4(a, src, offsets, length, out, False)


@inline_kernel
def _dots_at_4x4(a, src, offsets, length, out, accumulate):
    m_rows, n_offsets = a.shape[0], offsets.shape[0]
    m_main, t_main = m_rows - m_rows % 4, n_offsets - n_offsets % 4
    zero = out.dtype.type(0)
    for m in range(0, m_main, 4):
        a0, a1, a2, a3 = a[m], a[m + 1], a[m + 2], a[m + 3]
        for t in range(0, t_main, 4):
            u0, u1, u2, u3 = offsets[t], offsets[t + 1], offsets[t + 2], offsets[t + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for p in range(uint64(length)):
                u, v, w, x = src[u0 + p], src[u1 + p], src[u2 + p], src[u3 + p]
                c0, c1, c2, c3 = a0[p], a1[p], a2[p], a3[p]
                s00 += c0 * u
                s01 += c0 * v
                s02 += c0 * w
                s03 += c0 * x
                s10 += c1 * u
                s11 += c1 * v
                s12 += c1 * w
                s13 += c1 * x
                s20 += c2 * u
                s21 += c2 * v
                s22 += c2 * w
                s23 += c2 * x
                s30 += c3 * u
                s31 += c3 * v
                s32 += c3 * w
                s33 += c3 * x
            store_4x2(out, m, t, accumulate, s00, s01, s10, s11, s20, s21, s30, s31)
            store_4x2(out, m, t + 2, accumulate, s02, s03, s12, s13, s22, s23, s32, s33)
        cells(a, src, offsets, length, out, accumulate, m, m + 4, t_main)
    last_rows(a, src, offsets, length, out, accumulate, m_main)


@serial_kernel
def last_rows(a, src, offsets, length, out, accumulate, m):
    """The rows from m on that a 4-row tile leaves over (at most 3): in tiles of 2 rows,
    then 1, by 4 offsets, so that each loaded run of src still feeds several sums."""
    m_rows, n_offsets = a.shape[0], offsets.shape[0]
    t_main = n_offsets - n_offsets % 4
    zero = out.dtype.type(0)
    if m_rows - m >= 2:
        a0, a1 = a[m], a[m + 1]
        for t in range(0, t_main, 4):
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
            store_1x4(out, m, t, accumulate, s00, s01, s02, s03)
            store_1x4(out, m + 1, t, accumulate, s10, s11, s12, s13)
        cells(a, src, offsets, length, out, accumulate, m, m + 2, t_main)
        m += 2
    if m < m_rows:
        row = a[m]
        for t in range(0, t_main, 4):
            u0, u1, u2, u3 = offsets[t], offsets[t + 1], offsets[t + 2], offsets[t + 3]
            s0 = s1 = s2 = s3 = zero
            for p in range(uint64(length)):
                r = row[p]
                s0 += r * src[u0 + p]
                s1 += r * src[u1 + p]
                s2 += r * src[u2 + p]
                s3 += r * src[u3 + p]
            store_1x4(out, m, t, accumulate, s0, s1, s2, s3)
        cells(a, src, offsets, length, out, accumulate, m, m + 1, t_main)


@serial_kernel
def cells(a, src, offsets, length, out, accumulate, m0, m1, t0):
    """out[m, t] for m0 <= m < m1 and t >= t0, one dot product each: what tiles leave over."""
    for m in range(m0, m1):
        row = a[m]
        for t in range(t0, offsets.shape[0]):
            offset = offsets[t]
            total = out.dtype.type(0)
            for p in range(uint64(length)):
                total += row[p] * src[offset + p]
            out[m, t] = out[m, t] + total if accumulate else total


@serial_kernel
def store_4x2(out, m, p, accumulate, s00, s01, s10, s11, s20, s21, s30, s31):
    """out[m:m + 4, p:p + 2] (+)= the tile's sums."""
    if accumulate:
        s00 += out[m, p]
        s01 += out[m, p + 1]
        s10 += out[m + 1, p]
        s11 += out[m + 1, p + 1]
        s20 += out[m + 2, p]
        s21 += out[m + 2, p + 1]
        s30 += out[m + 3, p]
        s31 += out[m + 3, p + 1]
    out[m, p], out[m, p + 1] = s00, s01
    out[m + 1, p], out[m + 1, p + 1] = s10, s11
    out[m + 2, p], out[m + 2, p + 1] = s20, s21
    out[m + 3, p], out[m + 3, p + 1] = s30, s31


@serial_kernel
def store_1x4(out, m, p, accumulate, s0, s1, s2, s3):
    """out[m, p:p + 4] (+)= the sums."""
    if accumulate:
        s0 += out[m, p]
        s1 += out[m, p + 1]
        s2 += out[m, p + 2]
        s3 += out[m, p + 3]
    out[m, p], out[m, p + 1], out[m, p + 2], out[m, p + 3] = s0, s1, s2, s3


#: The tile this CPU's register file holds (see the module docstring); both are tested.
dots_at = dots_at_4x4 if MASKED_VECTORS else dots_at_4x2


@serial_kernel
def gemm_nt_4x2(a, b, out, accumulate):
    """out (M, P) (+)= a[:, :K] @ b (P, K).T with ``dots_at_4x2``; b C-contiguous, a (M, >= K)
    with contiguous rows, out any 2-D view (added to with ``accumulate``)."""
    depth = b.shape[1]
    offsets = row_offsets(b.shape[0], depth, b.shape[0])
    dots_at_4x2(a, b.reshape(-1), offsets, depth, out, accumulate)


@serial_kernel
def gemm_nt_4x4(a, b, out, accumulate):
    """``gemm_nt_4x2`` with ``dots_at_4x4``."""
    depth = b.shape[1]
    offsets = row_offsets(b.shape[0], depth, b.shape[0])
    dots_at_4x4(a, b.reshape(-1), offsets, depth, out, accumulate)


#: The tile this CPU's register file holds (see the module docstring); both are tested.
gemm_nt = gemm_nt_4x4 if MASKED_VECTORS else gemm_nt_4x2


STRIP = 16  # rows of a per job of ``transpose`` when a has many rows: one cache line of out


@reduction_kernel
def transpose(a, out):
    """out (K, M) = a (M, K).T. Each row of out gathers a column of a: with up to 256 rows
    in a, the cache lines of a column stay in L1 from one k to the next and the jobs are
    rows of out; with more, they would not, and each job copies a strip of ``STRIP`` rows
    of a into the same columns of every row of out (1024 x 1024 float32, one core:
    4.9 -> 2.2 ms; 256 x 784: 0.08 ms by rows, 0.15 by strips)."""
    m_rows, k_cols = a.shape
    if m_rows <= 256:
        for k in prange(k_cols):
            row = out[k]
            for m in range(m_rows):
                row[m] = a[m, k]
        return
    for strip in prange((m_rows + STRIP - 1) // STRIP):
        m0 = strip * STRIP
        m1 = min(m0 + STRIP, m_rows)
        for k in range(k_cols):
            row = out[k]
            for m in range(m0, m1):
                row[m] = a[m, k]


@serial_kernel
def copy_transposed(a, out):
    """out (K, M) = a (M, K).T, serially: for use inside another kernel's parallel loop."""
    for m in range(a.shape[0]):
        row = a[m]
        for k in range(row.shape[0]):
            out[k, m] = row[k]
