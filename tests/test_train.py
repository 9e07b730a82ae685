import io
import sys

import numpy as np
import pytest

import fastbp
from fastbp import models, optim, training
from fastbp.training import progress as progress_module


@pytest.fixture(scope="module")
def digits():
    return training.load_dataset("digits", "flat")


def small_mlp(seed=0, dropout=0.0):
    return models.mlp(64, (32,), 10, dropout=dropout, seed=seed)


def params_of(model):
    return {k: v.copy() for k, v in model.params.items()}


def test_loss_falls_and_accuracy_rises_on_digits(digits):
    model = small_mlp()
    before = training.evaluate(model, *digits.test)
    trainer = fastbp.Trainer(model, optim.SGD(model, 0.1, momentum=0.9), batch_size=32, progress=False)
    history = trainer.fit(digits.train, digits.test, epochs=4)
    assert history.epoch == [1, 2, 3, 4]
    assert before["accuracy"] < 0.3
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.train_accuracy[-1] > history.train_accuracy[0]
    assert history.test_accuracy[-1] > 0.9
    after = trainer.evaluate(*digits.test)
    assert after["accuracy"] == history.test_accuracy[-1]
    assert after["loss"] < before["loss"] / 4


def test_evaluate_counts_argmax_hits_and_averages_loss(rng):
    model = fastbp.Sequential(fastbp.Linear(5, 3, seed=0))
    x = rng.standard_normal((23, 5)).astype(np.float32)
    y = rng.integers(0, 3, 23)
    out = model.forward(x, training=False)
    result = training.evaluate(model, x, y, batch_size=4)
    assert result["accuracy"] == np.mean(out.argmax(1) == y)
    assert result["loss"] == pytest.approx(fastbp.functional.softmax_cross_entropy(out, y)[0], rel=1e-6)
    np.testing.assert_array_equal(training.predict(model, x, batch_size=4), out)


def test_same_seed_same_run_other_seed_other_run(digits):
    runs = []
    for seed in (0, 0, 1):
        model = small_mlp()
        fastbp.fit(model, digits.train, epochs=2, lr=0.05, batch_size=64, seed=seed, progress=False)
        runs.append(params_of(model))
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
    assert not np.array_equal(runs[0]["0.weight"], runs[2]["0.weight"])


def test_schedule_sets_the_learning_rate_each_epoch(digits):
    model = small_mlp()
    opt = optim.SGD(model, 1.0)
    trainer = fastbp.Trainer(model, opt, schedule=optim.MultiStep(0.1, [2]), progress=False)
    history = trainer.fit(digits.train, epochs=3)
    assert history.lr[:2] == [0.1, 0.1] and history.lr[2] == pytest.approx(0.01)
    assert history.test_accuracy == [None] * 3 and history.test_loss == [None] * 3


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, digits, optimizer):
    def make():
        model = small_mlp(dropout=0.2)
        opt = (optim.SGD(model, 0.05, momentum=0.9, weight_decay=1e-3) if optimizer == "sgd"
               else optim.Adam(model, 1e-3, weight_decay=1e-3))
        return fastbp.Trainer(model, opt, batch_size=50, schedule=optim.Cosine(0.05, 4), seed=7,
                              progress=False)

    straight = make()
    straight.fit(digits.train, digits.test, epochs=4)

    first = make()
    first.fit(digits.train, digits.test, epochs=2, checkpoint=tmp_path / "run.npz")
    resumed = fastbp.Trainer.resume(tmp_path / "run.npz", progress=False)
    assert resumed.epoch == 2 and resumed.history.epoch == [1, 2]
    assert resumed.schedule == optim.Cosine(0.05, 4) and resumed.seed == 7 and resumed.batch_size == 50
    resumed.fit(digits.train, digits.test, epochs=4)

    for name, array in straight.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], array)
    assert resumed.history.train_loss == straight.history.train_loss
    assert resumed.history.test_accuracy == straight.history.test_accuracy


