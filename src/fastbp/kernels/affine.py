"""Affine (dense) layer kernels, row-per-sample: ``y = x @ w.T + b``.

Shapes: x (N, Din), w (Dout, Din), b (Dout,), y (N, Dout). Each product is
``gemm_nt`` over contiguous rows; the backward passes transpose one operand first so
the summed axis is contiguous (into scratch from ``workspace``, a new one when None). Work is split into tiles of ``TILE_ROWS`` x ``TILE_COLS``
output cells (multiples of the micro-kernel's 4 x 2 tile), one tile per iteration.
"""

from numba import prange

from ._jit import reduction_kernel
from .gemm import gemm_nt, transpose
from .workspace import Workspace

TILE_ROWS = 16
TILE_COLS = 64


@reduction_kernel
def parallel_gemm_nt(a, b, out):
    """out (M, P) = a (M, K) @ b (P, K).T, parallel over output tiles."""
    m_rows, p_rows = out.shape
    col_tiles = (p_rows + TILE_COLS - 1) // TILE_COLS
    for tile in prange(((m_rows + TILE_ROWS - 1) // TILE_ROWS) * col_tiles):
        m0 = (tile // col_tiles) * TILE_ROWS
        p0 = (tile % col_tiles) * TILE_COLS
        m1, p1 = min(m_rows, m0 + TILE_ROWS), min(p_rows, p0 + TILE_COLS)
        gemm_nt(a[m0:m1], b[p0:p1], out[m0:m1, p0:p1], False)


@reduction_kernel
def add_bias(y, b):
    """y[n, o] += b[o]."""
    for n in prange(y.shape[0]):
        row = y[n]
        for o in range(row.shape[0]):
            row[o] += b[o]


@reduction_kernel
def column_sums(a, out):
    """out[k] = sum_m a[m, k], summed over m in order."""
    m_rows, k_cols = a.shape
    for k in prange(k_cols):
        total = a.dtype.type(0)
        for m in range(m_rows):
            total += a[m, k]
        out[k] = total


def affine_forward(x, w, b, y):
    """y = x @ w.T + b; writes y (N, Dout)."""
    parallel_gemm_nt(x, w, y)
    add_bias(y, b)


def affine_backward_input(dy, w, dx, workspace=None):
    """dx (N, Din) = dy (N, Dout) @ w (Dout, Din)."""
    w_t = (workspace or Workspace()).array("w.T", w.shape[::-1], w.dtype)
    transpose(w, w_t)
    parallel_gemm_nt(dy, w_t, dx)


def affine_backward_params(dy, x, dw, db, workspace=None):
    """dw (Dout, Din) = dy.T @ x and db (Dout,) = dy summed over the batch."""
    workspace = workspace or Workspace()
    dy_t = workspace.array("dy.T", dy.shape[::-1], dy.dtype)
    x_t = workspace.array("x.T", x.shape[::-1], x.dtype)
    transpose(dy, dy_t)
    transpose(x, x_t)
    parallel_gemm_nt(dy_t, x_t, dw)
    column_sums(dy, db)
