"""BatchNorm1D/2D and GlobalAvgPool2D: kernels against the NumPy reference (fixed and
fuzzed shapes), gradients by finite differences, PyTorch where installed, thread-count
invariance, running statistics, weight decay and checkpoints."""

import numpy as np
import pytest
from conftest import assert_matches
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp
from fastbp import checkpoint, optim
from fastbp import functional as F
from fastbp import layers as L
from fastbp import reference as ref
from fastbp.kernels import _jit

SHAPES = [(4, 3, 5, 6), (2, 5, 1, 1), (9, 4), (3, 2, 17, 13), (64, 8)]


def _data(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3 + 1.5).astype(dtype)
    c = shape[1]
    weight = (rng.random(c) + 0.5).astype(dtype)
    bias = rng.standard_normal(c).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, weight, bias, dy


@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_matches_the_reference(rng, dtype, shape):
    x, weight, bias, dy = _data(rng, shape, dtype)
    running_mean = rng.standard_normal(shape[1]).astype(dtype)
    running_var = (rng.random(shape[1]) + 0.5).astype(dtype)
    old_mean, old_var = running_mean.copy(), running_var.copy()
    y, cache = F.batch_norm(x, weight, bias, running_mean, running_var, True, 0.2, 1e-3)
    y_ref, mu, sigma2 = ref.batch_norm(x, weight, bias, 1e-3)
    assert_matches(y, y_ref, dtype)
    count = x.size // shape[1]
    mean_ref, var_ref = ref.running_stats(old_mean, old_var, mu, sigma2, count, 0.2)
    assert_matches(running_mean, mean_ref, dtype)
    assert_matches(running_var, var_ref, dtype)
    dx, dweight, dbias = F.batch_norm_backward(dy, cache, weight)
    dx_ref, dgamma_ref, dbeta_ref = ref.batch_norm_backward(dy, x, weight, 1e-3)
    tol = 1e-9 if dtype == np.float64 else 2e-3  # dx is a difference of sums: looser in float32
    np.testing.assert_allclose(dx, dx_ref, rtol=tol, atol=tol)
    assert_matches(dbias, dbeta_ref, dtype)
    np.testing.assert_allclose(dweight, dgamma_ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_batch_norm_with_running_statistics_matches_the_reference(rng, dtype, shape):
    x, weight, bias, dy = _data(rng, shape, dtype)
    mean, var = rng.standard_normal(shape[1]).astype(dtype), (rng.random(shape[1]) + 0.5).astype(dtype)
    kept = mean.copy(), var.copy()
    y, cache = F.batch_norm(x, weight, bias, mean, var, training=False)
    assert np.array_equal(mean, kept[0]) and np.array_equal(var, kept[1])  # not updated
    assert_matches(y, ref.batch_norm(x, weight, bias, 1e-5, mean, var)[0], dtype)
    dx, dweight, dbias = F.batch_norm_backward(dy, cache, weight)
    dx_ref, dgamma_ref, dbeta_ref = ref.batch_norm_backward(dy, x, weight, 1e-5, mean, var)
    assert_matches(dx, dx_ref, dtype)
    assert_matches(dweight, dgamma_ref, dtype)
    assert_matches(dbias, dbeta_ref, dtype)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 9), c=st.integers(1, 5), spatial=st.sampled_from([None, (1, 1), (1, 4), (3, 2), (5, 7)]),
    use_f32=st.booleans(), training=st.booleans(), relu=st.booleans(),
    eps=st.sampled_from([1e-5, 1e-3, 0.5]), momentum=st.sampled_from([0.0, 0.1, 1.0]),
    offset=st.sampled_from([0.0, 3.0, -50.0]), constant=st.booleans(), seed=st.integers(0, 2**16),
)
def test_batch_norm_fuzzed_shapes(n, c, spatial, use_f32, training, relu, eps, momentum, offset,
                                  constant, seed):
    """batch_norm (and batch_norm_relu) on random shapes, offsets and a channel of one
    repeated value (variance 0): y, the running statistics and the three gradients against
    the float64 reference; the fused ReLU bit for bit the ReLU of the plain forward."""
    dtype = np.float32 if use_f32 else np.float64
    shape = (n, c) if spatial is None else (n, c, *spatial)
    count = n * (1 if spatial is None else spatial[0] * spatial[1])
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + offset).astype(dtype)
    if constant:
        x[:, 0] = dtype(offset + 0.25)
    weight = (rng.random(c) + 0.5).astype(dtype)
    bias = rng.standard_normal(c).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    mean, var = rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)
    old = mean.astype(np.float64), var.astype(np.float64)
    forward, backward = ((F.batch_norm_relu, F.batch_norm_relu_backward) if relu
                         else (F.batch_norm, F.batch_norm_backward))
    if training and count < 2:
        with pytest.raises(ValueError, match="more than one value"):
            forward(x, weight, bias, mean, var, training, momentum, eps)
        return
    y, cache = forward(x, weight, bias, mean, var, training, momentum, eps)
    if relu:
        plain = F.batch_norm(x, weight, bias, old[0].astype(dtype), old[1].astype(dtype),
                             training, momentum, eps)[0]
        assert np.maximum(plain, 0).tobytes() == y.tobytes()
    y_ref, mu, sigma2 = ref.batch_norm(x, weight, bias, eps, *(() if training else old))
    assert_matches(y, np.maximum(y_ref, 0) if relu else y_ref, dtype)
    if training:
        expected = ref.running_stats(*old, mu, sigma2, count, momentum)
    else:
        expected = old
    assert_matches(mean, expected[0], dtype)
    assert_matches(var, expected[1], dtype)
    dx, dweight, dbias = backward(dy, cache, weight)
    through = dy * (y > 0) if relu else dy  # relu's gradient where fastbp's output is > 0
    dx_ref, dweight_ref, dbias_ref = ref.batch_norm_backward(through, x, weight, eps,
                                                             *(() if training else old))
    tol = dict(rtol=1e-8, atol=1e-9) if dtype == np.float64 else dict(rtol=2e-3, atol=2e-3)
    for got, want in ((dx, dx_ref), (dweight, dweight_ref), (dbias, dbias_ref)):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tol)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 9),
       use_f32=st.booleans(), seed=st.integers(0, 2**16))
