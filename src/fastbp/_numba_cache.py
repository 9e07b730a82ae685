"""A numba cache directory keyed by the kernels' source, for people who edit the kernels.

numba's on-disk cache checks the source file of the function it caches, not the files of
the functions that one calls: after an edit of ``kernels/gemm.py``, a cached convolution
kernel would keep running the old micro-kernel. With ``FASTBP_NUMBA_CACHE=by-source`` in
the environment (the tests' ``conftest.py`` and the benchmark entry points set it), the
cache lives in a directory named after a hash of every kernel source, so any edit starts
a fresh cache: ``$NUMBA_CACHE_DIR/fastbp-<hash>`` (default ``~/.cache/fastbp/numba/``).
The least recently used of these directories beyond ``KEEP`` are removed.

Standard library only: this runs before numba is imported.
"""

import hashlib
import os
import shutil
import sys
from pathlib import Path

ENV = "FASTBP_NUMBA_CACHE"
KEEP = 4
KERNELS = Path(__file__).with_name("kernels")


def source_key():
    """16 hex digits of a hash over every kernel module's name and bytes."""
    digest = hashlib.sha256()
    for path in sorted(KERNELS.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _default_base():
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "fastbp", "numba")


def configure():
    """Point numba's cache at the keyed directory when ``FASTBP_NUMBA_CACHE=by-source``;
    otherwise leave numba's default (``__pycache__`` beside each kernel) alone."""
    mode = os.environ.get(ENV)
    if not mode:
        return None
    if mode != "by-source":
        raise ValueError(f"{ENV} must be 'by-source' or unset, got {mode!r}")
    name = f"fastbp-{source_key()}"
    base = os.environ.get("NUMBA_CACHE_DIR") or _default_base()
    if os.path.basename(os.path.normpath(base)) == name:  # inherited from a parent process
        base = os.path.dirname(os.path.normpath(base))
    directory = os.path.join(base, name)
    os.makedirs(directory, exist_ok=True)
    os.utime(directory)  # most recently used
    _prune(base, name)
    os.environ["NUMBA_CACHE_DIR"] = directory
    if "numba" in sys.modules:  # imported already: its config has read the environment
        sys.modules["numba"].config.CACHE_DIR = directory
    return directory


def _prune(base, current):
    """Remove the least recently used keyed directories beyond ``KEEP``."""
    try:
        keyed = [entry for entry in os.scandir(base)
                 if entry.is_dir() and entry.name.startswith("fastbp-") and entry.name != current]
        keyed.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
    except OSError:
        return
    for entry in keyed[KEEP - 1:]:
        shutil.rmtree(entry.path, ignore_errors=True)
