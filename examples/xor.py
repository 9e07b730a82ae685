"""XOR: a linear model cannot learn it, a network with one non-linear hidden layer can.

Both models are trained on the four points (0,0)->0, (0,1)->1, (1,0)->1, (1,1)->0 with
softmax cross-entropy and full-batch gradient descent with momentum. The linear model
(one Linear layer) separates the classes with a single line, so at best it gets 3 of the
4 points; the 2-H-2 network with a tanh hidden layer gets all four.

    python examples/xor.py [--hidden 4] [--epochs 500] [--seed 0]
"""

import argparse
import sys

import numpy as np

import fastbp
from fastbp import optim, training

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
Y = np.array([0, 1, 1, 0])


def train(model, epochs, lr):
    """Full-batch SGD with momentum 0.9; returns (final loss, accuracy, predictions)."""
    trainer = fastbp.Trainer(model, optim.SGD(model, lr, momentum=0.9), "cross_entropy",
                             batch_size=len(X), progress=False)
    trainer.fit((X, Y), epochs=epochs)
    result = trainer.evaluate(X, Y)
    return result["loss"], result["accuracy"], training.predict(model, X).argmax(axis=1)


def run(hidden=4, epochs=500, lr=0.5, seed=0):
    """Train the linear model and the network; returns their (loss, accuracy, predictions)."""
    dtype = np.float64
    linear = fastbp.Sequential(fastbp.Linear(2, 2, dtype=dtype, init="xavier", seed=seed))
    rng = np.random.default_rng(seed)
    network = fastbp.Sequential(
        fastbp.Linear(2, hidden, dtype=dtype, init="xavier", rng=rng), fastbp.Tanh(dtype=dtype),
        fastbp.Linear(hidden, 2, dtype=dtype, init="xavier", rng=rng),
    )
    return {"linear": train(linear, epochs, lr), "network": train(network, epochs, lr)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=4, help="hidden tanh units (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=500, help="full-batch steps (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.hidden < 1 or args.epochs < 1 or not args.lr > 0:
        parser.error("--hidden and --epochs must be positive and --lr > 0")
    results = run(args.hidden, args.epochs, args.lr, args.seed)
    print(f"inputs {X.tolist()}, XOR labels {Y.tolist()}")
    for name, title in (("linear", "linear model 2-2"), ("network", f"network 2-{args.hidden}-2 (tanh)")):
        loss, accuracy, predicted = results[name]
        print(f"{title:<26} loss {loss:.4f}  accuracy {100 * accuracy:3.0f}%  predicts {predicted.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
