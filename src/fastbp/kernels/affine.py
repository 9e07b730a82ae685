"""Affine (dense) layer kernels, row-per-sample: ``y = x @ w.T + b``.

Shapes: x (N, Din), w (Dout, Din), b (Dout,), y (N, Dout). A product whose every side is at
least ``MIN_SIDE_FOR_PACKED``, of ``MIN_WORK_FOR_PACKED`` multiply-adds or more, runs on
packed panels (``packed.packed_product``, where the CPU and dtype have a tile); smaller
ones, where packing both operands would cost more than it saves, as follows. The forward
product is ``gemm_nt`` (dot products over the contiguous Din), split into tiles of
``TILE_ROWS`` x ``TILE_COLS`` output cells (multiples of the micro-kernel's 4 x 2 tile), one
tile per iteration. The backward products sum over the batch (dw) or over Dout (dx). When
that depth is at most ``MAX_DEPTH_FOR_ROWS``, too short for dot products to pay for their
final sums, they add whole rows instead (``parallel_gemm_nn``); deeper, they transpose one
operand and use ``gemm_nt``. A product of fewer than ``MIN_WORK_FOR_THREADS`` multiply-adds
runs on the calling thread. Scratch comes from ``workspace`` (a new one when None).
"""

import numba
import numpy as np
from numba import prange

from ._jit import for_size, kernel, reduction_kernel, with_serial_twin
from .activations import relu_grad, relu_value
from .gemm import gemm_nt, transpose
from .isa import MASKED_VECTORS
from .packed import in_place, packed_product, product_tile
from .shifted import in_fours, row_offsets, shifted_sums, shifted_sums_2, shifted_sums_4
from .workspace import Workspace

TILE_ROWS = 16
TILE_COLS = 64
# Measured: rows win up to 128 (1.4-1.8x) and tie or win at 256 (one core, 2026-12-02:
# 256x256x128 dw 0.33 -> 0.25 ms, MLP b256 step 1.03-1.16x on AVX-512 and AVX2); dots win
# from 512 on (1024^3 dx 25.7 against 37.3 ms).
MAX_DEPTH_FOR_ROWS = 256
# Packed panels against the kernels above, one core, float32 (fwd / dx / dw): 256 x 784 ->
# 256, batch 256, 1.07 / 1.18 / 1.14x (AVX2 1.12 / 1.07 / 1.25x); 1024^3 1.03-1.12x (AVX2
# 1.21-1.28x); 256 -> 128, batch 256, 1.04-1.20x but AVX2 0.94-1.07x; 10 outputs 0.4-0.6x.
# A side of 64 (batch 64, or dw's depth) 0.61-1.0x while both operands were packed; with the
# weights read in place (``packed.in_place``), Intel AVX-512, us one / two threads, before ->
# after: 784 -> 256 batch 64 283/335/324 -> 177/224/208 and 156/184/190 -> 123/137/144;
# 400 -> 120 batch 256 1.4-1.6x and 1.1-1.4x; under 2.5 M multiply-adds the two threads lose
# more than one gains (256 -> 128 batch 64: one 1.2x, two 0.85x; 120 -> 84: 0.95x, 0.65x).
# AVX2 (AMD Zen 3, one core, 2026-12-06, unpacked / packed, alternating): below 8 M the
# forward and dw lose (64 x 400 -> 120 0.90x and 0.84-0.90x, 64 x 784 -> 128 0.83-0.90x /
# 0.95x; dx 0.94-1.34x); from 8 M all three pass or win (784 -> 256 batch 64 1.09-1.18x /
# 1.14-1.21x / 1.14-1.18x, 256 -> 128 batch 256 0.96-1.09x / 1.43-1.80x / 1.06-1.11x).
MIN_SIDE_FOR_PACKED = 64
MIN_WORK_FOR_PACKED = 2_500_000 if MASKED_VECTORS else 8_000_000  # multiply-adds


# Waking the thread pool costs ~3.6 us at one thread and ~5 us at two (more on a busy VM),
# and a short product gains nothing from it. AMD Zen 3, us parallel / serial (fwd, dx, dw),
# one thread: 4 x 8 -> 8 8.5 / 4.8, 5.9 / 2.9, 3.6 / 1.9; 64 x 128 -> 10 9.1 / 7.5, 13.8 /
# 11.2, 8.0 / 6.3; two threads: 64 x 128 -> 10 28.1 / 14.0, 34.1 / 18.3, 24.4 / 10.9; 256 x
# 128 -> 10 (328 K) 35.1 / 43.0, 64.5 / 52.7, 43.2 / 35.4.
MIN_WORK_FOR_THREADS = 262_144  # multiply-adds: a smaller product runs on the calling thread


