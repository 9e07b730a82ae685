"""Sequential runs a ReLU followed by a max pooling, and a batch norm, a residual block or a
Linear layer followed by a ReLU, as one pass: the results must be exactly those of the two
layers run one after the other."""

import threading

import numpy as np
import pytest

import fastbp
from fastbp import functional as F
from fastbp.layers import fused as fusion


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


def fused_pairs(net):
    """The index of the first layer of every pair that ``net`` runs as one step."""
    return {i for i, step in net._steps() if not isinstance(step, fastbp.layers.Layer)}


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
    assert fused_pairs(fused) == {1}
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
    net = fastbp.Sequential(relu, pooling)
    y = net.forward(x)  # the fused step
    alone_relu, alone_pool = fastbp.ReLU(dtype=dtype), pool(dtype)
    assert_identical(y, alone_pool.forward(alone_relu.forward(x)))

    dy = rng.standard_normal(y.shape).astype(dtype)
    d_relu_out = pooling.backward(dy)  # w.r.t. relu(x), as the pooling layer alone
    assert_identical(d_relu_out, alone_pool.backward(dy))
    assert_identical(relu.backward(d_relu_out), alone_relu.backward(d_relu_out))
    assert_identical(net.backward(dy), relu.backward(d_relu_out))


def test_the_fused_backward_needs_the_fused_forward(rng):
    pooling = fastbp.MaxPool2D(2, dtype=np.float64)
    net = fastbp.Sequential(fastbp.ReLU(dtype=np.float64), pooling)
    pooling.forward(rng.standard_normal((1, 1, 4, 4)))
    with pytest.raises(RuntimeError, match="relu_max_pool2d"):
        net.backward(np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("pool", [(2,), (3, 2, 1)], ids=["2x2", "3x3 stride 2 pad 1"])
def test_the_functional_pair_is_relu_then_max_pool(pool, dtype, rng):
    x = pair_input((3, 2, 7, 9), dtype, rng)
    y, routes = F.relu_max_pool2d(x, *pool)
    assert_identical(y, F.max_pool2d(F.relu(x), *pool))
    dy = rng.standard_normal(y.shape).astype(dtype)
    expected = F.relu_backward(F.max_pool2d_backward(dy, F.relu(x), *pool), x)
    assert_identical(F.relu_max_pool2d_backward(dy, routes), expected)
    # the same routes, read without relu: the gradient w.r.t. relu(x)
    assert_identical(F.max_pool2d_routes_backward(dy, routes),
                     F.max_pool2d_backward(dy, F.relu(x), *pool))
    plain_y, plain = F.max_pool2d_with_routes(x, *pool)
    assert_identical(plain_y, F.max_pool2d(x, *pool))
    assert_identical(F.max_pool2d_routes_backward(dy, plain), F.max_pool2d_backward(dy, x, *pool))
    with pytest.raises(ValueError, match="routes of relu_max_pool2d"):
        F.relu_max_pool2d_backward(dy, plain)
    with pytest.raises(ValueError, match="dy"):
        F.relu_max_pool2d_backward(dy[:, :1], routes)


def norm_input(shape, dtype, rng):
    """Random values, a NaN in the last channel, and channel 0 shifted so that its
    normalised values are exact zeros (0.0 and -0.0 for relu to tell apart)."""
    x = rng.standard_normal(shape).astype(dtype)
    x[:, 0] = x[:, 0] > 0  # 0s and 1s: their mean is a float, (x - mean) * scale never 0
    x[(0, -1) + (0,) * (x.ndim - 2)] = np.nan
    return x


NORMS = {"2-D": (fastbp.BatchNorm2D, (6, 3, 5, 7)), "1-D": (fastbp.BatchNorm1D, (9, 4))}


def norm_model(norm, channels, dtype, seed=0):
    rng = np.random.default_rng(seed)
    layer = norm(channels, dtype=dtype)
    layer.params["weight"][...] = rng.standard_normal(channels)
    layer.params["weight"][1] = 0.0  # every normalised value of channel 1 is +-0.0 + bias
    layer.params["bias"][...] = rng.standard_normal(channels)
    layer.params["bias"][1] = -0.0
    return fastbp.Sequential(layer, fastbp.ReLU(dtype=dtype))


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize("norm", NORMS.values(), ids=NORMS.keys())
def test_fused_batch_norm_and_relu_equal_the_layers_one_by_one(norm, training, dtype, rng):
    cls, shape = norm
    x = norm_input(shape, dtype, rng)
    fused, separate = norm_model(cls, shape[1], dtype), norm_model(cls, shape[1], dtype)
    y = fused.forward(x, training)
    assert fused_pairs(fused) == {0}
    expected = separate.layers[1].forward(separate.layers[0].forward(x, training))
    assert_identical(y, expected)
    assert (y == 0).any() and np.isnan(y).any()  # the awkward cases reached the ReLU
    for name, buffer in separate.buffers.items():
        assert_identical(fused.buffers[name], buffer)

    for accumulate in (False, True):
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = fused.backward(dy, accumulate=accumulate)
        expected_dx = separate.layers[0].backward(separate.layers[1].backward(dy), accumulate=accumulate)
        assert_identical(dx, expected_dx)
        for name, grad in separate.grads.items():
            assert_identical(fused.grads[name], grad)
    assert fused.backward(dy, input_grad=False) is None
    separate.layers[0].backward(separate.layers[1].backward(dy), input_grad=False)
    for name, grad in separate.grads.items():
        assert_identical(fused.grads[name], grad)


def test_each_layer_of_a_fused_norm_and_relu_still_runs_its_own_backward(dtype, rng):
    x = norm_input((6, 3, 5, 7), dtype, rng)
    net, alone = norm_model(fastbp.BatchNorm2D, 3, dtype), norm_model(fastbp.BatchNorm2D, 3, dtype)
    norm, relu = net.layers
    y = net.forward(x)  # the fused step
    z = alone.layers[0].forward(x)
    assert_identical(y, alone.layers[1].forward(z))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dz = relu.backward(dy)  # from the fused forward's cache
    assert_identical(dz, alone.layers[1].backward(dy))
    assert_identical(norm.backward(dz), alone.layers[0].backward(dz))
    assert_identical(net.backward(dy), norm.backward(dz))


def test_the_fused_norm_backward_needs_the_fused_forward(rng):
    norm = fastbp.BatchNorm2D(2, dtype=np.float64)
    net = fastbp.Sequential(norm, fastbp.ReLU(dtype=np.float64))
    x = rng.standard_normal((3, 2, 4, 4))
    norm.forward(x)
    with pytest.raises(RuntimeError, match="batch_norm_relu"):
        net.backward(np.ones_like(x))
    w, b = np.ones(2), np.zeros(2)
    with pytest.raises(ValueError, match="cache of batch_norm_relu"):
        F.batch_norm_relu_backward(x, F.batch_norm(x, w, b)[1], w)
    y, cache = F.batch_norm_relu(x, w, b)
    with pytest.raises(ValueError, match="dy"):
        F.batch_norm_relu_backward(x[:, :, :2], cache, w)


def residual_model(dtype, shortcut):
    """A residual block (a convolution; the shortcut another, or none) and a ReLU."""
    conv = fastbp.Conv2D(2, 2, 3, padding=1, seed=0, dtype=dtype)
    short = fastbp.Conv2D(2, 2, 1, seed=1, dtype=dtype) if shortcut else None
    return fastbp.Sequential(fastbp.Residual(conv, short), fastbp.ReLU(dtype=dtype))


@pytest.mark.parametrize("shortcut", [False, True], ids=["identity", "conv"])
def test_fused_residual_and_relu_equal_the_layers_one_by_one(shortcut, dtype, rng):
    x = pair_input((3, 2, 6, 7), dtype, rng)
    fused, separate = residual_model(dtype, shortcut), residual_model(dtype, shortcut)
    y = fused.forward(x)
    assert fused_pairs(fused) == {0}
    residual, relu = separate.layers
    assert_identical(y, relu.forward(residual.forward(x)))
    assert_backward_of_a_pair_before_a_relu(fused, separate, y, rng)


def assert_backward_of_a_pair_before_a_relu(fused, separate, y, rng):
    """fused's backward, writing and adding the gradients, is the ReLU's backward then its
    first layer's (separate's two layers, after the same forward), bit for bit. Returns the
    last dy."""
    first, relu = separate.layers
    for accumulate in (False, True):
        dy = rng.standard_normal(y.shape).astype(y.dtype)
        assert_identical(fused.backward(dy, accumulate=accumulate),
                         first.backward(relu.backward(dy), accumulate=accumulate))
        for name, grad in separate.grads.items():
            assert_identical(fused.grads[name], grad)
    return dy


def test_the_functional_sum_is_relu_of_the_sum(dtype, rng):
    a = pair_input((3, 2, 6, 7), dtype, rng)
    b = rng.standard_normal(a.shape).astype(dtype)
    b[0, 0, 1] = -a[0, 0, 1]  # sums of exactly 0.0
    b[0, 0, 2] = -0.0
    a[0, 0, 2] = -0.0  # -0.0 + -0.0 = -0.0: relu gives 0.0
    y = F.add_relu(a, b)
    assert_identical(y, F.relu(a + b))
    assert (y[0, 0, 1:3] == 0).all() and not np.signbit(y).any()
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_identical(F.relu_backward(dy, y), F.relu_backward(dy, a + b))
    with pytest.raises(ValueError, match="b has shape"):
        F.add_relu(a, b[:1])
    with pytest.raises(TypeError, match="mixed dtypes"):
        F.add_relu(a, b.astype(np.float32 if dtype == np.float64 else np.float64))


def linear_model(dtype, bias, features=(7, 130)):
    """A Linear layer whose outputs 1 and 2 are exactly 0.0 and -0.0 before the bias (a
    zero row of weights; their biases 0.0 and -0.0), and a ReLU."""
    linear = fastbp.Linear(*features, bias=bias, seed=0, dtype=dtype)
    linear.params["weight"][1:3] = 0.0
    if bias:
        linear.params["bias"][...] = np.random.default_rng(1).standard_normal(features[1])
        linear.params["bias"][1:3] = [0.0, -0.0]
    return fastbp.Sequential(linear, fastbp.ReLU(dtype=dtype))


def linear_input(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0] = np.nan  # a row of NaN pre-activations: relu keeps them, its gradient is 0
    return x


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("batch", [3, 70])
def test_fused_linear_and_relu_equal_the_layers_one_by_one(bias, batch, dtype, rng):
    x = linear_input((batch, 7), dtype, rng)
    fused, separate = linear_model(dtype, bias), linear_model(dtype, bias)
    y = fused.forward(x)
    assert fused_pairs(fused) == {0}
    linear, relu = separate.layers
    assert_identical(y, relu.forward(linear.forward(x)))
    assert (y[1:, 1:3] == 0).all() and np.isnan(y[0]).all() and (y > 0).any()
    dy = assert_backward_of_a_pair_before_a_relu(fused, separate, y, rng)
    assert fused.backward(dy, input_grad=False) is None
    linear.backward(relu.backward(dy), input_grad=False)
    for name, grad in separate.grads.items():
        assert_identical(fused.grads[name], grad)


def test_each_layer_of_a_fused_linear_and_relu_still_runs_its_own_backward(dtype, rng):
    x = linear_input((5, 7), dtype, rng)
    net, alone = linear_model(dtype, True), linear_model(dtype, True)
    linear, relu = net.layers
    y = net.forward(x)  # the fused step
    assert_identical(y, alone.forward(x))  # the layers' own steps
    dy = rng.standard_normal(y.shape).astype(dtype)
    dz = relu.backward(dy)  # from the fused forward's cache
    assert_identical(dz, alone.layers[1].backward(dy))
    assert_identical(linear.backward(dz), alone.layers[0].backward(dz))
    assert_identical(net.backward(dy), linear.backward(dz))
    linear.forward(x), relu.forward(linear.forward(x))  # the layers' own forwards
    assert_identical(net.backward(dy), linear.backward(dz))


@pytest.mark.parametrize("threads", [1, 2])
def test_the_functional_linear_relu_is_relu_of_linear(threads, dtype, rng):
    """Bit for bit, at any thread count: columns of the bias gradient split among the
    threads (300 outputs) or not (20)."""
    before = fastbp.get_num_threads()
    fastbp.set_num_threads(threads)
    try:
        for d_out in (20, 300):
            x = linear_input((40, 9), dtype, rng)
            w = rng.standard_normal((d_out, 9)).astype(dtype)
            b = rng.standard_normal(d_out).astype(dtype)
            w[3], b[3] = 0.0, -0.0
            y = F.linear_relu(x, w, b)
            assert_identical(y, F.relu(F.linear(x, w, b)))
            dy = rng.standard_normal(y.shape).astype(dtype)
            through_relu = F.relu_backward(dy, y)
            for got, expected in zip(F.linear_relu_backward(dy, x, w, y),
                                     F.linear_backward(through_relu, x, w)):
                assert_identical(got, expected)
            start = (rng.standard_normal(w.shape).astype(dtype),
                     rng.standard_normal(d_out).astype(dtype))
            added = start[0].copy(), start[1].copy()
            F.linear_relu_backward(dy, x, w, y, add_to=added)
            expected = start[0].copy(), start[1].copy()
            F.linear_backward(through_relu, x, w, add_to=expected)
            assert_identical(added[0], expected[0])
            assert_identical(added[1], expected[1])
    finally:
        fastbp.set_num_threads(before)
    with pytest.raises(ValueError, match="y has shape"):
        F.linear_relu_backward(dy, x, w, y[:, :2])


def test_fusions_are_a_registry_of_layer_pairs():
    assert fusion.FUSIONS == {(fastbp.ReLU, fastbp.MaxPool2D): fusion.ReLUMaxPool2D,
                              (fastbp.BatchNorm2D, fastbp.ReLU): fusion.BatchNormReLU,
                              (fastbp.BatchNorm1D, fastbp.ReLU): fusion.BatchNormReLU,
                              (fastbp.Residual, fastbp.ReLU): fusion.ResidualReLU,
                              (fastbp.Linear, fastbp.ReLU): fusion.LinearReLU}
    for name in ("forward_then_max_pool", "forward_of_relu", "backward_of_relu"):
        assert not hasattr(fastbp.ReLU, name) and not hasattr(fastbp.MaxPool2D, name)


def test_a_fused_model_keeps_its_layers_and_parameter_names():
    layers = [fastbp.Conv2D(1, 2, 3, seed=0), fastbp.ReLU(), fastbp.MaxPool2D(2),
              fastbp.Conv2D(2, 2, 3, seed=1), fastbp.ReLU(), fastbp.MaxPool2D(2)]
    net = fastbp.Sequential(*layers)
    assert net.layers == layers and len(net) == 6 and net[2] is layers[2]
    assert fused_pairs(net) == {1, 4}
    assert list(net.params) == ["0.weight", "0.bias", "3.weight", "3.bias"]


def test_threads_running_one_fused_model_get_their_own_results(rng):
    """Each thread's fused forward keeps its own routes for its backward."""
    net = model(POOLS["2x2"], np.float64)
    inputs = [pair_input((2, 2, 8, 8), np.float64, np.random.default_rng(k)) for k in range(4)]
    dys = [np.random.default_rng(10 + k).standard_normal((2, 48)) for k in range(4)]
    expected = []
    for x, dy in zip(inputs, dys):
        net.forward(x)
        expected.append(net.backward(dy, accumulate=True))
    got = [None] * 4
    barrier = threading.Barrier(4)

    def run(k):
        net.forward(inputs[k], training=False)
        barrier.wait()  # every thread's forward before any backward
        got[k] = net.backward(dys[k], accumulate=True)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for g, e in zip(got, expected):
        assert_identical(g, e)


def test_only_a_relu_directly_before_a_max_pooling_is_fused(rng):
    f64 = dict(dtype=np.float64)
    net = fastbp.Sequential(
        fastbp.MaxPool2D(2, **f64), fastbp.ReLU(**f64),  # pooling first: not fused
        fastbp.LeakyReLU(**f64), fastbp.MaxPool2D(2, **f64),  # not a ReLU
        fastbp.ReLU(**f64), fastbp.AvgPool2D(2, **f64),  # not a max pooling
    )
    x = rng.standard_normal((1, 1, 16, 16))
    net.forward(x)
    assert fused_pairs(net) == set()
    net.layers[2:4] = [fastbp.ReLU(**f64), fastbp.MaxPool2D(2, **f64)]
    y = net.forward(x)
    assert fused_pairs(net) == {2}
    dx = net.backward(np.ones_like(y))
    assert dx.shape == x.shape


def test_a_fused_pooling_that_refuses_its_input_is_named(rng):
    f64 = dict(dtype=np.float64)
    net = fastbp.Sequential(fastbp.Linear(4, 4, seed=0, **f64), fastbp.ReLU(**f64),
                            fastbp.MaxPool2D(2, **f64))
    with pytest.raises(ValueError, match=r"layer 2 MaxPool2D.*output of layer 1 ReLU"):
        net.forward(rng.standard_normal((2, 4)))
