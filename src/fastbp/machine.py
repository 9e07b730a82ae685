"""The machine the kernels run on, described in one place for ``fastbp info``, ``fastbp
bench`` (``benchmarks/compare.py``) and the asv suite: the CPU, the cores this process may
use, what numba compiles the kernels for, and the threading layer they run on."""

import os
import platform

import numba


def cpu_name():
    """The CPU's model name ("AMD EPYC 9R14"), from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores():
    """The cores this process may run on (its CPU affinity, where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def isa():
    """What numba compiles the kernels for: ``{"cpu_name": the LLVM CPU name ("znver4",
    "haswell" under ``../shared/tools/as-avx2``), "avx512": whether AVX-512 is among the
    features compiled for (``fastbp.kernels.isa``), "full_width": whether LLVM's
    preference for 256-bit vectors on Intel's AVX-512 CPUs is off
    (``fastbp._vector_width``)}``."""
    import llvmlite.binding

    from . import _vector_width
    from .kernels import isa as compiled

    return {"cpu_name": numba.config.CPU_NAME or llvmlite.binding.get_host_cpu_name(),
            "avx512": compiled.masked_vectors(), "full_width": _vector_width.full_width()}


def isa_text(described=None):
    """``isa()`` in words: "znver4 (AVX-512, 512-bit vectors)", "haswell (no AVX-512)",
    "rocketlake (AVX-512, LLVM's vector width)" where the 256-bit preference stayed."""
    described = described or isa()
    if not described["avx512"]:
        return f"{described['cpu_name']} (no AVX-512)"
    width = "512-bit vectors" if described.get("full_width") else "LLVM's vector width"
    return f"{described['cpu_name']} (AVX-512, {width})"


def threading_layer_text():
    """The threading layer and what it guarantees: "tbb (safe for concurrent calls and
    fork)", or which of the two it is NOT safe for (``fastbp.threads``)."""
    from .threads import threading_layer

    layer, concurrent, fork = threading_layer()
    unsafe = [what for what, holds in (("concurrent calls", concurrent), ("fork", fork)) if not holds]
    return layer + (f" (NOT safe for {' or '.join(unsafe)})" if unsafe
                    else " (safe for concurrent calls and fork)")


def describe():
    """``{"cpu", "cores", "isa", "threading_layer"}``: the machine, for a benchmark's record."""
    return {"cpu": cpu_name(), "cores": usable_cores(), "isa": isa(),
            "threading_layer": threading_layer_text()}
