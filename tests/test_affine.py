import numpy as np
import pytest

import reference as ref
from conftest import assert_matches
from fastbp import functional as F

# Both sides of MAX_DEPTH_FOR_ROWS (128): the batch for dw, out-features for dx.
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 4), (8, 33, 17), (64, 784, 10), (3, 128, 256),
          (129, 5, 128), (200, 9, 130)]


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