def test_global_avg_pool_fuzzed_shapes(n, c, h, w, use_f32, seed):
    dtype = np.float32 if use_f32 else np.float64
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c, h, w)) + 10).astype(dtype)
    dy = rng.standard_normal((n, c)).astype(dtype)
    assert_matches(F.global_avg_pool2d(x), ref.global_avg_pool2d(x), dtype)
    assert_matches(F.global_avg_pool2d_backward(dy, x.shape),
                   ref.global_avg_pool2d_backward(dy, x.shape), dtype)


def test_batch_norm_backward_adds_and_skips_the_input_gradient(rng):
    x, weight, bias, dy = _data(rng, (5, 3, 4, 4), np.float64)
    _, cache = F.batch_norm(x, weight, bias)
    _, dweight, dbias = F.batch_norm_backward(dy, cache, weight)
    targets = np.ones(3), np.full(3, 2.0)
    dx, *_ = F.batch_norm_backward(dy, cache, weight, input_grad=False, add_to=targets)
    assert dx is None
    np.testing.assert_allclose(targets[0], dweight + 1)
    np.testing.assert_allclose(targets[1], dbias + 2)


def test_the_reference_backward_is_the_gradient_of_the_reference(rng):
    x, weight, bias, dy = _data(rng, (3, 2, 3, 2), np.float64)
    dx, dgamma, dbeta = ref.batch_norm_backward(dy, x, weight)
    for target, analytic in ((x, dx), (weight, dgamma), (bias, dbeta)):
        fastbp.gradcheck(lambda: float(np.sum(ref.batch_norm(x, weight, bias)[0] * dy)), target, analytic)


@pytest.mark.parametrize("cls, shape", [(L.BatchNorm2D, (4, 3, 5, 5)), (L.BatchNorm1D, (6, 4)),
                                        (L.BatchNorm2D, (1, 2, 3, 1))])
@pytest.mark.parametrize("training", [True, False])
def test_layer_gradients_by_finite_differences(rng, cls, shape, training):
    layer = cls(shape[1], dtype=np.float64)
    layer.params["weight"][...] = rng.random(shape[1]) + 0.5
    layer.params["bias"][...] = rng.standard_normal(shape[1])
    layer.running_mean[...] = rng.standard_normal(shape[1])
    layer.running_var[...] = rng.random(shape[1]) + 0.5
    assert fastbp.gradcheck_layer(layer, rng.standard_normal(shape) * 2, training=training)


