"""10,000 training steps of a small CNN keep memory flat (``tests/soak.py`` prints the figures)."""

import json
import pathlib
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_ten_thousand_steps_keep_memory_flat():
    script = pathlib.Path(__file__).with_name("soak.py")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=600, check=True)
    chunks = json.loads(result.stdout)[1:]  # the first chunk compiles and warms up
    assert chunks[-1]["steps"] >= 10_000
    steps = chunks[-1]["steps"] - chunks[0]["steps"]
    assert all(chunk["same_workspace_buffers"] for chunk in chunks)
    # The working set of a step is the same in every chunk, to the byte or nearly.
    working = [chunk["traced_peak_above_end_bytes"] for chunk in chunks]
    assert max(working) - min(working) <= 4096, working
    # What stays allocated grows only by the history's record per epoch (~32 bytes a
    # step); leaking even the smallest array each step would cost over 100.
    growth = chunks[-1]["traced_bytes"] - chunks[0]["traced_bytes"]
    assert growth <= 64 * steps, (growth, steps)
    rss_growth_kib = chunks[-1]["max_rss_kib"] - chunks[0]["max_rss_kib"]
    assert rss_growth_kib <= 4096, rss_growth_kib
