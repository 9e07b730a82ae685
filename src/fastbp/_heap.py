"""Keep freed memory in the process, for the ``fastbp`` command's training runs and its
comparisons (``fastbp bench``, ``benchmarks/compare.py``), whose peers then run on the
same allocator whatever was timed before them.

glibc maps arrays above its mmap threshold afresh and unmaps them when freed, and hands
the top of its heap back to the kernel when more than its trim threshold is free there;
the next step's arrays then fault their pages in again (a ResNet b64 step: 2358 minor
page faults, benchmarks/README.md, 2026-12-03 late morning). Raising both thresholds, as
``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1000000000`` in the environment
would, keeps that memory for the next step. Either alone is worse: setting one turns off
glibc's sliding mmap threshold.
"""

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc takes on 64-bit systems
TRIM_THRESHOLD = 2**30
#: Set by the user: then the allocator is left as they configured it.
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
               "MALLOC_MMAP_MAX_")


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds for this process (see the module's
    docstring). Returns whether it did: not off Linux or glibc, nor where the environment
    sets any of ``ENVIRONMENT``."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in ENVIRONMENT):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc, not musl's mallopt stub
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
