"""Register-blocked matrix products on packed panels: out (M, N) (+)= a (M, K) @ b (K, N).

The operands are first copied into panels in the order the micro-kernel reads them (as
BLIS and OpenBLAS do): a into ceil(M / MR) panels of (K, MR), b into ceil(N / NR) panels
of (K, NR), zero past M and N, from any 2-D views (a transpose packs as fast as its
original). The micro-kernel (``tile``) keeps an MR x NR tile of sums in vector registers
while it streams one panel of each: per k, MR values of a broadcast against NR values of
b, MR * NR multiply-adds on loads of MR + NR values. The tile is a stack array
(``stack.stack_pointer``) that LLVM promotes to registers once it has unrolled the row
loop and vectorised the column loop. Each cell is summed over k in order.

The tile depends on the vector registers (``kernels.isa``) and the dtype: ``TILES``.
Measured on one Zen 4 core with panels in L1, GFLOP/s (float64's peak is half float32's):

    tile (rows x columns)   AVX-512 f32 / f64     AVX2 f32 / f64
    8 x 32 (f64: 8 x 16)    100 / 52              28 / 19
    4 x 16                  92                    72
    3 x 32 (f64: 3 x 16)    93                    91 / 12

AVX2 float64 found no fast tile (3x16, 4x8, 2x16, 6x8: 10-17), so its products stay on
``gemm.dots_at`` and the rows form (``product_tile`` returns None).

Parallel over tiles of out, b's panel outer so that consecutive tiles share it: each job
owns its cells, so results do not depend on the thread count.

The tile also reads b's runs in place from a row-major (K, N) array (``panel_product``,
for code already inside a parallel loop: the patches of a convolution block), as fast as
from a packed panel in L1 (93.8 against 95.5 GFLOP/s, 32 x 256 x 512, AVX-512), or from
runs at a table of offsets (``tiles_product_at``: a convolution's taps); it reads a's rows
in place against b in panels (``rows_tiles_product``: a convolution's patch rows against
its weights); and ``packed_product`` reads an operand in place where packing it would not
pay (``in_place``: a product with a short side, such as a layer's weights at batch 64).
"""

from functools import lru_cache

import numpy as np
from numba import njit, prange, types, uint64
from numba.extending import overload
from numba.np.numpy_support import carray

from ._jit import REDUCTION_FASTMATH, for_size, serial_kernel, with_serial_twin
from .gemm import gemm_nn
from .isa import MASKED_VECTORS
from .shifted import in_four_columns
from .stack import stack_pointer
from .transposed import SIZE as BLOCK, transpose_8x8
from .workspace import Workspace

#: (rows, columns) of the micro-kernel's tile by (vector registers, dtype); None: no tile.
TILES = {
    ("avx512", "float32"): (8, 32),  # 16 of the 32 registers hold sums
    ("avx512", "float64"): (8, 16),
    ("avx2", "float32"): (3, 32),  # 12 of the 16 (NEON has 32 of half the width)
    ("avx2", "float64"): None,
}


@lru_cache(maxsize=None)  # np.dtype's name is computed in Python: 5.1 us a call uncached
def product_tile(dtype, masked_vectors=MASKED_VECTORS):
    """The (MR, NR) tile for ``dtype`` on this CPU (or on one with or without AVX-512), or
    None where ``packed_product`` is not the fast way."""
    return TILES[("avx512" if masked_vectors else "avx2", np.dtype(dtype).name)]


