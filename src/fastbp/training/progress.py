"""Progress display for training: a tqdm bar per epoch when tqdm is installed, otherwise
one short plain-text line per epoch on stderr; or nothing."""

import sys


def _import_tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def make_progress(progress, stream=None):
    """A reporter for ``progress``: True (a tqdm bar if tqdm is installed and ``stream`` is
    a terminal, else plain lines), "tqdm" (always a bar), "plain", or False/None (silent)."""
    stream = sys.stderr if stream is None else stream
    if progress in (False, None):
        return SilentProgress()
    if progress not in (True, "tqdm", "plain"):
        raise ValueError(f"progress must be True, False, 'tqdm' or 'plain', got {progress!r}")
    interactive = getattr(stream, "isatty", lambda: False)()
    if progress == "plain" or (progress is True and not interactive):
        return PlainProgress(stream)
    tqdm = _import_tqdm()
    if tqdm is None:
        if progress == "tqdm":
            raise ImportError("progress='tqdm' needs tqdm: pip install 'fastbp[progress]'")
        return PlainProgress(stream)
    return TqdmProgress(tqdm, stream)


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
    def start_epoch(self, epoch, epochs, steps):
        pass

    def step(self, loss):
        pass

    def end_epoch(self, record):
        pass

    def close(self):
        """Release the display after an interrupted epoch."""


class PlainProgress(SilentProgress):
    """``epoch 3/10  loss 0.4123  acc 85.12%  ...`` once per epoch."""

    def __init__(self, stream):
        self.stream = stream

    def start_epoch(self, epoch, epochs, steps):
        self.prefix = f"epoch {epoch}/{epochs}"

    def end_epoch(self, record):
        print(f"{self.prefix}  {summary(record)}", file=self.stream, flush=True)


class TqdmProgress(SilentProgress):
    """A bar per epoch over its mini-batches, showing the running loss, left with the
    epoch's summary."""

    def __init__(self, tqdm, stream):
        self.tqdm = tqdm
        self.stream = stream
        self.bar = None

    def start_epoch(self, epoch, epochs, steps):
        self.bar = self.tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch",
                             file=self.stream, leave=True, dynamic_ncols=True)
        self.running = 0.0
        self.count = 0

    def step(self, loss):
        self.running += loss
        self.count += 1
        self.bar.update(1)
        if self.count % 10 == 0:
            self.bar.set_postfix_str(f"loss {self.running / self.count:.4f}", refresh=False)

    def end_epoch(self, record):
        self.bar.set_postfix_str(summary(record))
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
