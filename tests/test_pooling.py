import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_matches

import fastbp
from fastbp import functional as F
from fastbp import reference as ref

# x shape, kernel, stride, padding
CASES = [
    ((1, 1, 4, 4), 2, None, 0),
    ((2, 3, 6, 6), 2, 2, 0),
    ((2, 3, 7, 5), 2, None, 0),  # 2x2 path: odd sizes drop the last row and column
    ((2, 3, 7, 7), 3, 2, 1),
    ((1, 2, 5, 8), (2, 3), (1, 2), (1, 1)),
    ((2, 1, 5, 5), 5, None, 0),
    ((1, 1, 3, 3), 1, 1, 0),
    ((3, 2, 9, 4), 3, 1, 1),
]


@pytest.mark.parametrize("shape,kernel,stride,padding", CASES)
def test_max_pool_matches_reference(shape, kernel, stride, padding, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    y = F.max_pool2d(x, kernel, stride, padding)
    expected, _ = ref.max_pool2d(x.astype(np.float64), kernel, stride, padding)
    assert_matches(y, expected, dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = F.max_pool2d_backward(dy, x, kernel, stride, padding)
    assert_matches(dx, ref.max_pool2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                               kernel, stride, padding), dtype)


@pytest.mark.parametrize("shape,kernel,stride,padding", CASES)
def test_avg_pool_matches_reference(shape, kernel, stride, padding, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    y = F.avg_pool2d(x, kernel, stride, padding)
    assert_matches(y, ref.avg_pool2d(x.astype(np.float64), kernel, stride, padding), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = F.avg_pool2d_backward(dy, x, kernel, stride, padding)
    assert_matches(dx, ref.avg_pool2d_backward(dy.astype(np.float64), x, kernel, stride, padding), dtype)


# stride 2 takes the 2x2 kernel's own loop, stride 1 the general one (same single window)
both_paths = pytest.mark.parametrize("stride", [2, 1], ids=["2x2 loop", "general loop"])


@both_paths
def test_max_pool_routes_ties_to_the_first_maximum_in_row_major_order(stride):
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    dx = F.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2, stride)
    np.testing.assert_array_equal(dx, [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_max_pool_padding_never_wins_over_negative_values():
    x = -np.ones((1, 1, 2, 2), np.float32) * 5
    y = F.max_pool2d(x, 3, 1, 1)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), -5, np.float32))


def test_avg_pool_counts_padding_as_zeros():
    x = np.ones((1, 1, 2, 2))
    np.testing.assert_allclose(F.avg_pool2d(x, 3, 1, 1), np.full((1, 1, 2, 2), 4 / 9))


@both_paths
def test_max_pool_propagates_nan(stride):
    x = np.array([[[[1.0, np.nan], [5.0, 2.0]]]])
    assert np.isnan(F.max_pool2d(x, 2, stride)[0, 0, 0, 0])
    dx = F.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2, stride)
    np.testing.assert_array_equal(dx, [[[[0.0, 1.0], [0.0, 0.0]]]])


@both_paths
@pytest.mark.parametrize("window,winner", [
    ([[1.0, 2.0], [np.nan, 5.0]], (1, 0)),  # a NaN in the lower row still wins
    ([[4.0, 1.0], [4.0, 2.0]], (0, 0)),  # an equal lower row does not
    ([[4.0, 1.0], [4.0, 9.0]], (1, 1)),
    ([[np.nan, 1.0], [np.nan, 9.0]], (0, 0)),  # the first NaN
])
def test_max_pool_winner_in_row_major_order(window, winner, stride):
    x = np.array([[window]])
    expected = np.zeros((1, 1, 2, 2))
    expected[0, 0][winner] = 1.0
    np.testing.assert_array_equal(F.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2, stride), expected)
    np.testing.assert_array_equal(F.max_pool2d(x, 2, stride), [[[[x[0, 0][winner]]]]])


