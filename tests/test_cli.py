import re
import subprocess
import sys

import numpy as np
import pytest

from fastbp import checkpoint, cli

FAST = ["--dataset", "digits", "--hidden", "32", "--batch-size", "128", "--no-progress"]


def accuracy_of(text):
    return float(re.search(r"test accuracy ([\d.]+)%", text).group(1))


def test_train_saves_plots_and_prints_accuracy(tmp_path, capsys):
    model_path, png = tmp_path / "model.npz", tmp_path / "curves.png"
    status = cli.main(["train", *FAST, "--epochs", "3", "--save", str(model_path), "--plot", str(png)])
    out = capsys.readouterr().out
    assert status == 0
    assert accuracy_of(out) > 80
    assert "mlp on digits, 3 epochs" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    state = checkpoint.load(model_path)
    assert state.epoch == 3 and state.metadata["dataset"] == "digits"
    assert state.history["test_accuracy"][-1] == pytest.approx(accuracy_of(out) / 100, abs=5e-5)

    assert cli.main(["evaluate", str(model_path)]) == 0
    assert accuracy_of(capsys.readouterr().out) == accuracy_of(out)


def test_resume_continues_like_a_straight_run(tmp_path, capsys):
    straight, part = tmp_path / "straight.npz", tmp_path / "part.npz"
    # the same schedule in both runs: lr / 10 from epoch 2 on
    args = [*FAST, "--optimizer", "adam", "--schedule", "step", "--milestones", "1", "--seed", "3"]
    assert cli.main(["train", *args, "--epochs", "2", "--save", str(straight)]) == 0
    assert cli.main(["train", *args, "--epochs", "1", "--save", str(part)]) == 0
    assert cli.main(["train", "--resume", str(part), "--epochs", "2", "--save", str(part), "--no-progress"]) == 0
    capsys.readouterr()
    a, b = checkpoint.load(straight), checkpoint.load(part)
    assert b.epoch == 2
    for name, array in a.model.params.items():
        np.testing.assert_array_equal(b.model.params[name], array)
    assert cli.main(["train", "--resume", str(part), "--epochs", "2"]) == 1
    assert "already holds 2 epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--resume", str(part), "--epochs", "3", "--dataset", "mnist"])
    assert info.value.code == 2
    assert f"--dataset mnist conflicts with {part}, a run of mlp on digits" in capsys.readouterr().err


def test_lenet_and_linear_models_train(capsys):
    assert cli.main(["train", "--model", "lenet", "--dataset", "digits", "--epochs", "1",
                     "--batch-size", "128", "--no-progress"]) == 0
    assert "lenet on digits" in capsys.readouterr().out
    assert cli.main(["train", "--model", "linear", "--dataset", "digits", "--epochs", "2",
                     "--no-progress"]) == 0
    assert accuracy_of(capsys.readouterr().out) > 70


