"""Geometry of sliding windows, shared by convolution and pooling."""

from ._jit import serial_kernel


@serial_kernel
def valid_columns(shift, stride, width, out_w):
    """Output columns j in [lo, hi) whose input column ``j * stride + shift`` is in [0, width)."""
    lo = min(out_w, max(0, -(shift // stride)))
    return lo, max(lo, min(out_w, (width - 1 - shift) // stride + 1))
