"""fastbp compiles with 512-bit vectors on every AVX-512 CPU (``fastbp._vector_width``),
and leaves numba's target alone where the user chose it or numba already compiled. Each
case runs in a fresh Python: the choice is made once per process, at import."""

import os
import subprocess
import sys

from numba.core.codegen import get_host_cpu_features

from conftest import AS_AVX2
from fastbp import _vector_width

HOST_AVX512 = "+avx512f" in get_host_cpu_features().split(",")

# The packed product's 8 x 32 (AVX-512) or 3 x 32 tile, compiled; its 512-bit registers.
TILE = """
import numpy as np
{before}
import fastbp
from fastbp import _vector_width
from fastbp.kernels.packed import product_tile, tile_kernels
rows, cols = product_tile(np.float32)
tile = tile_kernels(rows, cols)[0]
a, b = np.ones(8 * rows, np.float32), np.ones(8 * cols, np.float32)
out = np.zeros((rows, cols), np.float32)
tile(a, 0, 0, b, 0, cols, 8, out, 0, 0, False)
assert (out == 8).all()
print(_vector_width.full_width(), tile.inspect_asm(tile.signatures[0]).count("zmm"))
"""


def compile_tile(cache, before="", **environment):
    env = {key: value for key, value in os.environ.items()
           if key not in _vector_width.ENVIRONMENT}
    env["NUMBA_CACHE_DIR"] = str(cache)  # empty: a tile loaded from a cache shows no assembly
    done = subprocess.run([sys.executable, "-c", TILE.format(before=before)],
                          env={**env, **environment}, capture_output=True, text=True,
                          timeout=300, check=True)
    full_width, zmm = done.stdout.split()
    return full_width == "True", int(zmm)


def test_avx512_cpus_get_512_bit_vectors(tmp_path):
    full_width, zmm = compile_tile(tmp_path)
    assert full_width is HOST_AVX512
    # LLVM left to itself gave an Intel AVX-512 CPU's tile ymm sums, and spilled them
    assert (zmm > 16) is HOST_AVX512


def test_a_target_the_user_chose_is_left_alone(tmp_path):
    full_width, zmm = compile_tile(tmp_path, **AS_AVX2)
    assert not full_width and zmm == 0


def test_nothing_changes_once_numba_has_compiled(tmp_path):
    full_width, _ = compile_tile(tmp_path, "import numba; numba.njit(lambda: 1)()")
    assert not full_width
