"""``fastbp train`` and ``fastbp bench`` keep freed memory in their process
(``fastbp._heap``): arrays freed in one step come back to the next without page faults.
Each case that sets the allocator runs in a fresh Python, so that this process's allocator
stays as it is."""

import json
import os
import platform
import subprocess
import sys

import pytest

from fastbp import _heap, cli
from fastbp.bench import compare

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# A step's worth of arrays: 16 of 2 MiB alive at once, then all freed (numpy asks the
# kernel for huge pages from 4 MiB up, which would fault 512 times less often).
STEPS = """
import resource, numpy as np
from fastbp._heap import keep_freed_memory
kept = keep_freed_memory()
def step():
    arrays = [np.ones(2**19, np.float32) for _ in range(16)]
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run_steps(**environment):
    env = {key: value for key, value in os.environ.items() if key not in _heap.ENVIRONMENT}
    done = subprocess.run([sys.executable, "-c", STEPS], env={**env, **environment},
                          capture_output=True, text=True, timeout=120, check=True)
    kept, faults = done.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_kept_memory_is_reused_without_page_faults():
    kept, faults = run_steps()
    assert kept
    assert faults < 200  # five steps of 32 MiB: 40960 pages


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_glibc_returns_the_memory_when_left_as_configured():
    # A variable of glibc's own set in the environment: the user's choice stands.
    kept, faults = run_steps(MALLOC_TOP_PAD_="131072")
    assert not kept
    assert faults > 20000  # the steps above would fault without keep_freed_memory


def test_it_leaves_other_platforms_and_configured_allocators_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert _heap.keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert _heap.keep_freed_memory() is False


def test_the_train_command_keeps_freed_memory(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(_heap, "keep_freed_memory", lambda: calls.append(True))
    assert cli.main(["train", "--model", "linear", "--dataset", "digits", "--epochs", "1",
                     "--no-progress"]) == 0
    assert calls == [True]


@pytest.mark.parametrize("kept", [True, False])
def test_the_comparison_keeps_freed_memory_and_says_so(kept, monkeypatch, tmp_path, capsys):
    """Every peer is timed with the same allocator, whatever ran before: glibc's sliding
    mmap threshold would otherwise let earlier shapes change a peer's times."""
    calls = []
    monkeypatch.setattr(_heap, "keep_freed_memory", lambda: calls.append(True) or kept)
    out = tmp_path / "compare.json"
    assert compare.main(["--quick", "--repeat", "1", "--threads", "1", "--only", "tiny_conv",
                         "--no-torch", "--json", str(out)]) == 0
    assert calls == [True]
    said = "freed memory kept" if kept else "allocator defaults"
    assert json.loads(out.read_text())["heap"] == said
    assert capsys.readouterr().out.splitlines()[0].endswith(f"| heap: {said}")
