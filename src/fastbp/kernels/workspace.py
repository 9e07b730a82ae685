"""Scratch memory reused from call to call, so steady-state training allocates none."""

import numba
import numpy as np


class Workspace:
    """Named scratch buffers that only ever grow.

    ``array(name, shape, dtype)`` returns a view of shape ``shape`` on the buffer ``name``,
    allocating a new buffer only when the old one is too small or of another dtype. Views
    from one name share memory: a caller must be done with one before asking for the next.
    """

    def __init__(self):
        self._buffers = {}

    def array(self, name, shape, dtype):
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.dtype != dtype or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)

    def per_thread(self, name, size, dtype):
        """(threads, size): one row for each thread numba may run (see ``get_thread_id``)."""
        return self.array(name, (numba.config.NUMBA_NUM_THREADS, size), dtype)

    @property
    def nbytes(self):
        return sum(buffer.nbytes for buffer in self._buffers.values())
