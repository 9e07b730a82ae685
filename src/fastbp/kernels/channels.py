"""Copies of a run of channels of an (N, C, H, W) array, in parallel over (sample, channel)
planes: a grouped convolution run group by group copies each group's channels in and
out (64x64x32x32 float32, four groups, in and out: 2.3 ms on one core, which NumPy's
slice assignment left on one core at any thread count)."""

from numba import prange

from ._jit import kernel, with_serial_twin
from .runs import copy_run


@with_serial_twin
@kernel
def take_channels(src, first, dst):
    """dst (N, K, H, W) = src[:, first:first + K] (src (N, C, H, W))."""
    n_batch, count, plane = dst.shape[0], dst.shape[1], dst.shape[2] * dst.shape[3]
    flat_src = src.reshape(n_batch, src.shape[1], plane)
    flat_dst = dst.reshape(n_batch, count, plane)
    for job in prange(n_batch * count):
        n, c = job // count, job % count
        copy_run(flat_src[n, first + c], 0, flat_dst[n, c], 0, plane)


@with_serial_twin
@kernel
def put_channels(src, dst, first):
    """dst[:, first:first + K] = src (N, K, H, W) (dst (N, C, H, W))."""
    n_batch, count, plane = src.shape[0], src.shape[1], src.shape[2] * src.shape[3]
    flat_src = src.reshape(n_batch, count, plane)
    flat_dst = dst.reshape(n_batch, dst.shape[1], plane)
    for job in prange(n_batch * count):
        n, c = job // count, job % count
        copy_run(flat_src[n, c], 0, flat_dst[n, first + c], 0, plane)
