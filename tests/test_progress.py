"""The training progress display (bar, plain lines, compile notices, terminal fallback),
the curves' figure and the wording of counts."""

import fcntl
import io
import os
import pty
import struct
import sys
import termios
import threading
import time

import numpy as np
import pytest

import fastbp
from fastbp import cli, models, optim
from fastbp import functional as F
from fastbp import training
from fastbp.training import History, plot, progress

WAIT = 30  # seconds to wait for a notice that a test makes certain to come


class FakeTerminal(io.StringIO):
    """A terminal without a file descriptor; ``seen(text)`` is an Event set once ``text``
    has been written."""

    def __init__(self):
        super().__init__()
        self.events = {}

    def isatty(self):
        return True

    def seen(self, text):
        return self.events.setdefault(text, threading.Event())

    def write(self, s):
        n = super().write(s)
        value = self.getvalue()
        for text, event in self.events.items():
            if text in value:
                event.set()
        return n


@pytest.fixture(scope="module")
def digits_small():
    digits = training.load_dataset("digits", "flat")
    x, y = digits.train
    return (x[:256], y[:256]), (digits.test[0][:128], digits.test[1][:128])


@pytest.fixture
def no_notices(monkeypatch):
    """Tests of the layout, not of the compile notice: no first step is slow enough."""
    monkeypatch.setattr(progress, "COMPILE_NOTICE_AFTER", 3600.0)


def small_mlp():
    return models.mlp(64, [16], 10, seed=0)


def bar_segments(out):
    """What the bar drew: pieces between carriage returns and newlines that hold a rate."""
    return [piece for line in out.split("\n") for piece in line.split("\r") if "batch" in piece]


def test_tqdm_epoch_summary_is_a_line_of_its_own(digits_small, monkeypatch, no_notices):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    history = fastbp.fit(small_mlp(), *digits_small, epochs=2, batch_size=32, progress=True)
    out = terminal.getvalue()
    lines = out.split("\n")
    for epoch in (1, 2):
        record = {name: values[epoch - 1] for name, values in history.to_dict().items()}
        assert f"epoch {epoch}/2  {progress.summary(record)}" in lines
    segments = bar_segments(out)
    assert segments and all("test_loss" not in s and "test_acc" not in s and "lr " not in s for s in segments)
    # the bars keep their own figures: batches, rate, and at the end the epoch's loss
    for loss in history.train_loss:
        assert any("8/8" in s and "batch/s" in s and f"loss {loss:.4f}" in s for s in segments)


class RecordingReporter(progress.SilentProgress):
    def __init__(self):
        self.calls = []

    def start_epoch(self, epoch, epochs, steps):
        self.calls.append("start_epoch")

    def step(self, loss):
        self.calls.append("step")

    def start_evaluation(self):
        self.calls.append("start_evaluation")

    def end_evaluation(self):
        self.calls.append("end_evaluation")

    def end_epoch(self, record):
        self.calls.append("end_epoch")

    def close(self):
        self.calls.append("close")


def test_trainer_tells_the_reporter_about_steps_and_evaluation(digits_small, monkeypatch):
    reporter = RecordingReporter()
    monkeypatch.setattr(fastbp.training.trainer, "make_progress", lambda _progress: reporter)
    fastbp.fit(small_mlp(), *digits_small, epochs=2, batch_size=128, progress=True)
    epoch = ["start_epoch", "step", "step", "start_evaluation", "end_evaluation", "end_epoch"]
    assert reporter.calls == epoch + epoch + ["close"]
    reporter.calls.clear()
    fastbp.fit(small_mlp(), digits_small[0], epochs=1, batch_size=128, progress=True)
    assert reporter.calls == ["start_epoch", "step", "step", "end_epoch", "close"]


def record(**values):
    return {"epoch": 1, "lr": 0.1, "train_loss": 1.0, "train_accuracy": 0.5, "test_loss": 1.1,
            "test_accuracy": 0.4, "seconds": 2.0, **values}


