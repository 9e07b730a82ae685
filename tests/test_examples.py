import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def accuracy_of(text):
    return float(re.search(r"test accuracy ([\d.]+)%", text).group(1))


# The classic hand-computed 2-2-2 example: total error before the step and w1..w8 after it.
CLASSIC_ERROR = 0.298371109
CLASSIC_WEIGHTS = [0.149780716, 0.19956143, 0.24975114, 0.29950229,
                   0.35891648, 0.408666186, 0.511301270, 0.561370121]


def test_worked_example_reproduces_the_hand_computation(capsys):
    example = load("worked_example")
    result = example.run(steps=1)
    assert abs(result["errors"][0] - CLASSIC_ERROR) < 1e-8
    for got, expected in zip(result["weights"], CLASSIC_WEIGHTS):
        assert abs(got - expected) < 1e-8
    assert result["errors"][1] < result["errors"][0]
    assert example.main([]) == 0
    out = capsys.readouterr().out
    assert "total error before the step: 0.298371109" in out
    assert "w5 = 0.358916480" in out and "w1 = 0.149780716" in out


def test_worked_example_error_keeps_falling():
    errors = load("worked_example").run(steps=50)["errors"]
    assert all(b < a for a, b in zip(errors, errors[1:]))


def test_xor_linear_model_fails_and_network_learns(capsys):
    assert load("xor").main([]) == 0
    out = capsys.readouterr().out
    linear = re.search(r"linear model 2-2 +loss ([\d.]+) +accuracy +(\d+)%", out)
    network = re.search(r"network 2-4-2 \(tanh\) +loss ([\d.]+) +accuracy +(\d+)% +predicts (.*)", out)
    assert float(linear.group(1)) > 0.6 and int(linear.group(2)) <= 75
    assert float(network.group(1)) < 0.01 and int(network.group(2)) == 100
    assert network.group(3) == "[0, 1, 1, 0]"


def test_mnist_mlp_on_digits(tmp_path, capsys):
    png, model = tmp_path / "curves.png", tmp_path / "mlp.npz"
    status = load("mnist_mlp").main(["--dataset", "digits", "--epochs", "6", "--hidden", "64",
                                     "--batch-size", "32", "--no-progress", "--save", str(model),
                                     "--plot", str(png)])
    assert status == 0
    assert accuracy_of(capsys.readouterr().out) > 90
    assert png.read_bytes()[:4] == b"\x89PNG" and model.exists()


def test_lenet_on_digits(capsys):
    assert load("lenet").main(["--dataset", "digits", "--epochs", "2", "--batch-size", "32",
                               "--no-progress"]) == 0
    assert accuracy_of(capsys.readouterr().out) > 50


def test_autoencoder_on_digits(tmp_path, capsys):
    png = tmp_path / "ae.png"
    assert load("autoencoder").main(["--dataset", "digits", "--hidden", "32", "16", "--epochs", "3",
                                     "--png", str(png), "--count", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    error = float(re.search(r"autoencoder ([\d.]+)", out.split("reconstruction error")[1]).group(1))
    assert 0 < error < 0.1  # per-pixel squared error on [0, 1] pixels: far below the data's variance
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST is not installed in {FASHION} "
                    "(Debian package dataset-fashion-mnist)")
def test_mnist_mlp_learns_fashion_mnist(capsys):
    assert load("mnist_mlp").main(["--train-limit", "3000", "--epochs", "2", "--hidden", "64",
                                   "--no-progress"]) == 0
    assert accuracy_of(capsys.readouterr().out) > 65


@pytest.mark.parametrize("name", ["worked_example", "xor", "mnist_mlp", "lenet", "autoencoder"])
def test_examples_have_help(name):
    result = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("usage:")
    bad = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--no-such-option"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unrecognized arguments" in bad.stderr
