"""Arguments of the wrong type or value are refused up front with a ValueError or TypeError
that names the argument and says what was expected; arguments that only look unusual
(big-endian arrays, 0-d arrays, NumPy scalars and seeds) give the correct result."""

import numpy as np
import pytest

import fastbp
from fastbp import _validation, optim
from fastbp import functional as F
from fastbp.optim import base as optim_base

f32, f64 = np.float32, np.float64
X = np.array([-2.0, -0.5, 0.0, 1.5])
DY = np.array([1.0, -2.0, 0.5, 3.0])
SCORES = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
LABELS = np.array([0, 2])


def ones(*shape, dtype=f64):
    return np.ones(shape, dtype)


# ----------------------------------------------------------------------------- scalar options

SCALAR_OPTIONS = {
    # option name: call with the option's value
    "slope": [lambda v: F.leaky_relu(X, slope=v), lambda v: F.leaky_relu_backward(DY, X, slope=v),
              lambda v: fastbp.LeakyReLU(v)],
    "alpha": [lambda v: F.elu(X, alpha=v), lambda v: F.elu_backward(DY, X, alpha=v),
              lambda v: fastbp.ELU(v)],
    "margin": [lambda v: F.hinge_loss(SCORES, LABELS, margin=v)],
    "p": [lambda v: fastbp.Dropout(v)],
}
CALLS = [(name, call) for name, calls in SCALAR_OPTIONS.items() for call in calls]


@pytest.mark.parametrize("name,call", CALLS)
@pytest.mark.parametrize("bad", [None, "0.1", [0.1], (0.1,), np.array([0.1, 0.2]), True, 1j])
def test_scalar_option_of_the_wrong_type_is_a_type_error(name, call, bad):
    with pytest.raises(TypeError, match=f"^{name} must be a real number, got "):
        call(bad)


@pytest.mark.parametrize("name,call", CALLS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_scalar_option_that_is_not_finite_is_a_value_error(name, call, bad):
    with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
        call(bad)


def test_array_options_are_described_not_dumped():
    with pytest.raises(TypeError, match=r"margin must be a real number, got a float64 array of shape \(1000,\)$"):
        F.hinge_loss(SCORES, LABELS, margin=np.zeros(1000))


@pytest.mark.parametrize("value", [0.2, np.float32(0.2), np.float64(0.2), 1])
def test_scalar_options_accept_python_and_numpy_numbers(value):
    want = np.where(X > 0, X, float(value) * X)
    np.testing.assert_allclose(F.leaky_relu(X, slope=value), want)
    np.testing.assert_allclose(fastbp.LeakyReLU(value).forward(X), want)
    np.testing.assert_allclose(F.leaky_relu_backward(DY, X, slope=value), np.where(X > 0, DY, float(value) * DY))
    np.testing.assert_allclose(F.elu(X, alpha=value), np.where(X > 0, X, float(value) * np.expm1(X)))
    loss, _ = F.hinge_loss(SCORES, LABELS, margin=value)
    margins = np.maximum(0, SCORES - SCORES[[0, 1], LABELS][:, None] + float(value))
    margins[[0, 1], LABELS] = 0
    assert loss == pytest.approx(margins.sum() / 2)


def test_dropout_p_is_checked_as_a_probability():
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0.0, 1.0\), got 1.0"):
        fastbp.Dropout(1.0)
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0.0, 1.0\), got -0.1"):
        fastbp.Dropout(-0.1)
    assert fastbp.Dropout(np.float32(0.25)).p == 0.25
    assert fastbp.Dropout(0).p == 0.0


def test_the_optimisers_use_the_one_scalar_helper():
    assert optim_base.check_number is _validation.real_number
    with pytest.raises(TypeError, match="lr must be a real number, got None"):
        optim.SGD({"w": np.zeros(3)}, None)


# ----------------------------------------------------------------------------- 0-d arrays

ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "softplus"]


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [f32, f64])
def test_activations_keep_the_shape_of_0d_input(name, dtype):
    for value in (-1.5, 2.0):
        x = np.array(value, dtype)
        y = getattr(F, name)(x)
        dx = getattr(F, f"{name}_backward")(np.array(3.0, dtype), x)
        assert y.shape == () and dx.shape == ()
        assert y.dtype == dx.dtype == np.dtype(dtype)
        # the same numbers as for the 1-element array
        assert y == getattr(F, name)(x.reshape(1))[0]
        assert dx == getattr(F, f"{name}_backward")(np.full(1, 3.0, dtype), x.reshape(1))[0]
    assert getattr(F, name)(dtype(0.5)).shape == ()  # a NumPy scalar is 0-d too


