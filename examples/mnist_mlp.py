"""Train the 3-layer ReLU MLP of the lecture notes on MNIST-format digits or clothes.

Softmax cross-entropy, mini-batch SGD with L2 weight decay (lambda/2 ||W||^2 on the
weights, not the biases) and the notes' step schedule: lr 0.1 for the first half of the
epochs, 0.01 for the second. Prints per-epoch progress and the final test accuracy.

    python examples/mnist_mlp.py                      # Fashion-MNIST, 100 epochs
    python examples/mnist_mlp.py --dataset mnist      # needs the MNIST files or internet
    python examples/mnist_mlp.py --dataset digits --epochs 20
"""

import argparse
import sys
import time

import fastbp
from fastbp import models, optim, training


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", choices=training.DATASETS, default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=100, help="total epochs")
    parser.add_argument("--milestone", type=int, default=None,
                        help="epoch where lr drops by 10x (default: half of --epochs)")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="L2 lambda on weights")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128], help="hidden layer sizes")
    parser.add_argument("--train-limit", type=int, default=None, help="use only N training samples")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="write the trained model to this .npz")
    parser.add_argument("--plot", default=None, help="write loss/accuracy curves to this PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        fastbp.set_num_threads(args.threads)
    start = time.perf_counter()
    data = training.load_dataset(args.dataset, "flat", train_limit=args.train_limit)
    h, w = data.image_shape
    model = models.mlp(h * w, args.hidden, data.num_classes, seed=args.seed)
    milestone = args.milestone if args.milestone is not None else max(1, args.epochs // 2)
    schedule = optim.MultiStep(args.lr, [milestone], gamma=0.1)
    optimizer = optim.SGD(model, args.lr, weight_decay=args.weight_decay)
    trainer = fastbp.Trainer(model, optimizer, "cross_entropy", batch_size=args.batch_size,
                             schedule=schedule, seed=args.seed, progress=not args.no_progress)
    print(f"{args.dataset}: {len(data.train[0])} training, {len(data.test[0])} test samples; "
          f"MLP {h * w}-{'-'.join(map(str, args.hidden))}-{data.num_classes}; "
          f"{fastbp.get_num_threads()} threads")
    history = trainer.fit(data.train, data.test, epochs=args.epochs)
    final = history.last()
    elapsed = time.perf_counter() - start
    print(f"test accuracy {100 * final['test_accuracy']:.2f}% after {args.epochs} epochs "
          f"({elapsed:.0f} s in total)")
    if args.save:
        trainer.save(args.save, metadata={"dataset": args.dataset, "layout": "flat",
                                          "stats": list(data.stats)})
        print(f"saved {args.save}")
    if args.plot:
        training.plot_history(history, args.plot, title=f"MLP on {args.dataset}")
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
