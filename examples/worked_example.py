"""The classic worked example of backpropagation, one gradient-descent step by fastbp.

A 2-2-2 network with sigmoid hidden and output units, inputs (0.05, 0.10), targets
(0.01, 0.99), weights w1..w8 = 0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55, biases
0.35 (hidden) and 0.60 (output), squared error E = sum 1/2 (t - o)^2 and learning rate
0.5. Prints the total error before the step (0.298371109) and the updated w5
(0.35891648) and w1 (0.149780716), as computed by hand in the lecture notes:

    h1 = sigmoid(w1 i1 + w2 i2 + b1)      o1 = sigmoid(w5 h1 + w6 h2 + b2)
    h2 = sigmoid(w3 i1 + w4 i2 + b1)      o2 = sigmoid(w7 h1 + w8 h2 + b2)

    python examples/worked_example.py [--steps N]
"""

import argparse
import sys

import numpy as np

import fastbp
from fastbp import functional as F
from fastbp import optim

INPUTS = [0.05, 0.10]
TARGETS = [0.01, 0.99]
WEIGHTS = [0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55]
BIASES = [0.35, 0.60]
LEARNING_RATE = 0.5


def build_network():
    """The 2-2-2 sigmoid network in float64, weights set to w1..w8 and the biases."""
    dtype = np.float64
    model = fastbp.Sequential(fastbp.Linear(2, 2, dtype=dtype), fastbp.Sigmoid(dtype=dtype),
                              fastbp.Linear(2, 2, dtype=dtype), fastbp.Sigmoid(dtype=dtype))
    w = WEIGHTS
    # Linear weights are (out_features, in_features): row j holds the weights into unit j.
    model.params["0.weight"][...] = [[w[0], w[1]], [w[2], w[3]]]
    model.params["0.bias"][...] = BIASES[0]
    model.params["2.weight"][...] = [[w[4], w[5]], [w[6], w[7]]]
    model.params["2.bias"][...] = BIASES[1]
    return model


def run(steps=1):
    """Train for ``steps`` steps; returns the error before the first step, the error of
    each later forward pass, and the weights w1..w8 after the last step."""
    model = build_network()
    optimizer = optim.SGD(model, LEARNING_RATE)
    x = np.array([INPUTS])
    t = np.array([TARGETS])
    errors = []
    for _ in range(steps):
        output = model.forward(x)
        error, grad = F.mse_loss(output, t)  # mean over the batch of 1/2 ||o - t||^2; N = 1
        errors.append(error)
        model.zero_grad()
        model.backward(grad)
        optimizer.step()
    errors.append(F.mse_loss(model.forward(x), t)[0])
    w1 = model.params["0.weight"].reshape(-1)
    w2 = model.params["2.weight"].reshape(-1)
    return {"errors": errors, "weights": [*w1.tolist(), *w2.tolist()]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1, help="gradient steps to take (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    result = run(args.steps)
    w = result["weights"]
    print(f"total error before the step: {result['errors'][0]:.9f}")
    steps = "1 step" if args.steps == 1 else f"{args.steps} steps"
    print(f"after {steps} with learning rate {LEARNING_RATE}:")
    for i, value in enumerate(w, start=1):
        print(f"  w{i} = {value:.9f}")
    print(f"total error after: {result['errors'][-1]:.9f}")
    print("(fastbp also updates the biases, which the hand computation keeps fixed: this "
          "changes the error after the step, not w1..w8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
