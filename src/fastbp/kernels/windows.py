"""Geometry of sliding windows, shared by convolution and pooling."""

import numpy as np

from ._jit import serial_kernel


@serial_kernel
def valid_columns(shift, stride, width, out_w):
    """Output columns j in [lo, hi) whose input column ``j * stride + shift`` is in [0, width)."""
    lo = min(out_w, max(0, -(shift // stride)))
    return lo, max(lo, min(out_w, (width - 1 - shift) // stride + 1))


@serial_kernel
def column_ranges(k_w, pad_w, stride_w, width, out_w):
    """``valid_columns`` for every tap kj = 0 .. k_w - 1 (shift kj - pad_w), as two arrays."""
    lows = np.empty(k_w, np.int64)
    highs = np.empty(k_w, np.int64)
    for kj in range(k_w):
        lows[kj], highs[kj] = valid_columns(kj - pad_w, stride_w, width, out_w)
    return lows, highs
