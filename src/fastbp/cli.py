"""The ``fastbp`` command: ``fastbp train``, ``fastbp evaluate``, ``fastbp info``.

Each subcommand is a pair of functions registered with ``@subcommand``: one adds its
arguments to an argparse sub-parser, the other runs it and returns the exit status.
A command with its own parser is registered with ``passthrough(name, help, main)``:
``fastbp NAME ARGS...`` calls ``main(ARGS)`` (``fastbp bench`` is one).

Exit statuses follow Unix habits: 0 success, 1 a runtime failure (missing data set,
unreadable checkpoint, diverged training: one ``fastbp <command>: error: ...`` line on
stderr), 2 a usage error (argparse's message: a bad option value, a missing input file or
output directory, options that do not go together; found before any work starts), 130
interrupted by Ctrl-C. Results go to stdout, progress to stderr.
"""

import argparse
import math
import os
import platform
import sys
import time

import numpy as np

from . import __version__, checkpoint, data, models, optim, training
from .bench.compare import cpu_name
from .threads import get_num_threads, set_num_threads

PROG = "fastbp"
_SUBCOMMANDS = {}


def subcommand(name, help, add_arguments):
    """Register ``function(args) -> exit status`` as ``fastbp NAME``."""

    def register(function):
        _SUBCOMMANDS[name] = (help, add_arguments, function)
        return function

    return register


_PASSTHROUGH = {}


def passthrough(name, help, main):
    """Register ``fastbp NAME ARGS...`` as ``main(ARGS)``, a command parsing its own arguments."""
    _PASSTHROUGH[name] = (help, main)


def _bench_main(argv):
    from .bench.compare import main

    return main(argv)


passthrough("bench", "time fastbp beside PyTorch and NumPy (see benchmarks/README.md)", _bench_main)


class CommandError(Exception):
    """A failure to report as ``fastbp <command>: error: <message>`` with exit status 1."""


class UsageError(Exception):
    """Arguments that parse but do not go together: reported like argparse's own errors
    (usage, then ``fastbp <command>: error: <message>``) with exit status 2."""


# ----------------------------------------------------------------------------- argument types

def _int_at_least(minimum, expected):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "a non-negative integer")


def _float_at_least(minimum, open_interval):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (open_interval and value == minimum):
            relation = ">" if open_interval else ">="
            raise argparse.ArgumentTypeError(f"expected a finite number {relation} {minimum}, got {text!r}")
        return value

    return parse


_positive_float = _float_at_least(0.0, True)
_non_negative_float = _float_at_least(0.0, False)


def _momentum(text):
    value = _non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _existing_file(text):
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"not a file: {text!r}")
    return text


def _existing_directory(text):
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no such directory: {text!r}")
    return text


def _output_file(text):
    """A path to write later: its directory must exist now, not only after an epoch of training."""
    directory = os.path.dirname(text) or "."
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: no such directory {directory!r}")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: it is a directory")
    return text


def _threads(text):
    value = _positive_int(text)
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    if value > limit:
        raise argparse.ArgumentTypeError(
            f"{value} exceeds the {limit} threads numba allows here (set NUMBA_NUM_THREADS to raise it)"
        )
    return value


def _add_data_arguments(parser):
    parser.add_argument("--data-dir", type=_existing_directory, metavar="DIR", default=None,
                        help="directory holding the MNIST-format IDX files (default: search the usual places)")
    parser.add_argument("--no-download", action="store_true",
                        help="never download MNIST/Fashion-MNIST; fail if the files are not found")
    parser.add_argument("--threads", type=_threads, default=None, metavar="T",
                        help="kernel threads (default: all cores)")


# ----------------------------------------------------------------------------- train

def _train_arguments(parser):
    parser.add_argument("--model", choices=sorted(models.MODELS), default=None,
                        help="architecture (default: mlp)")
    parser.add_argument("--dataset", choices=training.DATASETS, default=None,
                        help="data set (default: digits, bundled with scikit-learn)")
    parser.add_argument("--epochs", type=_positive_int, default=20, metavar="N",
                        help="total epochs to train (default: %(default)s)")
    parser.add_argument("--batch-size", type=_positive_int, default=64, metavar="B",
                        help="mini-batch size (default: %(default)s)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="(default: %(default)s)")
    parser.add_argument("--lr", type=_positive_float, default=None,
                        help="initial learning rate (default: 0.05 for sgd, 0.001 for adam)")
    parser.add_argument("--momentum", type=_momentum, default=0.9,
                        help="SGD momentum, 0 for plain SGD (default: %(default)s)")
    parser.add_argument("--weight-decay", type=_non_negative_float, default=5e-4, metavar="LAMBDA",
                        help="L2 weight decay lambda/2 ||W||^2 on weights (default: %(default)s)")
    parser.add_argument("--schedule", choices=("constant", "step", "cosine"), default="step",
                        help="learning-rate schedule; step divides it by 10 at --milestones "
                             "(default: %(default)s)")
    parser.add_argument("--milestones", type=_positive_int, nargs="+", default=None, metavar="E",
                        help="epochs where the step schedule decays (default: half of --epochs)")
    parser.add_argument("--hidden", type=_positive_int, nargs="+", default=None, metavar="H",
                        help="mlp hidden layer sizes (default: 256 128)")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="seed of weights and shuffling (default: 0)")
    parser.add_argument("--train-limit", type=_positive_int, default=None, metavar="N",
                        help="train on the first N training samples only")
    parser.add_argument("--save", type=_output_file, metavar="PATH", default=None,
                        help="checkpoint (.npz) written after every epoch; resume with --resume")
    parser.add_argument("--resume", type=_existing_file, metavar="PATH", default=None,
                        help="continue a run saved with --save up to --epochs in total")
    parser.add_argument("--plot", type=_output_file, metavar="PNG", default=None,
                        help="write loss and accuracy curves (needs matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or lines on stderr")
    _add_data_arguments(parser)


