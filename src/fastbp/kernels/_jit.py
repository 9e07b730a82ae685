"""Shared numba decorators for the kernels.

``kernel`` is for element-wise and branchy code: strict IEEE semantics, so NaN and
inf propagate exactly as NumPy would propagate them.

``reduction_kernel`` is for the multiply-accumulate loops of affine and convolution.
It allows re-association and FMA contraction (but keeps NaN/inf semantics) so that LLVM
can vectorise dot products. The compiled code is the same whatever the thread count,
and every output cell is owned by exactly one ``prange`` iteration, so results stay
bit-identical across thread counts; they differ from NumPy only by rounding order.
"""

from numba import njit

REDUCTION_FASTMATH = frozenset({"reassoc", "contract", "nsz"})

kernel = njit(parallel=True, cache=True, nogil=True)
reduction_kernel = njit(parallel=True, cache=True, nogil=True, fastmath=set(REDUCTION_FASTMATH))
serial_kernel = njit(cache=True, nogil=True)
