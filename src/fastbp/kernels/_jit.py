"""Shared numba decorators for the kernels.

``kernel`` is for element-wise and branchy code: strict IEEE semantics, so NaN and
inf propagate exactly as NumPy would propagate them.

``reduction_kernel`` is for the multiply-accumulate loops of affine and convolution.
It allows re-association and FMA contraction (but keeps NaN/inf semantics) so that LLVM
can vectorise dot products. The compiled code is the same whatever the thread count,
and every output cell is owned by exactly one ``prange`` iteration, so results stay
bit-identical across thread counts; they differ from NumPy only by rounding order.

``inline_kernel`` is for helpers of a few lines called in a kernel's inner loops (the runs
of ``runs.py``): numba inlines them into the caller's own code (and flags). A helper
decorated as a ``serial_kernel`` is compiled apart and called through a pointer, which LLVM
does not inline: on runs of a few values the call cost more than the copy (32 -> 64
channels on 14 px, 3x3 stride 2, one core: its input gradient 3.9 -> 2.8 ms inlined).
"""

from types import FunctionType

from numba import njit

REDUCTION_FASTMATH = frozenset({"reassoc", "contract", "nsz"})

kernel = njit(parallel=True, cache=True, nogil=True)
reduction_kernel = njit(parallel=True, cache=True, nogil=True, fastmath=set(REDUCTION_FASTMATH))
serial_kernel = njit(cache=True, nogil=True)
inline_kernel = njit(cache=True, nogil=True, inline="always")


PARALLEL_MIN = 16384  # elements: less work than this runs on the calling thread
_SERIAL_TWINS = {}


def with_serial_twin(parallel):
    """Register a serial twin of a parallel kernel: the same function compiled without
    threads (``prange`` runs as ``range``) and with the same floating-point flags. Every
    iteration of these kernels' parallel loops is independent, so both give bit-identical
    results; the twin saves waking the thread pool (~1.5 us at 1 thread, ~3 us at 2 on the
    dev machine) on calls too small to gain from it. ``for_size`` picks one."""
    source = parallel.py_func
    twin = FunctionType(source.__code__, source.__globals__, source.__name__,
                        source.__defaults__, source.__closure__)
    twin.__qualname__ = source.__qualname__ + "_serial"  # its own on-disk cache entry
    twin.__module__ = source.__module__
    fastmath = parallel.targetoptions.get("fastmath", False)
    # numba compiles a prange loop's body with NumPy's error model (x / 0 is inf, not
    # ZeroDivisionError); so must the twin, whose loops are the same: with Python's, the
    # zero check before each division kept a sigmoid's loop scalar (20 ms against 1.8).
    _SERIAL_TWINS[parallel] = njit(cache=True, nogil=True, fastmath=fastmath,
                                   error_model="numpy")(twin)
    return parallel


def serial_twin(parallel):
    """The serial twin registered for ``parallel`` (``with_serial_twin``)."""
    return _SERIAL_TWINS[parallel]


def for_size(parallel, size, minimum=PARALLEL_MIN):
    """``parallel``, or its serial twin when the call's ``size`` (by default elements
    touched) is under ``minimum``."""
    return parallel if size >= minimum else serial_twin(parallel)
