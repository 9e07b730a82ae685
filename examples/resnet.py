"""Train a small residual network with batch norm on Fashion-MNIST (or MNIST, or digits).

``fastbp.models.resnet``: a 3x3 convolution stem (16 maps, batch norm, ReLU), three stages
of basic blocks (16, 32 and 64 maps; 28x28 -> 14x14 -> 7x7, each downsampling block with a
1x1 convolution shortcut), global average pooling and a dense layer; softmax
cross-entropy, SGD with momentum and L2 weight decay (not on the batch norms), cosine
learning-rate decay. Evaluation uses the batch norms' running statistics. Prints
per-epoch progress and the final test accuracy.

    python examples/resnet.py                          # Fashion-MNIST, 3 epochs
    python examples/resnet.py --convolutions separable  # depthwise-separable 3x3 convolutions
    python examples/resnet.py --dataset digits --epochs 3
"""

import argparse
import statistics
import sys
import time

import fastbp
from fastbp import models, optim, training
from fastbp.training.progress import plural


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=training.DATASETS, default="fashion-mnist",
                        help="data set (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default: %(default)s)")
    parser.add_argument("--blocks", type=int, default=1, metavar="B",
                        help="basic blocks per stage (default: %(default)s)")
    parser.add_argument("--convolutions", choices=("full", "separable"), default="full",
                        help="the blocks' 3x3 convolutions: full, or depthwise-separable "
                        "(default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.05,
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
    if args.epochs < 1 or args.batch_size < 1 or args.blocks < 1 or not args.lr > 0:
        parser.error("--epochs, --batch-size and --blocks must be positive and --lr > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        fastbp.set_num_threads(args.threads)
    start = time.perf_counter()
    data = training.load_dataset(args.dataset, "image", train_limit=args.train_limit)
    model = models.resnet(data.image_shape[0], 1, data.num_classes, blocks=(args.blocks,) * 3,
                          separable=args.convolutions == "separable", seed=args.seed)
    optimizer = optim.SGD(model, args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    trainer = fastbp.Trainer(model, optimizer, "cross_entropy", batch_size=args.batch_size,
                             schedule=optim.Cosine(args.lr, args.epochs), seed=args.seed,
                             progress=not args.no_progress)
    trainer.metadata = {"dataset": args.dataset, "model": "resnet", "layout": "image",
                        "stats": list(data.stats), "image_shape": list(data.image_shape)}
    name = f"ResNet ({3 * args.blocks} blocks{', separable' if args.convolutions == 'separable' else ''})"
    print(f"{args.dataset}: {len(data.train[0])} training, {len(data.test[0])} test samples; "
          f"{name}; {plural(fastbp.get_num_threads(), 'thread')}")
    history = trainer.fit(data.train, data.test, epochs=args.epochs, checkpoint=args.save)
    final = history.last()
    total = time.perf_counter() - start
    print(f"test accuracy {100 * final['test_accuracy']:.2f}% after {plural(args.epochs, 'epoch')} "
          f"({total:.0f} s in total; {statistics.median(history.seconds):.0f} s per epoch, median)")
    if args.plot:
        training.plot_history(history, args.plot, title=f"{name} on {args.dataset}")
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
