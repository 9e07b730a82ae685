"""Progress display for training: a tqdm bar per epoch when tqdm is installed, otherwise
one short plain-text line per epoch on stderr; or nothing.

A reporter is told when an epoch starts, after each step, around the test evaluation
and when the epoch ends. The first step and the first evaluation of a process may take
seconds while numba compiles the kernels (or loads them from its cache): when one of
them has not finished after ``COMPILE_NOTICE_AFTER`` seconds, the bar says "compiling
kernels (first run only)", and its rate and ETA are restarted after that first step.
"""

import os
import sys
import threading

COMPILING = "compiling kernels (first run only)"
COMPILE_NOTICE_AFTER = 1.0  # seconds a first step or evaluation runs before the notice


def _import_tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def plural(count, noun, plural_form=None):
    """``"1 epoch"``, ``"2 epochs"``: ``count`` and ``noun``, made plural unless count is 1."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_form or noun + 's'}"


def terminal_size_usable(stream):
    """False when ``stream`` is a terminal that reports no size (0 rows or 0 columns, or an
    error from the size query), where a bar would vanish; True otherwise, including for
    stream objects without a file descriptor, which cannot be asked."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return True
    try:
        size = os.get_terminal_size(fd)
    except (OSError, ValueError):
        return False
    return size.columns > 0 and size.lines > 0


def make_progress(progress, stream=None):
    """A reporter for ``progress``: True (a tqdm bar if tqdm is installed and ``stream`` is
    a terminal that reports a usable size, else plain lines), "tqdm" (always a bar),
    "plain", or False/None (silent)."""
    stream = sys.stderr if stream is None else stream
    if progress in (False, None):
        return SilentProgress()
    if progress not in (True, "tqdm", "plain"):
        raise ValueError(f"progress must be True, False, 'tqdm' or 'plain', got {progress!r}")
    interactive = bool(getattr(stream, "isatty", lambda: False)())
    if progress == "plain" or (progress is True and not (interactive and terminal_size_usable(stream))):
        return PlainProgress(stream, notices=interactive)
    tqdm = _import_tqdm()
    if tqdm is None:
        if progress == "tqdm":
            raise ImportError("progress='tqdm' needs tqdm: pip install 'fastbp[progress]'")
        return PlainProgress(stream, notices=interactive)
    return TqdmProgress(tqdm, stream, dynamic=terminal_size_usable(stream))


def summary(record):
    """``loss 0.4123  acc 85.12%  test_loss 0.4410  test_acc 84.30%  lr 0.1  1.4 s``."""
    parts = [f"loss {record['train_loss']:.4f}"]
    if record["train_accuracy"] is not None:
        parts.append(f"acc {100 * record['train_accuracy']:.2f}%")
    if record["test_loss"] is not None:
        parts.append(f"test_loss {record['test_loss']:.4f}")
    if record["test_accuracy"] is not None:
        parts.append(f"test_acc {100 * record['test_accuracy']:.2f}%")
    parts.append(f"lr {record['lr']:.3g}")
    parts.append(f"{record['seconds']:.1f} s")
    return "  ".join(parts)


class SilentProgress:
    """The reporter interface, doing nothing. The trainer calls ``start_epoch``, ``step``
    after every step, ``start_evaluation`` and ``end_evaluation`` around the test
    evaluation (when there is test data), ``end_epoch``, and ``close`` at the end."""

    def start_epoch(self, epoch, epochs, steps):
        pass

    def step(self, loss):
        pass

    def start_evaluation(self):
        pass

    def end_evaluation(self):
        pass

    def end_epoch(self, record):
        pass

    def close(self):
        """Release the display after an interrupted epoch."""


class _FirstRunWatch:
    """Calls ``notice()`` from a timer thread if the watched phase (the first step, or the
    first evaluation) is still running ``delay`` seconds after ``start``; ``stop`` cancels
    it and returns whether the notice was given. The lock keeps ``notice`` and ``stop``
    apart, so nothing is shown after ``stop`` returns."""

    def __init__(self, notice, delay):
        self.notice, self.delay = notice, delay
        self.lock = threading.Lock()
        self.timer = None
        self.running = False
        self.noticed = False

    def start(self):
        self.running, self.noticed = True, False
        self.timer = threading.Timer(self.delay, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self):
        with self.lock:
            if self.running:
                self.noticed = True
                self.notice()

    def stop(self):
        """True when the notice was shown."""
        with self.lock:
            self.running = False
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            return self.noticed


