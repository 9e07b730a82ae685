"""Copies and sums over runs of 1-D arrays, contiguous or every ``step``-th element,
indexed with unsigned integers.

Numba must treat a signed index that might be negative as counting from the end, and that
check stops LLVM from vectorising the loop; slicing avoids it but costs more than a short
run (a strided gather of patches: 1.2-1.4x faster this way). The callers guarantee every
index is in range. Each is inlined where it is called (``_jit.inline_kernel``): runs are
often a handful of values, less work than a call.
"""

from numba import uint64

from ._jit import inline_kernel


@inline_kernel
def copy_run(src, src_start, dst, dst_start, count):
    """dst[dst_start : dst_start + count] = src[src_start : src_start + count]."""
    s, d = uint64(src_start), uint64(dst_start)
    for j in range(uint64(count)):
        dst[d + j] = src[s + j]


@inline_kernel
def gather_run(src, src_start, step, dst, dst_start, count):
    """dst[dst_start + t] = src[src_start + t * step] for t < count."""
    s, d, k = uint64(src_start), uint64(dst_start), uint64(step)
    for t in range(uint64(count)):
        dst[d + t] = src[s + t * k]


@inline_kernel
def scatter_run(src, src_start, dst, dst_start, step, count):
    """dst[dst_start + t * step] = src[src_start + t] for t < count."""
    s, d, k = uint64(src_start), uint64(dst_start), uint64(step)
    for t in range(uint64(count)):
        dst[d + t * k] = src[s + t]


@inline_kernel
def scatter_add_run(src, src_start, dst, dst_start, step, count):
    """dst[dst_start + t * step] += src[src_start + t] for t < count."""
    s, d, k = uint64(src_start), uint64(dst_start), uint64(step)
    for t in range(uint64(count)):
        dst[d + t * k] += src[s + t]


@inline_kernel
def add_run(src, src_start, dst, dst_start, count):
    """dst[dst_start : dst_start + count] += src[src_start : src_start + count]."""
    s, d = uint64(src_start), uint64(dst_start)
    for j in range(uint64(count)):
        dst[d + j] += src[s + j]


@inline_kernel
def fill_run(dst, dst_start, count, value):
    """dst[dst_start : dst_start + count] = value."""
    d = uint64(dst_start)
    for j in range(uint64(count)):
        dst[d + j] = value


@inline_kernel
def zero(a):
    """a[...] = 0 for a C-contiguous array of any rank, as one flat loop: numba's
    multi-dimensional slice assignment (``a[:, :] = 0``) runs several times slower. A 1-D
    array is not reshaped: numba's reshape calls out of line (~40 ns), which made zeroing
    Winograd's 16 short row tails per channel cost a third of its input transform."""
    if a.ndim == 1:
        fill_run(a, 0, a.size, a.dtype.type(0))
    else:
        fill_run(a.reshape(a.size), 0, a.size, a.dtype.type(0))
