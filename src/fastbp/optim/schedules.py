"""Learning-rate schedules: pure functions of the epoch index (0-based).

A schedule is called once per epoch, ``lr = schedule(epoch)``, and holds no state, so
resuming at epoch e gives the same rates as an uninterrupted run. ``to_config()`` and
``schedule_from_config`` turn a schedule into plain JSON-able values and back.
"""

import inspect
import math
import numbers

from .base import check_number


def _epoch(epoch):
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
    return int(epoch)


class Schedule:
    """Base class: ``__call__(epoch) -> lr``."""

    def __call__(self, epoch):
        raise NotImplementedError

    def to_config(self):
        """``{"type": class name, **constructor arguments}``."""
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items() if k != "type")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(other) is type(self) and other.to_config() == self.to_config()


class Constant(Schedule):
    """The same ``lr`` every epoch."""

    def __init__(self, lr):
        self.lr = check_number("lr", lr, low=0.0, low_open=True)

    def __call__(self, epoch):
        _epoch(epoch)
        return self.lr

    def to_config(self):
        return {"type": "Constant", "lr": self.lr}


class MultiStep(Schedule):
    """``lr * gamma ** (number of milestones <= epoch)``.

    ``MultiStep(0.1, milestones=[50])`` gives 0.1 for epochs 0..49 and 0.01 from 50 on,
    the schedule of the lecture notes.
    """

    def __init__(self, lr, milestones, gamma=0.1):
        self.lr = check_number("lr", lr, low=0.0, low_open=True)
        self.gamma = check_number("gamma", gamma, low=0.0, low_open=True)
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"milestones must be a sequence of positive ints, got {milestones!r}")
        milestones = list(milestones)
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1:
                raise ValueError(f"milestones must be positive ints, got {milestones!r}")
        if milestones != sorted(set(milestones)):
            raise ValueError(f"milestones must be strictly increasing, got {milestones!r}")
        self.milestones = [int(m) for m in milestones]

    def __call__(self, epoch):
        epoch = _epoch(epoch)
        passed = sum(1 for m in self.milestones if m <= epoch)
        return self.lr * self.gamma**passed

    def to_config(self):
        return {"type": "MultiStep", "lr": self.lr, "milestones": list(self.milestones),
                "gamma": self.gamma}


class Step(Schedule):
    """``lr * gamma ** (epoch // step_size)``: decay by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, lr, step_size, gamma=0.1):
        self.lr = check_number("lr", lr, low=0.0, low_open=True)
        self.gamma = check_number("gamma", gamma, low=0.0, low_open=True)
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) or step_size < 1:
            raise ValueError(f"step_size must be a positive int, got {step_size!r}")
        self.step_size = int(step_size)

    def __call__(self, epoch):
        return self.lr * self.gamma ** (_epoch(epoch) // self.step_size)

    def to_config(self):
        return {"type": "Step", "lr": self.lr, "step_size": self.step_size, "gamma": self.gamma}


class Cosine(Schedule):
    """Cosine annealing from ``lr`` at epoch 0 towards ``min_lr`` at epoch ``epochs``:
    ``min_lr + (lr - min_lr) * (1 + cos(pi * epoch / epochs)) / 2``; ``min_lr`` after that.
    """

    def __init__(self, lr, epochs, min_lr=0.0):
        self.lr = check_number("lr", lr, low=0.0, low_open=True)
        self.min_lr = check_number("min_lr", min_lr, low=0.0)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({min_lr}) must not exceed lr ({lr})")
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {epochs!r}")
        self.epochs = int(epochs)

    def __call__(self, epoch):
        epoch = min(_epoch(epoch), self.epochs)
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))

    def to_config(self):
        return {"type": "Cosine", "lr": self.lr, "epochs": self.epochs, "min_lr": self.min_lr}


SCHEDULES = {cls.__name__: cls for cls in (Constant, MultiStep, Step, Cosine)}


def schedule_from_config(config):
    """The schedule a ``to_config()`` dict describes."""
    if not isinstance(config, dict) or config.get("type") not in SCHEDULES:
        raise ValueError(f"not a schedule config (type must be one of {sorted(SCHEDULES)}): {config!r}")
    kwargs = {k: v for k, v in config.items() if k != "type"}
    cls = SCHEDULES[config["type"]]
    parameters = inspect.signature(cls).parameters
    required = {name for name, p in parameters.items() if p.default is inspect.Parameter.empty}
    if not required <= set(kwargs) <= set(parameters):
        raise ValueError(
            f"a {cls.__name__} schedule config needs the arguments {sorted(required)} and may have "
            f"{sorted(set(parameters) - required)}, got {config!r}"
        )
    try:
        return cls(**kwargs)
    except TypeError as error:  # a value of the wrong kind, e.g. a string learning rate
        raise ValueError(f"bad schedule config {config!r}: {error}") from error
