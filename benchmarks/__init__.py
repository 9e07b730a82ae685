"""The asv suite (see README.md here).

Before fastbp (and numba) are imported: cache compiled kernels in a directory keyed by
the kernels' source (``fastbp/_numba_cache.py``), so that timing an edited working tree
never runs stale machine code of an unedited module.
"""

import os

os.environ.setdefault("FASTBP_NUMBA_CACHE", "by-source")