class _FirstRuns:
    """Watches the first step of the first epoch and the first evaluation."""

    def __init__(self, notice, delay):
        self.step = _FirstRunWatch(lambda: notice("step"), delay)
        self.evaluation = _FirstRunWatch(lambda: notice("evaluation"), delay)
        self.step_pending = self.evaluation_pending = True

    def start_step(self):
        if self.step_pending:
            self.step.start()

    def end_step(self):
        """True when this was the first step and its notice was shown."""
        if not self.step_pending:
            return False
        self.step_pending = False
        return self.step.stop()

    def start_evaluation(self):
        if self.evaluation_pending:
            self.evaluation.start()

    def end_evaluation(self):
        if not self.evaluation_pending:
            return False
        self.evaluation_pending = False
        return self.evaluation.stop()

    def stop(self):
        self.step.stop()
        self.evaluation.stop()


class PlainProgress(SilentProgress):
    """``epoch 3/10  loss 0.4123  acc 85.12%  ...`` once per epoch. On a terminal
    (``notices``), also a line when the first step or evaluation is compiling kernels;
    into a file or pipe, only the epoch lines."""

    def __init__(self, stream, notices=False):
        self.stream = stream
        self.first = _FirstRuns(self._notice, COMPILE_NOTICE_AFTER) if notices else None
        self.prefix = ""

    def _notice(self, phase):
        what = "first evaluation" if phase == "evaluation" else "first step"
        print(f"{self.prefix}  {what}: {COMPILING}...", file=self.stream, flush=True)

    def start_epoch(self, epoch, epochs, steps):
        self.prefix = f"epoch {epoch}/{epochs}"
        if self.first is not None:
            self.first.start_step()

    def step(self, loss):
        if self.first is not None:
            self.first.end_step()

    def start_evaluation(self):
        if self.first is not None:
            self.first.start_evaluation()

    def end_evaluation(self):
        if self.first is not None:
            self.first.end_evaluation()

    def end_epoch(self, record):
        print(f"{self.prefix}  {summary(record)}", file=self.stream, flush=True)

    def close(self):
        if self.first is not None:
            self.first.stop()


class TqdmProgress(SilentProgress):
    """A bar per epoch over its mini-batches, with the rate, the ETA and the running loss,
    followed by the epoch's summary on a line of its own (which the bar's width would cut).

    While a first step or evaluation compiles kernels the bar's description says so; the
    rate and ETA are restarted after that first step. ``dynamic``: follow the terminal's
    width (False: a fixed 80 columns, for terminals that report no size)."""

    def __init__(self, tqdm, stream, dynamic=True):
        self.tqdm = tqdm
        self.stream = stream
        self.dynamic = dynamic
        self.bar = None
        self.first = _FirstRuns(self._notice, COMPILE_NOTICE_AFTER)

    def _notice(self, phase):
        if self.bar is not None:
            what = "evaluating, " if phase == "evaluation" else ""
            self.bar.set_description_str(f"{self.desc} {what}{COMPILING}")

    def start_epoch(self, epoch, epochs, steps):
        self.desc = f"epoch {epoch}/{epochs}"
        width = {} if self.dynamic else {"ncols": 80}
        self.bar = self.tqdm(total=steps, desc=self.desc, unit="batch", file=self.stream,
                             leave=True, dynamic_ncols=self.dynamic, **width)
        self.steps = steps
        self.running = 0.0
        self.count = 0
        self.first.start_step()

    def step(self, loss):
        self.running += loss
        self.count += 1
        if self.first.end_step():
            # That step compiled kernels: restart the clock so the rate and ETA are those
            # of the compiled steps.
            self.bar.set_description_str(self.desc, refresh=False)
            self.bar.reset(total=self.steps)
        self.bar.update(1)
        if self.count % 10 == 0:
            self.bar.set_postfix_str(f"loss {self.running / self.count:.4f}", refresh=False)

    def start_evaluation(self):
        if self.bar is not None:
            self.bar.set_description_str(f"{self.desc} evaluating")
        self.first.start_evaluation()

    def end_evaluation(self):
        self.first.end_evaluation()
        if self.bar is not None:
            self.bar.set_description_str(self.desc, refresh=False)

    def end_epoch(self, record):
        self.bar.set_postfix_str(f"loss {record['train_loss']:.4f}", refresh=False)  # the epoch's
        self._close_bar()
        print(f"{self.desc}  {summary(record)}", file=self.stream, flush=True)

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self):
        self.first.stop()
        self._close_bar()
