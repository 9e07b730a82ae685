"""fastbp side by side with PyTorch CPU (when importable) and NumPy im2col + GEMM.

``main(argv)`` is ``benchmarks/compare.py`` and ``fastbp bench``. It times the catalogue's
conv, transposed conv, linear, pool, batch norm and activation shapes (each pass:
forward, backward) and training steps, in one process, at one thread count and dtype
for every implementation, alternating the implementations on each repeat; it prints a
Markdown table of median milliseconds, GFLOP/s, GB/s (batch norm, activations) or
images/s and fastbp's speed relative to each peer, with NumPy's GEMM rate as a roof and,
on several threads, how much faster fastbp's threads ran than one before and after the
rows (``timing.thread_speedup``: a shared core shows there), and optionally writes JSON
(``--json``) and a bar chart (``--plot``). A peer that does not implement a shape
(``supports``: NumPy has no residual network and no activations) is left out of its rows.
"""

import argparse
import contextlib
import datetime
import json
import sys

import numba
import numpy as np

from .. import __version__, _heap, get_num_threads, machine, set_num_threads
from .._validation import positive_int
from . import numpy_peer, report, torch_peer
from .kernels import KERNELS, kernel_names, kernel_ops
from .networks import fastbp_step
from .shapes import BY_NAME, DEFAULT, of_family
from .timing import (alternating_samples, gemm_gflops, median, thread_speedup,
                     thread_speedup_what)

COMPARED = ("conv", "conv_transpose", "linear", "pool", "batchnorm", "activation", "train")
PASSES = {
    "conv": {"forward": ("forward",),
             "backward": ("backward", "backward_bias")},  # as Conv2D.backward runs them
    "conv_transpose": {"forward": ("forward",), "backward": ("backward", "backward_bias")},
    "linear": {"forward": ("forward",), "backward": ("backward_input", "backward_params")},
    "pool": {name: (name,) for name in KERNELS["pool"]},
    "batchnorm": {"forward": ("forward",), "backward": ("backward",)},
    "activation": {name: (name,) for name in kernel_names("activation")},
}
UNITS = {"batchnorm": "GB/s", "activation": "GB/s", "train": "images/s"}  # else GFLOP/s
GEMM_SIZE = 1024


def unit_of(shape):
    """The throughput unit of a shape's rows: GB/s for the memory-bound families (their
    kernels count bytes), images/s for training steps, GFLOP/s otherwise."""
    return UNITS.get(shape.family, "GFLOP/s")


def fastbp_passes(shape, dtype):
    """({pass: callable}, {pass: work}): fastbp's kernels, grouped into the compared passes;
    the work is FLOPs, or bytes where ``unit_of(shape)`` is GB/s."""
    ops = kernel_ops(shape, dtype)
    count = "nbytes" if unit_of(shape) == "GB/s" else "flops"
    fns, work = {}, {}
    for name, kernels in PASSES[shape.family].items():
        group = [ops[kernel].run for kernel in kernels]
        fns[name] = lambda group=group: [run() for run in group]
        work[name] = sum(getattr(ops[kernel], count) for kernel in kernels)
    return fns, work


def row(shape, pass_name, unit, work, samples):
    """One result: median ms, throughput and ratios from ``{peer: [seconds per call]}``."""
    seconds = {peer: median(values) for peer, values in samples.items()}
    scale = 1e9 if unit in ("GFLOP/s", "GB/s") else 1.0
    return {
        "shape": shape.name,
        "family": shape.family,
        "pass": pass_name,
        "unit": unit,
        "work": work,
        "ms": {peer: s * 1e3 for peer, s in seconds.items()},
        "samples_ms": {peer: [v * 1e3 for v in values] for peer, values in samples.items()},
        "throughput": {peer: work / s / scale for peer, s in seconds.items()},
        "ratio": {peer: s / seconds["fastbp"] for peer, s in seconds.items() if peer != "fastbp"},
    }


def measure(shape, dtype, peers, timing):
    """The rows of one shape: one per pass, or one "step" for a training shape; the peers
    that do not support the shape are left out."""
    peers = {name: peer for name, peer in peers.items() if peer.supports(shape)}
    if shape.family == "train":
        fns = {"fastbp": fastbp_step(shape, dtype)}
        fns.update({name: peer.train_step(shape, dtype) for name, peer in peers.items()})
        return [row(shape, "step", unit_of(shape), shape.batch, alternating_samples(fns, **timing))]
    fast, work = fastbp_passes(shape, dtype)
    theirs = {name: peer.passes(shape, dtype) for name, peer in peers.items()}
    rows = []
    for pass_name, fn in fast.items():
        fns = {"fastbp": fn, **{name: passes[pass_name] for name, passes in theirs.items()}}
        rows.append(row(shape, pass_name, unit_of(shape), work[pass_name],
                        alternating_samples(fns, **timing)))
    return rows


