"""Array transforms for image data sets: scaling, one-hot labels, splits, channel axis."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["NormStats", "normalize", "one_hot", "to_nchw", "train_val_split"]

SeedLike = int | np.random.Generator | None


class NormStats(NamedTuple):
    """Mean and standard deviation of pixel values on the [0, 1] scale."""

    mean: float
    std: float


def normalize(
    images: np.ndarray,
    mean: float | None = None,
    std: float | None = None,
    dtype: np.dtype | type = np.float32,
) -> tuple[np.ndarray, NormStats]:
    """Scale images to [0, 1] (uint8 is divided by 255, floats are kept) then standardise.

    ``mean`` and ``std`` default to the statistics of ``images`` over all pixels.
    Returns ``(standardised, stats)``, the array of ``images``' shape in ``dtype``; pass
    the training set's ``stats`` back to apply them to other sets::

        x_train, stats = normalize(train_images)
        x_test, _ = normalize(test_images, *stats)
    """
    images = np.asarray(images)
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    if images.size == 0:
        raise ValueError(f"images is empty (shape {images.shape}): nothing to normalise")
    if images.dtype == np.uint8:
        scaled = images.astype(dtype)
        scaled *= scaled.dtype.type(1 / 255)
    elif np.issubdtype(images.dtype, np.floating):
        scaled = images.astype(dtype)
    else:
        raise ValueError(f"images must be uint8 or floating point, got {images.dtype}")
    if mean is None:
        mean = float(scaled.mean(dtype=np.float64))
    if std is None:
        std = float(scaled.std(dtype=np.float64))
    if not std > 0:
        raise ValueError(f"std must be positive, got {std} (constant images need an explicit std)")
    scaled -= scaled.dtype.type(mean)
    scaled /= scaled.dtype.type(std)
    return scaled, NormStats(float(mean), float(std))


def one_hot(
    labels: np.ndarray, num_classes: int, dtype: np.dtype | type = np.float32
) -> np.ndarray:
    """Encode integer ``labels`` of any shape S as an array of shape S + (num_classes,)."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must have an integer dtype, got {labels.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes must be an integer, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].flat[0]
        raise ValueError(f"label {bad} is outside 0..{num_classes - 1}")
    encoded = np.zeros((*labels.shape, num_classes), dtype=dtype)
    np.put_along_axis(encoded, labels[..., None].astype(np.intp), 1, axis=-1)
    return encoded


def train_val_split(
    x: np.ndarray,
    y: np.ndarray,
    val_fraction: float,
    seed: SeedLike = 0,
    stratify: bool = False,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split paired samples into ``((x_train, y_train), (x_val, y_val))`` along axis 0.

    The validation part has ``round(len(x) * val_fraction)`` samples chosen by a
    generator seeded with ``seed``; with ``stratify`` each class of ``y`` contributes
    in proportion to its size (within one sample). Both parts keep the seeded order.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(x)
    n_val = round(n * val_fraction)
    if not 0 < n_val < n:
        raise ValueError(f"val_fraction {val_fraction} of {n} samples leaves a part empty")
    order = np.random.default_rng(seed).permutation(n)
    is_val = np.zeros(n, dtype=bool)
    if stratify:
        if y.ndim != 1:
            raise ValueError(f"stratify needs 1-D class labels, got y of shape {y.shape}")
        by_class = order[np.argsort(y[order], kind="stable")]
        # Every (n / n_val)-th sample of the class-sorted order goes to validation,
        # so each class gets its share and the total is exactly n_val.
        marks = np.arange(1, n + 1) * n_val // n
        is_val[by_class[np.diff(marks, prepend=0).astype(bool)]] = True
    else:
        is_val[order[:n_val]] = True
    in_val = is_val[order]
    train_index, val_index = order[~in_val], order[in_val]
    return (x[train_index], y[train_index]), (x[val_index], y[val_index])


def to_nchw(images: np.ndarray) -> np.ndarray:
    """Add a channel axis: (N, H, W) -> (N, 1, H, W), as a view."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W), got shape {images.shape}")
    return images[:, np.newaxis]
