"""Wall-clock timing for the comparison: implementations alternated per repeat, medians
after warm-up, the machine's NumPy GEMM rate as a roof, and how much faster fastbp's
threads ran than one at the time (``thread_speedup``)."""

import math
import statistics
import time

import numpy as np

from .. import Workspace, get_num_threads, set_num_threads
from ..functional import linear


def _sample(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def alternating_samples(fns, repeat, warmup=1, min_sample_s=0.05, settle_s=0.0):
    """``{name: [seconds per call] * repeat}`` for zero-argument callables ``fns``.

    Each callable first runs ``warmup`` times (JIT compilation, caches, thread pools),
    then once more to choose how many calls make a sample of at least ``min_sample_s``.
    The repeats interleave the implementations, in an order rotated on every repeat, so
    slow drifts of the machine (other load, clocks) hit all of them alike. Every sample
    starts ``settle_s`` after the previous one: OpenBLAS and OpenMP worker threads keep
    spinning for up to about 0.1 s after a call, and on a machine with no spare core
    they would slow the next implementation's threads (measured: fastbp's 2-thread
    convolution took 29 ms instead of 16.5 ms right after a NumPy matmul).
    """
    names = list(fns)
    numbers = {}
    for name in names:
        for _ in range(warmup):
            fns[name]()
        once = _sample(fns[name], 1)
        numbers[name] = max(1, math.ceil(min_sample_s / once)) if once > 0 else 1
    samples = {name: [] for name in names}
    for r in range(repeat):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(settle_s)
            samples[name].append(_sample(fns[name], numbers[name]))
    return samples


def median(values):
    return statistics.median(values)


def gemm_gflops(dtype, size=1024, repeat=5):
    """The median GFLOP/s of NumPy's (BLAS) ``size``-cubed matrix product in ``dtype``."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    out = np.empty_like(a)
    seconds = alternating_samples({"gemm": lambda: np.matmul(a, b, out=out)}, repeat)["gemm"]
    return 2 * size**3 / median(seconds) / 1e9


#: ``thread_speedup``'s work: fastbp's dense forward, (N, Din) -> Dout, float32, compute
#: bound (its operands fit the L2 caches), long enough per call to share among threads.
SPEEDUP_SHAPE = (256, 512, 512)


def thread_speedup_what(threads, repeat):
    """Words for what ``thread_speedup(threads, repeat)`` measures by default."""
    n, d_in, d_out = SPEEDUP_SHAPE
    return (f"fastbp float32 dense forward {n}x{d_in} -> {d_out}, {threads} threads "
            f"against 1, fastest of {repeat}")


def thread_speedup(threads, repeat=5, fn=None):
    """How many times faster ``fn`` (default: fastbp's dense forward of ``SPEEDUP_SHAPE``)
    ran on ``threads`` of fastbp's threads than on one: the fastest of ``repeat``
    alternating samples each way. It falls short of ``threads`` where the cores are
    shared, whatever the kernels do (a busy laptop; a cloud VM whose vCPUs take turns on
    one core: on a 2-vCPU AMD EPYC VM 1.97x before one comparison's rows, 1.25x after
    them), and so bounds what the run's multithreaded figures could show."""
    if fn is None:
        rng = np.random.default_rng(0)
        n, d_in, d_out = SPEEDUP_SHAPE
        x = rng.standard_normal((n, d_in)).astype(np.float32)
        w = rng.standard_normal((d_out, d_in)).astype(np.float32)
        workspace = Workspace()
        fn = lambda: linear(x, w, workspace=workspace)  # noqa: E731

    def on(n):
        def call():
            set_num_threads(n)
            fn()
        return call

    previous = get_num_threads()
    try:
        samples = alternating_samples({1: on(1), threads: on(threads)}, repeat,
                                      min_sample_s=0.02)
    finally:
        set_num_threads(previous)
    return min(samples[1]) / min(samples[threads])
