"""Options given with ``fastbp train --resume`` (and overrides of ``Trainer.resume``) replace
the saved settings, or are refused; none is ignored."""

import numpy as np
import pytest

import fastbp
from fastbp import checkpoint, cli, optim
from fastbp.checkpoint import CheckpointError

BASE = ["--dataset", "digits", "--hidden", "16", "--train-limit", "300", "--no-progress"]
SAVED = ["--lr", "0.05", "--batch-size", "100", "--momentum", "0.5", "--weight-decay", "1e-4",
         "--seed", "3", "--schedule", "step", "--milestones", "2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One epoch of an SGD run and of an Adam run, saved by the command."""
    directory = tmp_path_factory.mktemp("runs")
    sgd, adam = directory / "sgd.npz", directory / "adam.npz"
    assert cli.main(["train", *BASE, *SAVED, "--epochs", "1", "--save", str(sgd)]) == 0
    assert cli.main(["train", *BASE, "--optimizer", "adam", "--epochs", "1", "--save", str(adam)]) == 0
    return {"sgd": sgd, "adam": adam}


def resume(path, tmp_path, *options):
    out = tmp_path / "resumed.npz"
    assert cli.main(["train", "--resume", str(path), "--epochs", "2", "--save", str(out), "--no-progress",
                     *options]) == 0
    return checkpoint.load(out)


def test_without_options_the_saved_settings_hold(runs, tmp_path, capsys):
    state = resume(runs["sgd"], tmp_path)
    assert state.training["batch_size"] == 100 and state.training["seed"] == 3
    assert state.training["schedule"] == optim.MultiStep(0.05, [2]).to_config()
    hyper = state.optimizer_state["hyper"]
    assert (hyper["momentum"], hyper["weight_decay"]) == (0.5, 1e-4)
    assert state.history["lr"] == [0.05, 0.05]


@pytest.mark.parametrize("options, check", [
    (["--lr", "0.2"], lambda s: s.history["lr"] == [0.05, 0.2]
     and s.training["schedule"] == optim.MultiStep(0.2, [2]).to_config()),
    (["--batch-size", "50"], lambda s: s.training["batch_size"] == 50),
    (["--seed", "9"], lambda s: s.training["seed"] == 9),
    (["--momentum", "0.8"], lambda s: s.optimizer_state["hyper"]["momentum"] == 0.8),
    (["--momentum", "0"], lambda s: s.optimizer_state["hyper"]["momentum"] == 0.0),
    (["--weight-decay", "0.01"], lambda s: s.optimizer_state["hyper"]["weight_decay"] == 0.01),
    (["--schedule", "cosine"], lambda s: s.training["schedule"] == optim.Cosine(0.05, 2).to_config()),
    (["--schedule", "constant", "--lr", "0.3"],
     lambda s: s.training["schedule"] == {"type": "Constant", "lr": 0.3} and s.history["lr"][-1] == 0.3),
    (["--milestones", "1"], lambda s: s.training["schedule"] == optim.MultiStep(0.05, [1]).to_config()
     and s.history["lr"][-1] == pytest.approx(0.005)),
    (["--optimizer", "sgd"], lambda s: s.optimizer_state["type"] == "SGD"),  # the saved one: fine
])
def test_an_option_given_replaces_the_saved_value(runs, tmp_path, capsys, options, check):
    assert check(resume(runs["sgd"], tmp_path, *options))


def test_a_resumed_run_with_a_new_rate_trains_differently(runs, tmp_path, capsys):
    same = resume(runs["sgd"], tmp_path)
    faster = resume(runs["sgd"], tmp_path, "--lr", "0.5")
    assert not np.array_equal(same.model.params["0.weight"], faster.model.params["0.weight"])


@pytest.mark.parametrize("run, options, message", [
    ("sgd", ["--optimizer", "adam"], "--optimizer adam conflicts with {path}, trained with sgd: "
                                     "a resumed run keeps its optimiser and its state"),
    ("adam", ["--optimizer", "sgd"], "--optimizer sgd conflicts with {path}, trained with adam"),
    ("adam", ["--momentum", "0.5"], "--momentum applies to the sgd optimizer, not adam"),
    ("sgd", ["--hidden", "8"], "--hidden cannot change the layers of a resumed run: {path} holds them"),
    ("sgd", ["--model", "linear"], "--model linear conflicts with {path}, a run of mlp on digits"),
    ("sgd", ["--schedule", "cosine", "--milestones", "3"], "--milestones applies to the step schedule, not cosine"),
])
def test_an_option_that_cannot_apply_to_the_saved_run_exits_2(runs, tmp_path, capsys, run, options, message):
    path = runs[run]
    before = path.read_bytes()
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--resume", str(path), "--epochs", "2", "--save", str(path), *options])
    assert info.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"fastbp train: error: {message.format(path=path)}")
    assert path.read_bytes() == before


