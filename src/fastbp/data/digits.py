"""The 8x8 handwritten digits bundled with scikit-learn (1797 samples, no download)."""

from __future__ import annotations

import numpy as np

from .transforms import SeedLike, train_val_split

__all__ = ["load_digits"]

DIGITS_MAX_VALUE = 16


def load_digits(
    split: str | None = None, test_fraction: float = 0.2, seed: SeedLike = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's digits: images float32 (N, 8, 8) in [0, 1], labels int64 (N,).

    ``split=None`` returns all 1797 samples in their original order. ``"train"`` or
    ``"test"`` returns one side of a class-stratified split with ``test_fraction`` of the
    samples in the test side, chosen deterministically by ``seed``.
    """
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as error:
        raise ImportError("load_digits needs scikit-learn: pip install 'fastbp[digits]'") from error
    bunch = sklearn_load_digits()
    images = (bunch.images / DIGITS_MAX_VALUE).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    if split is None:
        return images, labels
    train, test = train_val_split(images, labels, test_fraction, seed=seed, stratify=True)
    return train if split == "train" else test
