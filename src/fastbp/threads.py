"""The threads the parallel kernels run on: numba's threading layer and the thread count.

fastbp asks numba for its TBB threading layer (``configure_threading_layer``, run when
fastbp is imported), because TBB is the one layer that is all of:

- safe for concurrent calls: several Python threads may run kernels at once;
- fork-safe: a ``multiprocessing`` child forked after kernels ran can run them too
  (GNU OpenMP, numba's ``omp`` layer on Linux, kills such a child);
- good on a busy machine: its threads steal work, so a core taken by another process
  slows a step little (measured: LeNet-5 step, 2 threads, one core busy: TBB 8.7 ms,
  ``omp`` 17.4-22.9 ms, 1 thread 7.6-9.4 ms; ``workqueue`` 12.6 ms and not thread-safe).

The PyPI ``tbb`` wheel (a dependency of fastbp where it exists) puts ``libtbb.so.12`` in
the environment's ``lib/``, where the loader does not look, so it is loaded here by path
first. Where TBB cannot load, numba's own choice (``omp``, else ``workqueue``) stands and
a ``RuntimeWarning`` at import says which guarantee is lost. Set ``NUMBA_THREADING_LAYER`` to
choose another layer yourself: fastbp then leaves the choice alone.

Results are bit-identical whatever the layer and the thread count.
"""

import ctypes
import os
import sys
import warnings

import numba

from ._validation import positive_int

PREFERRED = "tbb"
_LIBTBB = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib", "win32": "tbb12.dll"}
# What each layer guarantees: (safe for concurrent calls, fork-safe).
GUARANTEES = {"tbb": (True, True), "omp": (True, sys.platform != "linux"),
              "workqueue": (False, True)}


def _tbb_candidates():
    name = _LIBTBB.get(sys.platform, "libtbb.so.12")
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, sys.exec_prefix)):
        for folder in ("lib", "Library/bin", "Library/lib"):
            yield os.path.join(prefix, folder, name)
    yield name  # wherever the loader finds it (a system package)


def load_tbb():
    """Load TBB's shared library so that numba's TBB layer can link against it; the path
    loaded, or None where there is none."""
    mode = getattr(ctypes, "RTLD_GLOBAL", 0)
    for path in _tbb_candidates():
        if os.path.sep in path and not os.path.exists(path):
            continue
        try:
            ctypes.CDLL(path, mode=mode)
        except OSError:
            continue
        return path
    return None


def configure_threading_layer():
    """Ask numba for the TBB layer, unless the user chose one (``NUMBA_THREADING_LAYER``)
    or numba's threads have already started. Warns when TBB cannot load."""
    if os.environ.get("NUMBA_THREADING_LAYER") or _launched():
        return
    if load_tbb() is not None:
        numba.config.THREADING_LAYER = PREFERRED
        return
    warnings.warn(
        "fastbp: TBB is not available (pip install tbb), so numba runs the kernels on its "
        "'omp' or 'workqueue' threading layer: with 'omp' (GNU OpenMP) a process forked "
        "after kernels ran cannot run them; with 'workqueue' two threads must not run "
        "kernels at once. `fastbp info` shows which.", RuntimeWarning, stacklevel=3)


def _launched():
    try:
        numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return False
    return True


def threading_layer():
    """``(name, concurrent_calls_safe, fork_safe)`` of the layer numba runs the kernels on
    ("tbb", "omp" or "workqueue"), starting numba's threads if no kernel has run yet."""
    if not _launched():
        import numpy as np

        from .kernels.optim import sgd_step  # the smallest parallel kernel

        zero = np.zeros(1)
        sgd_step(zero, zero, 0.0, 0.0)
    layer = numba.threading_layer()
    return (layer, *GUARANTEES.get(layer, (False, False)))


def set_num_threads(n):
    """Use ``n`` threads (1 .. ``numba.config.NUMBA_NUM_THREADS``) in the kernels called
    from this thread (numba keeps the count per calling thread; other threads keep theirs)."""
    n = positive_int("n", n)
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise ValueError(
            f"n={n} exceeds the {limit} threads numba was started with; "
            "set NUMBA_NUM_THREADS before importing fastbp to allow more"
        )
    numba.set_num_threads(n)


def get_num_threads():
    """The number of threads the kernels called from this thread use."""
    return numba.get_num_threads()
