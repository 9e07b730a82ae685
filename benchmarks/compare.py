"""fastbp beside PyTorch CPU and NumPy im2col + GEMM: ``python benchmarks/compare.py --help``.

A thin wrapper: the logic is ``fastbp.bench.compare`` (also ``fastbp bench``).
"""

import sys

from fastbp.bench.compare import main

if __name__ == "__main__":
    sys.exit(main())
