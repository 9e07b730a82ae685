"""The vectorisable exp, expm1, log1p and tanh of ``kernels/elementary.py``: their errors in
ulps against higher-precision references, their special values, and the activations built
on them."""

import numpy as np
import pytest
from numba import njit, prange

import fastbp
from fastbp import functional as F
from fastbp.kernels._jit import PARALLEL_MIN
from fastbp.kernels.elementary import exp_value, expm1_value, log1p_unit, tanh_value

# The float64 references are computed in long double; where that is float64 itself (some
# ARM platforms) the reference carries up to an ulp of its own error.
EXTENDED = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant


def _vectorised(function):
    @njit(parallel=True)
    def apply(x, out):
        for i in prange(x.size):
            out[i] = function(x[i])

    def call(x):
        out = np.empty_like(x)
        apply(x, out)
        return out

    return call


EXP, EXPM1, LOG1P, TANH = (_vectorised(f) for f in (exp_value, expm1_value, log1p_unit, tanh_value))


def ulp_errors(got, reference, dtype):
    """|got - reference| in units of the spacing of ``dtype`` at the rounded reference."""
    spacing = np.spacing(np.abs(reference.astype(dtype))).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - reference) / spacing


def bound(ulps, dtype):
    return ulps + (0 if dtype == np.float32 or EXTENDED else 1)


def samples(dtype, low, high, rng):
    """Uniform over [low, high], over [-1, 1] and near 0."""
    near_zero = rng.uniform(-1e-3, 1e-3, 20_000)
    return np.concatenate([rng.uniform(low, high, 200_000), rng.uniform(-1, 1, 50_000),
                           near_zero]).astype(dtype)


# (function, reference, bound in ulps, {dtype: range sampled}): the normal range of the
# results, and past the points where expm1 and tanh saturate.
CASES = {
    "exp": (EXP, np.exp, 1, {np.float32: (-87, 88), np.float64: (-708, 709)}),
    "expm1": (EXPM1, np.expm1, 2, {np.float32: (-40, 88), np.float64: (-40, 709)}),
    "tanh": (TANH, np.tanh, 3, {np.float32: (-20, 20), np.float64: (-20, 20)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_error_in_ulps_over_the_range(name, dtype, rng):
    function, reference, ulps, ranges = CASES[name]
    x = samples(dtype, *ranges[dtype], rng)
    errors = ulp_errors(function(x), reference(x.astype(np.longdouble)), dtype)
    assert errors.max() <= bound(ulps, dtype), x[np.argmax(errors)]


def test_log1p_error_in_ulps_on_the_unit_interval(dtype, rng):
    y = np.concatenate([rng.uniform(0, 1, 200_000), rng.uniform(0, 1e-6, 10_000),
                        [0.0, 1.0, np.sqrt(2) - 1]]).astype(dtype)
    errors = ulp_errors(LOG1P(y), np.log1p(y.astype(np.longdouble)), dtype)
    assert errors.max() <= bound(1, dtype), y[np.argmax(errors)]


def test_special_values_match_numpy(dtype):
    info = np.finfo(dtype)
    edge = {np.float32: [88.72, 88.5, -87.3, -103.0, -104.5],
            np.float64: [709.78, 709.5, -708.3, -744.0, -746.0]}[dtype]
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4, info.tiny, -info.tiny,
                  *edge], dtype)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(np.signbit(EXPM1(x)), np.signbit(np.expm1(x)))
        for function, reference in ((EXP, np.exp), (EXPM1, np.expm1), (TANH, np.tanh)):
            got, want = function(x), reference(x)
            exact = ~np.isfinite(want) | (want == 0)  # NaN, inf, 0 and -0.0 exactly
            assert np.array_equal(got[exact], want[exact], equal_nan=True)
            assert np.array_equal(np.signbit(got[exact]), np.signbit(want[exact]))
            finite = ~exact
            assert np.all(ulp_errors(got[finite], want[finite].astype(np.longdouble), dtype) <= 3)
    assert np.signbit(TANH(np.array([-0.0], dtype)))[0]
    assert np.isnan(LOG1P(np.array([np.nan], dtype)))[0]


def test_subnormal_results_of_exp(dtype):
    """Below the normal range exp's results are subnormal, not flushed to 0."""
    info = np.finfo(dtype)
    x = np.log(np.array([info.tiny / 2, info.tiny / 1000], np.float64)).astype(dtype)
    got = EXP(x)
    assert np.all(got > 0) and np.all(got < info.tiny)
    np.testing.assert_allclose(got, np.exp(x), rtol=1e-2)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu", "softplus"])
def test_smooth_activations_within_three_ulps(name, dtype, rng):
    x = np.concatenate([rng.uniform(-30, 30, 100_000), rng.uniform(-1, 1, 100_000)]).astype(dtype)
    wide = x.astype(np.longdouble)
    reference = {
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "tanh": np.tanh,
        "elu": lambda v: np.where(v > 0, v, np.expm1(v)),
        "softplus": lambda v: np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v))),
    }[name](wide)
    assert ulp_errors(getattr(F, name)(x), reference, dtype).max() <= bound(3, dtype)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu", "softplus"])
def test_smooth_activations_identical_across_thread_counts_and_sizes(name, rng):
    """Threads split the runs; arrays below PARALLEL_MIN run on the serial twin, with the
    same loops and error model: every value comes out the same."""
    x = (rng.standard_normal(100_003) * 4).astype(np.float32)
    dy = rng.standard_normal(x.size).astype(np.float32)
    before = fastbp.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastbp.set_num_threads(threads)
            results.append([getattr(F, name)(x), getattr(F, f"{name}_backward")(dy, x)])
    finally:
        fastbp.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    small = slice(1000, 1000 + PARALLEL_MIN // 2)
    np.testing.assert_array_equal(getattr(F, name)(x[small]), results[0][0][small])
    np.testing.assert_array_equal(getattr(F, f"{name}_backward")(dy[small], x[small]),
                                  results[0][1][small])
