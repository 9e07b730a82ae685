import numpy as np
import pytest

import fastbp
from fastbp import reference as ref
from conftest import assert_matches
from fastbp import functional as F

NAMES = sorted(ref.ACTIVATIONS)
SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_and_derivative_match_reference(name, shape, dtype, rng):
    forward, derivative, kwargs = ref.ACTIVATIONS[name]
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    x64 = x.astype(np.float64)
    assert_matches(getattr(F, name)(x, **kwargs), forward(x64, **kwargs), dtype)
    dx = getattr(F, f"{name}_backward")(dy, x, **kwargs)
    assert_matches(dx, dy.astype(np.float64) * derivative(x64, **kwargs), dtype)


@pytest.mark.parametrize("name", NAMES)
def test_activation_gradient_by_finite_differences(name, rng):
    kwargs = ref.ACTIVATIONS[name][2]
    # Keep away from the kinks at 0, where central differences are meaningless.
    x = rng.uniform(0.1, 3.0, 20) * rng.choice([-1.0, 1.0], 20)
    dy = rng.standard_normal(20)
    analytic = getattr(F, f"{name}_backward")(dy, x, **kwargs)
    fastbp.gradcheck(lambda: float(np.sum(getattr(F, name)(x, **kwargs) * dy)), x, analytic)


@pytest.mark.parametrize("name", NAMES)
def test_activations_propagate_nan(name):
    kwargs = ref.ACTIVATIONS[name][2]
    assert np.isnan(getattr(F, name)(np.array([np.nan]), **kwargs)[0])


def test_extreme_inputs_stay_finite_and_exact():
    x = np.array([-1e4, -800.0, 0.0, 800.0, 1e4], np.float32)
    np.testing.assert_array_equal(F.sigmoid(x), [0, 0, 0.5, 1, 1])
    np.testing.assert_array_equal(F.softplus(x), [0, 0, np.log(2, dtype=np.float32), 800, 1e4])
    np.testing.assert_array_equal(F.tanh(x), [-1, -1, 0, 1, 1])
    np.testing.assert_array_equal(F.elu(x), [-1, -1, 0, 800, 1e4])
    assert np.all(np.isfinite(F.sigmoid_backward(np.ones_like(x), x)))


def test_relu_backward_selects_instead_of_multiplying():
    dy = np.array([np.inf, 1.0])
    x = np.array([-1.0, 0.0])
    np.testing.assert_array_equal(F.relu_backward(dy, x), [0.0, 0.0])
    assert F.relu(np.array([-0.0]))[0] == 0 and not np.signbit(F.relu(np.array([-0.0]))[0])