def test_bar_says_compiling_and_restarts_its_clock_after_a_slow_first_step(monkeypatch):
    monkeypatch.setattr(progress, "COMPILE_NOTICE_AFTER", 0.0)
    terminal = FakeTerminal()
    step_notice = terminal.seen("epoch 1/2 compiling kernels (first run only)")
    evaluation_notice = terminal.seen("epoch 1/2 evaluating, compiling kernels (first run only)")
    reporter = progress.make_progress("tqdm", terminal)
    reporter.start_epoch(1, 2, 4)
    assert step_notice.wait(WAIT)  # the first step is "still compiling"
    before_end_of_first_step = time.time()  # tqdm's clock
    reporter.step(1.0)
    bar = reporter.bar
    assert bar.n == 1 and bar.desc == "epoch 1/2"
    assert bar.start_t >= before_end_of_first_step  # rate and ETA count from the compiled steps
    for _ in range(3):
        reporter.step(1.0)
    reporter.start_evaluation()
    assert evaluation_notice.wait(WAIT)
    reporter.end_evaluation()
    assert reporter.bar.desc == "epoch 1/2"
    reporter.end_epoch(record())
    mark = len(terminal.getvalue())
    reporter.start_epoch(2, 2, 4)  # later steps and evaluations are not watched
    for _ in range(4):
        reporter.step(1.0)
    reporter.start_evaluation()
    reporter.end_evaluation()
    reporter.end_epoch(record(epoch=2))
    reporter.close()
    later = terminal.getvalue()[mark:]
    assert "compiling" not in later and f"epoch 2/2  {progress.summary(record(epoch=2))}" in later


def test_a_quick_first_step_gets_no_notice_and_keeps_the_clock(monkeypatch):
    monkeypatch.setattr(progress, "COMPILE_NOTICE_AFTER", 3600.0)
    terminal = FakeTerminal()
    reporter = progress.make_progress("tqdm", terminal)
    reporter.start_epoch(1, 1, 2)
    start_t = reporter.bar.start_t
    reporter.step(1.0)
    assert reporter.bar.start_t == start_t and reporter.first.step.timer is None
    reporter.step(1.0)
    reporter.end_epoch(record())
    assert "compiling" not in terminal.getvalue()


def test_plain_lines_on_a_terminal_say_when_kernels_compile(monkeypatch):
    """Through the trainer: a first step and a first evaluation that take long (a loss that
    waits for the notice) are announced, once each, on lines of their own."""
    monkeypatch.setattr(progress, "COMPILE_NOTICE_AFTER", 0.0)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    step_notice = terminal.seen("first step: compiling kernels (first run only)...")
    evaluation_notice = terminal.seen("first evaluation: compiling kernels (first run only)...")
    steps = 4
    calls = []

    def slow_first_calls(outputs, targets):
        calls.append(1)
        if len(calls) == 1:
            assert step_notice.wait(WAIT)
        if len(calls) == steps + 1:  # the first call of the evaluation
            assert evaluation_notice.wait(WAIT)
        return F.mse_loss(outputs, targets)

    x = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    model = fastbp.Sequential(fastbp.Linear(4, 4, seed=0))
    fastbp.fit(model, (x, x), (x, x), epochs=2, loss=slow_first_calls, batch_size=32 // steps,
               progress="plain")
    lines = terminal.getvalue().splitlines()
    assert lines[0] == "epoch 1/2  first step: compiling kernels (first run only)..."
    assert lines[1] == "epoch 1/2  first evaluation: compiling kernels (first run only)..."
    assert [line[:11] for line in lines[2:]] == ["epoch 1/2  ", "epoch 2/2  "]
    assert len(lines) == 4


def test_plain_lines_into_a_file_get_no_notice(monkeypatch):
    monkeypatch.setattr(progress, "COMPILE_NOTICE_AFTER", 0.0)
    stream = io.StringIO()
    reporter = progress.make_progress(True, stream)
    assert isinstance(reporter, progress.PlainProgress) and reporter.first is None
    reporter.start_epoch(1, 1, 1)
    reporter.step(1.0)
    reporter.end_epoch(record())
    assert stream.getvalue() == f"epoch 1/1  {progress.summary(record())}\n"


def pseudo_terminal(rows, columns):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return master, os.fdopen(slave, "w")