def test_activation_layer_keeps_the_shape_of_0d_input():
    layer = fastbp.Tanh()
    y = layer.forward(np.array(0.5))
    assert y.shape == () and y == np.tanh(0.5)
    dx = layer.backward(np.array(2.0))
    assert dx.shape == () and dx == pytest.approx(2.0 * (1 - np.tanh(0.5) ** 2))


@pytest.mark.parametrize("call,pattern", [
    (lambda: F.mse_loss(np.float64(3.0), np.float64(1.0)), r"y must have a batch axis, shape \(N, \.\.\.\), got a 0-d array"),
    (lambda: F.mse_loss(np.array(3.0), np.array([1.0])), "y must have a batch axis"),
    (lambda: F.logistic_loss(np.array(0.5), 1), r"s must have shape \(N,\) or \(N, 1\), got \(\)"),
    (lambda: F.logistic_pm1_loss(np.array(0.5), 1), r"s must have shape \(N,\) or \(N, 1\), got \(\)"),
    (lambda: F.softmax_cross_entropy(np.array(0.5), 0), r"logits must be 2-D \(N, classes\), got shape \(\)"),
    (lambda: F.hinge_loss(np.array(0.5), 0), r"scores must be 2-D \(N, classes\), got shape \(\)"),
])
def test_losses_refuse_0d_scores(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_losses_take_a_batch_of_one_scalar():
    loss, grad = F.mse_loss(np.array([3.0]), np.array([1.0]))
    assert loss == 2.0 and grad.shape == (1,) and grad[0] == 2.0


# ----------------------------------------------------------------------------- seeds

@pytest.mark.parametrize("seed,error,pattern", [
    (-1, ValueError, "seed must be None, a non-negative int, .* got -1$"),
    (1.5, TypeError, "seed must be None, a non-negative int, .* got 1.5$"),
    ("7", TypeError, "seed must be None, .* got '7'$"),
    (True, TypeError, "seed must be None, .* got True$"),
    ([1, -2], ValueError, r"seed must be None, .* got \[1, -2\]$"),
    ([], ValueError, r"seed must be None, .* got \[\]$"),
    (np.array([1.5]), ValueError, r"got a float64 array of shape \(1,\)$"),
])
@pytest.mark.parametrize("make", [
    lambda seed: fastbp.Linear(2, 3, seed=seed),
    lambda seed: fastbp.Conv2D(1, 2, 3, seed=seed),
    lambda seed: fastbp.Maxout(2, 3, 2, seed=seed),
    lambda seed: fastbp.Dropout(0.5, seed=seed),
])
def test_bad_seeds_are_refused_by_name(make, seed, error, pattern):
    with pytest.raises(error, match=pattern):
        make(seed)


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator or None, got 5"):
        fastbp.Linear(2, 3, rng=5)
    with pytest.raises(ValueError, match="pass either seed or rng, not both"):
        fastbp.Linear(2, 3, seed=1, rng=np.random.default_rng(1))


@pytest.mark.parametrize("seed", [np.int64(3), np.uint8(3), [3], (3,), np.array([3]),
                                  np.random.SeedSequence(3)])
def test_seeds_numpy_accepts_give_numpys_generator(seed):
    want = fastbp.Linear(2, 3, seed=3).params["weight"]
    np.testing.assert_array_equal(fastbp.Linear(2, 3, seed=seed).params["weight"], want)
    assert fastbp.Linear(2, 3, seed=[1, 2]).params["weight"].shape == (3, 2)


# ----------------------------------------------------------------------------- workspace, add_to

def _conv_args():
    return ones(1, 1, 4, 4), ones(2, 1, 3, 3)


@pytest.mark.parametrize("bad", ["abc", 0, {}, np.zeros(3)])
@pytest.mark.parametrize("call", [
    lambda ws: F.conv2d(*_conv_args(), workspace=ws),
    lambda ws: F.conv2d_backward(ones(1, 2, 2, 2), *_conv_args(), workspace=ws),
    lambda ws: F.linear_backward(ones(2, 3), ones(2, 2), ones(3, 2), workspace=ws),
])
def test_workspace_must_be_a_workspace_or_none(call, bad):
    with pytest.raises(TypeError, match="workspace must be a fastbp.Workspace or None, got "):
        call(bad)


def test_a_workspace_gives_the_same_results_as_none():
    work = fastbp.Workspace()
    x, w = _conv_args()
    np.testing.assert_array_equal(F.conv2d(x, w, workspace=work), F.conv2d(x, w))
    for a, b in zip(F.conv2d_backward(ones(1, 2, 2, 2), x, w, workspace=work),
                    F.conv2d_backward(ones(1, 2, 2, 2), x, w)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("add_to", [
    (np.zeros((3, 2)), np.zeros(3), np.zeros(3)),
    (np.zeros((3, 2)),),
    np.zeros((3, 2)),
])
def test_add_to_must_be_a_pair(add_to):
    with pytest.raises(ValueError, match=r"add_to must be a pair \(dw, db\)"):
        F.linear_backward(ones(2, 3), ones(2, 2), ones(3, 2), add_to=add_to)


# ----------------------------------------------------------------------------- empty weights

@pytest.mark.parametrize("call,pattern", [
    (lambda: F.linear(ones(2, 2), ones(0, 2)), r"w has an empty dimension \(shape \(0, 2\)\)"),
    (lambda: F.linear(ones(2, 0), ones(3, 0)), r"w has an empty dimension \(shape \(3, 0\)\)"),
    (lambda: F.linear_backward(ones(2, 0), ones(2, 2), ones(0, 2)), r"w has an empty dimension \(shape \(0, 2\)\)"),
    (lambda: F.maxout(ones(2, 2), ones(3, 0, 2)), r"w has an empty dimension \(shape \(3, 0, 2\)\)"),
    (lambda: F.maxout(ones(2, 0), ones(3, 2, 0)), r"w has an empty dimension \(shape \(3, 2, 0\)\)"),
    (lambda: F.conv2d(ones(1, 1, 4, 4), ones(0, 1, 3, 3)), r"w has an empty dimension \(shape \(0, 1, 3, 3\)\)"),
    (lambda: F.conv2d(ones(1, 0, 4, 4), ones(2, 0, 3, 3)), r"w has an empty dimension \(shape \(2, 0, 3, 3\)\)"),
    (lambda: F.conv2d(ones(1, 1, 4, 4), ones(2, 1, 0, 3)), r"w has an empty dimension \(shape \(2, 1, 0, 3\)\)"),
])
def test_weights_with_an_empty_dimension_are_reported_with_their_shape(call, pattern):
    with pytest.raises(ValueError, match=pattern + ": weights need at least one element along every axis"):
        call()


def test_data_with_an_empty_batch_is_still_an_empty_batch():
    with pytest.raises(ValueError, match=r"x has an empty batch \(shape \(0, 2\)\)"):
        F.linear(ones(0, 2), ones(3, 2))


# ----------------------------------------------------------------------------- byte order

def test_big_endian_arrays_give_the_native_result(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    for dtype in (f32, f64):
        xn, wn, bn = x.astype(dtype), w.astype(dtype), b.astype(dtype)
        xb, wb, bb = (a.astype(np.dtype(dtype).newbyteorder(">")) for a in (xn, wn, bn))
        y = F.conv2d(xb, wb, bb, padding=1)
        assert y.dtype == np.dtype(dtype) and y.dtype.isnative
        np.testing.assert_array_equal(y, F.conv2d(xn, wn, bn, padding=1))
        np.testing.assert_array_equal(F.relu(xb), F.relu(xn))
        np.testing.assert_array_equal(F.max_pool2d(xb, 2), F.max_pool2d(xn, 2))
        flat = xn.reshape(2, -1)
        np.testing.assert_array_equal(F.linear(flat.astype(flat.dtype.newbyteorder(">")), flat[:3]),
                                      F.linear(flat, flat[:3]))
    logits = rng.standard_normal((5, 3))
    labels = np.array([0, 1, 2, 1, 0])
    got = F.softmax_cross_entropy(logits.astype(">f8"), labels.astype(">i8"))
    want = F.softmax_cross_entropy(logits, labels)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])


def test_other_dtypes_are_still_refused_by_name():
    with pytest.raises(TypeError, match="x must be a float32 or float64 array, got dtype float16"):
        F.relu(np.ones(3, ">f2"))
    with pytest.raises(TypeError, match="x must be a float32 or float64 array, got dtype int64"):
        F.relu(np.ones(3, ">i8"))


# ----------------------------------------------------------------------------- window geometry

GEOMETRY = [
    (lambda: F.conv2d(ones(1, 1, 2, 2), ones(1, 1, 1, 1), padding=2**40, stride=2**41), "stride must be at most 2147483647"),
    (lambda: F.conv2d(ones(1, 1, 2, 2), ones(1, 1, 1, 1), padding=2**40), "padding must be at most 2147483647, got 1099511627776"),
    (lambda: F.conv2d(ones(1, 1, 2, 2), ones(1, 1, 1, 1), stride=2**70), "stride must be at most 2147483647"),
    (lambda: F.conv2d(ones(1, 1, 2, 2), ones(1, 1, 1, 1), stride=(1, 2**63)), "stride must be at most 2147483647"),
    (lambda: F.conv2d_backward(ones(1, 1, 1, 1), ones(1, 1, 2, 2), ones(1, 1, 1, 1), stride=2**70), "stride must be at most"),
    (lambda: F.conv2d(ones(1, 1, 2, 2), ones(1, 1, 1, 1), padding=2**30, stride=2**31 - 1),
     r"conv2d: padding \(1073741824, 1073741824\) must be at most the largest of the input size \(2, 2\), the kernel size - 1 \(0, 0\) and 16, along each axis"),
    (lambda: F.conv2d(ones(1, 1, 4, 4), ones(1, 1, 3, 3), padding=17), "padding .* must be at most the largest of the input size"),
    (lambda: F.conv2d(ones(1, 1, 20, 1), ones(1, 1, 3, 3), padding=(20, 17)), "padding .* must be at most the largest"),
    (lambda: F.conv2d(ones(1, 1, 1, 1), ones(1, 1, 21, 21), padding=(20, 21)), "padding .* must be at most the largest"),
    (lambda: F.conv2d_backward(ones(1, 1, 33, 33), ones(1, 1, 4, 4), ones(1, 1, 3, 3), padding=17), "padding .* must be at most the largest"),
    (lambda: fastbp.Conv2D(1, 1, 3, stride=2**70), "stride must be at most 2147483647"),
    (lambda: F.max_pool2d(ones(1, 1, 2, 2), 2, stride=2**70), "stride must be at most 2147483647"),
    (lambda: F.avg_pool2d(ones(1, 1, 2, 2), 2**70), "kernel_size must be at most 2147483647"),
    (lambda: F.avg_pool2d(ones(1, 1, 2, 2), 2**40, padding=2**39), "kernel_size must be at most 2147483647"),
    (lambda: F.avg_pool2d(ones(1, 1, 2, 2), 2**31 - 1, padding=2**30 - 1), r"avg_pool2d: padding \(1073741823, 1073741823\) must be at most the larger of the input size \(2, 2\) and 16"),
    (lambda: F.max_pool2d(ones(1, 1, 2, 2), 35, padding=17), r"max_pool2d: padding \(17, 17\) must be at most the larger of the input size \(2, 2\) and 16"),
    (lambda: F.max_pool2d(ones(1, 1, 20, 2), 41, padding=(20, 20)), r"padding \(20, 20\) must be at most the larger of the input size \(20, 2\) and 16"),
    (lambda: F.max_pool2d_with_argmax(ones(1, 1, 2, 2), 35, padding=17), "must be at most the larger of the input size"),
    (lambda: F.max_pool2d_backward(ones(1, 1, 1, 1), ones(1, 1, 2, 2), 2, stride=2**70), "stride must be at most"),
    (lambda: F.avg_pool2d_backward(ones(1, 1, 1, 1), ones(1, 1, 2, 2), 35, padding=17), "must be at most the larger of the input size"),
    (lambda: fastbp.MaxPool2D(2, padding=2**40), "padding must be at most 2147483647"),
]


@pytest.mark.parametrize("call,pattern", GEOMETRY)
def test_window_geometry_is_bounded(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_window_geometry_at_the_bounds_works(rng):
    x = rng.standard_normal((1, 1, 2, 2))
    w = rng.standard_normal((1, 1, 1, 1))
    # the largest stride: one output cell, from the first input cell
    y = F.conv2d(x, w, stride=2**31 - 1)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == pytest.approx(x[0, 0, 0, 0] * w[0, 0, 0, 0])
    dx, dw, db = F.conv2d_backward(np.full((1, 1, 1, 1), 2.0), x, w, stride=2**31 - 1)
    np.testing.assert_array_equal(dx, [[[[2.0 * w[0, 0, 0, 0], 0.0], [0.0, 0.0]]]])
    assert dw[0, 0, 0, 0] == 2.0 * x[0, 0, 0, 0] and db[0] == 2.0
    assert F.max_pool2d(x, 1, stride=2**31 - 1).shape == (1, 1, 1, 1)
    # padding up to 16, the input size, or (convolution) the kernel size - 1
    assert F.conv2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), padding=16).shape == (1, 1, 33, 33)
    assert F.conv2d(np.ones((1, 1, 20, 20)), np.ones((1, 1, 1, 1)), padding=20).shape == (1, 1, 60, 60)
    y = F.conv2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 21, 21)), padding=20)
    assert y.shape == (1, 1, 21, 21) and np.all(y == 1.0)
    assert F.avg_pool2d(x, 33, stride=1, padding=16).shape == (1, 1, 2, 2)
    assert F.max_pool2d(np.ones((1, 1, 20, 20)), 41, padding=20).shape == (1, 1, 1, 1)


