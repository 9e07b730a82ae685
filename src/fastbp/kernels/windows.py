"""Geometry of sliding windows, shared by convolution and pooling."""

import numpy as np

from ._jit import serial_kernel


@serial_kernel
def valid_columns(shift, stride, width, out_w):
    """Output columns j in [lo, hi) whose input column ``j * stride + shift`` is in [0, width)."""
    lo = min(out_w, max(0, -(shift // stride)))
    return lo, max(lo, min(out_w, (width - 1 - shift) // stride + 1))


@serial_kernel
def tap_columns(k_w, pad_w, stride_w, width, out_w):
    """For every window tap kj (0 .. k_w - 1): the output columns it reaches and the input
    columns it reads there, as three uint64 arrays ``(out_starts, in_starts, counts)``:
    output columns ``out_starts[kj] + j`` read input columns ``in_starts[kj] + j * stride_w``
    for ``j < counts[kj]``. Unsigned, so the loops that use them carry no wrap-around check.
    """
    out_starts = np.zeros(k_w, np.uint64)
    in_starts = np.zeros(k_w, np.uint64)
    counts = np.zeros(k_w, np.uint64)
    for kj in range(k_w):
        lo, hi = valid_columns(kj - pad_w, stride_w, width, out_w)
        if hi > lo:
            out_starts[kj] = lo
            in_starts[kj] = lo * stride_w + kj - pad_w
            counts[kj] = hi - lo
    return out_starts, in_starts, counts
