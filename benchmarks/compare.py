"""fastbp beside PyTorch CPU and NumPy im2col + GEMM: ``python benchmarks/compare.py --help``.

A thin wrapper: the logic is ``fastbp.bench.compare`` (also ``fastbp bench``).
"""

import os
import sys

# Before numba is imported: a numba cache keyed by the kernels' source (fastbp/_numba_cache.py).
os.environ.setdefault("FASTBP_NUMBA_CACHE", "by-source")

from fastbp.bench.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