def test_milestones_for_a_saved_schedule_of_another_kind_are_refused(tmp_path, capsys):
    model = fastbp.models.mlp(64, [8], 10)
    trainer = fastbp.Trainer(model, optim.SGD(model, 0.1), schedule=optim.Step(0.1, 2), progress=False)
    trainer.metadata = {"dataset": "digits", "model": "mlp", "layout": "flat", "stats": [0.3, 0.4]}
    trainer.save(tmp_path / "run.npz")
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--resume", str(tmp_path / "run.npz"), "--milestones", "3"])
    assert info.value.code == 2
    assert f"--milestones applies to the step schedule, not {tmp_path / 'run.npz'}'s Step" in capsys.readouterr().err


def small_run(tmp_path, optimizer="sgd"):
    model = fastbp.Sequential(fastbp.Linear(4, 3, seed=0))
    opt = optim.SGD(model, 0.1, momentum=0.5) if optimizer == "sgd" else optim.Adam(model, 0.01)
    trainer = fastbp.Trainer(model, opt, schedule=optim.MultiStep(0.1, [3]), progress=False)
    trainer.fit((np.ones((6, 4), np.float32), np.arange(6) % 3), epochs=1)
    path = tmp_path / f"{optimizer}.npz"
    trainer.save(path)
    return path


def test_trainer_resume_overrides_optimiser_hyper_parameters(tmp_path):
    path = small_run(tmp_path)
    trainer = fastbp.Trainer.resume(path, progress=False, lr=0.3, momentum=0.7, weight_decay=0.01, batch_size=2)
    assert (trainer.optimizer.momentum, trainer.optimizer.weight_decay, trainer.batch_size) == (0.7, 0.01, 2)
    assert trainer.schedule == optim.MultiStep(0.3, [3])  # the saved schedule, from the new rate
    assert trainer.optimizer.step_count == 1  # the state is kept
    assert all(trainer.optimizer.params[n] is a for n, a in trainer.model.params.items())
    adam = fastbp.Trainer.resume(small_run(tmp_path, "adam"), progress=False, eps=1e-6)
    assert adam.optimizer.eps == 1e-6


@pytest.mark.parametrize("optimizer, overrides, error, match", [
    ("adam", dict(momentum=0.5), TypeError, "cannot change 'momentum' of a Adam optimiser; it takes lr, eps, "
                                            "weight_decay; the trainer's own settings are batch_size"),
    ("sgd", dict(foo=1), TypeError, "cannot change 'foo' of a SGD optimiser"),
    ("sgd", dict(momentum=2.0), ValueError, r"momentum must be a finite number in \[0.0, 1.0\)"),
    ("sgd", dict(lr=0.2, schedule=optim.Constant(0.2)), ValueError, "pass lr or schedule, not both"),
    ("adam", dict(eps=1e-50), ValueError, "eps=1e-50 rounds to 0 in float32"),
])
def test_trainer_resume_refuses_overrides_that_cannot_apply(tmp_path, optimizer, overrides, error, match):
    path = small_run(tmp_path, optimizer)
    with pytest.raises(error, match=match) as info:
        fastbp.Trainer.resume(path, progress=False, **overrides)
    assert not isinstance(info.value, CheckpointError)  # the caller's arguments, not the file
