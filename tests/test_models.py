import math
import re

import numpy as np
import pytest

import fastbp
from fastbp import models


def widths(model):
    return [(layer.in_features, layer.out_features) for layer in model.layers
            if isinstance(layer, fastbp.Linear)]


def test_mlp_structure_and_output_shape(rng):
    model = models.mlp(784)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert widths(model) == [(784, 256), (256, 128), (128, 10)]
    x = rng.standard_normal((3, 784)).astype(np.float32)
    assert model.forward(x).shape == (3, 10)


def test_mlp_options():
    model = models.mlp(20, [16, 8], 3, activation="tanh", dropout=0.25, dtype=np.float64, seed=1)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear"]
    assert model.layers[2].p == 0.25
    assert all(a.dtype == np.float64 for a in model.params.values())
    # tanh layers get Xavier/Glorot uniform weights, bounded by sqrt(6 / (fan_in + fan_out))
    assert np.abs(model.params["0.weight"]).max() <= math.sqrt(6 / 36)
    assert models.mlp(5, 4, 2).forward(np.ones((1, 5), np.float32)).shape == (1, 2)


def test_builders_are_seeded():
    a, b, c = models.mlp(30, seed=5), models.mlp(30, seed=5), models.mlp(30, seed=6)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(a.params["0.weight"], c.params["0.weight"])
    # every layer gets its own draws from the one generator
    assert not np.array_equal(a.params["2.weight"][:10, :10], a.params["0.weight"][:10, :10])


@pytest.mark.parametrize("size, flat", [(28, 16 * 5 * 5), (32, 16 * 6 * 6), (8, 16 * 2 * 2)])
def test_lenet5_fits_its_image_size(rng, size, flat):
    model = models.lenet5(size, seed=0)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D", "Flatten",
                     "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert model.layers[0].kernel_size == (5, 5) and model.layers[3].kernel_size == (5, 5)
    assert widths(model) == [(flat, 120), (120, 84), (84, 10)]
    x = rng.standard_normal((2, 1, size, size)).astype(np.float32)
    assert model.forward(x).shape == (2, 10)


def test_autoencoder_mirrors_the_encoder(rng):
    model = models.autoencoder(64, (32, 8))
    assert widths(model) == [(64, 32), (32, 8), (8, 32), (32, 64)]
    assert models.encoder_depth((32, 8)) == 4
    encoder = fastbp.Sequential(*model.layers[:4])
    x = rng.standard_normal((5, 64)).astype(np.float32)
    assert encoder.forward(x).shape == (5, 8)
    assert model.forward(x).shape == (5, 64)


@pytest.mark.parametrize("size", [28, 8])
def test_conv_autoencoder_halves_twice_and_rebuilds_the_image(rng, size):
    model = models.conv_autoencoder(size, channels=6, code_channels=3)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "ReLU", "Conv2D", "ReLU", "ConvTranspose2D", "ReLU", "ConvTranspose2D", "Flatten"]
    x = rng.standard_normal((2, 1, size, size)).astype(np.float32)
    code = fastbp.Sequential(*model.layers[:4]).forward(x)
    assert code.shape == (2, 3, size // 4, size // 4)
    assert model.forward(x).shape == (2, size * size)
    small = models.conv_autoencoder(8, channels=2, code_channels=1, dtype=np.float64, seed=3)
    for name, value in small.params.items():  # zero biases behind a dead ReLU sit on its kink
        if name.endswith("bias"):
            value[...] = rng.uniform(0.1, 0.5, value.shape)
    assert fastbp.gradcheck_layer(small, rng.standard_normal((2, 1, 8, 8)))


def test_build_classifier_by_name():
    model, layout = models.build_classifier("lenet", (8, 8))
    assert layout == "image" and isinstance(model.layers[0], fastbp.Conv2D)
    model, layout = models.build_classifier("mlp", (8, 8), hidden=[16])
    assert layout == "flat" and widths(model) == [(64, 16), (16, 10)]
    model, layout = models.build_classifier("linear", (8, 8), num_classes=3)
    assert layout == "flat" and widths(model) == [(64, 3)]


@pytest.mark.parametrize("call, error, match", [
    (lambda: models.mlp(0), ValueError, "in_features"),
    (lambda: models.mlp(10, hidden=[8, -1]), ValueError, "hidden"),
    (lambda: models.mlp(10, activation="swish"), ValueError, "activation"),
    (lambda: models.lenet5(3), ValueError, "image_size"),
    (lambda: models.build_classifier("vgg", (8, 8)), ValueError, "unknown model"),
    (lambda: models.build_classifier("resnet", (8, 6)), ValueError, "square"),
    (lambda: models.resnet(28, widths=(8, 16), blocks=(1,)), ValueError, "one entry per stage"),
    (lambda: models.resnet(28, widths=(8, 0)), ValueError, "widths"),
    (lambda: models.build_classifier("lenet", (8, 6)), ValueError, "square"),
    (lambda: models.autoencoder(10, hidden=[]), ValueError, "hidden"),
    (lambda: models.conv_autoencoder(30), ValueError, "multiple of 4"),
    (lambda: models.conv_autoencoder(28, code_channels=0), ValueError, "code_channels"),
])
def test_bad_builder_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("size", [28, 8])
@pytest.mark.parametrize("separable", [False, True])
def test_resnet_structure_and_output_shape(rng, size, separable):
    model = models.resnet(size, separable=separable, seed=1)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "BatchNorm2D", "ReLU", *["Residual", "ReLU"] * 3, "GlobalAvgPool2D", "Linear"]
    first, second, third = (model.layers[i] for i in (3, 5, 7))
    assert first.shortcut is None and second.shortcut is not None and third.shortcut is not None
    assert second.block.layers[0].stride == (2, 2) and second.shortcut.layers[0].kernel_size == (1, 1)
    if separable:
        assert second.block.layers[0].groups == 16
    x = rng.standard_normal((3, 1, size, size)).astype(np.float32)
    assert model.forward(x).shape == (3, 10)
    assert model.forward(x, training=False).shape == (3, 10)
    assert "bias" not in second.block.layers[0].params and "bias" not in second.shortcut.layers[0].params
    again = models.resnet(size, separable=separable, seed=1)
    assert all(np.array_equal(again.params[name], a) for name, a in model.params.items())


def test_resnet_options_and_build_classifier():
    model = models.resnet(16, 3, 5, widths=(4, 8), blocks=(2, 1), dtype=np.float64)
    assert [type(layer).__name__ for layer in model.layers].count("Residual") == 3
    assert model.forward(np.zeros((2, 3, 16, 16))).shape == (2, 5)
    model, layout = models.build_classifier("resnet", (8, 8), num_classes=4)
    assert layout == "image" and model.forward(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 4)


def test_resnet_trains_from_the_command_and_evaluates(tmp_path, capsys):
    from fastbp import checkpoint, cli

    path = tmp_path / "resnet.npz"
    assert cli.main(["train", "--model", "resnet", "--dataset", "digits", "--epochs", "2",
                     "--batch-size", "32", "--no-progress", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "resnet on digits" in out
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    assert accuracy > 80
    assert "buffers" in checkpoint.read_header(path)
    assert cli.main(["evaluate", str(path)]) == 0
    assert float(re.search(r"test accuracy ([\d.]+)%", capsys.readouterr().out).group(1)) == accuracy
