"""512-bit vectors on every AVX-512 CPU, for the kernels' register tiles.

LLVM tunes its code for Intel's AVX-512 CPUs (Skylake-SP to Sapphire Rapids) to prefer
256-bit vectors (its ``prefer-256-bit`` tuning: Skylake-SP lowered its clock under 512-bit
instructions); for AMD's Zen 4 and 5 it does not. The kernels size their register tiles
for AVX-512's 32 registers of 16 floats (``kernels.isa``): with 256-bit vectors the 8 x 32
tile of ``kernels.packed`` needs all 32 registers for its sums alone and spills them.
Measured on an Intel Xeon (numba's CPU name rocketlake, AVX-512 and AMX), one core,
``packed_product`` in GFLOP/s, LLVM's preference / 512-bit vectors: 256x784x256
67.6 / 133.7, 1024x1024x1024 76.1 / 162.1.

It runs when fastbp is imported, before any kernel is compiled.
"""

import os

#: Where the user chose what numba compiles for: then fastbp leaves it as they chose.
ENVIRONMENT = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")
NOT_PREFERRED = "-prefer-256-bit"


def configure():
    """Have numba compile for this CPU's own features without LLVM's preference for
    256-bit vectors, where the CPU has AVX-512. Returns whether it did: not where the
    environment sets one of ``ENVIRONMENT`` (``../shared/tools/as-avx2`` does), nor once
    numba has made its code generator (something was compiled before fastbp was
    imported): its features are fixed then. This is numba's setting for the whole
    process: other numba code in it is compiled with 512-bit vectors too."""
    if any(os.environ.get(name) for name in ENVIRONMENT):
        return False
    import numba
    from numba.core.codegen import get_host_cpu_features
    from numba.core.registry import cpu_target

    if "_toplevel_target_context" in vars(cpu_target):
        return False
    features = get_host_cpu_features()  # numba's default, NUMBA_ENABLE_AVX applied
    if "+avx512f" not in features.split(","):
        return False
    numba.config.CPU_FEATURES = f"{features},{NOT_PREFERRED}"
    return True


def full_width():
    """Whether numba's code generator compiles without the 256-bit preference (see
    ``configure``); creates the generator if none exists yet."""
    from numba.core.registry import cpu_target

    features = cpu_target.target_context.codegen().magic_tuple()[2]
    return NOT_PREFERRED in features.split(",")
