"""Sequential runs a ReLU followed by a max pooling as one pass: the results must be
exactly those of the two layers run one after the other."""

import numpy as np
import pytest

import fastbp


def pair_input(shape, dtype, rng):
    """Random values plus the awkward cases: NaN, windows with no positive value, ties
    at zero and between equal maxima, -0.0."""
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 2:4, 2:4] = -1.0  # a window with no positive value
    x[0, 0, 4:6, 0:2] = [[0.0, -0.0], [-0.0, 0.0]]  # relu ties at zero
    x[0, 0, 4:6, 2:4] = -0.0  # relu must give +0.0
    x[-1, -1, 0:2, 0:2] = [[-3.0, 2.0], [2.0, 1.0]]  # tied maxima
    x[-1, 0, 2:4, 0:2] = [[np.nan, 5.0], [np.nan, -1.0]]  # the first NaN wins
    return x


def assert_identical(actual, expected):
    """Equal values, NaN where NaN, and the same sign of zero."""
    np.testing.assert_array_equal(actual, expected)
    np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected))


def model(pool, dtype):
    return fastbp.Sequential(
        fastbp.Conv2D(2, 3, 3, padding=1, seed=0, dtype=dtype),
        fastbp.ReLU(dtype=dtype),
        pool(dtype),
        fastbp.Flatten(dtype=dtype),
    )


POOLS = {
    "2x2": lambda dtype: fastbp.MaxPool2D(2, dtype=dtype),
    "3x3 stride 2 pad 1": lambda dtype: fastbp.MaxPool2D(3, 2, 1, dtype=dtype),
}


@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS.keys())
@pytest.mark.parametrize("shape", [(2, 2, 8, 8), (3, 2, 7, 9)])
def test_fused_relu_and_max_pool_equal_the_layers_one_by_one(pool, shape, dtype, rng):
    x = pair_input(shape, dtype, rng)
    fused, separate = model(pool, dtype), model(pool, dtype)
    y = fused.forward(x)
    assert fused._fused_pairs() == {1}
    expected = x
    for layer in separate.layers:
        expected = layer.forward(expected)
    assert_identical(y, expected)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = fused.backward(dy)
    expected_dx = dy
    for layer in reversed(separate.layers):
        expected_dx = layer.backward(expected_dx)
    assert_identical(dx, expected_dx)
    for name, grad in separate.grads.items():
        assert_identical(fused.grads[name], grad)


@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS.keys())
def test_each_layer_of_a_fused_pair_still_runs_its_own_backward(pool, dtype, rng):
    x = pair_input((2, 2, 8, 8), dtype, rng)
    relu, pooling = fastbp.ReLU(dtype=dtype), pool(dtype)
    y = relu.forward_then_max_pool(x, pooling)
    alone_relu, alone_pool = fastbp.ReLU(dtype=dtype), pool(dtype)
    assert_identical(y, alone_pool.forward(alone_relu.forward(x)))

    dy = rng.standard_normal(y.shape).astype(dtype)
    d_relu_out = pooling.backward(dy)  # w.r.t. relu(x), as the pooling layer alone
    assert_identical(d_relu_out, alone_pool.backward(dy))
    assert_identical(relu.backward(d_relu_out), alone_relu.backward(d_relu_out))
    assert_identical(pooling.backward_of_relu(dy), relu.backward(d_relu_out))


def test_backward_of_relu_needs_forward_of_relu(rng):
    pooling = fastbp.MaxPool2D(2, dtype=np.float64)
    pooling.forward(rng.standard_normal((1, 1, 4, 4)))
    with pytest.raises(RuntimeError, match="forward_of_relu"):
        pooling.backward_of_relu(np.ones((1, 1, 2, 2)))


def test_only_a_relu_directly_before_a_max_pooling_is_fused(rng):
    f64 = dict(dtype=np.float64)
    net = fastbp.Sequential(
        fastbp.MaxPool2D(2, **f64), fastbp.ReLU(**f64),  # pooling first: not fused
        fastbp.LeakyReLU(**f64), fastbp.MaxPool2D(2, **f64),  # not a ReLU
        fastbp.ReLU(**f64), fastbp.AvgPool2D(2, **f64),  # not a max pooling
    )
    x = rng.standard_normal((1, 1, 16, 16))
    net.forward(x)
    assert net._fused_pairs() == set()
    net.layers[2:4] = [fastbp.ReLU(**f64), fastbp.MaxPool2D(2, **f64)]
    y = net.forward(x)
    assert net._fused_pairs() == {2}
    dx = net.backward(np.ones_like(y))
    assert dx.shape == x.shape


def test_a_fused_pooling_that_refuses_its_input_is_named(rng):
    f64 = dict(dtype=np.float64)
    net = fastbp.Sequential(fastbp.Linear(4, 4, seed=0, **f64), fastbp.ReLU(**f64),
                            fastbp.MaxPool2D(2, **f64))
    with pytest.raises(ValueError, match=r"layer 2 MaxPool2D.*output of layer 1 ReLU"):
        net.forward(rng.standard_normal((2, 4)))
