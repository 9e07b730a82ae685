"""Training: the loop (``Trainer``, ``fit``, ``evaluate``), its ``History``, named data
sets prepared for a model, and plots of the curves."""

from .datasets import DATASETS, Dataset, load_dataset, load_split, prepare
from .history import History
from .objectives import OBJECTIVES, Objective, get_objective
from .plot import plot_history
from .trainer import NonFiniteLossError, Trainer, evaluate, fit, predict

__all__ = [
    "DATASETS", "Dataset", "History", "NonFiniteLossError", "OBJECTIVES", "Objective", "Trainer",
    "evaluate", "fit", "get_objective", "load_dataset", "load_split", "plot_history", "predict",
    "prepare",
]
