import os

# Both before numba is first imported. The thread-invariance tests need at least two numba
# threads, even on a 1-core machine. Compiled kernels are cached in a directory keyed by
# the kernels' source, so an edited kernel module never meets stale machine code of
# another (see fastbp/_numba_cache.py); subprocesses inherit both settings.
os.environ.setdefault("NUMBA_NUM_THREADS", str(max(2, os.cpu_count() or 1)))
os.environ.setdefault("FASTBP_NUMBA_CACHE", "by-source")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Tolerances against the float64 NumPy references: float64 results differ only by the
# summation order; float32 results by float32 rounding of sums of up to a few thousand terms.
# ../shared/tools/as-avx2's settings: numba compiling for an AVX2 CPU (Haswell), on any machine
AS_AVX2 = {"NUMBA_CPU_NAME": "haswell",
           "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fxsr,+lzcnt,"
                                 "+mmx,+movbe,+pclmul,+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave"}
TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def assert_matches(actual, expected, dtype):
    """actual (computed in dtype) equals the float64 reference within dtype's tolerance."""
    assert actual.dtype == np.dtype(dtype)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual.astype(np.float64), expected, **TOLERANCES[dtype])
