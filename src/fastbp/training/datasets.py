"""The data sets a training run can name, loaded and standardised for a model's input.

``load_dataset("fashion-mnist", layout="image")`` returns the training and test splits
as float32 arrays standardised with the training split's pixel mean and deviation,
either flat (N, H*W) for dense models or (N, 1, H, W) for convolutional ones, with
int64 labels (N,).
"""

from dataclasses import dataclass

import numpy as np

from .. import data

DATASETS = ("digits", "mnist", "fashion-mnist")
LAYOUTS = ("flat", "image")
NUM_CLASSES = 10


def load_split(name, split, root=None, download=True):
    """Raw images (N, H, W) (uint8 or float in [0, 1]) and int64 labels (N,) of a split."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if name == "digits":
        return data.load_digits(split)
    loader = data.load_mnist if name == "mnist" else data.load_fashion_mnist
    return loader(split, root=root, download=download)


def prepare(images, layout, stats, dtype=np.float32):
    """Standardise ``images`` (N, H, W) with ``stats`` (a ``NormStats``) and shape them for
    ``layout``: "flat" -> (N, H*W), "image" -> (N, 1, H, W); C-contiguous."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    x, _ = data.normalize(images, stats.mean, stats.std, dtype=dtype)
    x = x.reshape(len(x), -1) if layout == "flat" else data.to_nchw(x)
    return np.ascontiguousarray(x)


@dataclass
class Dataset:
    """``train`` and ``test`` are (x, labels) pairs; ``image_shape`` is (H, W);
    ``stats`` the standardisation taken from the training images."""

    name: str
    train: tuple
    test: tuple
    image_shape: tuple
    num_classes: int
    stats: data.NormStats


def load_dataset(name, layout="flat", *, root=None, download=True, train_limit=None,
                 dtype=np.float32):
    """Both splits of ``name``, standardised by the training split's statistics.

    ``train_limit`` keeps only the first that many training samples (for quick runs).
    """
    train_images, train_labels = load_split(name, "train", root, download)
    test_images, test_labels = load_split(name, "test", root, download)
    if train_limit is not None:
        if isinstance(train_limit, bool) or not isinstance(train_limit, int) or train_limit < 1:
            raise ValueError(f"train_limit must be a positive int, got {train_limit!r}")
        train_images, train_labels = train_images[:train_limit], train_labels[:train_limit]
    _, stats = data.normalize(train_images)
    return Dataset(
        name=name,
        train=(prepare(train_images, layout, stats, dtype), train_labels),
        test=(prepare(test_images, layout, stats, dtype), test_labels),
        image_shape=tuple(train_images.shape[1:]),
        num_classes=NUM_CLASSES,
        stats=stats,
    )
