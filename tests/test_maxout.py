import numpy as np

import fastbp
from conftest import assert_matches
from fastbp import functional as F


def _reference(x, w, b):
    z = np.einsum("ni,jpi->njp", x, w) + b
    return z.max(axis=2), z.argmax(axis=2)


def test_maxout_matches_reference(dtype, rng):
    x = rng.standard_normal((6, 5)).astype(dtype)
    w = rng.standard_normal((3, 4, 5)).astype(dtype)
    b = rng.standard_normal((3, 4)).astype(dtype)
    y_ref, winner = _reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))
    assert_matches(F.maxout(x, w, b), y_ref, dtype)

    dy = rng.standard_normal((6, 3)).astype(dtype)
    dz = np.zeros((6, 3, 4))
    np.put_along_axis(dz, winner[..., None], dy.astype(np.float64)[..., None], axis=2)
    dx, dw, db = F.maxout_backward(dy, x, w, b)
    assert_matches(dx, np.einsum("njp,jpi->ni", dz, w.astype(np.float64)), dtype)
    assert_matches(dw, np.einsum("njp,ni->jpi", dz, x.astype(np.float64)), dtype)
    assert_matches(db, dz.sum(0), dtype)


def test_maxout_layer_gradients_by_finite_differences(rng):
    layer = fastbp.Maxout(5, 3, pieces=4, dtype=np.float64, seed=3)
    layer.params["bias"][...] = rng.standard_normal((3, 4))
    assert fastbp.gradcheck_layer(layer, rng.standard_normal((4, 5)))
