"""The number of threads the parallel kernels use."""

import numba

from ._validation import positive_int


def set_num_threads(n):
    """Use ``n`` threads (1 .. ``numba.config.NUMBA_NUM_THREADS``) in the kernels."""
    n = positive_int("n", n)
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise ValueError(
            f"n={n} exceeds the {limit} threads numba was started with; "
            "set NUMBA_NUM_THREADS before importing fastbp to allow more"
        )
    numba.set_num_threads(n)


def get_num_threads():
    """The number of threads the kernels use now."""
    return numba.get_num_threads()
