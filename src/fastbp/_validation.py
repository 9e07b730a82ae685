"""Argument checks shared by the public entry points. Every failure names the argument
and says what was expected."""

import functools
import math
import numbers
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: the largest stride, padding or pooling window accepted: far beyond any real image, and
#: small enough that the kernels' int64 index arithmetic cannot overflow
MAX_WINDOW = 2**31 - 1
#: padding always accepted along an axis, whatever the input and kernel sizes; beyond it,
#: padding is bounded by the input (and for convolution the kernel) size
FREE_PADDING = 16


def describe(value):
    """A short description of ``value`` for an error message: arrays by dtype and shape,
    anything else by a repr cut to 60 characters."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def real_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite Python float within [low, high] (ends open when asked).

    TypeError unless ``value`` is a real number (an int, a float or a NumPy scalar; not a
    bool, None, a string, a list or an array); ValueError when it is NaN, infinite or out
    of range. Every scalar option of the library goes through here.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad = bad or value < low or (low_open and value == low)
    if high is not None:
        bad = bad or value > high or (high_open and value == high)
    if bad and low is None and high is None:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if bad:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return value


def native_byte_order(array):
    """``array`` itself, or a copy in this machine's byte order when its numbers are stored
    the other way round (big-endian data read from a file): the same values."""
    if array.dtype.isnative:
        return array
    return array.astype(array.dtype.newbyteorder("="))


def float_array(name, value, ndim=None, layout=None, *, weights=False):
    """``value`` as a C-contiguous, native-byte-order float32/float64 array with ``ndim`` dims.

    Data (``weights=False``) must have a non-empty batch (first axis); weights and biases
    (``weights=True``) must have no empty dimension at all. A 0-d value stays 0-d.
    ``layout`` (e.g. "(N, C, H, W)") is only used in the error message.
    """
    array = native_byte_order(np.asarray(value))
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        expected = f"{ndim}-D {layout}" if layout else f"{ndim}-D"
        raise ValueError(f"{name} must be {expected}, got shape {array.shape}")
    if weights and 0 in array.shape:
        raise ValueError(
            f"{name} has an empty dimension (shape {array.shape}): weights need at least one "
            "element along every axis"
        )
    if array.ndim > 0 and array.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch (shape {array.shape})")
    # Not np.ascontiguousarray: it turns a 0-d array into shape (1,).
    return np.asarray(array, order="C")


@functools.cache
def _workspace_type():
    # Imported on first use: this module is imported before the kernels' cache is
    # configured. Cached: an import statement costs ~1.4 us a call, on every layer's pass.
    from .kernels.workspace import Workspace

    return Workspace


def optional_workspace(name, value):
    """``value`` if it is a ``fastbp.Workspace`` or None, else TypeError."""
    if value is not None and not isinstance(value, _workspace_type()):
        raise TypeError(f"{name} must be a fastbp.Workspace or None, got {describe(value)}")
    return value


def same_dtype(**arrays):
    """Raise TypeError unless all the named arrays (None: left out) share one dtype; return
    that dtype."""
    dtype = None
    for array in arrays.values():
        if array is None:
            continue
        if dtype is None:
            dtype = array.dtype
        elif array.dtype != dtype:
            listing = ", ".join(f"{name} is {a.dtype}" for name, a in arrays.items()
                                if a is not None)
            raise TypeError(f"mixed dtypes: {listing}; convert them to one float dtype")
    return dtype


def same_shape(name, array, expected, what):
    if array.shape != tuple(expected):
        raise ValueError(f"{name} has shape {array.shape}, expected {tuple(expected)} ({what})")


def pair(name, value, minimum, maximum=MAX_WINDOW):
    """An int or an (h, w) pair of ints, each in [minimum, maximum], as a tuple of two ints."""
    if type(value) is int and minimum <= value <= maximum:  # the common case, without the ABC checks
        return value, value
    if (type(value) is tuple and len(value) == 2
            and all(type(v) is int and minimum <= v <= maximum for v in value)):
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
        if item > maximum:
            raise ValueError(f"{name} must be at most {maximum}, got {value!r}")
        result.append(operator.index(item))
    return tuple(result)


def positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def window_output_size(in_hw, kernel_hw, stride_hw, pad_hw, what, dilation_hw=(1, 1)):
    """(OH, OW) of a sliding window; ValueError when the kernel does not fit the padded input,
    or when the padding along an axis exceeds the input size, the kernel size - 1 and
    ``FREE_PADDING`` all three: more padding only adds outputs computed from zeros alone,
    and the padded input would be out of proportion to the data (``padding=2**30`` on a
    2x2 image asks for exabytes of scratch memory).

    With ``dilation_hw`` (d), the window's taps sit d apart: it spans ``d * (k - 1) + 1``
    input positions (the "kernel size" above), and ``OH = (H + 2p - d (KH - 1) - 1) // s + 1``.
    """
    dilated = dilation_hw != (1, 1)
    span_hw = tuple(d * (k - 1) + 1 for k, d in zip(kernel_hw, dilation_hw))
    for size, k, p in zip(in_hw, span_hw, pad_hw):
        if p > max(size, k - 1, FREE_PADDING):
            kernel = "dilated kernel size - 1" if dilated else "kernel size - 1"
            raise ValueError(
                f"{what}: padding {tuple(pad_hw)} must be at most the largest of the input size "
                f"{tuple(in_hw)}, the {kernel} {tuple(q - 1 for q in span_hw)} and "
                f"{FREE_PADDING}, along each axis"
            )
    out = []
    for size, k, s, p in zip(in_hw, span_hw, stride_hw, pad_hw):
        if k > size + 2 * p:
            kernel = (f"dilated kernel size {span_hw} (kernel_size {tuple(kernel_hw)}, dilation "
                      f"{tuple(dilation_hw)})" if dilated else f"kernel size {tuple(kernel_hw)}")
            raise ValueError(
                f"{what}: {kernel} is larger than the padded input "
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