def _make_schedule(args, lr):
    if args.schedule == "constant":
        return optim.Constant(lr)
    if args.schedule == "cosine":
        return optim.Cosine(lr, args.epochs)
    milestones = args.milestones or [max(1, args.epochs // 2)]
    return optim.MultiStep(lr, sorted(set(milestones)), gamma=0.1)


def _check_plot_dependency(path):
    if path is None:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError("--plot needs matplotlib: pip install 'fastbp[plot]'") from None


def _new_trainer(args):
    model_name = args.model or "mlp"
    dataset = args.dataset or "digits"
    loaded = training.load_dataset(dataset, models.MODELS[model_name], root=args.data_dir,
                                   download=not args.no_download, train_limit=args.train_limit)
    options = {"hidden": args.hidden} if (model_name == "mlp" and args.hidden) else {}
    model, layout = models.build_classifier(model_name, loaded.image_shape, loaded.num_classes,
                                            seed=args.seed, **options)
    lr = args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 1e-3)
    if args.optimizer == "sgd":
        optimizer = optim.SGD(model, lr, momentum=args.momentum, weight_decay=args.weight_decay)
    else:
        optimizer = optim.Adam(model, lr, weight_decay=args.weight_decay)
    trainer = training.Trainer(model, optimizer, "cross_entropy", batch_size=args.batch_size,
                               schedule=_make_schedule(args, lr), seed=args.seed,
                               progress=not args.no_progress)
    trainer.metadata = {"dataset": dataset, "model": model_name, "layout": layout,
                        "stats": list(loaded.stats), "image_shape": list(loaded.image_shape)}
    return trainer, loaded


def _resumed_trainer(args):
    trainer = training.Trainer.resume(args.resume, progress=not args.no_progress)
    meta = trainer.metadata
    if not {"dataset", "model", "layout", "stats"} <= set(meta):
        raise CommandError(f"{args.resume} was not written by 'fastbp train --save'; cannot resume it here")
    for option in ("model", "dataset"):
        given = getattr(args, option)
        if given is not None and given != meta[option]:
            raise CommandError(f"--{option} {given} conflicts with the checkpoint's {meta[option]}")
    loaded = training.load_dataset(meta["dataset"], meta["layout"], root=args.data_dir,
                                   download=not args.no_download, train_limit=args.train_limit)
    return trainer, loaded


def _describe(trainer):
    meta = trainer.metadata
    return f"{meta['model']} on {meta['dataset']}"


@subcommand("train", "train a network and report its test accuracy", _train_arguments)
def train(args):
    if args.hidden and (args.model or "mlp") != "mlp":
        raise UsageError(f"--hidden applies to the mlp model, not {args.model}")
    _check_plot_dependency(args.plot)
    if args.threads:
        set_num_threads(args.threads)
    start = time.perf_counter()
    trainer, dataset = _resumed_trainer(args) if args.resume else _new_trainer(args)
    if trainer.epoch >= args.epochs:
        raise CommandError(f"{args.resume} already holds {trainer.epoch} epochs; ask for more with --epochs")
    print(f"training {_describe(trainer)}: {len(dataset.train[0])} training and {len(dataset.test[0])} test "
          f"samples, epochs {trainer.epoch + 1}..{args.epochs}, {get_num_threads()} threads",
          file=sys.stderr)
    save = args.save
    try:
        trainer.fit(dataset.train, dataset.test, epochs=args.epochs, checkpoint=save)
    except KeyboardInterrupt:
        if save and trainer.epoch > 0:
            print(f"{PROG} train: {save} holds the first {trainer.epoch} epochs; continue with "
                  f"'{PROG} train --resume {save} --epochs {args.epochs} --save {save}'", file=sys.stderr)
        raise
    final = trainer.history.last()
    elapsed = time.perf_counter() - start
    print(f"test accuracy {100 * final['test_accuracy']:.2f}% (loss {final['test_loss']:.4f}) - "
          f"{_describe(trainer)}, {trainer.epoch} epochs, {elapsed:.1f} s")
    if save:
        print(f"saved {save}")
    if args.plot:
        training.plot_history(trainer.history, args.plot, title=_describe(trainer))
        print(f"wrote {args.plot}")
    return 0


# ----------------------------------------------------------------------------- evaluate

def _evaluate_arguments(parser):
    parser.add_argument("checkpoint", type=_existing_file, metavar="MODEL.npz",
                        help="a file written by 'fastbp train --save'")
    parser.add_argument("--dataset", choices=training.DATASETS, default=None,
                        help="data set to test on (default: the one the model was trained on)")
    parser.add_argument("--batch-size", type=_positive_int, default=1000, metavar="B",
                        help="evaluation batch size (default: %(default)s)")
    _add_data_arguments(parser)


def _layout_of(model):
    from .layers import Conv2D, Linear, Maxout

    first = next((layer for layer in model.layers if layer.params), None)
    if isinstance(first, Conv2D):
        return "image"
    if isinstance(first, (Linear, Maxout)):
        return "flat"
    raise CommandError("cannot tell the input layout of a model whose first layer is not Linear or Conv2D")


@subcommand("evaluate", "report a saved model's test loss and accuracy", _evaluate_arguments)
def evaluate(args):
    if args.threads:
        set_num_threads(args.threads)
    state = checkpoint.load(args.checkpoint)
    meta = state.metadata
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise CommandError(f"{args.checkpoint} does not record its data set: pass --dataset")
    layout = meta.get("layout") or _layout_of(state.model)
    if "stats" in meta:
        try:
            stats = data.NormStats(*(float(v) for v in meta["stats"]))
        except (TypeError, ValueError):
            raise CommandError(f"{args.checkpoint} records malformed normalisation statistics "
                               f"{meta['stats']!r} (expected [mean, std])") from None
    else:  # standardise as load_dataset does: by the training split's statistics
        train_images, _ = training.load_split(dataset, "train", args.data_dir, not args.no_download)
        _, stats = data.normalize(train_images)
    images, labels = training.load_split(dataset, "test", args.data_dir, not args.no_download)
    x = training.prepare(images, layout, stats, dtype=next(iter(state.model.params.values())).dtype)
    try:
        result = training.evaluate(state.model, x, labels, batch_size=args.batch_size)
    except ValueError as error:
        raise CommandError(f"the model in {args.checkpoint} does not fit {dataset} images: {error}") from error
    print(f"test accuracy {100 * result['accuracy']:.2f}% (loss {result['loss']:.4f}) - "
          f"{len(labels)} {dataset} test samples")
    return 0


# ----------------------------------------------------------------------------- info

def _optional_version(module):
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return getattr(imported, "__version__", "installed")


def _info_arguments(parser):
    pass


@subcommand("info", "versions, numba threading layer, thread count and CPU", _info_arguments)
def info(args):
    import llvmlite.binding
    import numba

    from .kernels.optim import sgd_step

    one = np.zeros(1)
    sgd_step(one, one, 0.0, 0.0)  # run a parallel kernel so that numba picks its threading layer
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "unknown"
    rows = [
        ("fastbp", __version__),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("numpy", np.__version__),
        ("numba", numba.__version__),
        ("llvmlite", _optional_version("llvmlite")),
        ("threading layer", layer),
        ("threads", f"{get_num_threads()} (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})"),
        ("cpu", f"{cpu_name()}; {os.cpu_count()} logical cores; LLVM target "
                f"{llvmlite.binding.get_host_cpu_name()}"),
        ("platform", platform.platform()),
        ("scikit-learn", _optional_version("sklearn")),
        ("tqdm", _optional_version("tqdm")),
        ("matplotlib", _optional_version("matplotlib")),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


# ----------------------------------------------------------------------------- entry point

def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Train and evaluate backprop networks with fastbp's numba kernels.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, function) in _SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=function, parser=sub)
    for name, (help_text, _) in _PASSTHROUGH.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None):
    """Run ``fastbp`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in _PASSTHROUGH:
        return _PASSTHROUGH[argv[0]][1](argv[1:]) or 0
    parser = build_parser()
    args = parser.parse_args(argv)
    where = f"{PROG} {args.command}"
    try:
        return args.run(args) or 0
    except UsageError as error:
        args.parser.error(str(error))  # exits with status 2
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, checkpoint.CheckpointError, training.NonFiniteLossError, OSError,
            ImportError, ValueError) as error:
        print(f"{where}: error: {error}", file=sys.stderr)
        return 1