def test_info_reports_versions_threads_and_cpu(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for field in ("fastbp", "numpy", "numba", "threading layer", "threads", "cpu"):
        assert re.search(rf"^{field}\s", out, re.MULTILINE), field
    assert re.search(r"^threading layer\s+tbb \(safe for concurrent calls and fork\)$", out,
                     re.MULTILINE)
    from fastbp.kernels import isa

    # fastbp turns LLVM's 256-bit preference off on every AVX-512 CPU (_vector_width.py)
    avx512 = "AVX-512, 512-bit vectors" if isa.masked_vectors() else "no AVX-512"
    assert re.search(rf"^compiled for\s+\S+ \({avx512}\)$", out, re.MULTILINE), out


@pytest.mark.parametrize("argv, message", [
    ([], "required: COMMAND"),
    (["fly"], "invalid choice: 'fly'"),
    (["train", "--epochs", "0"], "argument --epochs: epochs must be a positive int, got 0"),
    (["train", "--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
    (["train", "--lr", "-0.1"], "lr must be a finite number in (0.0, inf], got -0.1"),
    (["train", "--lr", "nan"], "lr must be a finite number in (0.0, inf], got nan"),
    (["train", "--model", "vgg"], "--model: invalid choice"),
    (["train", "--dataset", "cifar"], "--dataset: invalid choice"),
    (["train", "--threads", "100000"], "argument --threads: n=100000 exceeds"),
    (["train", "--weight-decay", "-1"], "weight_decay must be a finite number in [0.0, inf], got -1.0"),
    (["evaluate"], "required: MODEL.npz"),
    # values the library refuses, found before any work starts
    (["train", "--epochs", "-3"], "argument --epochs: epochs must be a positive int, got -3"),
    (["train", "--batch-size", "0"], "batch_size must be a positive int, got 0"),
    (["train", "--batch-size", "-2"], "batch_size must be a positive int, got -2"),
    (["train", "--lr", "0"], "lr must be a finite number in (0.0, inf], got 0.0"),
    (["train", "--lr", "inf"], "lr must be a finite number in (0.0, inf], got inf"),
    (["train", "--momentum", "1"], "momentum must be a finite number in [0.0, 1.0), got 1.0"),
    (["train", "--momentum", "-0.5"], "momentum must be a finite number in [0.0, 1.0), got -0.5"),
    (["train", "--seed", "-1"], "seed must be a non-negative int, got -1"),
    (["train", "--train-limit", "0"], "argument --train-limit: train_limit must be a positive int, got 0"),
    (["train", "--milestones", "0"], "milestones must be positive ints, got [0]"),
    (["train", "--hidden", "16", "0"], "argument --hidden: hidden must be a positive int, got 0"),
    (["train", "--threads", "0"], "argument --threads: n must be a positive int, got 0"),
    # files and directories that are not there
    (["evaluate", "/nonexistent/model.npz"], "argument MODEL.npz: no such file: '/nonexistent/model.npz'"),
    (["evaluate", "/"], "argument MODEL.npz: not a file: '/'"),
    (["train", "--resume", "/nonexistent/model.npz"], "--resume: no such file: '/nonexistent/model.npz'"),
    (["train", "--save", "/nonexistent/dir/m.npz"], "--save: cannot write '/nonexistent/dir/m.npz': no such directory"),
    (["train", "--plot", "/nonexistent/dir/c.png"], "--plot: cannot write '/nonexistent/dir/c.png': no such directory"),
    (["train", "--data-dir", "/nonexistent/dir"], "--data-dir: no such directory: '/nonexistent/dir'"),
    # options that do not go together
    (["train", "--model", "lenet", "--hidden", "8"], "fastbp train: error: --hidden applies to the mlp model, not lenet"),
    (["train", "--optimizer", "adam", "--momentum", "0.5"],
     "fastbp train: error: --momentum applies to the sgd optimizer, not adam"),
    (["train", "--schedule", "cosine", "--milestones", "3"],
     "fastbp train: error: --milestones applies to the step schedule, not cosine"),
    # fastbp bench parses its own arguments, with the same checks, before any timing
    (["bench", "--threads", "0"], "argument --threads: n must be a positive int, got 0"),
    (["bench", "--threads", "100000"], "argument --threads: n=100000 exceeds"),
    (["bench", "--repeat", "0"], "argument --repeat: repeat must be a positive int, got 0"),
    (["bench", "--repeat", "-1"], "argument --repeat: repeat must be a positive int, got -1"),
    (["bench", "--json", "/nonexistent/dir/x.json"],
     "--json: cannot write '/nonexistent/dir/x.json': no such directory '/nonexistent/dir'"),
    (["bench", "--plot", "/nonexistent/dir/x.png"], "--plot: cannot write '/nonexistent/dir/x.png'"),
])
def test_bad_arguments_exit_2_with_a_usage_message(argv, message, capsys, monkeypatch):
    from fastbp.bench import compare

    for module, name in [(cli.training, "load_dataset"), (compare, "measure"), (compare, "gemm_gflops")]:
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: " in err and message in err
    assert "Traceback" not in err
    assert message in err.splitlines()[-1]
    if argv[:1] != ["bench"]:  # fastbp bench names itself after its own entry point
        assert "usage: fastbp" in err and err.splitlines()[-1].startswith("fastbp")


def test_bad_option_after_an_existing_checkpoint_exits_2(tmp_path, capsys):
    from fastbp import models

    path = tmp_path / "m.npz"
    checkpoint.save(path, models.mlp(64, [16]))
    with pytest.raises(SystemExit) as info:
        cli.main(["evaluate", str(path), "--batch-size", "0"])
    assert info.value.code == 2
    assert "argument --batch-size: batch_size must be a positive int, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--save", str(tmp_path), "--epochs", "1"])
    assert info.value.code == 2
    assert "it is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--save", "--plot"])