def for_work(parallel, work):
    """``parallel``, or its serial twin for a product of fewer than ``MIN_WORK_FOR_THREADS``
    multiply-adds (``work``)."""
    return for_size(parallel, work, MIN_WORK_FOR_THREADS)


def packs(m, n, k, dtype):
    """Whether out (m, n) = a (m, k) @ b (k, n) runs on packed panels."""
    return (min(m, n, k) >= MIN_SIDE_FOR_PACKED and m * n * k >= MIN_WORK_FOR_PACKED
            and product_tile(dtype) is not None)


@with_serial_twin
@reduction_kernel
def parallel_gemm_nt(a, b, out, accumulate):
    """out (M, P) (+)= a (M, K) @ b (P, K).T, parallel over output tiles; with
    ``accumulate`` the product is added to out."""
    m_rows, p_rows = out.shape
    col_tiles = (p_rows + TILE_COLS - 1) // TILE_COLS
    for tile in prange(((m_rows + TILE_ROWS - 1) // TILE_ROWS) * col_tiles):
        m0 = (tile // col_tiles) * TILE_ROWS
        p0 = (tile % col_tiles) * TILE_COLS
        m1, p1 = min(m_rows, m0 + TILE_ROWS), min(p_rows, p0 + TILE_COLS)
        gemm_nt(a[m0:m1], b[p0:p1], out[m0:m1, p0:p1], accumulate)


def rows_per_job(width, itemsize, masked_vectors=MASKED_VECTORS):
    """Output rows ``parallel_gemm_nn`` computes per pass over b's rows: 4 where 32 vector
    registers hold their 16 coefficients (AVX-512), which halves the reloads of b; 2
    otherwise, and where b's rows are a multiple of 4 KiB apart, so that the 8 runs read
    and written at once would share their address bits below 4 KiB (one core, float32,
    out (256, D) = (256, 256) @ (256, D): D = 768-800 1.2-1.35x faster by 4, 512 1.0x,
    1024 0.72-0.81x; with AVX2 0.94-1.05x)."""
    if masked_vectors and (width * itemsize) % 4096:
        return 4
    return 2


@with_serial_twin
@reduction_kernel
def parallel_gemm_nn(a, b, out, accumulate, per_job):
    """out (M, D) (+)= a[:, :K] @ b (K, D), as sums of whole rows of b (added to out with
    ``accumulate``).

    a (M, K4) holds K4 >= K columns, a multiple of 4, zero beyond K (``shifted_sums``
    adds rows four at a time). Parallel over groups of ``per_job`` (2 or 4: see
    ``rows_per_job``) output rows; every cell is summed in the same order either way.
    """
    m_rows, padded = a.shape
    depth, width = b.shape
    offsets = row_offsets(depth, width, padded)
    rows = b.reshape(depth * width)
    for job in prange((m_rows + per_job - 1) // per_job):
        m = per_job * job
        count = min(per_job, m_rows - m)
        if not accumulate:
            for r in range(m, m + count):
                out[r] = 0
        if count == 4:
            shifted_sums_4(a[m], a[m + 1], a[m + 2], a[m + 3], offsets, rows, out[m],
                           out[m + 1], out[m + 2], out[m + 3], width)
            continue
        if count >= 2:
            shifted_sums_2(a[m], a[m + 1], offsets, rows, out[m], out[m + 1], width)
            m += 2
            count -= 2
        if count:
            shifted_sums(a[m], offsets, rows, out[m], width)


@with_serial_twin
@reduction_kernel
def add_bias(y, b):
    """y[n, o] += b[o]."""
    for n in prange(y.shape[0]):
        row = y[n]
        for o in range(row.shape[0]):
            row[o] += b[o]


@with_serial_twin
@kernel
def add_bias_relu(y, b):
    """y[n, o] = relu(y[n, o] + b[o]): the bias and the ReLU after it in one pass, each
    value rounded once by the sum, as ``add_bias`` then a ReLU round it."""
    zero = y.dtype.type(0)
    for n in prange(y.shape[0]):
        row = y[n]
        for o in range(row.shape[0]):
            row[o] = relu_value(row[o] + b[o], zero)


COLUMN_CHUNK = 256  # columns per job of ``column_sums``: its running sums stay in L1


def column_chunk(columns):
    """Columns per job of ``column_sums``: ``COLUMN_CHUNK``, or fewer (a multiple of 16,
    a cache line of float32) so that every thread gets a job. Each column is summed in the
    same order whatever the chunk."""
    per_thread = -(-columns // numba.get_num_threads())
    return min(COLUMN_CHUNK, max(16, -(-per_thread // 16) * 16))


@with_serial_twin
@reduction_kernel
def column_sums(a, out, accumulate, size, kept, g):
    """out[k] (+)= sum_m a[m, k], summed over m in order; added to out with ``accumulate``.
    With kept and g (M, K) (else None: numba compiles that case apart), a first goes back
    through a ReLU in the same pass: g = a where kept (the ReLU's input or output) > 0, else
    0, and the sums are g's (the values and order of the ReLU's backward, then the sums).

    Row by row into running sums of ``size`` columns (``column_chunk``), so the loop runs
    along a's contiguous rows (a column at a time read one cell per cache line: 1024 x 1024
    float32, one core, 3.2 -> 0.15 ms). Each column's sum keeps its order, whatever the
    chunking.
    """
    m_rows, k_cols = a.shape
    zero = a.dtype.type(0)
    totals = np.empty(k_cols, a.dtype)
    for chunk in prange((k_cols + size - 1) // size):
        k0 = chunk * size
        k1 = min(k_cols, k0 + size)
        sums = totals[k0:k1]
        sums[:] = 0
        for m in range(m_rows):
            row = a[m, k0:k1]
            if kept is None:
                for k in range(k1 - k0):
                    sums[k] += row[k]
            else:
                values, through = kept[m, k0:k1], g[m, k0:k1]
                for k in range(k1 - k0):
                    through[k] = relu_grad(row[k], values[k], zero)
                    sums[k] += through[k]
        if accumulate:
            for k in range(k1 - k0):
                out[k0 + k] += sums[k]
        else:
            for k in range(k1 - k0):
                out[k0 + k] = sums[k]


def bias_grad(dy, db, accumulate=False, relu=None):
    """db (Dout,) (+)= dy (N, Dout) summed over the batch. With ``relu`` = (kept, g), dy
    first goes back through a ReLU in the same pass: g = dy where kept (the ReLU's input or
    output, (N, Dout)) > 0, else 0, and db sums g."""
    kept, g = (None, None) if relu is None else relu
    for_size(column_sums, dy.size)(dy, db, accumulate, column_chunk(dy.shape[1]), kept, g)


def affine_forward(x, w, b, y, workspace=None, relu=False):
    """y = x @ w.T + b, or relu(x @ w.T + b) with ``relu``; writes y (N, Dout)."""
    if packs(*y.shape, x.shape[1], y.dtype):
        if in_place(w, y.shape[0]):  # a short batch: y.T = w @ x.T, w read in place
            packed_product(w, x.T, y.T, False, workspace)
        else:
            packed_product(x, w.T, y, False, workspace)
    else:
        for_work(parallel_gemm_nt, y.size * x.shape[1])(x, w, y, False)
    for_size(add_bias_relu if relu else add_bias, y.size)(y, b)


def affine_backward_input(dy, w, dx, workspace=None):
    """dx (N, Din) = dy (N, Dout) @ w (Dout, Din)."""
    n, d_out = dy.shape
    workspace = workspace or Workspace()
    if packs(n, w.shape[1], d_out, dx.dtype):
        packed_product(dy, w, dx, False, workspace)
        return
    if d_out > MAX_DEPTH_FOR_ROWS:
        w_t = workspace.array("w.T", w.shape[::-1], w.dtype)
        transpose(w, w_t)
        for_work(parallel_gemm_nt, dx.size * d_out)(dy, w_t, dx, False)
        return
    coef = dy
    if d_out % 4:
        coef = workspace.array("dy padded", (n, in_fours(d_out)), dy.dtype)
        coef[:, :d_out] = dy
        coef[:, d_out:] = 0
    for_work(parallel_gemm_nn, dx.size * d_out)(coef, w, dx, False,
                                               rows_per_job(w.shape[1], w.itemsize))


def affine_backward_params(dy, x, dw, db, workspace=None, accumulate=False):
    """dw (Dout, Din) = dy.T @ x and db (Dout,) = dy summed over the batch, or none when db
    is None; with ``accumulate`` both are added to dw and db instead."""
    n, d_out = dy.shape
    workspace = workspace or Workspace()
    if db is not None:
        bias_grad(dy, db, accumulate)
    if packs(d_out, x.shape[1], n, dw.dtype):
        packed_product(dy.T, x, dw, accumulate, workspace)
        return
    if n > MAX_DEPTH_FOR_ROWS:
        dy_t = workspace.array("dy.T", dy.shape[::-1], dy.dtype)
        x_t = workspace.array("x.T", x.shape[::-1], x.dtype)
        transpose(dy, dy_t)
        transpose(x, x_t)
        for_work(parallel_gemm_nt, dw.size * n)(dy_t, x_t, dw, accumulate)
        return
    coef = dy.T  # the coefficients are read one at a time: a strided view will do
    if n % 4:
        coef = workspace.array("dy.T padded", (d_out, in_fours(n)), dy.dtype)
        coef[:, :n] = dy.T
        coef[:, n:] = 0
    for_work(parallel_gemm_nn, dw.size * n)(coef, x, dw, accumulate,
                                          rows_per_job(x.shape[1], x.itemsize))
