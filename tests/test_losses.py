import numpy as np
import pytest

import fastbp
from fastbp import reference as ref
from conftest import TOLERANCES
from fastbp import functional as F


def _cases(rng, n, k):
    labels = rng.integers(0, k, n)
    return {
        "mse_loss": (rng.standard_normal((n, k)), rng.standard_normal((n, k))),
        "softmax_cross_entropy": (rng.standard_normal((n, k)) * 3, labels),
        "hinge_loss": (rng.standard_normal((n, k)), labels),
        "logistic_loss": (rng.standard_normal(n) * 3, rng.integers(0, 2, n)),
        "logistic_pm1_loss": (rng.standard_normal(n) * 3, rng.choice([-1, 1], n)),
    }


@pytest.mark.parametrize("name", ["mse_loss", "softmax_cross_entropy", "hinge_loss",
                                  "logistic_loss", "logistic_pm1_loss"])
@pytest.mark.parametrize("n,k", [(1, 1), (1, 4), (7, 3), (64, 10)])
def test_loss_and_gradient_match_reference(name, n, k, dtype, rng):
    scores, target = _cases(rng, n, k)[name]
    if name == "mse_loss":
        target = target.astype(dtype)
    scores = scores.astype(dtype)
    loss, grad = getattr(F, name)(scores, target)
    want_loss, want_grad = getattr(ref, name)(scores.astype(np.float64), target)
    assert isinstance(loss, float)
    assert grad.dtype == dtype and grad.shape == scores.shape
    np.testing.assert_allclose(loss, want_loss, **TOLERANCES[dtype])
    np.testing.assert_allclose(grad, want_grad, **TOLERANCES[dtype])


@pytest.mark.parametrize("name", ["mse_loss", "softmax_cross_entropy", "hinge_loss",
                                  "logistic_loss", "logistic_pm1_loss"])
def test_loss_gradient_by_finite_differences(name, rng):
    scores, target = _cases(rng, 6, 4)[name]
    loss_fn = getattr(F, name)
    fastbp.gradcheck(lambda: loss_fn(scores, target)[0], scores, loss_fn(scores, target)[1])


def test_mse_carries_the_half_and_averages_over_the_batch():
    loss, grad = F.mse_loss(np.array([[1.0, 2.0], [0.0, 0.0]]), np.zeros((2, 2)))
    assert loss == pytest.approx((0.5 * 5 + 0) / 2)
    np.testing.assert_allclose(grad, [[0.5, 1.0], [0.0, 0.0]])


def test_logistic_losses_accept_column_scores():
    s = np.array([[0.3], [-1.2]])
    loss, grad = F.logistic_loss(s, np.array([[1], [0]]))
    assert grad.shape == (2, 1)
    assert loss == pytest.approx(ref.logistic_loss(s.ravel(), np.array([1, 0]))[0])


def test_hinge_margin(rng):
    scores = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    loss, grad = F.hinge_loss(scores, labels, margin=0.3)
    want_loss, want_grad = ref.hinge_loss(scores, labels, margin=0.3)
    assert loss == pytest.approx(want_loss)
    np.testing.assert_allclose(grad, want_grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_stay_finite_and_accurate_for_logits_of_1e4(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4 - 1]], dtype)
    loss, grad = F.softmax_cross_entropy(logits, np.array([1, 2]))
    # Sample 0: log-sum-exp = 1e4, loss 2e4; sample 1: lse = 1e4 + log(1 + e^-1), label 1e4 - 1.
    expected = (2e4 + 1 + np.log1p(np.exp(-1))) / 2
    assert loss == pytest.approx(expected, rel=1e-6)
    assert np.all(np.isfinite(grad))
    s = np.array([1e4, -1e4, 1e4, -1e4], dtype)
    loss, grad = F.logistic_loss(s, np.array([1, 0, 0, 1]))
    assert loss == pytest.approx(2e4 / 4, rel=1e-6) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [0, 0, 0.25, -0.25])
    loss, grad = F.logistic_pm1_loss(s, np.array([1, -1, -1, 1]))
    assert loss == pytest.approx(2e4 / 4, rel=1e-6) and np.all(np.isfinite(grad))


def test_nan_scores_give_nan_loss():
    for loss_fn, target in [(F.softmax_cross_entropy, [0]), (F.hinge_loss, [0])]:
        loss, _ = loss_fn(np.array([[0.0, np.nan]]), np.array(target))
        assert np.isnan(loss)
    assert np.isnan(F.mse_loss(np.array([[np.nan]]), np.zeros((1, 1)))[0])
