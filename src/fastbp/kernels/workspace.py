"""Scratch memory reused from call to call, so steady-state training allocates none."""

import math
import threading

import numba
import numpy as np

from ._jit import serial_kernel

ALIGNMENT = 64  # bytes: a cache line, so vector loads from scratch never straddle two


@serial_kernel
def line_up(n):
    """n rounded up to a multiple of 16 elements: where to start the next region of a
    scratch row so that it too starts on a cache line (for 4- and 8-byte elements)."""
    return (n + 15) // 16 * 16


def aligned_empty(size, dtype):
    """A 1-D array of ``size`` elements whose data starts on an ``ALIGNMENT`` boundary."""
    dtype = np.dtype(dtype)
    raw = np.empty(size * dtype.itemsize + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + size * dtype.itemsize].view(dtype)


class Workspace:
    """Named scratch buffers that only ever grow, one set per calling thread.

    ``array(name, shape, dtype)`` returns a view of shape ``shape`` on the buffer ``name``,
    allocating a new buffer only when the old one is too small or of another dtype. Views
    from one name share memory: a caller must be done with one before asking for the next.
    Buffers start on a cache line, and so does every row of ``per_thread``.

    Each Python thread gets its own buffers, so a model (whose layers keep one workspace
    each) can serve calls from several threads at once.
    """

    def __init__(self):
        self._local = threading.local()

    @property
    def _buffers(self):
        """This thread's buffers."""
        try:
            return self._local.buffers
        except AttributeError:
            self._local.buffers = {}
            return self._local.buffers

    def array(self, name, shape, dtype):
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.dtype != dtype or buffer.size < size:
            buffer = self._buffers[name] = aligned_empty(size, dtype)
        return buffer[:size].reshape(shape)

    def per_thread(self, name, size, dtype):
        """(threads, >= size): one row for each thread numba may run (see ``get_thread_id``)."""
        per_line = ALIGNMENT // np.dtype(dtype).itemsize
        size = -(-size // per_line) * per_line
        return self.array(name, (numba.config.NUMBA_NUM_THREADS, size), dtype)

    @property
    def nbytes(self):
        """Bytes held for the calling thread."""
        return sum(buffer.nbytes for buffer in self._buffers.values())
