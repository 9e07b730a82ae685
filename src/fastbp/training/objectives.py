"""Training objectives by name: the loss function and whether accuracy is meaningful."""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import functional as F


@dataclass(frozen=True)
class Objective:
    """``loss(outputs, targets) -> (mean loss, d loss / d outputs)``.

    ``classification``: targets are integer class labels (N,) and the prediction is the
    arg-max of the outputs (N, classes), so an accuracy is reported.
    """

    name: str
    loss: Callable
    classification: bool

    def correct(self, outputs, targets):
        """The number of samples whose arg-max output equals their label."""
        return int(np.count_nonzero(np.argmax(outputs, axis=1) == targets))


OBJECTIVES = {
    "cross_entropy": Objective("cross_entropy", F.softmax_cross_entropy, True),
    "hinge": Objective("hinge", F.hinge_loss, True),
    "mse": Objective("mse", F.mse_loss, False),
}


def get_objective(loss):
    """An ``Objective`` from a name in ``OBJECTIVES``, an ``Objective``, or a callable
    ``(outputs, targets) -> (loss, grad)`` (then no accuracy is computed)."""
    if isinstance(loss, Objective):
        return loss
    if isinstance(loss, str):
        if loss not in OBJECTIVES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(OBJECTIVES)} or a callable")
        return OBJECTIVES[loss]
    if callable(loss):
        return Objective(getattr(loss, "__name__", "custom"), loss, False)
    raise TypeError(f"loss must be a name, an Objective or a callable, got {type(loss).__name__}")