# ----------------------------------------------------------------------------- weight decay

def cs231n_params():
    rng = np.random.default_rng(0)
    return {"W1": rng.standard_normal((4, 3)), "b1": rng.standard_normal(4),
            "W2": rng.standard_normal((2, 4)), "b2": rng.standard_normal(2)}


def zero_grads(params):
    return {name: np.zeros_like(array) for name, array in params.items()}


def test_the_default_decay_rule_decays_every_name_but_bias():
    opt = optim.SGD(cs231n_params(), 0.1, weight_decay=0.5)
    assert opt.decayed == {"W1": True, "b1": True, "W2": True, "b2": True}
    net = fastbp.Sequential(fastbp.Linear(3, 4, seed=0), fastbp.ReLU(), fastbp.Linear(4, 2, seed=1))
    opt = optim.SGD(net, 0.1, weight_decay=0.5)
    assert opt.decayed == {"0.weight": True, "0.bias": False, "2.weight": True, "2.bias": False}
    assert optim.is_decayed("b1") and not optim.is_decayed("0.bias")


@pytest.mark.parametrize("make", [
    lambda params, decay: optim.SGD(params, 0.1, weight_decay=0.5, decay=decay),
    lambda params, decay: optim.SGD(params, 0.1, momentum=0.9, weight_decay=0.5, decay=decay),
    lambda params, decay: optim.Adam(params, 0.1, weight_decay=0.5, decay=decay),
])
@pytest.mark.parametrize("decay", [{"W1", "W2"}, ["W2", "W1"], ("W1", "W2"), {"W1": 0, "W2": 0}.keys(),
                                   lambda name: name.startswith("W")])
