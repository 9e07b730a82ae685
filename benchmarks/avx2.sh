#!/usr/bin/env bash
# Run a command as on a CPU without AVX-512 (Haswell-class AVX2 + FMA: most laptops, AMD Zen 2
# and 3), whatever this machine has, for fastbp *and* its peers, so that ratios compare AVX2
# code with AVX2 code:
#   benchmarks/avx2.sh python benchmarks/compare.py --threads 1
# numba compiles for Haswell (into its own cache directory); PyTorch's ATen kernels, MKL,
# oneDNN and OpenBLAS are held to AVX2. On a machine without AVX-512 it changes nothing.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: benchmarks/avx2.sh COMMAND [ARG...]" >&2; exit 2; }
export NUMBA_CPU_NAME=haswell
export NUMBA_CPU_FEATURES="+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+pclmul,+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-${TMPDIR:-/tmp}/numba-cache-avx2}"
export ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell
exec "$@"