def test_unwritable_outputs_exit_2_before_any_work(tmp_path, capsys, monkeypatch, option):
    """A path under a regular file cannot be written, even by root: found while parsing,
    naming the path given, not a temporary file after the first epoch."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    monkeypatch.setattr(cli.training, "load_dataset", lambda *a, **k: pytest.fail("work started"))
    for target, problem in [(blocker / "m.npz", f"'{blocker}' is not a directory"),
                            (blocker / "sub" / "m.npz", f"'{blocker}' is not a directory"),
                            (tmp_path, "it is a directory")]:
        with pytest.raises(SystemExit) as info:
            cli.main(["train", *FAST, option, str(target)])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.splitlines()[-1] == f"fastbp train: error: argument {option}: cannot write '{target}': {problem}"
        assert ".part" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]  # the check leaves nothing behind


def test_bench_checks_its_outputs_before_timing_anything(tmp_path, capsys, monkeypatch):
    from fastbp.bench import compare

    monkeypatch.setattr(compare, "gemm_gflops", lambda *a: pytest.fail("the benchmark started"))
    monkeypatch.setattr(compare, "measure", lambda *a: pytest.fail("the benchmark started"))
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    for argv in (["--json", str(blocker / "x.json")], ["--plot", str(tmp_path)], ["--threads", "0"]):
        with pytest.raises(SystemExit) as info:
            cli.main(["bench", "--quick", "--only", "linear", *argv])
        assert info.value.code == 2
    assert "argument --threads: n must be a positive int, got 0" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--plot", str(tmp_path / "r.png")])
    assert info.value.code == 2 and "--plot needs matplotlib" in capsys.readouterr().err


def test_runtime_failures_exit_1_with_one_error_line(tmp_path, capsys, monkeypatch):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a checkpoint")
    assert cli.main(["evaluate", str(junk)]) == 1
    assert "not a fastbp checkpoint" in capsys.readouterr().err

    monkeypatch.delenv("FASTBP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cli.main(["train", "--dataset", "mnist", "--no-download", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastbp train: error: MNIST 'train' split not found")

    assert cli.main(["train", *FAST, "--lr", "1e6", "--momentum", "0", "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"fastbp train: error: the training loss became (nan|inf) at epoch 1/2, step \d+/12", err)


def test_damaged_checkpoints_exit_1_with_one_error_line_not_a_traceback(tmp_path, capsys):
    from fastbp import models, optim

    model = models.mlp(64, [16])
    path = tmp_path / "run.npz"
    # a resumable checkpoint whose saved schedule is damaged
    checkpoint.save(path, model, optim.SGD(model, 0.1), epoch=1, history={},
                    training={"loss": "cross_entropy", "schedule": {"type": "Step", "lr": "fast", "step_size": 2}},
                    metadata={"dataset": "digits", "model": "mlp", "layout": "flat", "stats": [0.3, 0.4]})
    assert cli.main(["train", "--resume", str(path), "--epochs", "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith(f"fastbp train: error: {path}: cannot resume from its training state: ")
    assert "lr must be a real number" in err

    checkpoint.save(path, model, metadata={"dataset": "digits", "stats": [0.5]})
    assert cli.main(["evaluate", str(path)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "malformed normalisation statistics [0.5]" in err


def test_plot_without_matplotlib_fails_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["train", *FAST, "--plot", str(tmp_path / "c.png")]) == 1
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_evaluate_a_model_saved_without_metadata(tmp_path, capsys):
    from fastbp import models

    path = tmp_path / "plain.npz"
    checkpoint.save(path, models.mlp(64, [16]))
    assert cli.main(["evaluate", str(path)]) == 1
    assert "pass --dataset" in capsys.readouterr().err
    assert cli.main(["evaluate", str(path), "--dataset", "digits"]) == 0
    assert "359 digits test samples" in capsys.readouterr().out
    checkpoint.save(path, models.mlp(784, [16]))
    assert cli.main(["evaluate", str(path), "--dataset", "digits"]) == 1
    assert "does not fit digits images" in capsys.readouterr().err


def test_version_and_help_in_process(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("fastbp ")
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and out.startswith("usage: fastbp train")
    # the defaults of a new run, and what --resume does with them, are visible
    assert "mini-batch size (default: 64; on --resume: the saved one, unless given)" in " ".join(out.split())


def test_missing_input_file_is_one_usage_line(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["evaluate", "missing-model.npz"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == "fastbp evaluate: error: argument MODEL.npz: no such file: 'missing-model.npz'"


def test_python_dash_m_entry_point_passes_the_exit_status(tmp_path):
    """The one subprocess test: ``python -m fastbp`` runs ``main`` and exits with its status."""
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a checkpoint")
    run = subprocess.run([sys.executable, "-m", "fastbp", "evaluate", str(junk)], capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"fastbp evaluate: error: {junk}: not a fastbp checkpoint")


def test_bench_gets_its_arguments_verbatim(monkeypatch, capsys):
    from fastbp.bench import compare

    calls = []
    monkeypatch.setattr(compare, "main", lambda argv: calls.append(argv) or 3)
    assert cli.main(["bench", "--threads", "2", "--help"]) == 3
    assert calls == [["--threads", "2", "--help"]]
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "bench" in capsys.readouterr().out
