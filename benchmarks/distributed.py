"""Data-parallel training on MPI: images/s and the time spent exchanging gradients per step,
for K = 1 and 2 ranks of one thread each, for the MLP (784-256-128-10) and LeNet-5 on
28x28 inputs, batch 64, float32, SGD with momentum; then the cost model of README's
"Training on several machines", fed by these figures.

    python -m pip install -e ".[mpi]"
    python benchmarks/distributed.py [--steps 100] [--json distributed.json] [--markdown out.md]

Each (model, K) is a fresh ``mpirun -n K`` job (``--oversubscribe`` and the run-as-root
variables are added for Open MPI) running ``Trainer.fit`` on synthetic data, as
``mpirun -n K fastbp train --micro-batches K --threads 1`` does. K = 1 is the plain
one-process step (no micro-batches, no exchange). A job reports, per step: the wall time
of the slowest rank, the time inside the two collectives during training (which includes
waiting for the slower rank, so on a busy machine it is mostly waiting), the same two
collectives timed alone afterwards (ranks in step, nothing else running between), and
the fold. The K = 1 job also times a step on all cores (a "node" of this machine) and,
for the cost model, the fold of S micro-batch gradients of a whole model (S = 2 .. 64).

The cost model (``project``) for N nodes, one rank of all cores each, S = N, a per-node
batch of b images (global batch B = N b): a step takes

    b * t_image + fold + 2 (N - 1) * latency + 2 (N - 1) / N * 4 P / bandwidth

where t_image is this machine's per-image step time on all cores, fold the fold of P S / N
elements (a rank folds its chunk over the S micro-batches: about one gradient's worth of
additions), and the last two terms the Alltoallv and the Allgatherv, each moving
(N - 1) / N of the P float32 gradient elements into every node over links of the given
bandwidth (90% of the line rate) and per-message latency. Images/s = B / step time.
Communication dominates below the per-node batch b* at which b * t_image equals it.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("FASTBP_NUMBA_CACHE", "by-source")  # before numba: see fastbp/_numba_cache.py

BATCH = 64
NETWORKS = {"10 Gbit/s Ethernet": (10e9 / 8 * 0.9, 30e-6), "100 Gbit/s Ethernet": (100e9 / 8 * 0.9, 10e-6)}
NODES = (4, 8, 16, 32, 64)
PER_NODE_BATCHES = (32, 64, 256)


# ----------------------------------------------------------------------------- worker (one rank)

def _model(name):
    from fastbp import models

    if name == "mlp":
        return models.mlp(784, hidden=(256, 128), out_features=10, seed=0), (784,)
    return models.lenet5(28, 1, 10, seed=0), (1, 28, 28)


def _timed_fit(trainer, x, y):
    start = time.perf_counter()
    trainer.fit((x, y), epochs=trainer.epoch + 1)
    return time.perf_counter() - start


def worker(model_name, steps):
    import numpy as np

    import fastbp
    from fastbp import distributed, optim

    comm = distributed.world()
    size, rank = comm.Get_size(), comm.Get_rank()
    rng = np.random.default_rng(0)
    model, shape = _model(model_name)
    n = BATCH * steps
    x = rng.standard_normal((n, *shape), dtype=np.float32)
    y = rng.integers(0, 10, n)

    def trainer_for(model):
        opt = optim.SGD(model, 0.01, momentum=0.9, weight_decay=5e-4)
        return fastbp.Trainer(model, opt, batch_size=BATCH, progress=False, micro_batches=size,
                              comm=comm if size > 1 else None)

    fastbp.set_num_threads(1)
    trainer = trainer_for(model)
    _timed_fit(trainer, x[:BATCH * 4], y[:BATCH * 4])  # warm up: kernels loaded, buffers made
    comm.Barrier()
    before = trainer.exchange_seconds
    wall = _timed_fit(trainer, x, y)
    exchange_in_training = (trainer.exchange_seconds - before) / steps
    result = {"model": model_name, "ranks": size, "threads_per_rank": 1, "batch": BATCH, "steps": steps,
              "params": sum(a.size for a in model.params.values())}
    if size > 1:  # the collectives alone, the ranks in step
        exchange = trainer._exchange
        bounds = distributed.micro_batch_bounds(BATCH, size)
        grads = model.grads
        comm.Barrier()
        exchanged, folded = exchange.exchange_seconds, exchange.fold_seconds
        for _ in range(50):
            exchange.combine(bounds, grads)
        result["exchange_alone_ms"] = (exchange.exchange_seconds - exchanged) / 50 * 1e3
        result["fold_ms"] = (exchange.fold_seconds - folded) / 50 * 1e3
        result["received_bytes"] = exchange.received_bytes
    elif rank == 0:  # a node of this machine, and the fold of S micro-batches of a whole model
        fastbp.set_num_threads(os.cpu_count() or 1)
        node_model, _ = _model(model_name)
        node = trainer_for(node_model)
        _timed_fit(node, x[:BATCH * 4], y[:BATCH * 4])
        result["node_threads"] = os.cpu_count()
        result["node_step_ms"] = _timed_fit(node, x, y) / steps * 1e3
        fastbp.set_num_threads(1)
        result["whole_fold_ms"] = {}
        for s in (2, 4, 8, 16, 32, 64):
            exchange = distributed.GradientExchange(model.params, s)
            bounds = distributed.micro_batch_bounds(BATCH * s, s)
            exchange.combine(bounds, model.grads)
            exchange.fold_seconds = 0.0
            for _ in range(10):
                exchange.combine(bounds, model.grads)
            result["whole_fold_ms"][s] = exchange.fold_seconds / 10 * 1e3
    walls = comm.gather(wall, root=0)
    exchanges = comm.gather(exchange_in_training, root=0)
    if rank == 0:
        slowest = max(walls)
        result.update(images_per_s=BATCH * steps / slowest, step_ms=slowest / steps * 1e3,
                      exchange_ms=sum(exchanges) / size * 1e3)
        print(json.dumps(result))


# ----------------------------------------------------------------------------- driver

def mpirun_command(ranks):
    here = Path(sys.executable).parent
    launcher = next((str(p) for p in (here / "mpirun", here / "mpiexec") if p.exists()), None)
    launcher = launcher or shutil.which("mpirun") or shutil.which("mpiexec")
    if launcher is None:
        sys.exit("needs mpirun: python -m pip install -e '.[mpi]'")
    version = subprocess.run([launcher, "--version"], capture_output=True, text=True).stdout
    extra = ["--oversubscribe"] if "Open MPI" in version or "OpenRTE" in version else []
    return [launcher, "-n", str(ranks), *extra]


def run(model, ranks, steps):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_mpi_yield_when_idle="1")
    done = subprocess.run([*mpirun_command(ranks), sys.executable, __file__, "--worker", model,
                           "--steps", str(steps)], env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        sys.exit(f"mpirun -n {ranks} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))


def project(one, nodes, per_node_batch, network):
    """The cost model: images/s, and the step's compute and exchange in ms, for ``nodes``
    nodes like this machine (``one``: the K = 1 measurement) on ``network``."""
    bandwidth, latency = network
    t_image = one["node_step_ms"] / one["batch"] / 1e3
    folds = {int(s): ms / 1e3 for s, ms in one["whole_fold_ms"].items()}
    fold = folds[nodes] / nodes
    exchange = 2 * (nodes - 1) * latency + 2 * (nodes - 1) / nodes * 4 * one["params"] / bandwidth
    compute = per_node_batch * t_image + fold
    return {"images_per_s": nodes * per_node_batch / (compute + exchange), "compute_ms": compute * 1e3,
            "exchange_ms": exchange * 1e3, "crossover_batch": (exchange - fold) / t_image}


def report(results):
    lines = ["| model | ranks x threads | images/s | step ms | exchange ms/step in training "
             "(alone) | fold ms | bytes received per rank and step |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        alone = f" ({r['exchange_alone_ms']:.3f})" if "exchange_alone_ms" in r else ""
        lines.append(f"| {r['model']} | {r['ranks']} x 1 | {r['images_per_s']:.0f} | {r['step_ms']:.2f} | "
                     f"{r['exchange_ms']:.3f}{alone} | {r.get('fold_ms', 0):.3f} | "
                     f"{r.get('received_bytes', 0) / 1e3:.0f} kB |")
    for r in results:
        if "node_step_ms" in r:
            lines.append(f"| {r['model']} | 1 x {r['node_threads']} (a node) | "
                         f"{r['batch'] / r['node_step_ms'] * 1e3:.0f} | {r['node_step_ms']:.2f} | | | |")
    for one in results:
        if "node_step_ms" not in one:
            continue
        lines += ["", f"{one['model']} ({one['params']} parameters), nodes like this machine "
                  f"({one['node_step_ms']:.2f} ms per step of {one['batch']} on {one['node_threads']} cores): "
                  "images/s (exchange ms per step)", ""]
        header = "| nodes | " + " | ".join(f"{name}, b = {b}" for name in NETWORKS for b in PER_NODE_BATCHES)
        lines += [header + " | communication dominates below b = (10 / 100 Gbit/s) |",
                  "|---|" + "---|" * (len(NETWORKS) * len(PER_NODE_BATCHES) + 1)]
        for nodes in NODES:
            cells, crossover = [], []
            for network in NETWORKS.values():
                for b in PER_NODE_BATCHES:
                    p = project(one, nodes, b, network)
                    cells.append(f"{p['images_per_s']:.0f} ({p['exchange_ms']:.2f})")
                crossover.append(f"{max(p['crossover_batch'], 0):.0f}")
            lines.append(f"| {nodes} | " + " | ".join(cells) + f" | {' / '.join(crossover)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed steps (one epoch, after a warm-up)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet"], choices=["mlp", "lenet"])
    parser.add_argument("--json", metavar="PATH", help="write the measurements here")
    parser.add_argument("--from-json", metavar="PATH", help="report measurements written before")
    parser.add_argument("--worker", choices=["mlp", "lenet"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps)
        return 0
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        results = []
        for model in args.models:
            for ranks in args.ranks:
                results.append(run(model, ranks, args.steps))
                print(json.dumps(results[-1]), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
