"""Residual blocks, Sequentials used as layers, and their checkpoints."""

import numpy as np
import pytest

import fastbp
from fastbp import checkpoint, optim
from fastbp import layers as L


def _block(c_in, c_out, stride, dtype=np.float64, seed=0):
    body = fastbp.Sequential(
        L.Conv2D(c_in, c_out, 3, stride=stride, padding=1, dtype=dtype, seed=seed),
        L.BatchNorm2D(c_out, dtype=dtype), L.ReLU(),
        L.Conv2D(c_out, c_out, 3, padding=1, dtype=dtype, seed=seed + 1), L.BatchNorm2D(c_out, dtype=dtype))
    shortcut = None if stride == 1 and c_in == c_out else fastbp.Sequential(
        L.Conv2D(c_in, c_out, 1, stride=stride, dtype=dtype, seed=seed + 2), L.BatchNorm2D(c_out, dtype=dtype))
    return L.Residual(body, shortcut)


def test_forward_is_block_plus_shortcut(rng):
    block = L.Conv2D(3, 3, 3, padding=1, dtype=np.float64, seed=1)
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_array_equal(L.Residual(block).forward(x), block.forward(x) + x)
    short = L.Conv2D(3, 3, 1, dtype=np.float64, seed=2)
    np.testing.assert_array_equal(L.Residual(block, short).forward(x), block.forward(x) + short.forward(x))


@pytest.mark.parametrize("c_in, c_out, stride", [(3, 3, 1), (3, 4, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_gradients_by_finite_differences(rng, c_in, c_out, stride, training):
    model = fastbp.Sequential(_block(c_in, c_out, stride), L.ReLU(), L.GlobalAvgPool2D(),
                              L.Linear(c_out, 3, dtype=np.float64, seed=5))
    if not training:
        model.forward(rng.standard_normal((4, c_in, 6, 6)))  # running statistics away from 0 and 1
    assert fastbp.gradcheck_layer(model, rng.standard_normal((3, c_in, 6, 6)), training=training,
                                  rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("shortcut", [False, True], ids=["identity", "conv"])
def test_backward_is_the_sum_of_both_paths_and_leaves_dy_alone(rng, shortcut):
    """The sum goes into the block's own dx (no new array) but never into dy or a view
    of it: the caller's dy must come back as it was given."""
    block = L.Conv2D(3, 3, 3, padding=1, dtype=np.float64, seed=1)
    short = L.Conv2D(3, 3, 1, dtype=np.float64, seed=2) if shortcut else None
    x, dy = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 5, 5))
    residual = L.Residual(block, short)
    residual.forward(x)
    given = dy.copy()
    dx = residual.backward(dy)
    np.testing.assert_array_equal(dy, given)
    expected = block.backward(dy) + (short.backward(dy) if shortcut else dy)
    np.testing.assert_array_equal(dx, expected)
    assert not np.may_share_memory(dx, dy)


def test_a_block_that_hands_dy_back_gets_a_new_sum(rng):
    residual = L.Residual(L.Flatten(), L.Flatten())  # 2-D input: both backwards are views of dy
    x, dy = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    residual.forward(x)
    given = dy.copy()
    np.testing.assert_array_equal(residual.backward(dy), 2 * given)
    np.testing.assert_array_equal(dy, given)
    identity = L.Residual(L.Flatten())
    identity.forward(x)
    np.testing.assert_array_equal(identity.backward(dy), 2 * given)
    np.testing.assert_array_equal(dy, given)


def test_params_grads_buffers_are_keyed_by_path_and_live():
    model = fastbp.Sequential(L.Conv2D(1, 4, 3, padding=1, dtype=np.float64), _block(4, 6, 2))
    assert sorted(model.params) == sorted(model.grads)
    assert "1.block.0.weight" in model.params and "1.shortcut.0.weight" in model.params
    assert "1.block.1.running_mean" in model.buffers
    assert model.params["1.block.0.weight"] is model.layers[1].block.layers[0].params["weight"]
    assert "1.block.1.weight" in model.no_decay and "1.shortcut.1.bias" in model.no_decay
    assert not optim.SGD(model, 0.1, weight_decay=0.1).decayed["1.block.1.weight"]


def test_backward_accumulates_through_both_paths(rng):
    model = fastbp.Sequential(_block(2, 3, 2))
    x, dy = rng.standard_normal((3, 2, 6, 6)), rng.standard_normal((3, 3, 3, 3))
    model.forward(x)
    model.backward(dy)
    once = {k: v.copy() for k, v in model.grads.items()}
    model.backward(dy)
    assert all(np.array_equal(model.grads[k], once[k]) for k in once)
    assert model.backward(dy, input_grad=False, accumulate=True) is None
    assert all(np.allclose(model.grads[k], 2 * once[k]) for k in once)
    model.zero_grad()
    assert all(not v.any() for v in model.grads.values())


def test_a_sequential_inside_a_sequential(rng):
    inner = fastbp.Sequential(L.Linear(3, 4, dtype=np.float64, seed=1), L.ReLU())
    model = fastbp.Sequential(inner, L.Linear(4, 2, dtype=np.float64, seed=2))
    assert sorted(model.params) == ["0.0.bias", "0.0.weight", "1.bias", "1.weight"]
    assert fastbp.gradcheck_layer(model, rng.standard_normal((5, 3)))
    assert "(0) Sequential(\n    (0) Linear" in repr(model)


def test_shape_mismatch_and_bad_parts_are_clear():
    with pytest.raises(TypeError, match="block must be"):
        L.Residual(3)
    with pytest.raises(ValueError, match="differ in shape"):
        L.Residual(L.Conv2D(2, 3, 1)).forward(np.zeros((1, 2, 4, 4), np.float32))


def test_dtype_conversion_reaches_every_part(rng):
    model = fastbp.Sequential(_block(2, 3, 2, dtype=np.float32), L.GlobalAvgPool2D())
    model.to(np.float64)
    assert all(a.dtype == np.float64 for a in [*model.params.values(), *model.buffers.values()])
    assert model.forward(rng.standard_normal((2, 2, 4, 4))).dtype == np.float64


def test_nested_models_round_trip_through_checkpoints(tmp_path, rng):
    model = fastbp.Sequential(L.Conv2D(1, 2, 3, padding=1, dtype=np.float64), _block(2, 2, 1),
                              _block(2, 3, 2),
                              fastbp.Sequential(L.GlobalAvgPool2D(), L.Linear(3, 2, dtype=np.float64)))
    x = rng.standard_normal((4, 1, 6, 6))
    model.forward(x)
    sgd = optim.Adam(model, 1e-3)
    path = tmp_path / "res.npz"
    checkpoint.save(path, model, sgd)
    loaded = checkpoint.load(path)
    assert checkpoint.describe_model(loaded.model) == checkpoint.describe_model(model)
    assert sorted(loaded.model.params) == sorted(model.params)
    assert np.array_equal(loaded.model.forward(x, training=False), model.forward(x, training=False))
    loaded.make_optimizer()
    header = checkpoint.read_header(path)
    assert header["layers"][2]["type"] == "Residual"
    header["layers"][2]["kwargs"]["shortcut"]["kwargs"]["layers"][0]["kwargs"]["out_channels"] = 5
    arrays = dict(np.load(path))
    arrays["__fastbp__"] = np.array(__import__("json").dumps(header))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match="layer 2"):
        checkpoint.load(tmp_path / "bad.npz")
