"""What the asv suite shares: parameters, thread-count handling, throughput tracking.

The named shapes (append-only), their FLOP/byte counts and the seeded data live in
``fastbp.bench.shapes`` and the raw kernel calls in ``fastbp.bench.kernels``, because
``fastbp bench`` (``benchmarks/compare.py``) uses them too; both are re-exported here.
Living in the package, they are versioned with the kernels they call, so ``asv run``
over the commit history calls each commit's kernels with that commit's signatures.
"""

import math
import os
import time

import numba

import fastbp
from fastbp.bench.kernels import kernel_names, kernel_ops
from fastbp.bench.shapes import BY_NAME, TINY, inputs, of_family, random_array, tiny  # noqa: F401

DTYPES = ["float32", "float64"]
SIGNIFICANT_DIGITS = 4  # of the track_ values: timing noise is well above 0.1%


def usable_cores():
    """Cores this process may run on (its CPU affinity), capped by numba's thread pool."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, numba.config.NUMBA_NUM_THREADS))


def thread_counts(cores):
    """The thread-count parameter: 1, 2, 4, ... below ``cores``, and ``cores`` itself
    (2 cores: [1, 2]; 6: [1, 2, 4, 6]; 16: [1, 2, 4, 8, 16])."""
    counts = [1]
    while counts[-1] * 2 < cores:
        counts.append(counts[-1] * 2)
    return counts + [cores] if cores > 1 else counts


# Only what this machine can run, so no row of the results is an n/a thread count. The
# grid differs between machines; asv keeps each machine's results with its own parameters.
THREADS = thread_counts(usable_cores())


def track_compiled_for_avx512():
    """1 when numba compiles the kernels with AVX-512, 0 without (as under
    ``../shared/tools/as-avx2``): stored with every asv run, so each result says which
    instruction set it timed (keep the two apart by machine name: benchmarks/README.md)."""
    try:
        from fastbp.machine import isa
    except ImportError:  # a commit from before fastbp.machine
        raise NotImplementedError("this fastbp does not say what it compiles for") from None
    return int(isa()["avx512"])


track_compiled_for_avx512.unit = "bool"


def use_threads(n):
    """Run the kernels on ``n`` threads; skip the combination (``NotImplementedError``, which
    asv reports as n/a) where the process has fewer usable cores than when the suite was
    discovered (a narrower CPU affinity or ``NUMBA_NUM_THREADS``)."""
    cores = usable_cores()
    if n > cores:
        raise NotImplementedError(f"{n} threads but only {cores} usable cores")
    fastbp.set_num_threads(n)


def significant(value, digits=SIGNIFICANT_DIGITS):
    """``value`` rounded to ``digits`` significant digits, as asv prints a track_ result
    in full (``0.1315``, ``68500.0``, not ``0.13148218389713967``)."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


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
        """GFLOP/s to ``SIGNIFICANT_DIGITS`` digits."""
        return significant(best_rate(self.op.run, self.op.flops) / 1e9)

    def gbytes_per_second(self):
        """GB/s (bytes read and written) to ``SIGNIFICANT_DIGITS`` digits."""
        return significant(best_rate(self.op.run, self.op.nbytes) / 1e9)
