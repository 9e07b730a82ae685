import numpy as np
import pytest

import fastbp

F64 = dict(dtype=np.float64)

LAYERS = [
    (lambda: fastbp.Linear(5, 3, seed=0, **F64), (4, 5)),
    (lambda: fastbp.Linear(5, 3, bias=False, init="xavier", seed=0, **F64), (1, 5)),
    (lambda: fastbp.Conv2D(2, 3, 3, seed=0, **F64), (2, 2, 5, 5)),
    (lambda: fastbp.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=(1, 2), seed=0, **F64), (2, 2, 6, 5)),
    (lambda: fastbp.Conv2D(1, 2, 1, bias=False, seed=0, **F64), (1, 1, 3, 3)),
    (lambda: fastbp.MaxPool2D(2, **F64), (2, 3, 4, 4)),
    (lambda: fastbp.MaxPool2D(3, 2, 1, **F64), (1, 2, 7, 6)),
    (lambda: fastbp.AvgPool2D(2, **F64), (2, 3, 4, 4)),
    (lambda: fastbp.AvgPool2D((3, 2), 1, (1, 0), **F64), (1, 2, 5, 5)),
    (lambda: fastbp.ReLU(**F64), (3, 7)),
    (lambda: fastbp.LeakyReLU(0.2, **F64), (3, 7)),
    (lambda: fastbp.Sigmoid(**F64), (3, 7)),
    (lambda: fastbp.Tanh(**F64), (2, 3, 4)),
    (lambda: fastbp.ELU(0.5, **F64), (3, 7)),
    (lambda: fastbp.Softplus(**F64), (3, 7)),
    (lambda: fastbp.Maxout(5, 2, 3, seed=0, **F64), (4, 5)),
    (lambda: fastbp.Flatten(**F64), (2, 3, 2, 2)),
    (lambda: fastbp.Dropout(0.5, seed=0, **F64), (3, 7)),
]


@pytest.mark.parametrize("make,shape", LAYERS, ids=lambda v: repr(v()) if callable(v) else str(v))
def test_layer_gradients_by_finite_differences(make, shape, rng):
    layer = make()
    for name, value in layer.params.items():
        value[...] = rng.standard_normal(value.shape)
    # Dropout draws a new mask per forward, so check it in evaluation mode (the identity);
    # its training-mode backward is checked against its mask below.
    training = not isinstance(layer, fastbp.Dropout)
    assert fastbp.gradcheck_layer(layer, rng.standard_normal(shape), training=training)


def test_params_are_live_arrays():
    layer = fastbp.Linear(3, 2, dtype=np.float64, seed=0)
    layer.params["weight"][...] = 0
    layer.params["bias"][...] = [1, 2]
    np.testing.assert_array_equal(layer.forward(np.ones((4, 3))), np.tile([1.0, 2.0], (4, 1)))


WEIGHT_LAYERS = [(make, shape) for make, shape in LAYERS if make().params]


@pytest.mark.parametrize("make,shape", WEIGHT_LAYERS, ids=lambda v: repr(v()) if callable(v) else str(v))
def test_backward_stores_this_calls_gradients_and_accumulate_adds(make, shape, rng):
    layer = make()
    x1, x2 = rng.standard_normal(shape), rng.standard_normal(shape)
    dy = rng.standard_normal(layer.forward(x1).shape)
    layer.backward(dy)
    first = {k: v.copy() for k, v in layer.grads.items()}
    for grad in layer.grads.values():
        grad[...] = np.nan  # whatever was there before is overwritten, not added to
    layer.backward(dy)
    for name, grad in layer.grads.items():
        np.testing.assert_array_equal(grad, first[name])
    layer.forward(x2)
    layer.backward(dy)
    second = {k: v.copy() for k, v in layer.grads.items()}
    layer.forward(x1)
    layer.backward(dy)
    layer.forward(x2)
    assert layer.backward(dy, input_grad=False, accumulate=True) is None
    for name, grad in layer.grads.items():
        np.testing.assert_allclose(grad, first[name] + second[name], rtol=1e-12, atol=1e-12)
    layer.zero_grad()
    assert all(not grad.any() for grad in layer.grads.values())


def test_same_seed_same_weights_and_dtype():
    a = fastbp.Conv2D(3, 4, 3, seed=7)
    b = fastbp.Conv2D(3, 4, 3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])
    assert a.params["weight"].dtype == np.float32
    assert not np.array_equal(a.params["weight"], fastbp.Conv2D(3, 4, 3, seed=8).params["weight"])


def test_he_initialisation_has_the_promised_variance():
    w = fastbp.Linear(1000, 500, seed=0, dtype=np.float64).params["weight"]
    assert w.std() == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    w = fastbp.Linear(1000, 500, seed=0, init="xavier", dtype=np.float64).params["weight"]
    assert np.abs(w).max() <= np.sqrt(6 / 1500)
    assert w.std() == pytest.approx(np.sqrt(6 / 1500) / np.sqrt(3), rel=0.02)


