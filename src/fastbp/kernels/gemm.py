"""The matrix-product micro-kernels every dense and convolution kernel is built on.

``gemm_nt`` computes ``out = a @ b.T`` with both operands read along contiguous rows:
every output cell is a dot product, and cells are computed in tiles of rows of ``a`` by
rows of ``b`` whose running sums stay in vector registers (LLVM vectorises the shared
loop over k, since the reduction kernels allow re-association), so each loaded vector
feeds several FMAs. The tile is the largest the register file holds (``kernels.isa``):
4 x 4 with AVX-512's 32 vector registers, 4 x 2 with AVX2's or NEON's 16, where the 16
sums of a 4 x 4 tile spill. Measured on one core (Zen 4), GFLOP/s:

    product (M, K, P)      AVX-512 4x2 / 4x4     AVX2 4x2 / 4x4
    256, 784, 256          68.9 / 91.9           73.4 / 52.0
    1020, 1024, 1024       60.2 / 86.4           43.4 / 27.3

A cell's tile depends only on its indices, never on how work was split between threads.
"""

from numba import prange

from ._jit import reduction_kernel, serial_kernel
from .isa import MASKED_VECTORS


@serial_kernel
def gemm_nn(a, b, length, out):
    """out[m, :length] = sum_k a[m, k] * b[k, :length]; a (M, K), b (K, >= length), out (M, >= length).

    The axpy form: no horizontal sums, but every FMA also loads and stores ``out``. It
    beats ``gemm_nt`` when K is too short for a dot product to pay for its final sum.
    """
    for m in range(a.shape[0]):
        dst = out[m]
        dst[:length] = 0
        for k in range(a.shape[1]):
            coefficient = a[m, k]
            src = b[k]
            for j in range(length):
                dst[j] += coefficient * src[j]


@serial_kernel
def dot(a, b):
    """sum_k a[k] * b[k] for 1-D rows of equal length."""
    total = a.dtype.type(0)
    for k in range(a.shape[0]):
        total += a[k] * b[k]
    return total


@serial_kernel
def gemm_nt_4x2(a, b, out, accumulate):
    """out[m, p] (+)= sum_k a[m, k] * b[p, k]; a (M, K), b (P, K), out (M, P), in 4 x 2 tiles.

    Rows of a and b must be contiguous; out may be any 2-D view. With ``accumulate`` the
    products are added to out, otherwise they replace it.
    """
    m_rows, depth = a.shape
    p_rows = b.shape[0]
    m_main = m_rows - m_rows % 4
    p_main = p_rows - p_rows % 2
    zero = out.dtype.type(0)
    for m in range(0, m_main, 4):
        a0, a1, a2, a3 = a[m], a[m + 1], a[m + 2], a[m + 3]
        for p in range(0, p_main, 2):
            b0, b1 = b[p], b[p + 1]
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zero
            for k in range(depth):
                u, v = b0[k], b1[k]
                s00 += a0[k] * u
                s01 += a0[k] * v
                s10 += a1[k] * u
                s11 += a1[k] * v
                s20 += a2[k] * u
                s21 += a2[k] * v
                s30 += a3[k] * u
                s31 += a3[k] * v
            store_4x2(out, m, p, accumulate, s00, s01, s10, s11, s20, s21, s30, s31)
        dots(a[m:m + 4], b[p_main:], out[m:m + 4, p_main:], accumulate)
    dots(a[m_main:], b, out[m_main:], accumulate)


@serial_kernel
def gemm_nt_4x4(a, b, out, accumulate):
    """``gemm_nt_4x2``'s product in 4 x 4 tiles, for CPUs with 32 vector registers."""
    m_rows, depth = a.shape
    p_rows = b.shape[0]
    m_main = m_rows - m_rows % 4
    p_main = p_rows - p_rows % 4
    zero = out.dtype.type(0)
    for m in range(0, m_main, 4):
        a0, a1, a2, a3 = a[m], a[m + 1], a[m + 2], a[m + 3]
        for p in range(0, p_main, 4):
            b0, b1, b2, b3 = b[p], b[p + 1], b[p + 2], b[p + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for k in range(depth):
                u, v, w, x = b0[k], b1[k], b2[k], b3[k]
                c0, c1, c2, c3 = a0[k], a1[k], a2[k], a3[k]
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
            store_4x2(out, m, p, accumulate, s00, s01, s10, s11, s20, s21, s30, s31)
            store_4x2(out, m, p + 2, accumulate, s02, s03, s12, s13, s22, s23, s32, s33)
        dots(a[m:m + 4], b[p_main:], out[m:m + 4, p_main:], accumulate)
    dots(a[m_main:], b, out[m_main:], accumulate)


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
def dots(a, b, out, accumulate):
    """out[m, p] (+)= dot(a[m], b[p]), one cell at a time: the cells a tile leaves over."""
    for m in range(a.shape[0]):
        for p in range(b.shape[0]):
            total = dot(a[m], b[p])
            out[m, p] = out[m, p] + total if accumulate else total


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
