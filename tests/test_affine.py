import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_matches
from fastbp import functional as F
from fastbp import reference as ref
from fastbp.kernels.packed import TILES as PACKED_TILES

# Both sides of MAX_DEPTH_FOR_ROWS (256): the batch for dw, out-features for dx; a batch
# over 256 transposes dy and x by strips of rows (gemm.transpose).
# (260, 270, 258): every side of every product >= 256, so packed panels (kernels.packed);
# (64, 200, 250): a batch of 64, the weights read in place where the CPU packs it (AVX-512).
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 4), (8, 33, 17), (64, 784, 10), (3, 128, 256),
          (129, 5, 128), (200, 9, 130), (300, 20, 140), (40, 9, 260), (257, 6, 257),
          (260, 270, 258), (64, 200, 250)]


@pytest.mark.parametrize("n,d_in,d_out", SHAPES)
def test_linear_matches_reference(n, d_in, d_out, dtype, rng):
    x = rng.standard_normal((n, d_in)).astype(dtype)
    w = rng.standard_normal((d_out, d_in)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    assert_matches(F.linear(x, w, b), ref.linear(x64, w64, b.astype(np.float64)), dtype)
    assert_matches(F.linear(x, w), ref.linear(x64, w64, 0.0), dtype)

    dy = rng.standard_normal((n, d_out)).astype(dtype)
    for got, expected in zip(F.linear_backward(dy, x, w), ref.linear_backward(dy.astype(np.float64), x64, w64)):
        assert_matches(got, expected, dtype)


def test_linear_accepts_non_contiguous_inputs(rng):
    x = rng.standard_normal((6, 10))[:, ::2]
    w = np.asfortranarray(rng.standard_normal((3, 5)))
    np.testing.assert_allclose(F.linear(x, w), x @ w.T, rtol=1e-12)
    dx, dw, db = F.linear_backward(np.ones((6, 3))[:, ::1], x, w)
    np.testing.assert_allclose(dw, np.ones((6, 3)).T @ x, rtol=1e-12)


@pytest.mark.parametrize("n", [64, 300])  # the rows form and the dot-product form of dw
def test_linear_backward_adds_to_given_gradients(n, rng):
    x, w = rng.standard_normal((n, 9)), rng.standard_normal((130, 9))
    dy = rng.standard_normal((n, 130))
    _, dw, db = F.linear_backward(dy, x, w)
    dw0, db0 = rng.standard_normal(w.shape), rng.standard_normal(130)
    targets = dw0.copy(), db0.copy()
    dx, got_dw, got_db = F.linear_backward(dy, x, w, add_to=targets)
    assert got_dw is targets[0] and got_db is targets[1]
    np.testing.assert_allclose(got_dw, dw0 + dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_db, db0 + db, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-12, atol=1e-12)
    only_dw = dw0.copy()
    assert F.linear_backward(dy, x, w, add_to=(only_dw, None))[2] is None
    np.testing.assert_allclose(only_dw, dw0 + dw, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad", [np.zeros((130, 9), np.float32), np.zeros((9, 130)),
                                 np.zeros((9, 130)).T, "dw"])
def test_linear_backward_refuses_targets_it_cannot_add_to(bad, rng):
    x, w, dy = rng.standard_normal((4, 9)), rng.standard_normal((130, 9)), np.ones((4, 130))
    with pytest.raises(ValueError, match="add_to's dw must be"):
        F.linear_backward(dy, x, w, add_to=(bad, None))


