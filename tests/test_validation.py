import numpy as np
import pytest

from fastbp import functional as F

f32, f64 = np.float32, np.float64


def ones(*shape, dtype=f64):
    return np.ones(shape, dtype)


BAD_CALLS = [
    # (call, exception, message pattern)
    (lambda: F.conv2d(ones(1, 3, 5, 5), ones(2, 4, 3, 3)), ValueError, r"x has 3 channels but w of shape \(2, 4, 3, 3\) expects 4"),
    (lambda: F.conv2d(ones(1, 1, 3, 3), ones(1, 1, 5, 5), padding=0), ValueError, r"kernel size \(5, 5\) is larger than the padded input \(3, 3\)"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=0), ValueError, "stride must be >= 1"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), padding=-1), ValueError, "padding must be >= 0"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=1.5), TypeError, "stride must be an int"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=(1, 2, 3)), ValueError, r"stride must be an int or an \(h, w\) pair"),
    (lambda: F.conv2d(ones(1, 5, 5), ones(1, 1, 3, 3)), ValueError, r"x must be 4-D \(N, C, H, W\), got shape \(1, 5, 5\)"),
    (lambda: F.conv2d(ones(1, 1, 5, 5, dtype=f32), ones(1, 1, 3, 3)), TypeError, "mixed dtypes: x is float32, w is float64"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5), int), ones(1, 1, 3, 3)), TypeError, "x must be a float32 or float64 array, got dtype int64"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5), bool), ones(1, 1, 3, 3)), TypeError, "got dtype bool"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5), np.float16), ones(1, 1, 3, 3)), TypeError, "got dtype float16"),
    (lambda: F.conv2d(ones(0, 1, 5, 5), ones(1, 1, 3, 3)), ValueError, "empty batch"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(2, 1, 3, 3), ones(3)), ValueError, r"b must have shape \(2,\)"),
    (lambda: F.conv2d_backward(ones(1, 2, 4, 4), ones(1, 1, 5, 5), ones(2, 1, 3, 3)), ValueError, r"dy has shape \(1, 2, 4, 4\), expected \(1, 2, 3, 3\) \(the shape of conv2d's output\)"),
    (lambda: F.conv2d_backward(ones(1, 2, 3, 3, dtype=f32), ones(1, 1, 5, 5), ones(2, 1, 3, 3)), TypeError, "mixed dtypes: dy is float32"),
    (lambda: F.linear(ones(2, 3), ones(4, 5)), ValueError, r"x has 3 features but w of shape \(4, 5\) expects 5"),
    (lambda: F.linear(ones(3), ones(4, 3)), ValueError, r"x must be 2-D \(N, in_features\)"),
    (lambda: F.linear(ones(2, 3, dtype=f32), ones(4, 3), ones(4, dtype=f32)), TypeError, "mixed dtypes"),
    (lambda: F.linear_backward(ones(2, 5), ones(2, 3), ones(4, 3)), ValueError, r"dy has shape \(2, 5\), expected \(2, 4\)"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, padding=2), ValueError, "padding .* must be at most half the kernel size"),
    (lambda: F.avg_pool2d(ones(1, 1, 4, 4), 3, padding=(1, 2)), ValueError, "must be at most half the kernel size"),
    (lambda: F.max_pool2d(ones(1, 1, 2, 2), 3), ValueError, "larger than the padded input"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 0), ValueError, "kernel_size must be >= 1"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, stride=0), ValueError, "stride must be >= 1"),
    (lambda: F.max_pool2d_backward(ones(1, 1, 3, 3), ones(1, 1, 4, 4), 2), ValueError, r"expected \(1, 1, 2, 2\)"),
    (lambda: F.avg_pool2d_backward(ones(1, 1, 2, 2, dtype=f32), ones(1, 1, 4, 4), 2), TypeError, "mixed dtypes"),
    (lambda: F.relu_backward(ones(3), ones(4)), ValueError, r"dy has shape \(3,\), expected \(4,\)"),
    (lambda: F.sigmoid(np.arange(3)), TypeError, "x must be a float32 or float64 array"),
    (lambda: F.softmax_cross_entropy(ones(3, 4), np.array([0, 1, 4])), ValueError, r"labels must lie in \[0, 4\), got values from 0 to 4"),
    (lambda: F.softmax_cross_entropy(ones(3, 4), np.array([0, -1, 2])), ValueError, r"labels must lie in \[0, 4\)"),
    (lambda: F.softmax_cross_entropy(ones(3, 4), np.array([0.0, 1.0, 2.0])), TypeError, "labels must be an integer array"),
    (lambda: F.softmax_cross_entropy(ones(3, 4), np.array([0, 1])), ValueError, r"labels must have shape \(3,\)"),
    (lambda: F.hinge_loss(ones(3), np.array([0, 1, 2])), ValueError, r"scores must be 2-D \(N, classes\)"),
    (lambda: F.logistic_loss(ones(3), np.array([0, 1, 2])), ValueError, r"y must hold only the values \(0, 1\)"),
    (lambda: F.logistic_loss(ones(3), np.array([0, 1, np.nan])), ValueError, "y must hold only the values"),
    (lambda: F.logistic_pm1_loss(ones(3), np.array([0, 1, 1])), ValueError, r"y must hold only the values \(-1, 1\)"),
    (lambda: F.logistic_loss(ones(3, 2), np.zeros((3, 2))), ValueError, r"s must have shape \(N,\) or \(N, 1\)"),
    (lambda: F.mse_loss(ones(3, 2), ones(3, 3)), ValueError, r"t has shape \(3, 3\), expected \(3, 2\)"),
    (lambda: F.mse_loss(ones(3, 2), ones(3, 2, dtype=f32)), TypeError, "mixed dtypes"),
    (lambda: F.maxout(ones(2, 3), ones(4, 2, 5)), ValueError, "x has 3 features"),
    (lambda: F.maxout(ones(2, 3), ones(4, 2, 3), ones(4, 3)), ValueError, r"b has shape \(4, 3\), expected \(4, 2\)"),
]


