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


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("size", [37, 50_000])  # the serial twin and the parallel kernel
def test_backward_from_the_output_gives_the_same_bits(name, size, dtype, rng):
    """sigmoid's and tanh's derivatives from the forward's output y: the values computed
    from x, bit for bit, and what the layers (which keep y) return."""
    x = (rng.standard_normal(size) * 4).astype(dtype)
    x[:3] = [np.nan, -0.0, 40.0]
    dy = rng.standard_normal(size).astype(dtype)
    forward, backward = getattr(F, name), getattr(F, f"{name}_backward")
    from_x = backward(dy, x)
    np.testing.assert_array_equal(backward(dy, y=forward(x)), from_x)
    layer = {"sigmoid": fastbp.Sigmoid, "tanh": fastbp.Tanh}[name]()
    layer.forward(x.reshape(1, -1))
    np.testing.assert_array_equal(layer.backward(dy.reshape(1, -1)).reshape(-1), from_x)


def test_backward_from_x_or_y_refuses_both_or_neither_and_checks_shapes():
    x = np.zeros(4)
    for backward in (F.sigmoid_backward, F.tanh_backward):
        with pytest.raises(ValueError, match="not both"):
            backward(x, x, y=x)
        with pytest.raises(ValueError, match="not neither"):
            backward(x)
        with pytest.raises(ValueError, match="dy"):
            backward(np.zeros(3), y=x)
        with pytest.raises(TypeError):
            backward(x, y=np.zeros(4, np.float32))
