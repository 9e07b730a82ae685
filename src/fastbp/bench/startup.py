"""Start-up latency: how long the first call of each kernel family takes in a fresh process.

``python -m fastbp.bench.startup`` prints ``{family: seconds}`` as JSON for the tiny
shapes in float32. ``measure(cache_dir)`` runs it in a subprocess whose numba cache is
``cache_dir``: an empty directory gives the cold first call (compilation), the same
directory again the cached one (``cache=True`` loading). ``"process"`` is the whole
subprocess: interpreter start, ``import fastbp`` and every first call.
"""

import json
import os
import subprocess
import sys
import time

FAMILIES = ("linear", "conv", "pool", "activation", "loss")


def first_calls(dtype="float32"):
    """Seconds to build the tiny shape's arrays and run each of its kernels once, per family."""
    from .kernels import kernel_ops
    from .shapes import tiny

    seconds = {}
    for family in FAMILIES:
        start = time.perf_counter()
        for op in kernel_ops(tiny(family), dtype).values():
            op.run()
        seconds[family] = time.perf_counter() - start
    return seconds


def measure(cache_dir):
    """``{family: seconds, "process": seconds}`` from a subprocess using ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", __name__], env=env, check=True,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return {**json.loads(done.stdout), "process": seconds}


if __name__ == "__main__":
    print(json.dumps(first_calls()))
