"""Optimisers and learning-rate schedules.

``SGD`` and ``Adam`` update parameters in place with fused parallel kernels
(``fastbp.kernels.optim``); weight decay is the L2 term ``lambda/2 ||W||^2`` on weights,
not on biases. Schedules map an epoch index to a learning rate.
"""

from .adam import Adam
from .base import Optimizer, is_decayed
from .schedules import Constant, Cosine, MultiStep, Schedule, Step, schedule_from_config
from .sgd import SGD

OPTIMIZERS = {"SGD": SGD, "Adam": Adam}


def optimizer_from_state_dict(params, state):
    """A new optimiser over ``params`` (a mapping or a model) restored from ``state_dict()``."""
    kind = state.get("type") if isinstance(state, dict) else None
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimiser type {kind!r}; expected one of {sorted(OPTIMIZERS)}")
    hyper = state.get("hyper", {})
    if not isinstance(hyper, dict):
        raise TypeError(f"optimiser state's hyper-parameters must be a dict, got {type(hyper).__name__}")
    if "lr" not in hyper:
        raise ValueError("optimiser state has no learning rate")
    optimizer = OPTIMIZERS[kind](params, lr=hyper["lr"])
    optimizer.load_state_dict(state)
    return optimizer


__all__ = [
    "Adam", "Constant", "Cosine", "MultiStep", "OPTIMIZERS", "Optimizer", "SGD", "Schedule",
    "Step", "is_decayed", "optimizer_from_state_dict", "schedule_from_config",
]