@pytest.mark.parametrize("call,error,pattern", BAD_CALLS)
def test_bad_input_raises_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_non_contiguous_inputs_give_the_same_answer(rng):
    x = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    x_strided = np.asfortranarray(x)
    w_strided = np.ascontiguousarray(np.swapaxes(w, 0, 1)).swapaxes(0, 1)
    assert not x_strided.flags.c_contiguous and not w_strided.flags.c_contiguous
    np.testing.assert_array_equal(F.conv2d(x_strided, w_strided, stride=2, padding=1),
                                  F.conv2d(x, w, stride=2, padding=1))
    big = rng.standard_normal((2, 3, 16, 16))
    np.testing.assert_array_equal(F.max_pool2d(big[:, :, ::2, ::2], 2), F.max_pool2d(big[:, :, ::2, ::2].copy(), 2))
    np.testing.assert_array_equal(F.relu(big[..., ::3]), np.maximum(big[..., ::3], 0))


def test_lists_are_accepted_as_arrays():
    np.testing.assert_array_equal(F.relu([[-1.0, 2.0]]), [[0.0, 2.0]])


# ----------------------------------------------------------------------------- beyond the kernels
# Optimisers, schedules, data handling, Sequential and the training loop: every bad argument
# is refused when given, with a message saying what was expected.

import fastbp  # noqa: E402
from fastbp import data, optim, training  # noqa: E402


def model(out=2, seed=0):
    return fastbp.Sequential(fastbp.Linear(3, out, seed=seed))


def trainer(**kwargs):
    net = model()
    return fastbp.Trainer(net, optim.SGD(net, 0.1), progress=False, **kwargs)


X = np.linspace(-1, 1, 30, dtype=f32).reshape(10, 3)
Y = np.arange(10) % 2