@pytest.mark.parametrize("tile", ["gemm_nt_4x2", "gemm_nt_4x4"])
@pytest.mark.parametrize("m, k, p", [(4, 16, 4), (9, 37, 11), (1, 5, 3), (16, 300, 6), (7, 1, 9)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_both_gemm_tiles_compute_the_product(tile, m, k, p, accumulate, dtype, rng):
    """Each CPU runs one tile (4x4 with AVX-512's 32 registers, else 4x2: kernels.isa);
    both are checked here whatever this machine has."""
    from fastbp.kernels import gemm, isa

    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((p, k)).astype(dtype)
    start = rng.standard_normal((m, p)).astype(dtype)
    out = start.copy()
    getattr(gemm, tile)(a, b, out, accumulate)
    expected = a.astype(np.float64) @ b.T.astype(np.float64) + (start if accumulate else 0)
    assert_matches(out, expected, dtype)
    assert gemm.gemm_nt is (gemm.gemm_nt_4x4 if isa.MASKED_VECTORS else gemm.gemm_nt_4x2)


@pytest.mark.parametrize("tile", ["dots_at_4x2", "dots_at_4x4"])
@pytest.mark.parametrize("m, length, n_offsets", [(4, 16, 4), (9, 37, 11), (1, 5, 3), (6, 20, 8),
                                                  (7, 1, 9), (3, 12, 2)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_both_tiles_take_runs_at_any_offsets(tile, m, length, n_offsets, accumulate, dtype, rng):
    """dots_at: dot products of a's rows with overlapping runs of one flat array, the
    stride-1 convolution's taps; every tail (1 to 3 rows, 1 to 3 offsets) included."""
    from fastbp.kernels import gemm, isa

    a = rng.standard_normal((m, length + 3)).astype(dtype)  # rows longer than the runs
    src = rng.standard_normal(length + 40).astype(dtype)
    offsets = rng.integers(0, 41, n_offsets).astype(np.uint64)
    start = rng.standard_normal((m, n_offsets)).astype(dtype)
    out = start.copy()
    getattr(gemm, tile)(a, src, offsets, length, out, accumulate)
    runs = np.stack([src[o:o + length] for o in offsets.astype(np.int64)])
    expected = a[:, :length].astype(np.float64) @ runs.T.astype(np.float64)
    assert_matches(out, expected + (start if accumulate else 0), dtype)
    assert gemm.dots_at is (gemm.dots_at_4x4 if isa.MASKED_VECTORS else gemm.dots_at_4x2)


@pytest.mark.parametrize("m, k, d", [(1, 4, 3), (6, 8, 33), (7, 12, 100), (9, 256, 200)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_nn_in_jobs_of_two_or_four_rows_agree_bit_for_bit(m, k, d, accumulate, dtype, rng):
    """parallel_gemm_nn runs 2 output rows per job (AVX2, NEON) or 4 (AVX-512:
    affine.rows_per_job); both are checked here, every tail of 1 to 3 rows included, and
    they sum every cell in the same order."""
    from fastbp.kernels import affine

    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, d)).astype(dtype)
    start = rng.standard_normal((m, d)).astype(dtype)
    results = []
    for per_job in (2, 4):
        out = start.copy()
        affine.parallel_gemm_nn(a, b, out, accumulate, per_job)
        results.append(out)
    expected = a.astype(np.float64) @ b.astype(np.float64) + (start if accumulate else 0)
    assert_matches(results[0], expected, dtype)
    np.testing.assert_array_equal(results[0], results[1])


def test_gemm_nn_takes_four_rows_with_32_registers_unless_rows_are_4k_apart():
    from fastbp.kernels import isa
    from fastbp.kernels.affine import rows_per_job

    assert rows_per_job(784, 4, masked_vectors=True) == 4
    assert rows_per_job(512, 4, masked_vectors=True) == 4
    assert rows_per_job(1024, 4, masked_vectors=True) == 2  # 4 KiB apart
    assert rows_per_job(512, 8, masked_vectors=True) == 2
    assert rows_per_job(784, 4, masked_vectors=False) == 2
    assert rows_per_job(784, 4) == (4 if isa.MASKED_VECTORS else 2)


TILES = sorted({tile for tile in PACKED_TILES.values() if tile})


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (8, 3, 32), (9, 20, 33), (17, 1, 70), (24, 64, 31)])
@pytest.mark.parametrize("layout", ["nn", "tn", "nt"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_every_packed_tile_computes_the_product(tile, m, k, n, layout, accumulate, dtype, rng):
    """packed_product with each instruction set's tile (kernels.packed.TILES), whatever
    this machine has: a and b as they come (transposed views too), partial tiles on both
    sides, depth 1."""
    from fastbp.kernels.packed import packed_product

    a = rng.standard_normal((k, m) if layout[0] == "t" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if layout[1] == "t" else (k, n)).astype(dtype)
    a, b = (a.T if layout[0] == "t" else a), (b.T if layout[1] == "t" else b)
    start = rng.standard_normal((m, n)).astype(dtype)
    out = start.copy()
    packed_product(a, b, out, accumulate, tile=tile)
    expected = a.astype(np.float64) @ b.astype(np.float64) + (start if accumulate else 0)
    assert_matches(out, expected, dtype)


@pytest.mark.parametrize("m, k, n", [(33, 261, 50), (16, 300, 32), (40, 128, 70), (6, 300, 9),
                                     (40, 100, 64), (40, 24, 70), (40, 12, 64)])
def test_panel_product_matches_the_product(m, k, n, dtype, rng):
    """packed.panel_product (the patches family's axpy-form forward): in tiles that read
    b's runs in place where this CPU and dtype take them (partial tiles on both sides,
    zero columns past n; rows of b whole panels of 32, 16 more where that makes an even
    number of panels), by gemm_nn otherwise (too few rows of a, too short a depth)."""
    from numba import njit

    from fastbp.kernels.packed import panel_columns, panel_product, panel_weights, takes_tiles

    @njit
    def product(a, b, out):
        width = panel_columns(b.shape[1], a.shape[0], a.shape[1], out)
        padded = np.zeros((b.shape[0], width), b.dtype)
        padded[:, :b.shape[1]] = b
        panel_product(panel_weights(a), padded, b.shape[1], out)
        return takes_tiles(a.shape[0], a.shape[1], out), width

    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)
    tiles, width = product(a, b, out)
    columns = -(-n // 32) * 32
    assert width == ((columns + 16 if columns % 64 == 0 else columns) if tiles else n)
    assert_matches(out, a.astype(np.float64) @ b.astype(np.float64), dtype)


@pytest.mark.parametrize("m, k, n, row", [(1, 1, 1, 1), (10, 37, 25, 48), (33, 144, 64, 144),
                                          (7, 300, 70, 320)])
def test_rows_tiles_product_reads_a_in_place(m, k, n, row, dtype, rng):
    """packed.rows_tiles_product (the patches family's forward by dots in the tiles): a's
    rows read in place ``row`` apart, whatever lies past the depth and past the last row
    (NaN here: the tiles read those rows and drop their sums), against b in panels of the
    tile's columns (column_panels, zero past n; none where this CPU has no tile for the
    dtype, and then the product refuses)."""
    from numba import njit

    from fastbp.kernels.packed import MAX_TILE_ROWS, column_panels, product_tile, rows_tiles_product

    @njit
    def panels(b_t):
        return column_panels(b_t)

    @njit
    def product(flat, row, depth, b_panels, out):
        rows_tiles_product(flat, row, depth, b_panels, out)

    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    flat = np.full((m + MAX_TILE_ROWS) * row, np.nan, dtype)
    flat.reshape(-1, row)[:m, :k] = a
    b_panels = panels(np.ascontiguousarray(b.T))
    out = np.full((m, n), np.nan, dtype)
    tile = product_tile(dtype)
    if tile is None:
        assert b_panels.shape == (0, k)
        with pytest.raises(ValueError, match="no tile"):
            product(flat, row, k, b_panels, out)
        return
    assert b_panels.shape == (-(-n // tile[1]), k * tile[1])
    product(flat, row, k, b_panels, out)
    assert_matches(out, a.astype(np.float64) @ b.astype(np.float64), dtype)


def test_packed_tile_by_instruction_set_and_dtype():
    from fastbp.kernels import isa
    from fastbp.kernels.packed import product_tile

    assert product_tile(np.float32, masked_vectors=True) == (8, 32)
    assert product_tile(np.float64, masked_vectors=True) == (8, 16)
    assert product_tile(np.float32, masked_vectors=False) == (3, 32)
    assert product_tile(np.float64, masked_vectors=False) is None
    assert product_tile(np.float32) == product_tile(np.float32, isa.MASKED_VECTORS)


def test_dense_products_take_panels_when_every_side_is_long():
    """affine.packs: 10 outputs, or under 2.5 M multiply-adds, keep the unpacked kernels; a
    side of 64 (batch 64, or dw's depth at batch 64) packs from 2.5 M multiply-adds with
    AVX-512, from 8 M with AVX2. The rule depends on shapes and dtype only, never on
    threads."""
    from fastbp.kernels.affine import packs
    from fastbp.kernels.isa import MASKED_VECTORS
    from fastbp.kernels.packed import product_tile

    assert packs(256, 256, 256, np.float32)
    assert packs(64, 256, 784, np.float32)  # 12.8 M
    assert packs(256, 784, 64, np.float32)
    assert packs(64, 120, 400, np.float32) is MASKED_VECTORS  # 3.1 M
    assert not packs(64, 256, 128, np.float32)  # 2.1 M
    assert not packs(256, 10, 128, np.float32)
    assert packs(256, 256, 256, np.float64) == (product_tile(np.float64) is not None)


@pytest.mark.parametrize("n, d_in, d_out", [(4, 8, 8), (64, 128, 10), (30, 300, 7)])
def test_small_products_run_serially_with_the_parallel_bits(n, d_in, d_out, dtype, rng,
                                                             monkeypatch):
    """A product under ``MIN_WORK_FOR_THREADS`` multiply-adds runs on the calling thread (the
    kernel's serial twin): the same sums in the same order as the parallel kernel. Shapes
    cover the rows form (depth <= 256) and the dot products (300 deep)."""
    from fastbp.kernels import affine
    from fastbp.kernels._jit import serial_twin

    assert affine.for_work(affine.parallel_gemm_nt, affine.MIN_WORK_FOR_THREADS - 1) is \
        serial_twin(affine.parallel_gemm_nt)
    assert affine.for_work(affine.parallel_gemm_nn, affine.MIN_WORK_FOR_THREADS) is \
        affine.parallel_gemm_nn
    x = rng.standard_normal((n, d_in)).astype(dtype)
    w = rng.standard_normal((d_out, d_in)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)
    dy = rng.standard_normal((n, d_out)).astype(dtype)

    def passes():
        y, dx = np.empty((n, d_out), dtype), np.empty((n, d_in), dtype)
        dw, db = np.empty((d_out, d_in), dtype), np.empty(d_out, dtype)
        affine.affine_forward(x, w, b, y)
        affine.affine_backward_input(dy, w, dx)
        affine.affine_backward_params(dy, x, dw, db)
        return y, dx, dw, db

    serial = passes()
    monkeypatch.setattr(affine, "MIN_WORK_FOR_THREADS", 0)
    for got, want in zip(passes(), serial):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(serial[0], x.astype(np.float64) @ w.T + b,
                               rtol=1e-4, atol=1e-4 * np.sqrt(d_in))


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("m, k, n", [(50, 300, 70), (64, 130, 90), (16, 40, 64)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_operands_read_in_place_give_the_packed_sums_bit_for_bit(tile, m, k, n, accumulate,
                                                                  dtype, rng, monkeypatch):
    """packed_product reads a row-major operand in place when the other side is short
    (packed.in_place): its full panels from the matrix, its last partial one packed. Each
    cell sums the same products in the same order as from packed panels."""
    from fastbp.kernels import packed

    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    start = rng.standard_normal((m, n)).astype(dtype)
    assert packed.in_place(a, n) and packed.in_place(b, m)
    assert not packed.in_place(a.T.copy().T, n)  # columns of a Fortran array are no runs
    assert not packed.in_place(rng.standard_normal((k, 1024)).astype(np.float32), m)  # 4 KiB
    in_place = start.copy()
    packed.packed_product(a, b, in_place, accumulate, tile=tile)
    monkeypatch.setattr(packed, "in_place", lambda operand, reuse, most=0: False)
    from_panels = start.copy()
    packed.packed_product(a, b, from_panels, accumulate, tile=tile)
    assert in_place.tobytes() == from_panels.tobytes()
    expected = a.astype(np.float64) @ b.astype(np.float64) + (start if accumulate else 0)
    assert_matches(in_place, expected, dtype)


def test_transpose_8x8_moves_a_block_between_arrays_of_any_row_stride(dtype):
    """transposed.transpose_8x8: out[out_row + j, out_col + i] = a[row + i, col + j], and
    nothing else of out written, between C arrays and row-strided views."""
    from numba import njit

    from fastbp.kernels.transposed import transpose_8x8

    @njit
    def transpose(a, row, col, out, out_row, out_col):
        transpose_8x8(a, row, col, out, out_row, out_col)

    base = np.arange(30 * 40, dtype=dtype).reshape(30, 40)
    for a in (base, base[3:, 5:], base[::3]):
        for out in (np.full((12, 15), -1, dtype), np.full((30, 20), -1, dtype)[::2, 3:]):
            transpose(a, 1, 2, out, 3, 4)
            expected = np.full(out.shape, -1, dtype)
            expected[3:11, 4:12] = a[1:9, 2:10].T
            np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape", [(3, 5), (5, 12), (12, 6), (8, 8), (9, 17), (14, 64), (70, 10)])
def test_transpose_blocks_transposes_any_shape(shape, dtype):
    """transposed.transpose_blocks: out = a.T, in 8 x 8 blocks (the last of each axis
    overlapping) where both sides are 8 or more, value by value where one is shorter;
    between C arrays and row-strided views, nothing else of out written."""
    from fastbp.kernels.transposed import transpose_blocks

    m, n = shape
    a = np.arange(m * 3 * (n + 2), dtype=dtype).reshape(m * 3, n + 2)[::3, 1:n + 1]
    out = np.full((n, m + 5), -1, dtype)
    transpose_blocks(a, out[:, 2:m + 2])
    expected = np.full(out.shape, -1, dtype)
    expected[:, 2:m + 2] = a.T
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("width", [3, 8, 16, 32])
@pytest.mark.parametrize("layout", ["rows", "columns", "strided rows", "strided"])
@pytest.mark.parametrize("depth", [1, 8, 15, 16, 37])
def test_packer_lays_any_operand_out_in_panels(width, layout, depth, dtype, rng):
    """packed.packer(width), parallel and serial: panels[p, k * width + r] = a[p * width + r,
    k], zero past a's rows, whether a's rows are runs (8 x 8 blocks transposed in
    registers where width is a multiple of 8), its columns are (copied through a buffer)
    or neither."""
    from fastbp.kernels._jit import serial_twin
    from fastbp.kernels.packed import packer

    m_rows = 70
    base = rng.standard_normal((2 * m_rows + 3, 2 * depth + 5)).astype(dtype)
    a = {"rows": base[:m_rows, :depth].copy(),
         "columns": np.asfortranarray(base[:m_rows, :depth]),
         "strided rows": base[1:m_rows + 1, 2:depth + 2],
         "strided": base[::2, ::2][:m_rows, :depth]}[layout]
    padded = np.zeros((-(-m_rows // width) * width, depth), dtype)
    padded[:m_rows] = a
    expected = padded.reshape(-1, width, depth).transpose(0, 2, 1).reshape(-1, depth * width)
    for pack in (packer(width), serial_twin(packer(width))):
        panels = np.full(expected.shape, np.nan, dtype)
        pack(a, panels)
        np.testing.assert_array_equal(panels, expected)


@pytest.mark.parametrize("tile", TILES)
def test_b_is_read_in_place_only_by_tiles_of_enough_rows(tile, rng, monkeypatch):
    """b's runs are read in place (all but its last partial panel left unpacked) only by a
    tile of ``MIN_ROWS_FOR_B_IN_PLACE`` rows or more; a short one packs all of b."""
    from fastbp.kernels import packed

    a = rng.standard_normal((50, 300)).astype(np.float32)
    b = rng.standard_normal((300, 70)).astype(np.float32)
    assert packed.in_place(b, 50)
    packed_shapes, real_for_size = [], packed.for_size

    def recording_for_size(kernel, size, *rest):
        run = real_for_size(kernel, size, *rest)

        def call(source, panels):
            packed_shapes.append(panels.shape)
            run(source, panels)
        return call

    monkeypatch.setattr(packed, "for_size", recording_for_size)
    out = np.empty((50, 70), np.float32)
    packed.packed_product(a, b, out, tile=tile)
    rows, cols = tile
    b_panels = 1 if rows >= packed.MIN_ROWS_FOR_B_IN_PLACE else -(-70 // cols)
    assert packed_shapes == [(1, 300 * rows), (b_panels, 300 * cols)]  # a's last panel, b's
    assert_matches(out, a.astype(np.float64) @ b.astype(np.float64), np.float32)


@pytest.mark.parametrize("m, k, length", [(1, 1, 1), (2, 4, 16), (5, 7, 33), (8, 32, 100)])
def test_gemm_nn_adds_rows_four_at_a_time(m, k, length, dtype, rng):
    """gemm_nn: out[:, :length] = a @ b[:, :length] from zero-padded coefficients; the
    cells of out past length are left alone."""
    from fastbp.kernels import gemm, shifted

    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, length + 5)).astype(dtype)
    out = np.full((m, length + 3), 7.0, dtype)
    gemm.gemm_nn(shifted.in_four_columns(a), b, length, out)
    assert_matches(out[:, :length], a.astype(np.float64) @ b[:, :length].astype(np.float64), dtype)
    assert (out[:, length:] == 7.0).all()


# A packed product compiled in one process, then run in another on the same on-disk cache.
CACHED_PRODUCT = """
import numpy as np
from fastbp.kernels.packed import packed_product, tile_kernels
tile = (3, 32)  # AVX2's float32 tile; any tile compiles on any CPU
a, b = np.ones((70, 40), np.float32), np.ones((40, 50), np.float32)
out = np.zeros((70, 50), np.float32)
packed_product(a, b, out, tile=tile)
assert (out == 40).all()
stats = tile_kernels(*tile, False)[1].stats  # the call packed_product makes
print(len(stats.cache_hits), len(stats.cache_misses))
"""


@pytest.mark.slow
def test_the_packed_product_is_compiled_once_not_in_every_process(tmp_path):
    """numba keys a cached closure by the values it closes over; a product that closed over
    its tile functions (dispatchers, which differ from process to process) missed the cache
    and was compiled again by every process that used a dense layer (~1.5 s)."""
    env = {key: value for key, value in os.environ.items() if key != "FASTBP_NUMBA_CACHE"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path)

    def hits_and_misses():
        done = subprocess.run([sys.executable, "-c", CACHED_PRODUCT], env=env,
                              capture_output=True, text=True, timeout=600, check=True)
        return tuple(int(v) for v in done.stdout.split())

    assert hits_and_misses() == (0, 1)
    assert hits_and_misses() == (1, 0)
