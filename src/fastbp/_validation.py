"""Argument checks shared by the public entry points. Every failure names the argument
and says what was expected."""

import numbers
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(name, value, ndim=None, layout=None):
    """``value`` as a C-contiguous float32/float64 array with ``ndim`` dims and a non-empty batch.

    ``layout`` (e.g. "(N, C, H, W)") is only used in the error message.
    """
    array = np.asarray(value)
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        expected = f"{ndim}-D {layout}" if layout else f"{ndim}-D"
        raise ValueError(f"{name} must be {expected}, got shape {array.shape}")
    if array.ndim > 0 and array.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch (shape {array.shape})")
    return np.ascontiguousarray(array)


def same_dtype(**arrays):
    """Raise TypeError unless all the named arrays share one dtype; return that dtype."""
    present = [a for a in arrays.values() if a is not None]
    dtype = present[0].dtype
    if any(a.dtype != dtype for a in present[1:]):
        listing = ", ".join(f"{name} is {a.dtype}" for name, a in arrays.items() if a is not None)
        raise TypeError(f"mixed dtypes: {listing}; convert them to one float dtype")
    return dtype


def same_shape(name, array, expected, what):
    if array.shape != tuple(expected):
        raise ValueError(f"{name} has shape {array.shape}, expected {tuple(expected)} ({what})")


def pair(name, value, minimum):
    """An int or an (h, w) pair of ints, each >= minimum, as a tuple of two ints."""
    if type(value) is int and value >= minimum:  # the common case, without the ABC checks
        return value, value
    if (type(value) is tuple and len(value) == 2
            and all(type(v) is int and v >= minimum for v in value)):
        return value
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or an (h, w) pair, got {value!r}")
    result = []
    for item in items:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Integral):
            raise TypeError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
        if item < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
        result.append(operator.index(item))
    return tuple(result)


def positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def window_output_size(in_hw, kernel_hw, stride_hw, pad_hw, what):
    """(OH, OW) of a sliding window; ValueError when the kernel does not fit the padded input."""
    out = []
    for size, k, s, p in zip(in_hw, kernel_hw, stride_hw, pad_hw):
        if k > size + 2 * p:
            raise ValueError(
                f"{what}: kernel size {tuple(kernel_hw)} is larger than the padded input "
                f"{tuple(i + 2 * q for i, q in zip(in_hw, pad_hw))} (input {tuple(in_hw)}, "
                f"padding {tuple(pad_hw)})"
            )
        out.append((size + 2 * p - k) // s + 1)
    return tuple(out)


def class_labels(name, labels, n_batch, n_classes):
    """Integer labels (N,) in [0, n_classes) as int64."""
    array = np.asarray(labels)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of class indices, got dtype {array.dtype}")
    if array.shape != (n_batch,):
        raise ValueError(f"{name} must have shape ({n_batch},), got {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(
            f"{name} must lie in [0, {n_classes}), got values from {array.min()} to {array.max()}"
        )
    return np.ascontiguousarray(array, dtype=np.int64)


def binary_targets(name, targets, shape, allowed, dtype):
    """Targets of ``shape`` whose values all lie in ``allowed``, cast to ``dtype``."""
    array = np.asarray(targets)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    if not np.isin(array, allowed).all():
        raise ValueError(f"{name} must hold only the values {allowed}")
    return np.ascontiguousarray(array, dtype=dtype)
