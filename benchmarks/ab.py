"""A/B: fastbp at a git revision beside the working tree, both in one process.

    python benchmarks/ab.py BASE NAME[,NAME...] [--repeat R] [--threads T] [--dtype D]

BASE is any git revision: its tree is checked out (``git worktree add``) into a temporary
directory, removed afterwards. Each NAME is a shape of ``fastbp.bench.shapes`` (every pass
of a kernel shape, the step of a training shape) or an ad-hoc convolution written
``c_N_C_H_W_O_K_S_P`` (batch, channels, height, width, output channels, kernel, stride,
padding). Both trees' ``fastbp`` are imported here one after the other; their samples
(each at least 50 ms of calls) alternate, the first of the pair swapping every repeat,
so that the machine's drifts hit both alike. Prints, per pass, the two medians in ms and
base / new (> 1: the working tree is faster). Kernel changes are measured this way before
they land (benchmarks/README.md quotes it).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FASTBP_NUMBA_CACHE", "by-source")  # before numba: see fastbp/_numba_cache.py

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_S = 0.05


def _fastbp_modules():
    return {name: module for name, module in sys.modules.items()
            if name == "fastbp" or name.startswith("fastbp.")}


def load(tree, names, dtype, threads):
    """``({pass name: callable}, modules)``: the passes of ``names`` built by the fastbp of
    ``tree`` (a source checkout), and that fastbp's modules, to put back in ``sys.modules``
    around its calls (a call may import lazily)."""
    for name in _fastbp_modules():
        del sys.modules[name]
    sys.path.insert(0, str(Path(tree) / "src"))
    try:
        import fastbp
        from fastbp.bench import kernels, networks, shapes
    finally:
        sys.path.pop(0)
    fastbp.set_num_threads(threads)
    passes = {}
    for name in names:
        if name in shapes.BY_NAME:
            shape = shapes.BY_NAME[name]
        elif name.startswith("c_") and len(name.split("_")) == 9:
            shape = shapes.Conv(name, *(int(v) for v in name.split("_")[1:]))
        else:
            raise SystemExit(f"unknown shape {name!r}: a name of fastbp.bench.shapes or c_N_C_H_W_O_K_S_P")
        if shape.family == "train":
            passes[f"{name}:step"] = networks.fastbp_step(shape, dtype)
        else:
            for kernel, op in kernels.kernel_ops(shape, dtype).items():
                passes[f"{name}:{kernel}"] = op.run
    return passes, _fastbp_modules()


def sample(fn, modules):
    """Seconds per call of ``fn`` over at least ``SAMPLE_S``, with its tree's modules."""
    sys.modules.update(modules)
    fn()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < SAMPLE_S:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def compare(base, new, repeat):
    """``{pass: (base median s, new median s)}`` for the passes both trees have."""
    (base_passes, base_modules), (new_passes, new_modules) = base, new
    results = {}
    for key in base_passes.keys() & new_passes.keys():
        times = {"base": [], "new": []}
        pair = [("base", base_passes[key], base_modules), ("new", new_passes[key], new_modules)]
        for r in range(repeat):
            for side, fn, modules in pair[::-1] if r % 2 else pair:
                times[side].append(sample(fn, modules))
        results[key] = statistics.median(times["base"]), statistics.median(times["new"])
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the git revision to compare the working tree with")
    parser.add_argument("names", help="comma-separated shape names or c_N_C_H_W_O_K_S_P")
    parser.add_argument("--repeat", type=int, default=9, help="samples per side (default 9)")
    parser.add_argument("--threads", type=int, default=1, help="numba threads (default 1)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args(argv)
    names = [n for n in args.names.split(",") if n]
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree),
                        args.base], check=True)
        try:
            base = load(tree, names, args.dtype, args.threads)
            new = load(ROOT, names, args.dtype, args.threads)
            results = compare(base, new, args.repeat)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False)
    print(f"base {args.base} | new: the working tree | {args.dtype}, {args.threads} thread(s), "
          f"median of {args.repeat}")
    one_side = sorted(base[0].keys() ^ new[0].keys())
    if one_side:
        print(f"in one tree only, not timed: {', '.join(one_side)}")
    for key in sorted(results):
        old, new_time = results[key]
        print(f"{key:44s} base {old * 1e3:9.4g} ms  new {new_time * 1e3:9.4g} ms  {old / new_time:5.2f}x")
    return results


if __name__ == "__main__":
    main()
