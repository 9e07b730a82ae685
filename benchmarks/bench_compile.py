"""Start-up latency: the first call of each kernel family in a fresh subprocess, cold
(compiling into an empty numba cache, ``NUMBA_CACHE_DIR``) and cached (loading what the
cold run wrote). See ``fastbp.bench.startup``."""

import tempfile

from fastbp.bench.startup import FAMILIES, measure


class FirstCall:
    params = [[*FAMILIES, "process"]]
    param_names = ["family"]
    timeout = 900

    def setup_cache(self):
        with tempfile.TemporaryDirectory() as cache_dir:
            return {"cold": measure(cache_dir), "cached": measure(cache_dir)}

    setup_cache.timeout = 900

    def track_cold_first_call(self, seconds, family):
        return seconds["cold"][family]

    track_cold_first_call.unit = "seconds"

    def track_cached_first_call(self, seconds, family):
        return seconds["cached"][family]

    track_cached_first_call.unit = "seconds"
