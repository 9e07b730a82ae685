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
from fastbp.training.progress import plural


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=training.DATASETS, default="fashion-mnist",
                        help="data set (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=100, help="total epochs (default: %(default)s)")
    parser.add_argument("--milestone", type=int, default=None,
                        help="epoch where lr drops by 10x (default: half of --epochs)")
    parser.add_argument("--lr", type=float, default=0.1, help="initial learning rate (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=5e-4,
                        help="L2 lambda on weights (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default: %(default)s)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128], metavar="N",
                        help="hidden layer sizes (default: 256 128)")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N",
                        help="use only the first N training samples (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights and batches (default: %(default)s)")
    parser.add_argument("--save", default=None, metavar="NPZ",
                        help="write the trained model to this .npz (default: none)")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="write loss/accuracy curves to this PNG (default: none)")
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
          f"{plural(fastbp.get_num_threads(), 'thread')}")
    history = trainer.fit(data.train, data.test, epochs=args.epochs)
    final = history.last()
    elapsed = time.perf_counter() - start
    print(f"test accuracy {100 * final['test_accuracy']:.2f}% after {plural(args.epochs, 'epoch')} "
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
