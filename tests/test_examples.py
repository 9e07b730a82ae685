import importlib.util
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbp import training

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
    assert "after 1 step with learning rate 0.5:" in out
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


def test_resnet_on_digits(tmp_path, capsys):
    path = tmp_path / "resnet.npz"
    assert load("resnet").main(["--dataset", "digits", "--epochs", "2", "--batch-size", "32",
                                "--no-progress", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert accuracy_of(out) > 80 and "s per epoch" in out
    assert path.exists()


def test_autoencoder_on_digits(tmp_path, capsys):
    png = tmp_path / "ae.png"
    assert load("autoencoder").main(["--dataset", "digits", "--hidden", "32", "16", "--epochs", "3",
                                     "--png", str(png), "--count", "4"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "loss: half the squared error summed over an image's 64 standardised pixels" in out
    pca_notice = out.index("PCA baseline: the top 16 principal axes")
    table = out.index("test reconstruction error")
    assert pca_notice < table  # said before the computation
    rows = {}
    for name in ("autoencoder", "PCA with 16 components"):
        row = re.search(re.escape(name) + r" +loss +([\d.]+) +per-pixel MSE ([\d.]+)", out)
        rows[name] = float(row.group(1)), float(row.group(2))
    # both units name the same error: per-pixel MSE on [0, 1] = loss * 2 * std**2 / pixels
    std = training.load_dataset("digits", "flat").stats.std
    for loss, mse in rows.values():
        assert mse == pytest.approx(loss * 2 * std ** 2 / 64, rel=2e-3)
    loss, mse = rows["autoencoder"]
    assert 0 < mse < 0.1  # per-pixel squared error on [0, 1] pixels: far below the data's variance
    # the printed loss is the loss of the epoch lines: the last epoch's test_loss
    test_loss = float(re.search(r"epoch 3/3 .*test_loss ([\d.]+)", captured.err).group(1))
    assert loss == pytest.approx(test_loss, abs=2e-3)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_convolutional_autoencoder_on_digits(capsys):
    """--architecture conv: convolutions down to a 4x2x2 code, transposed convolutions back;
    the loss falls and the PCA baseline has as many components as the code."""
    assert load("autoencoder").main(["--dataset", "digits", "--architecture", "conv",
                                     "--code-channels", "4", "--epochs", "6", "--no-png"]) == 0
    captured = capsys.readouterr()
    assert "autoencoder convolutional, code 4x2x2" in captured.out
    assert re.search(r"PCA with 16 components +loss", captured.out)
    losses = [float(v) for v in re.findall(r"test_loss ([\d.]+)", captured.err)]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]


def test_autoencoder_pca_baseline_matches_an_svd():
    example = load("autoencoder")
    x = training.load_dataset("digits", "flat").train[0]
    test = x[:50]
    mean = x.mean(axis=0, dtype=np.float64)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    expected = (test - mean) @ vt[:8].T @ vt[:8] + mean
    np.testing.assert_allclose(example.pca_reconstruction(x, test, 8), expected, atol=1e-4)
    got_mean, axes = example.principal_axes(x, 8, chunk=100)  # several chunks
    np.testing.assert_allclose(got_mean, mean)
    np.testing.assert_allclose(np.abs(axes @ vt[:8].T), np.eye(8), atol=1e-4)


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST is not installed in {FASHION} "
                    "(Debian package dataset-fashion-mnist)")
def test_mnist_mlp_learns_fashion_mnist(capsys):
    assert load("mnist_mlp").main(["--train-limit", "3000", "--epochs", "2", "--hidden", "64",
                                   "--no-progress"]) == 0
    assert accuracy_of(capsys.readouterr().out) > 65


def run_as_script(name, args, monkeypatch):
    """Run examples/<name>.py as ``python examples/<name>.py args`` would, in this process;
    returns the exit status."""
    path = EXAMPLES / f"{name}.py"
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(path), run_name="__main__")
    return exit_info.value.code


def help_entries(text):
    """{option: its help text, whitespace normalised} from argparse's --help output."""
    entries, current = {}, None
    for line in text.split("options:", 1)[1].splitlines():
        match = re.match(r"  (-\S+)(.*)", line)
        if match:
            current = match.group(1).rstrip(",")
            entries[current] = match.group(2)
        elif current:
            entries[current] += " " + line
    return {option: " ".join(words.split()) for option, words in entries.items()}


@pytest.mark.parametrize("name", ["worked_example", "xor", "mnist_mlp", "lenet", "resnet", "autoencoder",
                                  "demo"])
def test_examples_have_help(name, monkeypatch, capsys):
    assert run_as_script(name, ["--help"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {name}.py ")
    description = out.split("\n\n")[1]
    assert description.rstrip().endswith("."), description  # a whole sentence, not cut
    assert "(default: None)" not in out
    entries = help_entries(out)
    assert entries
    for option, text in entries.items():
        takes_value = option not in ("-h", "--help", "--no-progress", "--no-png")
        # every option that takes a value says its default, once
        assert text.count("(default:") == (1 if takes_value else 0), (option, text)
    assert run_as_script(name, ["--no-such-option"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {name}.py ") and "unrecognized arguments: --no-such-option" in err
