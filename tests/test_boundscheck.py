"""numba does not check array bounds: an indexing bug reads or writes out of bounds
silently. Re-run the kernel tests with every access checked (NUMBA_BOUNDSCHECK=1 makes an
out-of-range index raise IndexError), compiled into a fresh cache so that no unchecked
cached code is reused."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

KERNEL_TESTS = ["test_affine.py", "test_conv.py", "test_pooling.py", "test_activations.py",
                "test_losses.py", "test_maxout.py", "test_layers.py", "test_optim.py",
                "test_batchnorm.py", "test_conv_groups.py", "test_conv_transpose.py"]


def test_kernel_tests_pass_with_every_array_access_bounds_checked(tmp_path):
    here = Path(__file__).parent
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         *(str(here / name) for name in KERNEL_TESTS)],
        cwd=here.parent, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert " passed" in run.stdout
