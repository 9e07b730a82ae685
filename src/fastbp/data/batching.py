"""Mini-batch iteration over paired arrays (samples along axis 0)."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator

import numpy as np

from .transforms import SeedLike

__all__ = ["minibatches", "num_batches"]


def minibatches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    rng: SeedLike = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x[batch], y[batch])`` pairs covering each sample once: one epoch.

    Batches hold ``batch_size`` samples, the last one fewer unless ``drop_last``
    drops it. With ``shuffle`` the order is a permutation drawn from ``rng`` (a
    ``numpy.random.Generator``, or a seed for one: same seed, same order); without
    it batches are views in the original order. Arguments are checked on call: x and y
    must hold the same, non-zero number of samples.

    For several epochs, call it once per epoch with the same generator: each epoch is
    reshuffled, and the whole sequence is reproducible from the generator's seed (as
    ``Trainer`` does). ``num_batches`` gives the number of batches per epoch.
    """
    x, y, batch_size = _check_batch_args(x, y, batch_size)
    n = len(x)
    order = np.random.default_rng(rng).permutation(n) if shuffle else None
    return _iterate_batches(x, y, batch_size, order, num_batches(n, batch_size, drop_last))


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """The number of batches ``minibatches`` yields for ``n`` samples."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def _check_batch_args(
    x: np.ndarray, y: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(x, y, batch_size)`` as arrays (views, not copies, of arrays) and an int."""
    x, y = np.asarray(x), np.asarray(y)
    for name, array in (("x", x), ("y", y)):
        if array.ndim == 0:
            raise ValueError(f"{name} must be an array with samples along axis 0, got a scalar")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
    if len(x) == 0:
        raise ValueError("x and y are empty: there are no samples to batch")
    if isinstance(batch_size, bool):
        raise ValueError(f"batch_size must be an integer, got {batch_size!r}")
    try:
        batch_size = operator.index(batch_size)
    except TypeError:
        raise ValueError(f"batch_size must be an integer, got {batch_size!r}") from None
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return x, y, batch_size


def _iterate_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    order: np.ndarray | None,
    count: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, count * batch_size, batch_size):
        if order is None:
            batch = slice(start, start + batch_size)
        else:
            batch = order[start : start + batch_size]
        yield x[batch], y[batch]