def read_all(master, stream):
    """Everything written to the terminal ``stream``, read from its ``master`` side once
    ``stream`` is closed (Linux then answers EIO at the end)."""
    stream.close()
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("rows, columns", [(0, 0), (0, 80), (24, 0)])
def test_a_terminal_without_a_size_gets_plain_lines(rows, columns, digits_small, monkeypatch, no_notices):
    master, stream = pseudo_terminal(rows, columns)
    try:
        assert stream.isatty() and not progress.terminal_size_usable(stream)
        assert isinstance(progress.make_progress(True, stream), progress.PlainProgress)
        monkeypatch.setattr(sys, "stderr", stream)
        fastbp.fit(small_mlp(), *digits_small, epochs=2, batch_size=64, progress=True)
        lines = read_all(master, stream).splitlines()
    finally:
        stream.close()
        os.close(master)
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  loss ") and "batch" not in "".join(lines)


def test_a_terminal_with_a_size_gets_a_bar_and_a_forced_bar_gets_a_width(no_notices):
    master, stream = pseudo_terminal(24, 80)
    try:
        assert progress.terminal_size_usable(stream)
        reporter = progress.make_progress(True, stream)
        assert isinstance(reporter, progress.TqdmProgress) and reporter.dynamic
    finally:
        stream.close()
        os.close(master)
    master, stream = pseudo_terminal(0, 0)
    try:
        reporter = progress.make_progress("tqdm", stream)
        reporter.start_epoch(1, 1, 3)
        for _ in range(3):
            reporter.step(1.0)
        reporter.end_epoch(record())
        out = read_all(master, stream)
    finally:
        stream.close()
        os.close(master)
    assert not reporter.dynamic and "3/3" in out and "epoch 1/1  loss 1.0000" in out


def history(epochs):
    h = History()
    for e in range(1, epochs + 1):
        h.append(epoch=e, lr=0.1, train_loss=1.0 / e, train_accuracy=0.5 + e / 100,
                 test_loss=1.1 / e, test_accuracy=0.4 + e / 100, seconds=1.0)
    return h


@pytest.mark.parametrize("epochs", [1, 2, 3, 7])
def test_curves_mark_every_epoch_on_whole_number_ticks(epochs):
    import matplotlib.pyplot as plt

    fig = plot.history_figure(history(epochs), title="t")
    try:
        axes = fig.get_axes()
        assert len(axes) == 2
        for ax in axes:
            lines = ax.get_lines()
            assert len(lines) == 2
            for line in lines:
                assert line.get_marker() == "o" and line.get_markersize() > 0
                assert list(line.get_xdata()) == list(range(1, epochs + 1))
            low, high = ax.get_xlim()
            assert low < 1 and high > epochs and high - low >= 1  # every point inside, visibly
            ticks = [t for t in ax.get_xticks() if low <= t <= high]
            assert ticks and all(float(t).is_integer() for t in ticks)
            assert 1 in ticks
    finally:
        plt.close(fig)


def test_plot_history_without_accuracy_writes_a_png(tmp_path):
    h = History()
    h.append(epoch=1, lr=0.1, train_loss=2.0, train_accuracy=None, test_loss=None,
             test_accuracy=None, seconds=1.0)
    import matplotlib.pyplot as plt

    fig = plot.history_figure(h)
    assert len(fig.get_axes()) == 1 and len(fig.get_axes()[0].get_lines()) == 1
    plt.close(fig)
    plot.plot_history(h, tmp_path / "one.png")
    assert (tmp_path / "one.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plural():
    assert progress.plural(1, "epoch") == "1 epoch"
    assert progress.plural(2, "epoch") == "2 epochs"
    assert progress.plural(0, "thread") == "0 threads"
    assert progress.plural(1, "principal axis", "principal axes") == "1 principal axis"
    assert progress.plural(3, "principal axis", "principal axes") == "3 principal axes"


def test_cli_train_counts_one_epoch_and_one_thread(capsys, tmp_path):
    threads = fastbp.get_num_threads()
    try:
        assert cli.main(["train", "--dataset", "digits", "--hidden", "16", "--epochs", "1",
                         "--threads", "1", "--no-progress"]) == 0
    finally:
        fastbp.set_num_threads(threads)
    captured = capsys.readouterr()
    assert ", epoch 1, 1 thread\n" in captured.err
    assert ", 1 epoch, " in captured.out and "epochs" not in captured.out