def test_fit_to_an_epoch_already_reached_is_an_error(digits):
    model = small_mlp()
    trainer = fastbp.Trainer(model, optim.SGD(model, 0.1), progress=False)
    trainer.fit(digits.train, epochs=2)
    weights = params_of(model)
    for epochs in (2, 1):
        with pytest.raises(ValueError, match=rf"epochs={epochs}, but this trainer already holds 2 epochs: "
                                             r"epochs is the total to reach.*epochs=3 or more"):
            trainer.fit(digits.train, epochs=epochs)
    assert trainer.epoch == 2 and len(trainer.history) == 2
    np.testing.assert_array_equal(model.params["0.weight"], weights["0.weight"])
    trainer.fit(digits.train, epochs=3)  # the total to reach
    assert trainer.epoch == 3


@pytest.mark.parametrize("target, error, problem", [
    ("{tmp}", IsADirectoryError, "it is a directory"),
    ("{tmp}/blocker/run.npz", NotADirectoryError, "'{tmp}/blocker' is not a directory"),
    ("{tmp}/missing/run.npz", FileNotFoundError, "no such directory '{tmp}/missing'"),
])
def test_an_unwritable_checkpoint_is_refused_before_the_first_step(tmp_path, digits, target, error, problem):
    (tmp_path / "blocker").write_text("a file, not a directory")
    target, problem = target.format(tmp=tmp_path), problem.format(tmp=tmp_path)
    model = small_mlp()
    weights = params_of(model)
    trainer = fastbp.Trainer(model, optim.SGD(model, 0.1), progress=False)
    with pytest.raises(error) as info:
        trainer.fit(digits.train, epochs=1, checkpoint=target)
    assert str(info.value) == f"cannot write checkpoint '{target}': {problem}"
    assert trainer.epoch == 0
    np.testing.assert_array_equal(model.params["0.weight"], weights["0.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_a_custom_loss_must_return_a_loss_and_a_gradient(digits):
    def just_a_number(outputs, targets):
        return 0.5

    def wrong_shape(outputs, targets):
        return 0.5, outputs[:, :3]

    def good(outputs, targets):
        return fastbp.functional.softmax_cross_entropy(outputs, targets)

    model = small_mlp()
    weights = params_of(model)
    with pytest.raises(TypeError, match=r"the loss callable 'just_a_number' must return a pair \(loss, grad\): "
                                        r"the mean loss as a number and d loss / d outputs as an array shaped "
                                        r"like the outputs; it returned a float \(0.5\)"):
        fastbp.fit(model, digits.train, epochs=1, loss=just_a_number, progress=False)
    with pytest.raises(ValueError, match=r"'wrong_shape' .* outputs \(64, 10\); its grad has shape \(64, 3\)"):
        fastbp.fit(model, digits.train, epochs=1, loss=wrong_shape, progress=False)
    with pytest.raises(TypeError, match="'just_a_number' must return a pair"):
        training.evaluate(model, *digits.test, loss=just_a_number)
    np.testing.assert_array_equal(model.params["0.weight"], weights["0.weight"])  # no step was taken
    history = fastbp.fit(model, digits.train, epochs=1, loss=good, progress=False)
    assert history.train_accuracy == [None] and np.isfinite(history.train_loss[0])


def test_non_finite_loss_stops_before_the_update_naming_epoch_and_step(digits):
    x, y = digits.train
    poisoned = x.copy()
    poisoned[100] = np.nan
    model = small_mlp()
    trainer = fastbp.Trainer(model, optim.SGD(model, 0.1), batch_size=len(x), progress=False)
    trainer.fit((x, y), epochs=1)  # one good epoch first
    weights = params_of(model)
    with pytest.raises(training.NonFiniteLossError, match=r"became nan at epoch 2/3, step 1/1") as info:
        trainer.fit((poisoned, y), epochs=3)
    assert (info.value.epoch, info.value.step) == (2, 1) and len(info.value.history) == 1
    assert trainer.epoch == 1
    for name, array in weights.items():  # the poisoned step was not applied
        np.testing.assert_array_equal(model.params[name], array)


def test_diverging_learning_rate_is_reported(digits):
    model = small_mlp()
    with pytest.raises(training.NonFiniteLossError, match="learning rate 1e\\+06"):
        fastbp.fit(model, digits.train, epochs=3, lr=1e6, progress=False)


def test_plain_progress_writes_one_line_per_epoch(digits, capsys):
    model = small_mlp()
    fastbp.fit(model, digits.train, digits.test, epochs=2, progress="plain")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2  loss ") and "test_acc" in lines[0]


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_a_tqdm_bar_on_a_terminal(digits, monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fastbp.fit(small_mlp(), digits.train, epochs=1, progress=True)
    out = terminal.getvalue()
    assert "\r" in out and "epoch 1/1" in out and "batch/s" in out and "acc" in out


def test_progress_falls_back_to_plain_lines_without_tqdm(digits, monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress_module, "_import_tqdm", lambda: None)
    fastbp.fit(small_mlp(), digits.train, epochs=2, progress=True)
    out = terminal.getvalue()
    assert out.count("\n") == 2 and "\r" not in out and "epoch 2/2  loss" in out
    with pytest.raises(ImportError, match="tqdm"):
        progress_module.make_progress("tqdm")


def test_progress_into_a_file_or_pipe_is_plain_lines(digits, capsys):
    fastbp.fit(small_mlp(), digits.train, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "\r" not in err


def test_mse_objective_has_no_accuracy_and_learns_an_autoencoder(digits):
    x = digits.train[0][:256]
    model = models.autoencoder(64, (32, 16), seed=0)
    history = fastbp.fit(model, (x, x), (x, x), epochs=5, loss="mse", optimizer=optim.Adam(model, 3e-3),
                         batch_size=32, progress=False)
    assert history.train_accuracy == [None] * 5 and history.test_accuracy == [None] * 5
    assert history.test_loss[-1] < 0.7 * history.test_loss[0]


def test_history_round_trip_and_plot(tmp_path, digits):
    history = fastbp.fit(small_mlp(), digits.train, digits.test, epochs=2, progress=False)
    assert training.History.from_dict(history.to_dict()) == history
    training.plot_history(history, tmp_path / "curves.png", title="digits")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        training.plot_history(training.History(), tmp_path / "empty.png")
    with pytest.raises(ValueError, match="differ in length"):
        training.History.from_dict({"epoch": [1], "lr": []})


def test_bad_arguments_are_rejected(digits):
    model = small_mlp()
    opt = optim.SGD(model, 0.1)
    with pytest.raises(TypeError, match="Sequential"):
        fastbp.Trainer(fastbp.Linear(2, 2), opt)
    with pytest.raises(TypeError, match="Optimizer"):
        fastbp.Trainer(model, "sgd")
    with pytest.raises(ValueError, match="this model"):
        fastbp.Trainer(small_mlp(), opt)
    with pytest.raises(ValueError, match="unknown loss"):
        fastbp.Trainer(model, opt, "l1")
    with pytest.raises(ValueError, match="batch_size"):
        fastbp.Trainer(model, opt, batch_size=0)
    with pytest.raises(ValueError, match="progress"):
        fastbp.Trainer(model, opt, progress="fancy")
    with pytest.raises(TypeError, match="Schedule"):
        fastbp.Trainer(model, opt, schedule=0.1)
    trainer = fastbp.Trainer(model, opt, progress=False)
    x, y = digits.train
    with pytest.raises(ValueError, match="differ in length"):
        trainer.fit((x, y[:-1]))
    with pytest.raises(TypeError, match="pair"):
        trainer.fit(x)
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit((x, y), epochs=0)
    with pytest.raises(TypeError, match="float64"):
        trainer.fit((x.astype(np.float64), y))