BAD_LIBRARY_CALLS = [
    # optimisers
    (lambda: optim.SGD(model(), 0), ValueError, r"lr must be a finite number in \(0.0, inf\], got 0.0"),
    (lambda: optim.SGD(model(), -0.1), ValueError, "lr must be a finite number"),
    (lambda: optim.SGD(model(), float("nan")), ValueError, "lr must be a finite number"),
    (lambda: optim.SGD(model(), "0.1"), TypeError, "lr must be a real number"),
    (lambda: optim.SGD(model(), 0.1, weight_decay=-1e-4), ValueError, r"weight_decay must be a finite number in \[0.0, inf\]"),
    (lambda: optim.SGD(model(), 0.1, momentum=1.0), ValueError, r"momentum must be a finite number in \[0.0, 1.0\)"),
    (lambda: optim.SGD(model(), 0.1, momentum=-0.5), ValueError, "momentum must be"),
    (lambda: optim.SGD(model(), 0.1, momentum=0.9, nesterov="no"), TypeError, "nesterov must be a bool"),
    (lambda: optim.SGD(model(), 0.1, nesterov=True), ValueError, "nesterov needs a momentum > 0"),
    (lambda: optim.SGD([np.zeros(3)], 0.1), TypeError, "params must be a mapping name -> array .* got list"),
    (lambda: optim.SGD({}, 0.1), ValueError, "params is empty"),
    (lambda: optim.SGD({"w": np.zeros(3, int)}, 0.1), TypeError, "parameter 'w' must be a float32 or float64 array"),
    (lambda: optim.SGD({"w": np.zeros((3, 3))[:, 0]}, 0.1), ValueError, "C-contiguous"),
    (lambda: (lambda a: optim.SGD({"b": a, "c": a}, 0.1))(np.zeros(3)), ValueError, "parameters 'b' and 'c' share memory"),
    (lambda: (lambda a: optim.SGD({"a": a[:3], "b": a[2:]}, 0.1))(np.zeros(5)), ValueError, "share memory"),
    (lambda: optim.SGD({"w": np.zeros(3)}, 0.1).step(np.zeros(3)), TypeError, "grads must be a mapping"),
    (lambda: optim.SGD({"w": np.zeros(3)}, 0.1).step({"w": np.zeros(2)}), ValueError, r"grad 'w' must be a float64 array of shape \(3,\)"),
    (lambda: optim.SGD({"w": np.zeros(3)}, 0.1).load_state_dict([]), TypeError, "state must be a dict"),
    (lambda: optim.optimizer_from_state_dict(model(), {"type": "SGD", "hyper": 0.1}), TypeError, "hyper-parameters must be a dict"),
    (lambda: setattr(optim.SGD(model(), 0.1), "lr", -1.0), ValueError, "lr must be a finite number"),
    (lambda: optim.Adam(model(), lr=0), ValueError, "lr must be"),
    (lambda: optim.Adam(model(), betas=(0.9, 1.0)), ValueError, r"beta2 must be a finite number in \[0.0, 1.0\)"),
    (lambda: optim.Adam(model(), betas=0.9), ValueError, r"betas must be a pair"),
    (lambda: optim.Adam(model(), eps=0.0), ValueError, "eps must be"),
    (lambda: optim.Adam(model(), weight_decay=-1.0), ValueError, "weight_decay must be"),
    # schedules
    (lambda: optim.Constant(0.0), ValueError, "lr must be"),
    (lambda: optim.Step(0.1, 0), ValueError, "step_size must be a positive int"),
    (lambda: optim.MultiStep(0.1, None), TypeError, "milestones must be a sequence of positive ints"),
    (lambda: optim.MultiStep(0.1, 5), TypeError, "milestones must be a sequence"),
    (lambda: optim.MultiStep(0.1, [5, 3]), ValueError, "milestones must be strictly increasing"),
    (lambda: optim.MultiStep(0.1, [0]), ValueError, "milestones must be positive ints"),
    (lambda: optim.Cosine(0.1, epochs=0), ValueError, "epochs must be a positive int"),
    (lambda: optim.Cosine(0.1, 5, min_lr=0.2), ValueError, "min_lr .* must not exceed lr"),
    (lambda: optim.Constant(0.1)(-1), ValueError, "epoch must be a non-negative int"),
    (lambda: optim.schedule_from_config({"type": "Step", "lr": 0.1}), ValueError, r"needs the arguments \['lr', 'step_size'\]"),
    (lambda: optim.schedule_from_config({"type": "Constant", "lr": 0.1, "gamma": 2}), ValueError, "schedule config"),
    (lambda: optim.schedule_from_config({"type": "Constant", "lr": "fast"}), ValueError, "lr must be a real number"),
    # batching and transforms
    (lambda: data.minibatches(X, Y[:4], 2), ValueError, "x and y differ in length: 10 != 4"),
    (lambda: data.minibatches(X[:0], Y[:0], 2), ValueError, "x and y are empty"),
    (lambda: data.minibatches(X, Y, 0), ValueError, "batch_size must be at least 1, got 0"),
    (lambda: data.minibatches(X, Y, 2.0), ValueError, "batch_size must be an integer"),
    (lambda: data.minibatches(np.float32(1), Y, 2), ValueError, "x must be an array with samples along axis 0"),
    (lambda: data.one_hot(np.array([0, 3]), 3), ValueError, r"label 3 is outside 0..2"),
    (lambda: data.one_hot(np.array([-1]), 3), ValueError, r"label -1 is outside"),
    (lambda: data.one_hot(np.array([0.0, 1.0]), 3), ValueError, "labels must have an integer dtype"),
    (lambda: data.one_hot(np.array([0]), 0), ValueError, "num_classes must be at least 1"),
    (lambda: data.normalize(np.zeros((0, 8, 8), np.uint8)), ValueError, "images is empty"),
    (lambda: data.normalize(np.ones((2, 8, 8), np.int32)), ValueError, "images must be uint8 or floating point"),
    (lambda: data.normalize(np.arange(4, dtype=np.uint8), dtype=np.int32), ValueError, "dtype must be float32 or float64"),
    (lambda: data.to_nchw(np.zeros((2, 8))), ValueError, r"expected images of shape \(N, H, W\)"),
    (lambda: data.train_val_split(X, Y[:3], 0.2), ValueError, "differ in length"),
    (lambda: data.train_val_split(X, Y, 1.0), ValueError, r"val_fraction must be in \(0, 1\)"),
    # Sequential
    (lambda: fastbp.Sequential(), ValueError, "Sequential needs at least one layer"),
    (lambda: fastbp.Sequential([fastbp.ReLU()]), TypeError, "layer 0 must be a fastbp Layer, got list"),
    (lambda: fastbp.Sequential(fastbp.ReLU(), "relu"), TypeError, "layer 1 must be a fastbp Layer, got str"),
    # the training loop
    (lambda: trainer().fit((X, Y + 1)), ValueError, r"train labels must lie in \[0, 2\), got values from 1 to 2 \(the model has 2 outputs\)"),
    (lambda: trainer().fit((X, Y - 1)), ValueError, r"train labels must lie in \[0, 2\)"),
    (lambda: trainer().fit((X, Y), (X, Y + 5)), ValueError, r"test labels must lie in \[0, 2\), got values from 5 to 6"),
    (lambda: trainer(loss="hinge").fit((X, Y * 2)), ValueError, r"train labels must lie in \[0, 2\)"),
    (lambda: trainer().fit((X, Y.astype(f32))), TypeError, "train labels must be an integer array"),
    (lambda: trainer().fit((X, Y[:, None])), ValueError, r"train labels must have shape \(10,\)"),
    (lambda: trainer().fit((X[:0], Y[:0])), ValueError, "train is empty"),
    (lambda: trainer().fit((X, Y), (X[:0], Y[:0])), ValueError, "test is empty"),
    (lambda: trainer().fit((X, Y[:7])), ValueError, "train: x and y differ in length: 10 != 7"),
    (lambda: trainer().fit(X), TypeError, r"train must be a pair \(x, y\)"),
    (lambda: trainer().fit((X, Y), epochs=0), ValueError, "epochs must be a positive int, got 0"),
    (lambda: trainer().fit((X, Y), epochs=-3), ValueError, "epochs must be a positive int, got -3"),
    (lambda: trainer().fit((X, Y), epochs=2.0), ValueError, "epochs must be a positive int"),
    (lambda: trainer(batch_size=0), ValueError, "batch_size must be a positive int, got 0"),
    (lambda: trainer(batch_size=-8), ValueError, "batch_size must be a positive int"),
    (lambda: trainer(eval_batch_size=0), ValueError, "eval_batch_size must be a positive int"),
    (lambda: trainer(seed=-1), ValueError, "seed must be a non-negative int"),
    (lambda: trainer(loss="l1"), ValueError, "unknown loss 'l1'"),
    (lambda: trainer().fit((X.astype(f64), Y)), TypeError, "holds float32 parameters but got float64 input"),
    (lambda: trainer().fit((X, Y), checkpoint="/nonexistent/dir/run.npz"), FileNotFoundError, "cannot write checkpoint '/nonexistent/dir/run.npz': no such directory"),
    (lambda: fastbp.Trainer(fastbp.Linear(3, 2), optim.SGD(model(), 0.1)), TypeError, "model must be a fastbp.Sequential"),
    (lambda: fastbp.Trainer(model(), optim.SGD(model(), 0.1)), ValueError, "optimizer was not built over this model's parameters"),
    (lambda: training.fit(model(), (X, Y), epochs=-1, progress=False), ValueError, "epochs must be a positive int"),
    (lambda: training.fit(model(), (X, Y), batch_size=0, progress=False), ValueError, "batch_size must be a positive int"),
    (lambda: training.fit(model(), (X, Y), lr=0.0, progress=False), ValueError, "lr must be"),
    (lambda: training.evaluate(model(), X[:0], Y[:0]), ValueError, "data is empty"),
    (lambda: training.evaluate(model(), X, Y + 2), ValueError, r"labels must lie in \[0, 2\)"),
    (lambda: training.predict(model(), X[:0]), ValueError, "x must hold at least one sample"),
    (lambda: training.predict(model(), X, batch_size=0), ValueError, "batch_size must be a positive int"),
    (lambda: training.load_dataset("cifar"), ValueError, "unknown dataset 'cifar'"),
    (lambda: training.load_dataset("digits", layout="nchw"), ValueError, "layout must be one of"),
]


@pytest.mark.parametrize("call,error,pattern", BAD_LIBRARY_CALLS)
def test_bad_library_arguments_raise_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_out_of_range_labels_are_refused_before_any_step():
    t = trainer(batch_size=2)
    before = {name: array.copy() for name, array in t.model.params.items()}
    labels = Y.copy()
    labels[-1] = 7  # only the last batch holds the bad label
    with pytest.raises(ValueError, match="got values from 0 to 7"):
        t.fit((X, labels), epochs=1)
    with pytest.raises(ValueError, match="test labels"):
        t.fit((X, Y), (X, labels), epochs=1)  # not after a whole epoch of training
    assert t.epoch == 0 and len(t.history) == 0
    for name, array in t.model.params.items():
        np.testing.assert_array_equal(array, before[name])


def test_batching_accepts_sequences_and_keeps_array_views():
    batches = list(data.minibatches([[1.0], [2.0], [3.0]], [0, 1, 0], 2, shuffle=False))
    assert [b[0].tolist() for b in batches] == [[[1.0], [2.0]], [[3.0]]]
    (xb, _), = data.minibatches(X, Y, 10, shuffle=False)
    assert np.shares_memory(xb, X)
