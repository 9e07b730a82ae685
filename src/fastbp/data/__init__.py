"""Data sets and data handling: IDX files, MNIST-family loaders, digits, transforms, batching."""

from .batching import minibatches, num_batches
from .digits import load_digits
from .idx import read_idx, write_idx
from .mnist import ChecksumMismatchError, DatasetNotFoundError, load_fashion_mnist, load_mnist
from .transforms import NormStats, normalize, one_hot, to_nchw, train_val_split

__all__ = [
    "ChecksumMismatchError",
    "DatasetNotFoundError",
    "NormStats",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "minibatches",
    "num_batches",
    "normalize",
    "one_hot",
    "read_idx",
    "to_nchw",
    "train_val_split",
    "write_idx",
]
