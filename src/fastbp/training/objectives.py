"""Training objectives by name: the loss function and whether accuracy is meaningful."""

import functools
import numbers
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
        return Objective(getattr(loss, "__name__", "custom"), _checked(loss), False)
    raise TypeError(f"loss must be a name, an Objective or a callable, got {type(loss).__name__}")


def _checked(function):
    """``function`` (a caller's loss), its results checked: a pair ``(loss, grad)`` with a
    real number and an array shaped like the outputs, or a TypeError/ValueError that says so."""
    name = getattr(function, "__name__", type(function).__name__)
    expected = ("must return a pair (loss, grad): the mean loss as a number and d loss / d outputs "
                "as an array shaped like the outputs")

    @functools.wraps(function)
    def loss(outputs, targets):
        result = function(outputs, targets)
        if isinstance(result, (tuple, list)) and len(result) != 2:
            raise TypeError(f"the loss callable {name!r} {expected}; it returned a {type(result).__name__} "
                            f"of length {len(result)}")
        if not isinstance(result, (tuple, list)):
            shown = f" ({result!r})" if np.ndim(result) == 0 else ""
            raise TypeError(f"the loss callable {name!r} {expected}; it returned a {type(result).__name__}{shown}")
        value, grad = result
        if np.ndim(value) != 0 or not isinstance(np.asarray(value).item(), numbers.Real):
            raise TypeError(f"the loss callable {name!r} {expected}; its loss is {value!r}, not a number")
        if not isinstance(grad, np.ndarray):
            raise TypeError(f"the loss callable {name!r} {expected}; its grad is a {type(grad).__name__}")
        if grad.shape != np.shape(outputs):
            raise ValueError(f"the loss callable {name!r} {expected} {np.shape(outputs)}; "
                             f"its grad has shape {grad.shape}")
        return float(value), grad

    return loss