def test_decay_names_the_decayed_parameters(make, decay):
    params = cs231n_params()
    before = {name: array.copy() for name, array in params.items()}
    opt = make(params, decay)
    opt_once = make(cs231n_params(), (name for name in ["W1", "W2"]))  # a one-pass iterable
    assert opt.decayed == opt_once.decayed
    assert opt.decayed == {"W1": True, "b1": False, "W2": True, "b2": False}
    opt.step(zero_grads(params))  # only the decay term moves anything
    for name in ("W1", "W2"):
        assert not np.array_equal(params[name], before[name])
    for name in ("b1", "b2"):
        np.testing.assert_array_equal(params[name], before[name])
    if type(opt) is optim.SGD and opt.momentum == 0.0:
        np.testing.assert_allclose(params["W1"], before["W1"] * (1 - 0.1 * 0.5))


def test_decay_can_exclude_a_models_weights():
    net = fastbp.Sequential(fastbp.Linear(3, 4, seed=0), fastbp.ReLU(), fastbp.Linear(4, 2, seed=1))
    opt = optim.Adam(net, weight_decay=0.1, decay=["2.weight"])
    assert opt.decayed == {"0.weight": False, "0.bias": False, "2.weight": True, "2.bias": False}
    assert optim.SGD(net, 0.1, decay=[]).decayed == dict.fromkeys(net.params, False)


@pytest.mark.parametrize("decay,error,pattern", [
    ({"W1", "W3"}, ValueError, r"decay names unknown parameters \['W3'\]; the parameters are \['W1', 'W2', 'b1', 'b2'\]"),
    (["w1"], ValueError, r"decay names unknown parameters \['w1'\]"),
    ("W1", TypeError, "decay must be an iterable of parameter names or a callable name -> bool, got 'W1'"),
    (5, TypeError, "decay must be an iterable of parameter names or a callable"),
    ({"W1": True}, TypeError, "decay must be an iterable of parameter names or a callable"),
    (["W1", 2], TypeError, r"decay must hold parameter names \(str\), got \['W1', 2\]"),
    (lambda name: "yes", TypeError, "decay\\('W1'\\) must return a bool, got 'yes'"),
])
@pytest.mark.parametrize("kind", [optim.SGD, optim.Adam])
def test_bad_decay_is_refused_when_the_optimiser_is_built(kind, decay, error, pattern):
    with pytest.raises(error, match=pattern):
        kind(cs231n_params(), 0.1, decay=decay)
