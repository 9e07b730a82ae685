"""A LeNet-5 training step (batch 64, float32) while another process keeps one core busy,
on each of numba's threading layers: what a user on a busy laptop gets.

    python benchmarks/busy_core.py [--layers tbb,omp,workqueue] [--repeat 15]

For each layer a fresh process times the step at 1 thread and at all threads, first on
the idle machine, then beside a process spinning on one core. fastbp's default layer is
TBB (``fastbp.threads``): the target is that its all-thread step beside the busy core
takes at most 1.15 times its 1-thread step. Medians in ms.
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("FASTBP_NUMBA_CACHE", "by-source")  # before numba: see fastbp/_numba_cache.py

MEASURE = """
import json, statistics, sys, time
import numba
import fastbp
from fastbp.bench.networks import fastbp_step
from fastbp.bench.shapes import BY_NAME
step = fastbp_step(BY_NAME["lenet5_b64"], "float32")
result = {}
for threads in (1, numba.config.NUMBA_NUM_THREADS):
    fastbp.set_num_threads(threads)
    for _ in range(5):
        step()
    samples = []
    for _ in range(int(sys.argv[1])):
        start = time.perf_counter()
        for _ in range(10):
            step()
        samples.append((time.perf_counter() - start) / 10 * 1e3)
    result[threads] = statistics.median(samples)
print(json.dumps({"layer": fastbp.threads.threading_layer()[0], "ms": result}))
"""

SPIN = "while True: pass"


def measure(layer, repeat, busy):
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        time.sleep(0.2 if busy else 0.0)
        done = subprocess.run([sys.executable, "-c", MEASURE, str(repeat)], env=env,
                              capture_output=True, text=True, check=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="tbb,omp,workqueue",
                        help="numba threading layers to time, comma-separated (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=15, help="samples of 10 steps each (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    print("| layer | idle, 1 thread | idle, all threads | busy core, 1 thread | busy core, all threads | busy: all / 1 |")
    print("|---|---|---|---|---|---|")
    for layer in args.layers.split(","):
        idle = measure(layer, args.repeat, busy=False)
        busy = measure(layer, args.repeat, busy=True)
        (one, many), (busy_one, busy_many) = idle["ms"].values(), busy["ms"].values()
        print(f"| {busy['layer']} | {one:.2f} | {many:.2f} | {busy_one:.2f} | {busy_many:.2f} | "
              f"{busy_many / busy_one:.2f}x |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