@contextlib.contextmanager
def thread_count(n, use_torch):
    """Run fastbp, torch and NumPy's BLAS on ``n`` threads; yields whether the BLAS was limited."""
    previous = get_num_threads()
    set_num_threads(n)
    if use_torch:
        torch_peer.set_num_threads(n)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            yield False
        else:
            with threadpool_limits(limits=n, user_api="blas"):
                yield True
    finally:
        set_num_threads(previous)


def select(tokens, parser):
    """Shapes named in ``--only`` (names or families), or the default compared shapes."""
    if not tokens:
        return [s for s in DEFAULT if s.family in COMPARED]
    chosen = []
    for token in (t for item in tokens for t in item.split(",") if t):
        if token in COMPARED:
            chosen += of_family(token)
        elif token in BY_NAME and BY_NAME[token].family in COMPARED:
            chosen.append(BY_NAME[token])
        else:
            names = sorted(n for n, s in BY_NAME.items() if s.family in COMPARED)
            parser.error(f"unknown shape {token!r}; choose among {', '.join(COMPARED + tuple(names))}")
    return list(dict.fromkeys(chosen))


def parser():
    from ..cli import output_path  # the fastbp command's check of a path to write

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every implementation (default: all usable cores)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed samples per implementation; the median is reported (default 5, 3 with --quick)")
    p.add_argument("--only", action="append", metavar="NAMES",
                   help=f"comma-separated shape names or families ({', '.join(COMPARED)}); "
                        "repeatable")
    p.add_argument("--quick", action="store_true",
                   help="fewer and shorter samples: a rough check, not figures to publish")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if importable")
    p.add_argument("--json", metavar="PATH", type=output_path, help="write the results as JSON")
    p.add_argument("--plot", metavar="PATH", type=output_path,
                   help="draw the speed ratios as a PNG bar chart (matplotlib)")
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    # every argument is checked by now or here, by the library, before the first timing
    threads = args.threads if args.threads is not None else min(machine.usable_cores(),
                                                                numba.config.NUMBA_NUM_THREADS)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 5)
    try:
        with thread_count(threads, use_torch=False):  # set (the library checks it) and restored
            pass
    except ValueError as error:
        p.error(f"argument --threads: {error}")
    try:
        positive_int("repeat", repeat)
    except ValueError as error:
        p.error(f"argument --repeat: {error}")
    shapes = select(args.only, p)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            p.error("--plot needs matplotlib: pip install 'fastbp[bench]'")
    peers = {}
    versions = {"fastbp": __version__, "numba": numba.__version__, "numpy": np.__version__}
    if torch_peer.available() and not args.no_torch:
        peers["torch"] = torch_peer
        versions["torch"] = torch_peer.version()
    peers["numpy"] = numpy_peer
    # glibc's sliding mmap threshold would otherwise make a peer's times depend on the
    # shapes timed before (PyTorch's 64x64x32x32 -> 64 forward: 26.6 ms alone, 16 ms after
    # larger shapes had raised it); kept memory is also what a training loop sees
    heap_kept = _heap.keep_freed_memory()
    timing = {"repeat": repeat, "warmup": 1, "min_sample_s": 0.005 if args.quick else 0.05,
              "settle_s": 0.2 if threads > 1 and not args.quick else 0.0}
    result = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": list(sys.argv[1:] if argv is None else argv),
        **machine.describe(),  # cpu, cores, isa (what numba compiles for), threading_layer
        "threads": threads,
        "dtype": args.dtype,
        "repeat": repeat,
        "versions": versions,
        "peers": ["fastbp", *peers],
        "heap": "freed memory kept" if heap_kept else "allocator defaults",
    }
    with thread_count(threads, "torch" in peers) as blas_limited:
        result["blas_threads_limited"] = blas_limited
        result["roof"] = {
            "what": f"numpy {args.dtype} matmul {GEMM_SIZE}x{GEMM_SIZE}x{GEMM_SIZE}",
            "gflops": gemm_gflops(args.dtype, GEMM_SIZE, repeat),
        }
        if threads > 1:  # what the machine gave the threads, before the rows and after
            result["thread_speedup"] = {"what": thread_speedup_what(threads, repeat),
                                        "start": thread_speedup(threads, repeat)}
        print("\n".join(report.header(result) + report.table_head(result["peers"])), flush=True)
        result["rows"] = []
        for shape in shapes:
            for r in measure(shape, args.dtype, peers, timing):
                result["rows"].append(r)
                print(report.table_row(r, result["peers"]), flush=True)
        if threads > 1:
            result["thread_speedup"]["end"] = thread_speedup(threads, repeat)
            print(report.thread_speedup_line(result), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    if args.plot:
        report.plot_ratios(result, args.plot)
    return 0