@both_paths
def test_max_pool_of_all_minus_infinity_is_minus_infinity(stride):
    x = np.full((1, 1, 2, 2), -np.inf)
    assert F.max_pool2d(x, 2, stride)[0, 0, 0, 0] == -np.inf
    assert F.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2, stride)[0, 0, 0, 0] == 1.0


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    data=st.data(), seed=st.integers(0, 2**16), use_f32=st.booleans(),
)
def test_pooling_fuzzed_shapes(n, c, h, w, kh, kw, sh, sw, data, seed, use_f32):
    ph = data.draw(st.integers(0, kh // 2))
    pw = data.draw(st.integers(0, kw // 2))
    dtype = np.float32 if use_f32 else np.float64
    rng = np.random.default_rng(seed)
    # Few distinct values, so ties are common and the first-maximum rule is exercised.
    x = rng.integers(-3, 4, (n, c, h, w)).astype(dtype)
    args = ((kh, kw), (sh, sw), (ph, pw))
    if kh > h + 2 * ph or kw > w + 2 * pw:
        for pool in (F.max_pool2d, F.avg_pool2d):
            with pytest.raises(ValueError, match="larger than the padded input"):
                pool(x, *args)
        return
    x64 = x.astype(np.float64)
    y = F.max_pool2d(x, *args)
    assert_matches(y, ref.max_pool2d(x64, *args)[0], dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy64 = dy.astype(np.float64)
    assert_matches(F.max_pool2d_backward(dy, x, *args), ref.max_pool2d_backward(dy64, x64, *args), dtype)
    assert_matches(F.avg_pool2d(x, *args), ref.avg_pool2d(x64, *args), dtype)
    assert_matches(F.avg_pool2d_backward(dy, x, *args), ref.avg_pool2d_backward(dy64, x64, *args), dtype)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 2, 7, 9), (64, 6, 28, 28), (5, 16, 10, 10),
                                   (1, 1, 2, 2), (2, 3, 3, 65)])
def test_both_2x2_forward_forms_give_the_same_bits(shape, relu, dtype, rng):
    """"rows" (for AVX-512) and "runs" (for AVX2 and NEON) are two loop orders of one
    computation: the same maxima, winners and SILENT bits, ties, NaN and relu included."""
    from fastbp.functional.pooling import max_pool2d_2x2_with_winner

    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :2] = np.nan
    x[-1, -1, :2, :2] = 1.5  # a four-way tie
    out_shape = (*shape[:2], shape[2] // 2, shape[3] // 2)
    y_rows, winner_rows = max_pool2d_2x2_with_winner(x, out_shape, relu, form="rows")
    workspace, before = fastbp.Workspace(), fastbp.get_num_threads()
    for threads in (1, 2):
        fastbp.set_num_threads(threads)
        try:
            y_runs, winner_runs = max_pool2d_2x2_with_winner(x, out_shape, relu, workspace, "runs")
        finally:
            fastbp.set_num_threads(before)
        assert y_runs.tobytes() == y_rows.tobytes()
        assert winner_runs.tobytes() == winner_rows.tobytes()


def test_the_2x2_forward_form_follows_the_instruction_set_and_the_row_width():
    from fastbp.kernels import isa, pooling

    assert isa.masked_vectors({"avx2", "fma", "avx512f"})
    assert not isa.masked_vectors({"avx2", "fma"}) and not isa.masked_vectors({"neon"})
    wide, narrow = pooling.MIN_WIDTH_FOR_ROWS, pooling.MIN_WIDTH_FOR_ROWS - 1
    assert pooling.max_pool2d_2x2_form(wide, masked_vectors=True) == "rows"
    assert pooling.max_pool2d_2x2_form(narrow, masked_vectors=True) == "runs"
    assert pooling.max_pool2d_2x2_form(wide, masked_vectors=False) == "runs"
    assert pooling.max_pool2d_2x2_form(wide) == ("rows" if isa.MASKED_VECTORS else "runs")
    with pytest.raises(ValueError, match="form must be 'rows' or 'runs'"):
        from fastbp.functional.pooling import max_pool2d_2x2_with_winner
        max_pool2d_2x2_with_winner(np.ones((1, 1, 2, 2)), (1, 1, 1, 1), form="columns")


@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((2, 3, 11, 9), (3, 2), (1, 2), (1, 1)), ((3, 40, 7, 9), (3, 3), (2, 2), (1, 1)),
    ((1, 1, 5, 5), (5, 5), (1, 1), (2, 2)), ((2, 2, 6, 6), (2, 2), (2, 2), (0, 0)),
    ((1, 45, 20, 19), (3, 3), (2, 2), (1, 1)),  # 32 planes, then 13; rows of 10 outputs
])
def test_general_max_pool_forms_give_the_same_bits(shape, kernel, stride, padding, dtype, rng):
    """Vectorised across planes (what F.max_pool2d runs) or along rows (kept for planes too
    large for float indices): the same maxima and argmax, NaN and -inf included."""
    from fastbp.kernels.pooling import max_pool2d_forward

    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :2] = np.nan
    x[-1, -1] = -np.inf
    y, argmax = F.max_pool2d_with_argmax(x, kernel, stride, padding)
    y_rows, argmax_rows = np.empty_like(y), np.empty_like(argmax)
    max_pool2d_forward(x, *kernel, *stride, *padding, y_rows, argmax_rows)
    assert y.tobytes() == y_rows.tobytes() and argmax.tobytes() == argmax_rows.tobytes()