def test_layer_against_torch(rng, dtype):
    torch = pytest.importorskip("torch")
    shape = (8, 3, 6, 5)
    x, weight, bias, dy = _data(rng, shape, dtype)
    layer = L.BatchNorm2D(3, momentum=0.3, eps=1e-4, dtype=dtype)
    layer.params["weight"][...], layer.params["bias"][...] = weight, bias
    tx = torch.tensor(x, requires_grad=True)
    tw, tb = torch.tensor(weight, requires_grad=True), torch.tensor(bias, requires_grad=True)
    rm, rv = torch.zeros(3, dtype=tx.dtype), torch.ones(3, dtype=tx.dtype)
    for _ in range(3):  # the running statistics after three steps
        y = layer.forward(x)
        ty = torch.nn.functional.batch_norm(tx, rm, rv, tw, tb, True, 0.3, 1e-4)
    ty.backward(torch.tensor(dy))
    dx = layer.backward(dy)
    assert_matches(y, ty.detach().double().numpy(), dtype)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == np.float64 else dict(rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(dx, tx.grad.double().numpy(), **tol)
    np.testing.assert_allclose(layer.grads["weight"], tw.grad.double().numpy(), **tol)
    np.testing.assert_allclose(layer.grads["bias"], tb.grad.double().numpy(), **tol)
    assert_matches(layer.running_mean, rm.double().numpy(), dtype)
    assert_matches(layer.running_var, rv.double().numpy(), dtype)
    y_eval = layer.forward(x, training=False)
    t_eval = torch.nn.functional.batch_norm(tx, rm, rv, tw, tb, False, 0.3, 1e-4)
    assert_matches(y_eval, t_eval.detach().double().numpy(), dtype)


def test_eval_mode_uses_the_running_statistics(rng):
    layer = L.BatchNorm1D(3, dtype=np.float64)
    x = rng.standard_normal((10, 3)) * 4 + 2
    assert np.allclose(layer.forward(x, training=False), x / np.sqrt(1 + 1e-5))  # fresh: 0 and 1
    for _ in range(200):
        layer.forward(x)
    np.testing.assert_allclose(layer.running_mean, x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(layer.running_var, x.var(0, ddof=1), rtol=1e-6)  # unbiased
    y = layer.forward(x, training=False)
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + 1e-5), rtol=1e-6)


def test_layer_backward_overwrites_or_accumulates(rng):
    layer = L.BatchNorm2D(2, dtype=np.float64)
    x, dy = rng.standard_normal((3, 2, 4, 4)), rng.standard_normal((3, 2, 4, 4))
    layer.forward(x)
    layer.backward(dy)
    once = {k: v.copy() for k, v in layer.grads.items()}
    layer.backward(dy)
    assert all(np.array_equal(layer.grads[k], once[k]) for k in once)
    layer.backward(dy, accumulate=True)
    assert all(np.allclose(layer.grads[k], 2 * once[k]) for k in once)


CALLS = {
    "batch_norm": lambda x, w, b, dy: [F.batch_norm(x, w, b)[0],
                                       *F.batch_norm_backward(dy, F.batch_norm(x, w, b)[1], w)],
    "batch_norm_eval": lambda x, w, b, dy: [
        F.batch_norm(x, w, b, w.copy(), w.copy(), False)[0],
        *F.batch_norm_backward(dy, F.batch_norm(x, w, b, w.copy(), w.copy(), False)[1], w)],
    "batch_norm_relu": lambda x, w, b, dy: [
        F.batch_norm_relu(x, w, b)[0], *F.batch_norm_relu_backward(dy, F.batch_norm_relu(x, w, b)[1], w)],
    "global_avg_pool": lambda x, w, b, dy: [F.global_avg_pool2d(x),
                                            F.global_avg_pool2d_backward(dy[:, :, 0, 0], x.shape)],
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("shape", [(7, 5, 9, 11), (64, 16, 8, 8)])
def test_bit_identical_across_thread_counts_and_serial_twins(monkeypatch, dtype, name, shape):
    x, weight, bias, dy = _data(np.random.default_rng(3), shape, dtype)
    before = fastbp.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastbp.set_num_threads(threads)
            results.append([r.tobytes() for r in CALLS[name](x, weight, bias, dy)])
    finally:
        fastbp.set_num_threads(before)
    monkeypatch.setattr(_jit, "PARALLEL_MIN", 0 if x.size < _jit.PARALLEL_MIN else 10**12)
    results.append([r.tobytes() for r in CALLS[name](x, weight, bias, dy)])  # the other twin
    assert results[0] == results[1] == results[2]


def test_global_avg_pool_matches_the_reference_and_finite_differences(rng, dtype):
    x = rng.standard_normal((3, 4, 5, 7)).astype(dtype)
    dy = rng.standard_normal((3, 4)).astype(dtype)
    assert_matches(F.global_avg_pool2d(x), ref.global_avg_pool2d(x), dtype)
    assert_matches(F.global_avg_pool2d_backward(dy, x.shape), ref.global_avg_pool2d_backward(dy, x.shape), dtype)
    assert fastbp.gradcheck_layer(L.GlobalAvgPool2D(), rng.standard_normal((2, 3, 4, 5)))


def test_bad_arguments_are_named(rng):
    with pytest.raises(ValueError, match="num_features"):
        L.BatchNorm1D(0)
    with pytest.raises(ValueError, match="momentum"):
        L.BatchNorm2D(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        L.BatchNorm2D(3, eps=0)
    with pytest.raises(ValueError, match="4-D"):
        L.BatchNorm2D(3).forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="C = 3"):
        L.BatchNorm1D(3).forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="more than one value"):
        L.BatchNorm1D(3).forward(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="float64"):
        L.BatchNorm1D(3).forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="4-D"):
        L.GlobalAvgPool2D().forward(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="running_mean and running_var"):
        F.batch_norm(np.zeros((2, 3)), np.ones(3), np.zeros(3), training=False)