def test_dropout_training_and_evaluation(rng):
    layer = fastbp.Dropout(0.25, seed=0, dtype=np.float64)
    x = rng.standard_normal((200, 50)) + 5
    y = layer.forward(x)
    kept = y != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], x[kept] / 0.75)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), np.where(kept, dy / 0.75, 0.0))
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


def test_max_pool_layer_reuses_the_forward_argmax(rng):
    layer = fastbp.MaxPool2D(2, dtype=np.float64)
    x = rng.standard_normal((2, 3, 4, 4))
    dy = rng.standard_normal((2, 3, 2, 2))
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy), fastbp.functional.max_pool2d_backward(dy, x, 2))


def test_sequential_chains_and_collects_parameters(rng):
    model = fastbp.Sequential(
        fastbp.Conv2D(1, 2, 3, padding=1, seed=0, **F64), fastbp.ReLU(**F64),
        fastbp.MaxPool2D(2, **F64), fastbp.Flatten(**F64), fastbp.Linear(8, 3, seed=1, **F64),
    )
    assert list(model.params) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert model.params["4.weight"] is model.layers[4].params["weight"]
    assert model.grads.keys() == model.params.keys()
    assert len(model) == 5 and model[1] is model.layers[1]
    assert fastbp.gradcheck_layer(model, rng.standard_normal((2, 1, 4, 4)))


def test_sequential_shape_error_names_both_layers_and_shapes():
    model = fastbp.Sequential(fastbp.Linear(4, 3, seed=0), fastbp.ReLU(), fastbp.Linear(5, 2, seed=0))
    with pytest.raises(ValueError, match=r"layer 2 Linear\(5, 2.*layer 1 ReLU\(\), of shape \(6, 3\).*3 features"):
        model.forward(np.ones((6, 4), np.float32))


def test_layer_rejects_wrong_dtype_and_backward_before_forward():
    layer = fastbp.Linear(3, 2, seed=0)
    with pytest.raises(TypeError, match="float32 parameters but got float64"):
        layer.forward(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones((1, 2), np.float32))
    pool = fastbp.MaxPool2D(2)
    pool.forward(np.ones((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"dy has shape \(1, 1, 3, 3\), expected \(1, 1, 2, 2\)"):
        pool.backward(np.ones((1, 1, 3, 3), np.float32))
    with pytest.raises(TypeError, match="ran forward in float32 but got float64 dy"):
        pool.backward(np.ones((1, 1, 2, 2)))
    with pytest.raises(TypeError, match="must be a fastbp Layer"):
        fastbp.Sequential(fastbp.ReLU(), "relu")


@pytest.mark.parametrize("make,shape", LAYERS, ids=lambda v: repr(v()) if callable(v) else str(v))
def test_backward_without_input_grad_fills_the_same_parameter_grads(make, shape, rng):
    layer = make()
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(layer.forward(x, training=False).shape)
    layer.forward(x, training=False)
    layer.backward(dy)
    full = {name: grad.copy() for name, grad in layer.grads.items()}
    layer.zero_grad()
    assert layer.backward(dy, input_grad=False) is None
    for name, grad in layer.grads.items():
        np.testing.assert_array_equal(grad, full[name])


def test_sequential_backward_can_skip_the_first_layers_input_grad(rng):
    model = fastbp.Sequential(fastbp.Conv2D(1, 2, 3, seed=0, **F64), fastbp.ReLU(**F64),
                              fastbp.Flatten(**F64), fastbp.Linear(8, 2, seed=1, **F64))
    x = rng.standard_normal((3, 1, 4, 4))
    dy = rng.standard_normal((3, 2))
    model.forward(x)
    dx = model.backward(dy)
    full = {name: grad.copy() for name, grad in model.grads.items()}
    model.zero_grad()
    assert dx.shape == x.shape and model.backward(dy, input_grad=False) is None
    for name, grad in model.grads.items():
        np.testing.assert_array_equal(grad, full[name])


def test_a_fused_pair_first_in_a_model_can_skip_its_input_grad(rng):
    model = fastbp.Sequential(fastbp.ReLU(**F64), fastbp.MaxPool2D(2, **F64),
                              fastbp.Flatten(**F64), fastbp.Linear(8, 2, seed=1, **F64))
    x = rng.standard_normal((3, 2, 4, 4))
    model.forward(x)
    dx = model.backward(rng.standard_normal((3, 2)))
    assert dx.shape == x.shape and model.backward(np.ones((3, 2)), input_grad=False) is None


def test_layers_reach_the_kernels_only_through_functional():
    """kernels <- functional <- layers: no layer module (nor Sequential) imports
    ``fastbp.kernels``, ``Workspace`` included."""
    import ast
    import pathlib

    root = pathlib.Path(fastbp.layers.__file__).parent
    for path in [*root.glob("*.py"), root.parent / "sequential.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any("kernels" in name for name in names), path.name
