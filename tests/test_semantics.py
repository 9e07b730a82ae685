"""What a training loop written by hand can rely on: ``backward`` stores this step's
gradients (``accumulate=True`` adds), layers without parameters take either float dtype,
``model.to(dtype, optimizer)`` converts a model with its optimiser, and an optimiser
refuses to step when the arrays it updates are no longer the model's."""

import numpy as np
import pytest

import fastbp
from fastbp import functional as F
from fastbp import optim, training


@pytest.fixture(scope="module")
def digits():
    return training.load_dataset("digits", "flat")


def mlp(seed=0, dtype=np.float32):
    return fastbp.Sequential(fastbp.Linear(64, 64, seed=seed, dtype=dtype), fastbp.ReLU(),
                             fastbp.Linear(64, 10, seed=seed + 1, dtype=dtype))


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.forward(x, training=False), axis=1) == y))


def test_the_notes_loop_without_zero_grad_trains_like_the_trainer(digits):
    """forward, loss, backward, W -= lr * dW: no zero_grad anywhere."""
    (x, y), (x_test, y_test) = digits.train, digits.test
    lr, epochs, batch = 0.1, 10, 64
    net = mlp()
    for epoch in range(epochs):
        order = np.random.default_rng([0, epoch]).permutation(len(x))
        for start in range(0, len(x), batch):
            index = order[start:start + batch]
            _, dout = F.softmax_cross_entropy(net.forward(x[index]), y[index])
            net.backward(dout)
            for layer in net.layers:
                for name, param in layer.params.items():
                    param -= lr * layer.grads[name]
    by_hand = accuracy(net, x_test, y_test)

    model = mlp()
    fastbp.fit(model, digits.train, epochs=epochs, lr=lr, batch_size=batch, progress=False)
    by_trainer = accuracy(model, x_test, y_test)
    assert by_trainer > 0.9
    assert by_hand > by_trainer - 0.02, (by_hand, by_trainer)


def test_accumulated_micro_batches_give_the_full_batch_gradient(rng):
    model = fastbp.Sequential(fastbp.Conv2D(1, 2, 3, padding=1, seed=0, dtype=np.float64),
                              fastbp.ReLU(), fastbp.MaxPool2D(2), fastbp.Flatten(),
                              fastbp.Linear(8, 3, seed=1, dtype=np.float64))
    x = rng.standard_normal((6, 1, 4, 4))
    dy = rng.standard_normal((6, 3))
    model.forward(x)
    model.backward(dy)
    full = {k: v.copy() for k, v in model.grads.items()}
    for i, part in enumerate((slice(0, 2), slice(2, 6))):
        model.forward(x[part])
        model.backward(dy[part], accumulate=i > 0)
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, full[name], rtol=1e-12, atol=1e-12)


def test_the_notes_worked_example_runs_in_float64():
    net = fastbp.Sequential(fastbp.Linear(2, 2, dtype=np.float64), fastbp.Sigmoid(),
                            fastbp.Linear(2, 2, dtype=np.float64), fastbp.Sigmoid())
    out = net.forward(np.array([[0.05, 0.10]]))
    assert out.dtype == np.float64
    assert net.backward(out - np.array([[0.01, 0.99]])).dtype == np.float64


@pytest.mark.parametrize("layer", [fastbp.ReLU(), fastbp.Sigmoid(), fastbp.Tanh(), fastbp.ELU(),
                                   fastbp.Softplus(), fastbp.LeakyReLU(), fastbp.MaxPool2D(2),
                                   fastbp.AvgPool2D(2), fastbp.Flatten(), fastbp.Dropout(0.5, seed=0)],
                         ids=repr)
def test_layers_without_parameters_take_either_float_dtype(layer, rng):
    assert layer.dtype is None
    for dtype in (np.float32, np.float64, np.float32):
        x = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
        y = layer.forward(x)
        assert y.dtype == dtype
        assert layer.backward(np.ones_like(y)).dtype == dtype
    with pytest.raises(TypeError, match="float32 or float64 input, got int64"):
        layer.forward(np.ones((2, 3, 4, 4), np.int64))


def test_a_weight_layer_of_another_dtype_is_named_with_the_fix(rng):
    net = fastbp.Sequential(fastbp.Linear(3, 4, dtype=np.float64), fastbp.ReLU(),
                            fastbp.Linear(4, 2))
    with pytest.raises(TypeError, match=r"layer 2 Linear\(4, 2.*holds float32 parameters but got "
                                        r"float64 input.*model.to\(np.float64\)"):
        net.forward(rng.standard_normal((5, 3)))


def test_to_converts_a_model_and_its_optimiser_state(digits):
    model = mlp()
    opt = optim.SGD(model, 0.1, momentum=0.9)
    trainer = fastbp.Trainer(model, opt, batch_size=64, progress=False)
    trainer.fit(digits.train, epochs=1)
    velocity = {k: v.copy() for k, v in opt.buffers["velocity"].items()}
    weights = {k: v.copy() for k, v in model.params.items()}

    assert model.to(np.float64, opt) is model
    for name, param in model.params.items():
        assert param.dtype == np.float64 and model.grads[name].dtype == np.float64
        assert opt.params[name] is param
        np.testing.assert_array_equal(param, weights[name].astype(np.float64))
        np.testing.assert_array_equal(opt.buffers["velocity"][name], velocity[name])
        assert opt.buffers["velocity"][name].dtype == np.float64
    x, y = digits.train
    trainer.fit((x.astype(np.float64), y), epochs=2)
    assert not np.array_equal(model.params["0.weight"], weights["0.weight"])
    assert model.forward(x[:3].astype(np.float64)).dtype == np.float64


def test_an_optimiser_refuses_arrays_replaced_after_it_was_built(rng):
    model = mlp()
    opt = optim.SGD(model, 0.1)
    model.forward(rng.standard_normal((4, 64)).astype(np.float32))
    model.backward(np.ones((4, 10), np.float32))
    model.layers[0].params["weight"] = np.zeros((64, 64), np.float32)
    with pytest.raises(ValueError, match=r"'0.weight' is not the array this optimiser updates"):
        opt.step()
    model.layers[0].params["weight"] = opt.params["0.weight"]
    opt.step()  # the live arrays again


def test_a_trainer_refuses_a_layer_replaced_after_it_was_built(digits):
    model = mlp()
    trainer = fastbp.Trainer(model, optim.SGD(model.params, 0.1), progress=False)
    model.layers[2] = fastbp.Linear(64, 10, seed=5)
    with pytest.raises(ValueError, match=r"'2.weight' is not the array this optimiser updates"):
        trainer.fit(digits.train, epochs=1)