@lru_cache(maxsize=None)
def packer(width):
    """``pack`` compiled for panels of ``width`` rows: a constant, so that the copy of a
    panel's column is one vector (256 x 784 float32 into panels of 8: 0.27 -> 0.035 ms).
    Call it through ``for_size``: a small operand is packed on the calling thread."""

    @with_serial_twin
    @njit(parallel=True, cache=True, nogil=True)
    def pack(a, panels):
        """panels (P, K * width) = a (M, K) by panels of ``width`` rows, any strides:
        ``panels[p, k * width + r] = a[p * width + r, k]``, zero past M.

        Where a's columns are runs (a transpose, such as dy.T or x.T for a weight
        gradient), each run of ``width`` goes through a stack buffer: copied straight,
        LLVM kept its loads and stores in order, one value at a time, for fear that panels
        overlap a (784 x 256 float32 into panels of 32, one Zen 3 core: 0.068 -> 0.034
        ms). Where a's rows are runs and ``width`` a multiple of 8, blocks of 8 x 8 are
        transposed in registers (``transpose_8x8``), two abreast so that each row's cache
        line is read whole at once (256 x 784 into panels of 32: 0.068 -> 0.036 ms; 1024 x
        1024, rows 4 KiB apart: 2.2 -> 0.38). Other layouts read a panel's rows, each step
        a gather of ``width`` values."""
        m_rows, depth = a.shape
        columns = a.T
        runs = a.strides[0] == a.itemsize
        transposes = width % BLOCK == 0 and a.strides[1] == a.itemsize and not runs
        blocked = depth - depth % BLOCK
        for p in prange(panels.shape[0]):
            panel, m0 = panels[p], p * width
            if m0 + width > m_rows:
                for k in range(depth):
                    for r in range(width):
                        m = m0 + r
                        panel[k * width + r] = a[m, k] if m < m_rows else panels.dtype.type(0)
            elif transposes:
                columns_of_panel = panel.reshape(depth, width)
                for k0 in range(0, blocked, 2 * BLOCK):
                    for r in range(0, width, BLOCK):
                        for k in range(k0, min(k0 + 2 * BLOCK, blocked), BLOCK):
                            transpose_8x8(a, m0 + r, k, columns_of_panel, k, r)
                for k in range(blocked, depth):
                    for r in range(width):
                        panel[k * width + r] = a[m0 + r, k]
            elif runs:
                run = carray(stack_pointer(width, panels.dtype), (width,))
                for k in range(depth):
                    column = columns[k]
                    for r in range(width):
                        run[r] = column[m0 + r]
                    for r in range(width):
                        panel[k * width + r] = run[r]
            else:
                block = a[m0:m0 + width]
                for k in range(depth):
                    for r in range(width):
                        panel[k * width + r] = block[r, k]

    return pack


@lru_cache(maxsize=None)
def _tile(rows, cols, a_in_place, b_at_offsets=False):
    """The micro-kernel for a ``rows`` x ``cols`` tile of sums, reading a from a packed
    panel or, ``a_in_place``, from rows of a row-major matrix: two functions, because LLVM
    addresses rows a runtime step apart through a chain of additions, one per row, that the
    packed panel's constant offsets do without (one tile for both: packed products 10%
    slower). ``b_at_offsets``: b's rows start at b_at plus a table of offsets (b_step is
    that uint64 table), not a step apart: the taps of a convolution read in place."""
    size = rows * cols

    @njit(cache=True, nogil=True, fastmath=set(REDUCTION_FASTMATH))
    def tile(a, a_at, a_row, b, b_at, b_step, depth, out, m0, n0, accumulate):
        """out[m0:m0 + rows, n0:n0 + cols] (+)= the tile's sums, clipped to out: cell (r, j)
        sums ``a[a_at + r * a_row + k] * b[b_at + k * b_step + j]`` over k < depth in order
        (a read in place: a_row is its row length), or ``a[a_at + k * rows + r] * ...``
        (a packed panel; a_row unused). b: a packed panel (b_step ``cols``) or a row-major
        matrix read in place (b_step its row length), or row k at ``b_at + b_step[k]``
        (``b_at_offsets``). Unsigned indices: a signed one is checked for wraparound, and
        with a step that is not a constant that check kept the loads scalar (4x slower)."""
        sums = carray(stack_pointer(size, out.dtype), (size,))
        for t in range(size):
            sums[t] = 0
        at = uint64(b_at)
        if b_at_offsets:
            step = uint64(0)  # each row's start comes from the table
        else:
            step = uint64(b_step)
        a_first, row_step = uint64(a_at), uint64(a_row)
        for k in range(uint64(depth)):
            if b_at_offsets:
                at = uint64(b_at) + b_step[k]
            for j in range(cols):
                value = b[at + uint64(j)]
                for r in range(rows):
                    if a_in_place:
                        sums[r * cols + j] += a[a_first + uint64(r) * row_step + k] * value
                    else:
                        sums[r * cols + j] += a[a_first + k * uint64(rows) + uint64(r)] * value
            at += step
        # Unsigned indices here too: with signed ones each store checked for wraparound
        # and the tile's 256 sums left one at a time (~900 cycles a tile, 8 x 32 float32).
        width, first = uint64(max(0, min(cols, out.shape[1] - n0))), uint64(n0)
        for r in range(min(rows, out.shape[0] - m0)):
            row, tile_row = out[m0 + r], uint64(r * cols)
            if accumulate:
                for j in range(width):
                    row[first + j] += sums[tile_row + j]
            else:
                for j in range(width):
                    row[first + j] = sums[tile_row + j]

    return tile


