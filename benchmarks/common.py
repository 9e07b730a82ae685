"""What the asv suite shares: parameters, thread-count handling, throughput tracking.

The named shapes (append-only), their FLOP/byte counts and the seeded data live in
``fastbp.bench.shapes`` and the raw kernel calls in ``fastbp.bench.kernels``, because
``fastbp bench`` (``benchmarks/compare.py``) uses them too; both are re-exported here.
Living in the package, they are versioned with the kernels they call, so ``asv run``
over the commit history calls each commit's kernels with that commit's signatures.
"""

import os
import time

import numba

import fastbp
from fastbp.bench.kernels import kernel_names, kernel_ops
from fastbp.bench.shapes import BY_NAME, TINY, inputs, of_family, random_array, tiny  # noqa: F401

DTYPES = ["float32", "float64"]
THREADS = [1, 2, 4, 8, 16, 32, 64]


def use_threads(n):
    """Run the kernels on ``n`` threads; skip the combination (``NotImplementedError``, which
    asv reports as n/a) where the machine has fewer usable cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if n > min(cores, numba.config.NUMBA_NUM_THREADS):
        raise NotImplementedError(f"{n} threads but only {cores} usable cores")
    fastbp.set_num_threads(n)


def best_rate(run, work, min_seconds=0.2):
    """``work`` per second of ``run()``: the fastest of the calls made within ``min_seconds``
    (at least one call)."""
    best = float("inf")
    deadline = time.perf_counter() + min_seconds
    while True:
        start = time.perf_counter()
        run()
        end = time.perf_counter()
        best = min(best, end - start)
        if end >= deadline:
            return work / best


class KernelSuite:
    """Base of the kernel-family benchmarks, over (shape, kernel, dtype, threads).

    ``setup`` sets the thread count, warms the JIT on the family's tiny shape (same
    compiled specialisation, negligible run time) and allocates the timed shape's inputs
    and outputs; the subclasses' ``time_kernel`` then calls only ``self.op.run()``.
    """

    family = None
    param_names = ["shape", "kernel", "dtype", "threads"]
    timeout = 300

    @staticmethod
    def parameters(family):
        return [[s.name for s in of_family(family)], list(kernel_names(family)), DTYPES, THREADS]

    def setup(self, shape, kernel, dtype, threads):
        use_threads(threads)
        kernel_ops(tiny(self.family), dtype)[kernel].run()
        self.op = kernel_ops(BY_NAME[shape], dtype)[kernel]

    def gflops(self):
        return best_rate(self.op.run, self.op.flops) / 1e9

    def gbytes_per_second(self):
        return best_rate(self.op.run, self.op.nbytes) / 1e9
