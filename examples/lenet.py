"""Train a LeNet-5 style convolutional network on Fashion-MNIST (or MNIST, or digits).

conv 5x5 (6 maps, padding 2) -> ReLU -> 2x2 max-pool -> conv 5x5 (16 maps) -> ReLU ->
2x2 max-pool -> dense 120 -> ReLU -> dense 84 -> ReLU -> dense 10, softmax
cross-entropy, SGD with momentum and L2 weight decay, cosine learning-rate decay.
Prints per-epoch progress and the final test accuracy.

    python examples/lenet.py                          # Fashion-MNIST, 15 epochs
    python examples/lenet.py --dataset digits --epochs 15
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
    parser.add_argument("--epochs", type=int, default=15, help="epochs (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.02,
                        help="initial learning rate, decayed by a cosine (default: %(default)s)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=5e-4,
                        help="L2 lambda on weights (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="mini-batch size (default: %(default)s)")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N",
                        help="use only the first N training samples (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights and batches (default: %(default)s)")
    parser.add_argument("--save", default=None, metavar="NPZ",
                        help="checkpoint (.npz) written after every epoch (default: none)")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="write loss/accuracy curves to this PNG (default: none)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        parser.error("--epochs and --batch-size must be positive and --lr > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        fastbp.set_num_threads(args.threads)
    start = time.perf_counter()
    data = training.load_dataset(args.dataset, "image", train_limit=args.train_limit)
    model = models.lenet5(data.image_shape[0], 1, data.num_classes, seed=args.seed)
    optimizer = optim.SGD(model, args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    trainer = fastbp.Trainer(model, optimizer, "cross_entropy", batch_size=args.batch_size,
                             schedule=optim.Cosine(args.lr, args.epochs), seed=args.seed,
                             progress=not args.no_progress)
    trainer.metadata = {"dataset": args.dataset, "model": "lenet", "layout": "image",
                        "stats": list(data.stats), "image_shape": list(data.image_shape)}
    print(f"{args.dataset}: {len(data.train[0])} training, {len(data.test[0])} test samples; "
          f"LeNet-5; {plural(fastbp.get_num_threads(), 'thread')}")
    history = trainer.fit(data.train, data.test, epochs=args.epochs, checkpoint=args.save)
    final = history.last()
    print(f"test accuracy {100 * final['test_accuracy']:.2f}% after {plural(args.epochs, 'epoch')} "
          f"({time.perf_counter() - start:.0f} s in total)")
    if args.plot:
        training.plot_history(history, args.plot, title=f"LeNet-5 on {args.dataset}")
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