def micro_tile(rows, cols, a_in_place, a, a_at, a_row, b, b_at, b_step, depth, out, m0, n0,
               accumulate):
    """``_tile(rows, cols, a_in_place)``'s micro-kernel called with the rest of the
    arguments, for numba code whose rows, cols and a_in_place are constants."""
    raise NotImplementedError("micro_tile is compiled into numba kernels")


@overload(micro_tile, prefer_literal=True)
def _micro_tile(rows, cols, a_in_place, a, a_at, a_row, b, b_at, b_step, depth, out, m0, n0,
                accumulate):
    if not all(isinstance(v, types.Literal) for v in (rows, cols, a_in_place)):
        return None
    kernel = _tile(rows.literal_value, cols.literal_value, a_in_place.literal_value)

    def call(rows, cols, a_in_place, a, a_at, a_row, b, b_at, b_step, depth, out, m0, n0,
             accumulate):
        kernel(a, a_at, a_row, b, b_at, b_step, depth, out, m0, n0, accumulate)

    return call


@lru_cache(maxsize=None)
def tile_kernels(rows, cols, accumulate=False):
    """(tile, product) compiled for a ``rows`` x ``cols`` tile of sums: the tile on a packed
    panel of a (``_tile``), and the parallel product over tiles, which adds to out with
    ``accumulate``: a constant, compiled in (a flag passed at run time cost 2-12%). The
    product reaches its tiles through ``micro_tile``: numba keys a cached closure by its
    closed-over values, and a dispatcher's (a tile's) differ from process to process, so a
    product that closed over its tiles was compiled again in every process (~1.5 s on the
    first dense layer's forward)."""

    @njit(parallel=True, cache=True, nogil=True, fastmath=set(REDUCTION_FASTMATH))
    def product(a, a_full, a_row, a_last, b, b_full, b_panel, b_step, b_last, depth, out):
        """out (M, N) (+)= a (M, depth) @ b (depth, N), tile by tile. a's panel p (its rows
        p * rows onwards), for p < a_full: of a, 1-D, at ``p * rows * depth``, packed
        (a_row 0) or its rows a_row apart; past that, the one packed panel a_last. b's
        panel q (its columns q * cols onwards), for q < b_full: at ``q * b_panel`` of b
        with steps b_step; then b_last."""
        p_count = (out.shape[0] + rows - 1) // rows
        for job in prange(p_count * ((out.shape[1] + cols - 1) // cols)):
            q, p = job // p_count, job % p_count
            if q < b_full:
                b_source, b_at, step = b, q * b_panel, b_step
            else:
                b_source, b_at, step = b_last, 0, cols
            m0, n0 = p * rows, q * cols
            if p >= a_full:
                micro_tile(rows, cols, False, a_last, 0, 0, b_source, b_at, step, depth, out,
                           m0, n0, accumulate)
            elif a_row:
                micro_tile(rows, cols, True, a, m0 * a_row, a_row, b_source, b_at, step, depth,
                           out, m0, n0, accumulate)
            else:
                micro_tile(rows, cols, False, a, m0 * depth, 0, b_source, b_at, step, depth,
                           out, m0, n0, accumulate)

    tile = _tile(rows, cols, False)
    return tile, product


#: An operand is read in place, not packed, when the other side of the product is shorter
#: than this (its panels are read fewer times over than packing them costs) and its rows
#: are contiguous runs not a multiple of 4 KiB apart. One core, Intel AVX-512, float32, ms
#: packed / in place: batch 64, dx = dy @ w, 784 -> 256 0.253 / 0.215, 512 -> 512 0.337 /
#: 0.251, 1000 -> 500 0.70 / 0.62, but 1024 -> 1024 (rows 4 KiB apart) 1.45 / 2.54; at
#: batch 256, dw = dy.T @ x with x in place 0.85x.
MAX_REUSE_IN_PLACE = 128
#: b, whose runs the tile loads as vectors, is read in place only by a tile of this many
#: rows or more (AVX-512's), each load feeding as many multiply-adds. With AVX2's 3 rows the
#: strided runs cost more than packing them: AMD Zen 3, us packed / in place, one thread:
#: dx = dy @ w at batch 64, 784 -> 256 348 / 475, 512 -> 512 447 / 593; dw of 512 -> 64 at
#: batch 256 245 / 303 (two threads: 200 / 253, 261 / 359, 137 / 176).
MIN_ROWS_FOR_B_IN_PLACE = 8


#: a is read in place up to this reuse with AVX2's tile of 3 rows: AMD Zen 3, float32, ms
#: packed / in place (one thread; two), 2026-12-07: the MLP's products at batch 256, x @ w.T
#: 784 -> 256 1.380 / 1.298 (1.026 / 0.834), 256 -> 128 0.253 / 0.235 (0.291 / 0.203), dy @ w
#: 128 -> 256 0.244 / 0.243 (0.260 / 0.220), 256 -> 784 1.503 / 1.438 (0.895 / 0.818);
#: 512^3 3.88 / 3.76 (2.07 / 1.96); but 1000 x 500 -> 1000 15.9 / 13.4 and 7.66 / 8.00.
MAX_REUSE_A_IN_PLACE = MAX_REUSE_IN_PLACE if MASKED_VECTORS else 800


def in_place(operand, reuse, most=MAX_REUSE_IN_PLACE):
    """Whether ``packed_product`` reads ``operand`` (a or b) in place, not packed, when its
    panels are read ``reuse`` times over, under ``most`` (b only with
    ``MIN_ROWS_FOR_B_IN_PLACE``)."""
    return (reuse < most and operand.flags.c_contiguous and operand.strides[0] % 4096 != 0)


def packed_product(a, b, out, accumulate=False, workspace=None, tile=None):
    """out (M, N) = a (M, K) @ b (K, N), or added to out with ``accumulate``; a and b any
    2-D views of out's dtype. ``tile`` (rows, columns): the micro-kernel's, by default
    ``product_tile``'s (which must not be None). Each operand is copied into panels in the
    tile's order (scratch from ``workspace``), or read in place where that does not pay
    (``in_place``): a when N is short (``MAX_REUSE_A_IN_PLACE``), b when M is (by tiles of
    ``MIN_ROWS_FOR_B_IN_PLACE`` rows); only their last partial panels are packed then.
    Either way each cell sums the same products in the same order."""
    rows, cols = tile or product_tile(out.dtype)
    workspace = workspace or Workspace()
    m_rows, depth = a.shape
    n_cols = b.shape[1]
    if in_place(a, n_cols, MAX_REUSE_A_IN_PLACE):
        full = m_rows // rows
        last = workspace.array("packed a", (1, depth * rows), out.dtype)
        if full * rows < m_rows:
            for_size(packer(rows), last.size)(a[full * rows:], last)
        a_args = (a.reshape(-1), full, depth, last[0])
    else:
        panels = workspace.array("packed a", (-(-m_rows // rows), depth * rows), out.dtype)
        for_size(packer(rows), panels.size)(a, panels)
        a_args = (panels.reshape(-1), panels.shape[0], 0, panels[0])
    if rows >= MIN_ROWS_FOR_B_IN_PLACE and in_place(b, m_rows):
        full = n_cols // cols
        last = workspace.array("packed b", (1, depth * cols), out.dtype)
        if full * cols < n_cols:
            for_size(packer(cols), last.size)(b[:, full * cols:].T, last)
        b_args = (b.reshape(-1), full, cols, n_cols, last[0])
    else:
        panels = workspace.array("packed b", (-(-n_cols // cols), depth * cols), out.dtype)
        for_size(packer(cols), panels.size)(b.T, panels)
        b_args = (panels.reshape(-1), panels.shape[0], depth * cols, cols, panels[0])
    tile_kernels(rows, cols, accumulate)[1](*a_args, *b_args, depth, out)


#: Columns the rows of ``panel_product``'s b come in: a multiple of every tile's width.
PANEL_COLUMNS = 32
# Where the tiles beat gemm_nn's sums of four rows on (K, 392-512) patches, one core,
# float32 (GFLOP/s, tiles / gemm_nn). AVX-512: K 256-576 and 16-128 rows of a 82-98 /
# 51-71; K 147, 64 rows 94 / 71; but K 27-108 32-76 / 52-92 (the tile's sums are zeroed
# and stored every K steps), and 6 rows of a (a panel of 8) 73 / 81 at K 150. AVX2 (3 x
# 32 tiles): K 288-1024 59-81 / 44-72, K 256 61 / 59, K 144-150 43-58 / 49-59.
# Re-measured on 2026-12-05 (Intel AVX-512, and as-avx2 on it), the tiles now win far
# below those depths. (M, K, L) alone, tiles / gemm_nn: AVX-512 (25, 27, 512) 69 / 50,
# (32, 18, 512) 64 / 54, (25, 75, 512) 89 / 54, float64 (25, 27, 512) 38 / 26, but (25,
# 16, 512) 59 / 84 and K 9-12 0.8x. Stride-2 forwards (ab.py, 64 samples, gemm_nn / tiles):
# AVX-512 3x3 of 2, 4, 8, 12 channels (18-108 taps) 1.25x, 1.35x, 1.46x, 1.52x, 5x5 of 3
# 1.28x, 3 -> 25 channels on 31 px 1.22x; AVX2 4 and 8 channels 1.07x, 1.17x, 5x5 of 3
# 1.13x, the 7x7 stem (147 taps) 1.26x, but 3x3 of 3 (27 taps) 0.93x. The same product
# in the input gradient (depth: output channels), stride-2 3x3 dx: AVX2 32 -> 64 channels
# on 14 px 1.28x, 64 -> 128 on 32 px 1.17x, but 16 -> 32 on 28 px 0.97x. On a real AVX2
# CPU (AMD Zen 3, 2026-12-06, ab.py, median of 21 and 31) 3x3 of 3 won: 3 -> 25 channels
# on 31 px 1.05x and 1.19x, 3 -> 16 1.01x; 2 channels (18 taps) lost there (0.95x).
MIN_DEPTH_FOR_TILES = 18 if MASKED_VECTORS else 27
MIN_PANELS_FOR_TILES = 2  # a panel's worth of rows of a or more, twice


@serial_kernel
def in_panel_columns(n):
    """n rounded up to a multiple of ``PANEL_COLUMNS``."""
    return (n + PANEL_COLUMNS - 1) // PANEL_COLUMNS * PANEL_COLUMNS


#: Elements added to a row of a b the tiles read in place that is an even number of
#: panels long (``panel_row_length``). A tile reads one run of b per k, a row apart. In
#: float32 a run is two cache lines: rows an odd number of runs long spread the runs over
#: all 64 sets of the L1 cache, an even number puts them into fewer (4 with rows of 512
#: float32, 2 KiB apart), where they evict each other before the next tile of rows reads
#: them again; 16 more elements make the distance an odd number of lines.
#: AMD Zen 3, one core, float32 (python benchmarks/ab.py, alternating, three runs): 3x3
#: stride 2 64x64x32x32 -> 128 dx 1.13-1.14x (dy's rows of 512), the stem's forward
#: 1.05-1.20x (patches' rows of 448); the rest 0.95-1.03x.
PANEL_SKEW = 16


@serial_kernel
def panel_row_length(n):
    """The row length of a b whose first n columns the tiles read in place (``panel_product``,
    ``tiles_product``): ``in_panel_columns(n)``, the columns the tiles read, and
    ``PANEL_SKEW`` more where that is an even number of panels."""
    columns = in_panel_columns(n)
    return columns + PANEL_SKEW if columns % (2 * PANEL_COLUMNS) == 0 else columns


def takes_tiles(m_rows, depth, like):
    """Whether ``panel_product`` runs a (m_rows, depth) a in tiles, for arrays of like's
    dtype: where this CPU has a tile for it and the tiles pay (``MIN_DEPTH_FOR_TILES``,
    ``MIN_PANELS_FOR_TILES``). For numba code only, as the two below."""
    raise NotImplementedError("takes_tiles is compiled into numba kernels")


def panel_columns(length, m_rows, depth, like):
    """The row length of ``panel_product``'s b with ``length`` columns in use:
    ``panel_row_length(length)`` where it takes tiles (their last ones read past length),
    else length."""
    raise NotImplementedError("panel_columns is compiled into numba kernels")


def panel_weights(a):
    """The left operand of ``panel_product`` made from a (M, K): its panels of the tile's
    rows where it ``takes_tiles``, else a zero-padded to ``in_fours(K)`` columns
    (``gemm.gemm_nn``'s coefficients)."""
    raise NotImplementedError("panel_weights is compiled into numba kernels")


def panel_product(weights, b, length, out):
    """out (M, length) = a @ b[:, :length] for weights = panel_weights(a)
    and b (K, panel_columns(length, M, K, out)) C-contiguous, finite beyond length: in
    tiles of the micro-kernel (``tile_kernels``) that read b's runs in place, or by
    ``gemm.gemm_nn``."""
    raise NotImplementedError("panel_product is compiled into numba kernels")


def tile_rows(like):
    """The rows of this CPU's tile for arrays of like's dtype (0: none, ``product_tile``),
    as a constant in numba code."""
    raise NotImplementedError("tile_rows is compiled into numba kernels")


def tile_columns(like):
    """The columns of this CPU's tile for arrays of like's dtype (0: none), as a constant in
    numba code."""
    raise NotImplementedError("tile_columns is compiled into numba kernels")


def tiles_product(a_panels, b, depth, out, accumulate):
    """out (M, N) = a (M, depth) @ b[:depth], or added to out with ``accumulate``, for numba
    code already inside a parallel loop, in tiles of the micro-kernel: a in panels (P,
    depth * rows) of ``tile_rows`` rows (``into_panels``), b row-major, C-contiguous, read
    in place, its rows at least ``in_panel_columns(N)`` long (finite past N; best
    ``panel_row_length(N)``). Only where
    this CPU has a tile for the dtype (``tile_rows`` > 0); elsewhere it raises."""
    raise NotImplementedError("tiles_product is compiled into numba kernels")


#: The most rows of any tile: ``rows_tiles_product`` reads its a that far past M.
MAX_TILE_ROWS = max(tile[0] for tile in TILES.values() if tile is not None)
#: The most columns of any tile.
MAX_TILE_COLUMNS = max(tile[1] for tile in TILES.values() if tile is not None)


def column_panels(a):
    """The right operand of ``rows_tiles_product`` made from a (N, K): B = a.T (K, N) in
    panels (Q, K * columns) of the tile's columns (``into_panels`` of a), zero past N; no
    panels (Q = 0) where this CPU has no tile for the dtype. For numba code only."""
    raise NotImplementedError("column_panels is compiled into numba kernels")


def rows_tiles_product(a, a_row, depth, b_panels, out, accumulate=False):
    """out (M, N) = A (M, depth) @ B, or added to out with ``accumulate``, in tiles of the
    micro-kernel, for numba code already inside a parallel loop: A's row m read in place at
    ``a[m * a_row:][:depth]`` of the 1-D a, B in panels of its columns (``column_panels``). The tiles read whole tiles of rows:
    a holds ``MAX_TILE_ROWS`` rows past M (any values: their sums are dropped). Each cell
    sums its depth products in order, whichever tile and block it falls in. Only where this
    CPU has a tile for the dtype; elsewhere it raises."""
    raise NotImplementedError("rows_tiles_product is compiled into numba kernels")


def tiles_product_at(a_panels, b, b_at, offsets, out, accumulate):
    """out (M, N) = a (M, K) @ B, or added to out with ``accumulate``, where B's row k is
    the run ``b[b_at + offsets[k]:][:N]`` of the 1-D b (K = len(offsets), uint64): the taps
    of a convolution read in place. As ``tiles_product``: a in panels of ``tile_rows``
    rows, inside a parallel loop, where this CPU has a tile for the dtype; each run is read
    ``in_panel_columns(N)`` long (finite there)."""
    raise NotImplementedError("tiles_product_at is compiled into numba kernels")


def _tile_of(array_type):
    return product_tile(np.dtype(array_type.dtype.name))


@overload(takes_tiles)
def _takes_tiles(m_rows, depth, like):
    tile = _tile_of(like)
    if tile is None:
        return lambda m_rows, depth, like: False
    rows = tile[0]
    return lambda m_rows, depth, like: (depth >= MIN_DEPTH_FOR_TILES
                                        and m_rows >= MIN_PANELS_FOR_TILES * rows)


@overload(panel_columns)
def _panel_columns(length, m_rows, depth, like):
    def columns(length, m_rows, depth, like):
        return panel_row_length(length) if takes_tiles(m_rows, depth, like) else length

    return columns


@overload(panel_weights)
def _panel_weights(a):
    tile = _tile_of(a)
    rows = 1 if tile is None else tile[0]

    def panels_or_rows(a):
        m_rows, depth = a.shape
        if not takes_tiles(m_rows, depth, a):
            return in_four_columns(a)
        panels = np.empty(((m_rows + rows - 1) // rows, depth * rows), a.dtype)
        into_panels(a, panels)
        return panels

    return panels_or_rows


@serial_kernel
def into_panels(a, panels):
    """panels (P, K * rows) = a (M, K) in panels of ``rows`` rows (``panels[p, k * rows + r]
    = a[p * rows + r, k]``, zero past M), serially: for small operands inside kernels."""
    m_rows, depth = a.shape
    rows = panels.shape[1] // depth
    for p in range(panels.shape[0]):
        for k in range(depth):
            for r in range(rows):
                m = p * rows + r
                panels[p, k * rows + r] = a[m, k] if m < m_rows else panels.dtype.type(0)


@lru_cache(maxsize=None)
def _panel_tiles(rows, cols):
    """The tile loop of ``panel_product`` and ``tiles_product``, compiled for a ``rows``
    x ``cols`` tile: out[:, :length] (+)= a @ b[:depth, :length] for a in panels (P,
    depth * rows) and b row-major, read in place, b's panel outer."""
    micro_kernel = tile_kernels(rows, cols)[0]

    @njit(cache=True, nogil=True)
    def tiles(a_panels, b, depth, length, out, accumulate):
        a_flat, b_flat, b_step = a_panels.reshape(-1), b.reshape(-1), b.shape[1]
        for q in range((length + cols - 1) // cols):
            for p in range(a_panels.shape[0]):
                if accumulate:  # a constant for each call: see tile_kernels
                    micro_kernel(a_flat, p * depth * rows, 0, b_flat, q * cols, b_step, depth,
                                 out, p * rows, q * cols, True)
                else:
                    micro_kernel(a_flat, p * depth * rows, 0, b_flat, q * cols, b_step, depth,
                                 out, p * rows, q * cols, False)

    return tiles


@lru_cache(maxsize=None)
def _tiles_at(rows, cols):
    """The tile loop of ``tiles_product_at``, compiled for a ``rows`` x ``cols`` tile."""
    micro_kernel = _tile(rows, cols, False, b_at_offsets=True)

    @njit(cache=True, nogil=True)
    def tiles(a_panels, b, b_at, offsets, out, accumulate):
        a_flat, depth = a_panels.reshape(-1), offsets.shape[0]
        for q in range((out.shape[1] + cols - 1) // cols):
            for p in range(a_panels.shape[0]):
                if accumulate:
                    micro_kernel(a_flat, p * depth * rows, 0, b, b_at + q * cols, offsets,
                                 depth, out, p * rows, q * cols, True)
                else:
                    micro_kernel(a_flat, p * depth * rows, 0, b, b_at + q * cols, offsets,
                                 depth, out, p * rows, q * cols, False)

    return tiles


@overload(panel_product)
def _panel_product(weights, b, length, out):
    tile = _tile_of(out)
    if tile is None:
        return lambda weights, b, length, out: gemm_nn(weights, b, length, out)
    tiles = _panel_tiles(*tile)

    def tiles_or_rows(weights, b, length, out):
        depth = b.shape[0]
        if not takes_tiles(out.shape[0], depth, out):
            gemm_nn(weights, b, length, out)
            return
        tiles(weights, b, depth, length, out, False)

    return tiles_or_rows


@overload(tile_rows)
def _tile_rows(like):
    tile = _tile_of(like)
    rows = 0 if tile is None else tile[0]
    return lambda like: rows


@overload(tile_columns)
def _tile_columns(like):
    tile = _tile_of(like)
    cols = 0 if tile is None else tile[1]
    return lambda like: cols


@overload(tiles_product)
def _tiles_product(a_panels, b, depth, out, accumulate):
    tile = _tile_of(out)
    if tile is None:
        def no_tile(a_panels, b, depth, out, accumulate):
            raise ValueError("no tile for this dtype on this CPU (tile_rows is 0)")

        return no_tile
    tiles = _panel_tiles(*tile)
    return lambda a_panels, b, depth, out, accumulate: tiles(a_panels, b, depth, out.shape[1],
                                                             out, accumulate)


@lru_cache(maxsize=None)
def _rows_tiles(rows, cols):
    """The tile loop of ``rows_tiles_product``, compiled for a ``rows`` x ``cols`` tile:
    B's panel outer, so that consecutive tiles share it."""
    micro_kernel = _tile(rows, cols, True)

    @njit(cache=True, nogil=True)
    def tiles(a, a_row, depth, b_panels, out, accumulate):
        b_flat = b_panels.reshape(-1)
        for q in range(b_panels.shape[0]):
            for p in range((out.shape[0] + rows - 1) // rows):
                micro_kernel(a, p * rows * a_row, a_row, b_flat, q * depth * cols, cols, depth,
                             out, p * rows, q * cols, accumulate)

    return tiles


@overload(column_panels)
def _column_panels(a):
    tile = _tile_of(a)
    if tile is None:
        return lambda a: np.empty((0, a.shape[1]), a.dtype)
    cols = tile[1]

    def panels(a):
        n_cols, depth = a.shape
        b_panels = np.empty(((n_cols + cols - 1) // cols, depth * cols), a.dtype)
        into_panels(a, b_panels)
        return b_panels

    return panels


@overload(rows_tiles_product)
def _rows_tiles_product(a, a_row, depth, b_panels, out, accumulate=False):
    tile = _tile_of(out)
    if tile is None:
        def no_tile(a, a_row, depth, b_panels, out, accumulate=False):
            raise ValueError("no tile for this dtype on this CPU (tile_rows is 0)")

        return no_tile
    tiles = _rows_tiles(*tile)

    def product(a, a_row, depth, b_panels, out, accumulate=False):
        tiles(a, a_row, depth, b_panels, out, accumulate)

    return product


@overload(tiles_product_at)
def _tiles_product_at(a_panels, b, b_at, offsets, out, accumulate):
    tile = _tile_of(out)
    if tile is None:
        def no_tile(a_panels, b, b_at, offsets, out, accumulate):
            raise ValueError("no tile for this dtype on this CPU (tile_rows is 0)")

        return no_tile
    tiles = _tiles_at(*tile)
    return lambda a_panels, b, b_at, offsets, out, accumulate: tiles(a_panels, b, b_at, offsets,
                                                                     out, accumulate)
