"""Run every fastbp kernel forward and backward once and check each gradient by finite
differences on a tiny float64 problem.

    python examples/demo.py [--threads T]
"""

import argparse
import sys
import time

import numpy as np

import fastbp
from fastbp import functional as F
from fastbp.training.progress import plural


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    args = parser.parse_args(argv)
    if args.threads:
        fastbp.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    f64 = dict(dtype=np.float64)
    layers = {
        "Linear": (fastbp.Linear(5, 3, seed=0, **f64), (4, 5)),
        "Conv2D stride 2 pad 1": (fastbp.Conv2D(2, 3, 3, stride=2, padding=1, seed=0, **f64), (2, 2, 6, 5)),
        "MaxPool2D 3/2 pad 1": (fastbp.MaxPool2D(3, 2, 1, **f64), (2, 2, 6, 6)),
        "AvgPool2D 2": (fastbp.AvgPool2D(2, **f64), (2, 2, 6, 6)),
        "ReLU": (fastbp.ReLU(**f64), (3, 7)),
        "LeakyReLU": (fastbp.LeakyReLU(0.1, **f64), (3, 7)),
        "Sigmoid": (fastbp.Sigmoid(**f64), (3, 7)),
        "Tanh": (fastbp.Tanh(**f64), (3, 7)),
        "ELU": (fastbp.ELU(**f64), (3, 7)),
        "Softplus": (fastbp.Softplus(**f64), (3, 7)),
        "Maxout": (fastbp.Maxout(5, 3, pieces=4, seed=0, **f64), (4, 5)),
    }
    print(f"fastbp {fastbp.__version__}, {plural(fastbp.get_num_threads(), 'thread')}")
    for name, (layer, shape) in layers.items():
        start = time.perf_counter()
        fastbp.gradcheck_layer(layer, rng.standard_normal(shape))
        print(f"  {name:<24} forward+backward gradient check ok ({time.perf_counter() - start:.2f} s)")

    scores = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    losses = {
        "mse_loss": (F.mse_loss, rng.standard_normal((6, 4))),
        "softmax_cross_entropy": (F.softmax_cross_entropy, labels),
        "hinge_loss": (F.hinge_loss, labels),
    }
    for name, (loss_fn, target) in losses.items():
        loss, grad = loss_fn(scores, target)
        fastbp.gradcheck(lambda: loss_fn(scores, target)[0], scores, grad)
        print(f"  {name:<24} loss {loss:.6f}, gradient check ok")
    binary = rng.standard_normal(6)
    for name, loss_fn, target in [
        ("logistic_loss", F.logistic_loss, rng.integers(0, 2, 6)),
        ("logistic_pm1_loss", F.logistic_pm1_loss, rng.choice([-1, 1], 6)),
    ]:
        loss, grad = loss_fn(binary, target)
        fastbp.gradcheck(lambda: loss_fn(binary, target)[0], binary, grad)
        print(f"  {name:<24} loss {loss:.6f}, gradient check ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
