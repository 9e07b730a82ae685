"""An autoencoder: encoder and decoder trained with squared error to reproduce their input.

Images are standardised; the encoder squeezes each one into a short code and the decoder
rebuilds it: dense ReLU layers on the flattened image and their mirror (``--architecture
dense``), or two stride-2 convolutions and two stride-2 transposed convolutions
(``--architecture conv``, ``models.conv_autoencoder``: the code is ``--code-channels``
maps of a quarter of the image's side). Prints the test reconstruction
error next to that of PCA with as many components as the code has units (an autoencoder
is a non-linear PCA), and writes a PNG of test originals (top row) above their
reconstructions (bottom row).

Two units of error appear. The training loss on the epoch lines ("mse" in fastbp) is, per
image, half the sum of squared errors over its pixels, in standardised units (pixels
scaled to mean 0 and standard deviation 1 over the training set). The final comparison
also gives the per-pixel mean squared error on the original [0, 1] pixel scale: the loss
times 2 * std**2 / pixels.

    python examples/autoencoder.py                           # Fashion-MNIST, 30 epochs
    python examples/autoencoder.py --dataset digits --hidden 32 8 --epochs 50
    python examples/autoencoder.py --architecture conv --code-channels 4 --epochs 10
"""

import argparse
import sys
import time

import numpy as np

import fastbp
from fastbp import models, optim, training
from fastbp.training.progress import plural


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=training.DATASETS, default="fashion-mnist",
                        help="data set (default: %(default)s)")
    parser.add_argument("--architecture", choices=("dense", "conv"), default="dense",
                        help="dense layers, or convolutions and transposed convolutions "
                             "(default: %(default)s)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 32], metavar="N",
                        help="dense: encoder layer sizes; the last is the code size "
                             "(default: 256 32)")
    parser.add_argument("--code-channels", type=int, default=4, metavar="C",
                        help="conv: maps of the code, each a quarter of the image's side "
                             "(default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default: %(default)s)")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N",
                        help="use only the first N training samples (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights and batches (default: %(default)s)")
    parser.add_argument("--png", default="autoencoder.png",
                        help="where to write the comparison image (default: %(default)s)")
    parser.add_argument("--no-png", action="store_true", help="write no image (no matplotlib needed)")
    parser.add_argument("--count", type=int, default=10,
                        help="test images shown in the PNG (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.count < 1 or not args.lr > 0:
        parser.error("--epochs, --batch-size and --count must be positive and --lr > 0")
    if min(args.hidden) < 1 or args.code_channels < 1:
        parser.error("--hidden sizes and --code-channels must be positive")
    return args


def pixel_mse(a, b, stats):
    """Mean squared error per pixel on the original [0, 1] scale of standardised images."""
    return float(np.mean(((a - b) * stats.std) ** 2))


def image_loss(a, b):
    """The training loss ("mse"): half the sum of squared errors over each image's
    standardised pixels, averaged over the images."""
    return float(0.5 * np.mean(np.sum((a - b).astype(np.float64) ** 2, axis=1)))


def principal_axes(train, components, chunk=8192):
    """The mean of ``train`` (N, D) and its top ``components`` principal axes (rows):
    eigenvectors of the D x D covariance, accumulated in chunks of rows, which costs
    N D^2 rather than the N D min(N, D) of an SVD of the whole set."""
    mean = train.mean(axis=0, dtype=np.float64)
    scatter = np.zeros((train.shape[1],) * 2)
    for i in range(0, len(train), chunk):
        centred = (train[i:i + chunk] - mean).astype(train.dtype)
        scatter += centred.T @ centred
    _, vectors = np.linalg.eigh(scatter)  # eigenvalues in ascending order
    return mean, vectors[:, ::-1][:, :components].T


def pca_reconstruction(train, test, components):
    """Reconstruct ``test`` from the top ``components`` principal axes of ``train``."""
    mean, axes = principal_axes(train, components)
    return (test - mean) @ axes.T @ axes + mean


def save_comparison(path, originals, reconstructions, image_shape, stats):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(originals)
    fig, axes = plt.subplots(2, count, figsize=(1.2 * count, 2.6), squeeze=False)
    for row, images in enumerate((originals, reconstructions)):
        for i, image in enumerate(images):
            pixels = np.clip(image.reshape(image_shape) * stats.std + stats.mean, 0, 1)
            axes[row, i].imshow(pixels, cmap="gray", vmin=0, vmax=1)
            axes[row, i].axis("off")
    axes[0, 0].set_title("originals", loc="left", fontsize=9)
    axes[1, 0].set_title("reconstructions", loc="left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    if not args.no_png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("the PNG needs matplotlib (pip install 'fastbp[plot]'), or pass --no-png",
                  file=sys.stderr)
            return 1
    if args.threads:
        fastbp.set_num_threads(args.threads)
    start = time.perf_counter()
    conv = args.architecture == "conv"
    data = training.load_dataset(args.dataset, "image" if conv else "flat",
                                 train_limit=args.train_limit)
    inputs_train, inputs_test = data.train[0], data.test[0]  # (N, 1, H, W) or (N, H * W)
    x_train, x_test = (inputs.reshape(len(inputs), -1) for inputs in (inputs_train, inputs_test))
    features = x_train.shape[1]
    if conv:
        side = data.image_shape[0]
        if side % 4:
            print(f"--architecture conv needs a side that is a multiple of 4, "
                  f"got {data.image_shape}", file=sys.stderr)
            return 2
        model = models.conv_autoencoder(side, code_channels=args.code_channels, seed=args.seed)
        code = args.code_channels * (side // 4) ** 2
        shape = f"convolutional, code {args.code_channels}x{side // 4}x{side // 4}"
    else:
        model = models.autoencoder(features, args.hidden, seed=args.seed)
        code = args.hidden[-1]
        shape = f"{features}-{'-'.join(map(str, args.hidden))}-...-{features}"
    trainer = fastbp.Trainer(model, optim.Adam(model, args.lr), "mse", batch_size=args.batch_size,
                             seed=args.seed, progress=not args.no_progress)
    print(f"{args.dataset}: autoencoder {shape}, {plural(len(x_train), 'training image')}; "
          f"{plural(fastbp.get_num_threads(), 'thread')}")
    print(f"loss: half the squared error summed over an image's {features} standardised pixels, "
          f"mean over the images")
    trainer.fit((inputs_train, x_train), (inputs_test, x_test), epochs=args.epochs)
    reconstructed = training.predict(model, inputs_test)
    print(f"PCA baseline: the top {plural(code, 'principal axis', 'principal axes')} of the "
          f"training images, from their {features}x{features} covariance...", flush=True)
    pca = pca_reconstruction(x_train, x_test, code)
    print("test reconstruction error as loss (per image, standardised pixels) and per-pixel "
          "mean squared error (pixels in [0, 1]):")
    for name, output in (("autoencoder", reconstructed),
                         (f"PCA with {plural(code, 'component')}", pca)):
        print(f"  {name:<26} loss {image_loss(output, x_test):8.3f}   "
              f"per-pixel MSE {pixel_mse(output, x_test, data.stats):.5f}")
    print(f"({time.perf_counter() - start:.0f} s in total)")
    if not args.no_png:
        count = min(args.count, len(x_test))
        save_comparison(args.png, x_test[:count], reconstructed[:count], data.image_shape, data.stats)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
