"""The matrix-product micro-kernels every dense and convolution kernel is built on.

``gemm_nt`` computes ``out = a @ b.T`` with both operands read along contiguous rows:
every output cell is a dot product, and cells are computed in tiles of 4 rows of ``a`` by
2 rows of ``b``. The 8 running sums of a tile stay in registers (LLVM vectorises the
shared loop over k, since the reduction kernels allow re-association), so each pair of
loaded vectors feeds several FMAs. Measured on one core: 4 x 2 gave 87 GFLOP/s for
64x784 @ 784x256 where 1 x 1 gave 31, while a 4 x 4 tile reached only 25 on a similar
product (its 16 sums, which LLVM interleaves further, probably spill). A cell's tile
depends only on its indices, never on how work was split between threads.
"""

from numba import prange

from ._jit import reduction_kernel, serial_kernel


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
def gemm_nt(a, b, out, accumulate):
    """out[m, p] (+)= sum_k a[m, k] * b[p, k]; a (M, K), b (P, K), out (M, P).

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
        for p in range(p_main, p_rows):
            for i in range(4):
                total = dot(a[m + i], b[p])
                out[m + i, p] = out[m + i, p] + total if accumulate else total
    for m in range(m_main, m_rows):
        for p in range(p_rows):
            total = dot(a[m], b[p])
            out[m, p] = out[m, p] + total if accumulate else total


@reduction_kernel
def transpose(a, out):
    """out (K, M) = a (M, K).T, parallel over rows of out."""
    m_rows, k_cols = a.shape
    for k in prange(k_cols):
        row = out[k]
        for m in range(m_rows):
            row[m] = a[m, k]


@serial_kernel
def copy_transposed(a, out):
    """out (K, M) = a (M, K).T, serially: for use inside another kernel's parallel loop."""
    for m in range(a.shape[0]):
        row = a[m]
        for k in range(row.shape[0]):
            out[k, m] = row[k]
