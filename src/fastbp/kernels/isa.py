"""The vector instruction set the kernels are compiled for: the one place where a kernel
whose best loop form differs between instruction sets learns which to use.

numba compiles for the host CPU, or for ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` when set
(``../shared/tools/as-avx2`` sets them to Haswell's AVX2). With AVX-512, LLVM finishes a
vectorised loop with masked vector operations and turns select chains into mask
registers, so a loop over 5 to 16 outputs stays fast. With AVX2 (most laptops, AMD Zen 2
and 3) or NEON (ARM), a loop runs its vector body only when it has at least
``vector width x unroll`` (32 floats) iterations left and finishes in scalar code, where
data-dependent selects become branches that the CPU mispredicts: measured, a 2x2 max
pooling over 16-wide rows took 18 ns per output instead of 0.3 ns.
"""

import llvmlite.binding as llvm
import numba


def compiled_features():
    """The set of CPU features numba compiles for ("avx2", "avx512f", ...)."""
    text = numba.config.CPU_FEATURES
    if not text:
        if numba.config.CPU_NAME and numba.config.CPU_NAME != "host":
            return _features_of_named_cpu(numba.config.CPU_NAME)
        text = llvm.get_host_cpu_features().flatten()
    return {item[1:] for item in text.split(",") if item.startswith("+")}


def _features_of_named_cpu(name):
    """Features implied by an LLVM CPU name given without a feature list (a rough map:
    only whether the CPU has AVX-512 matters here)."""
    avx512 = ("avx512", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake",
              "icelake", "tigerlake", "rocketlake", "sapphirerapids", "graniterapids",
              "emeraldrapids", "znver4", "znver5", "knl", "knm")
    return {"avx512f"} if any(name.startswith(prefix) for prefix in avx512) else set()


def masked_vectors(features=None):
    """Whether the kernels are compiled for AVX-512: masked vector operations, and 32
    vector registers (16 with AVX2 or NEON), which decide how many running sums a
    micro-kernel can keep (``gemm``)."""
    return "avx512f" in (compiled_features() if features is None else features)


MASKED_VECTORS = masked_vectors()