def test_config_repr_dtype_and_the_running_statistics_follow_to(rng):
    layer = L.BatchNorm2D(4, momentum=0.2, dtype=np.float64)
    assert layer.config() == {"num_channels": 4, "momentum": 0.2, "eps": 1e-5, "dtype": "float64"}
    assert repr(layer) == "BatchNorm2D(4, momentum=0.2, eps=1e-05, dtype='float64')"
    assert type(layer)(**layer.config()).config() == layer.config()
    layer.to(np.float32)
    assert layer.running_mean.dtype == layer.running_var.dtype == layer.params["weight"].dtype == np.float32
    assert layer.forward(rng.standard_normal((2, 4, 3, 3)).astype(np.float32)).dtype == np.float32


def test_batch_norm_parameters_are_not_weight_decayed():
    model = fastbp.Sequential(L.Linear(3, 4), L.BatchNorm1D(4), L.ReLU(), L.Linear(4, 2))
    assert model.no_decay == {"1.weight", "1.bias"}
    sgd = optim.SGD(model, 0.1, weight_decay=0.5)
    assert sgd.decayed == {"0.weight": True, "0.bias": False, "1.weight": False, "1.bias": False,
                           "3.weight": True, "3.bias": False}
    assert optim.SGD(model, 0.1, weight_decay=0.5, decay=lambda n: True).decayed["1.weight"]
    assert optim.SGD(model.params, 0.1, weight_decay=0.5).decayed["1.weight"]  # a plain mapping: the name rule


def test_running_statistics_are_saved_in_checkpoints(tmp_path, rng, dtype):
    model = fastbp.Sequential(L.Conv2D(2, 3, 3, padding=1, dtype=dtype), L.BatchNorm2D(3, dtype=dtype),
                              L.ReLU(), L.GlobalAvgPool2D(), L.Linear(3, 4, dtype=dtype),
                              L.BatchNorm1D(4, dtype=dtype))
    x = rng.standard_normal((5, 2, 6, 6)).astype(dtype)
    for _ in range(3):
        model.forward(x)
    sgd = optim.SGD(model, 0.1, momentum=0.9, weight_decay=1e-3)
    path = tmp_path / "bn.npz"
    checkpoint.save(path, model, sgd)
    assert sorted(checkpoint.read_header(path)["buffers"]) == [
        "1.running_mean", "1.running_var", "5.running_mean", "5.running_var"]
    loaded = checkpoint.load(path)
    for name, array in model.buffers.items():
        assert np.array_equal(loaded.model.buffers[name], array) and array.dtype == np.dtype(dtype)
    assert np.array_equal(loaded.model.forward(x, training=False), model.forward(x, training=False))
    assert loaded.make_optimizer().decayed == sgd.decayed
    fresh = fastbp.Sequential(*[type(layer)(**layer.config()) for layer in model.layers])
    checkpoint.load_weights(fresh, path)
    assert np.array_equal(fresh.forward(x, training=False), model.forward(x, training=False))
