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
    """A path to write later: checked now (by creating and removing a file beside it), not
    only after an epoch of training."""
    try:
        checkpoint.check_writable(text)
    except OSError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _threads(text):
    value = _positive_int(text)
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    if value > limit:
        raise argparse.ArgumentTypeError(
            f"{value} exceeds the {_count(limit, 'thread')} numba allows here "
            f"(set NUMBA_NUM_THREADS to raise it)"
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

# What a new run uses for the options left out. A resumed run keeps the checkpoint's values
# instead, so these options default to None: "given" must be told from "left out".
TRAIN_DEFAULTS = {"batch_size": 64, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
                  "schedule": "step", "seed": 0}
_RESUMED = "; on --resume: the saved one, unless given"


def _train_arguments(parser):
    d = TRAIN_DEFAULTS
    parser.add_argument("--model", choices=sorted(models.MODELS), default=None,
                        help="architecture (default: mlp)")
    parser.add_argument("--dataset", choices=training.DATASETS, default=None,
                        help="data set (default: digits, bundled with scikit-learn)")
    parser.add_argument("--epochs", type=_positive_int, default=20, metavar="N",
                        help="total epochs to train (default: %(default)s)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                        help=f"mini-batch size (default: {d['batch_size']}{_RESUMED})")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default=None,
                        help=f"(default: {d['optimizer']}; on --resume: the saved one, which cannot change)")
    parser.add_argument("--lr", type=_positive_float, default=None,
                        help="initial learning rate, which the schedule decays from (default: 0.05 for sgd, "
                             f"0.001 for adam{_RESUMED})")
    parser.add_argument("--momentum", type=_momentum, default=None,
                        help=f"SGD momentum, 0 for plain SGD (default: {d['momentum']}{_RESUMED})")
    parser.add_argument("--weight-decay", type=_non_negative_float, default=None, metavar="LAMBDA",
                        help=f"L2 weight decay lambda/2 ||W||^2 on weights (default: {d['weight_decay']}"
                             f"{_RESUMED})")
    parser.add_argument("--schedule", choices=("constant", "step", "cosine"), default=None,
                        help="learning-rate schedule; step divides it by 10 at --milestones "
                             f"(default: {d['schedule']}{_RESUMED})")
    parser.add_argument("--milestones", type=_positive_int, nargs="+", default=None, metavar="E",
                        help=f"epochs where the step schedule decays (default: half of --epochs{_RESUMED})")
    parser.add_argument("--hidden", type=_positive_int, nargs="+", default=None, metavar="H",
                        help="mlp hidden layer sizes (default: 256 128)")
    parser.add_argument("--seed", type=_non_negative_int, default=None,
                        help=f"seed of weights and shuffling (default: {d['seed']}{_RESUMED})")
    parser.add_argument("--train-limit", type=_positive_int, default=None, metavar="N",
                        help="train on the first N training samples only")
    parser.add_argument("--save", type=_output_file, metavar="PATH", default=None,
                        help="checkpoint (.npz) written after every epoch; resume with --resume")
    parser.add_argument("--resume", type=_existing_file, metavar="PATH", default=None,
                        help="continue a run saved with --save up to --epochs in total, with its saved "
                             "settings except the options given")
    parser.add_argument("--plot", type=_output_file, metavar="PNG", default=None,
                        help="write loss and accuracy curves (needs matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or lines on stderr")
    _add_data_arguments(parser)


def _option(args, name):
    """``args.<name>`` if given, else its default for a new run."""
    value = getattr(args, name)
    return TRAIN_DEFAULTS[name] if value is None else value


def _check_combinations(args, optimizer, schedule):
    """Options given for an optimiser or a schedule they do not apply to."""
    if args.momentum is not None and optimizer != "sgd":
        raise UsageError(f"--momentum applies to the sgd optimizer, not {optimizer}")
    if args.milestones is not None and schedule != "step":
        raise UsageError(f"--milestones applies to the step schedule, not {schedule}")


def _make_schedule(kind, lr, epochs, milestones):
    if kind == "constant":
        return optim.Constant(lr)
    if kind == "cosine":
        return optim.Cosine(lr, epochs)
    return optim.MultiStep(lr, sorted(set(milestones or [max(1, epochs // 2)])), gamma=0.1)


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
    optimizer_name = _option(args, "optimizer")
    _check_combinations(args, optimizer_name, _option(args, "schedule"))
    loaded = training.load_dataset(dataset, models.MODELS[model_name], root=args.data_dir,
                                   download=not args.no_download, train_limit=args.train_limit)
    options = {"hidden": args.hidden} if (model_name == "mlp" and args.hidden) else {}
    seed = _option(args, "seed")
    model, layout = models.build_classifier(model_name, loaded.image_shape, loaded.num_classes,
                                            seed=seed, **options)
    lr = args.lr if args.lr is not None else (0.05 if optimizer_name == "sgd" else 1e-3)
    if optimizer_name == "sgd":
        optimizer = optim.SGD(model, lr, momentum=_option(args, "momentum"),
                              weight_decay=_option(args, "weight_decay"))
    else:
        optimizer = optim.Adam(model, lr, weight_decay=_option(args, "weight_decay"))
    schedule = _make_schedule(_option(args, "schedule"), lr, args.epochs, args.milestones)
    trainer = training.Trainer(model, optimizer, "cross_entropy", batch_size=_option(args, "batch_size"),
                               schedule=schedule, seed=seed, progress=not args.no_progress)
    trainer.metadata = {"dataset": dataset, "model": model_name, "layout": layout,
                        "stats": list(loaded.stats), "image_shape": list(loaded.image_shape)}
    return trainer, loaded


_OPTIMIZER_NAMES = {"SGD": "sgd", "Adam": "adam"}
_SCHEDULE_NAMES = {"Constant": "constant", "MultiStep": "step", "Cosine": "cosine"}


def _resume_overrides(args, header):
    """The one place where the options of ``fastbp train --resume`` meet the checkpoint's
    saved settings: each option given replaces the saved value (returned as keyword
    arguments of ``Trainer.resume``); an option that cannot apply to the saved run
    (another model, data set, architecture or optimiser) is a usage error."""
    path = args.resume
    if header.get("optimizer") is None or header.get("epoch") is None:
        raise checkpoint.CheckpointError(f"{path}: a model-only checkpoint cannot resume training")
    meta = header.get("metadata") or {}
    if not isinstance(meta, dict) or not {"dataset", "model", "layout", "stats"} <= set(meta):
        raise CommandError(f"{path} was not written by 'fastbp train --save'; cannot resume it here")
    for option in ("model", "dataset"):
        given = getattr(args, option)
        if given is not None and given != meta[option]:
            raise UsageError(f"--{option} {given} conflicts with {path}, a run of {meta['model']} on "
                             f"{meta['dataset']}")
    if args.hidden is not None:
        raise UsageError(f"--hidden cannot change the layers of a resumed run: {path} holds them")
    info = header.get("optimizer") if isinstance(header.get("optimizer"), dict) else {}
    optimizer = _OPTIMIZER_NAMES.get(info.get("type"), info.get("type"))
    if args.optimizer is not None and args.optimizer != optimizer:
        raise UsageError(f"--optimizer {args.optimizer} conflicts with {path}, trained with {optimizer}: "
                         "a resumed run keeps its optimiser and its state")
    training_state = header.get("training") if isinstance(header.get("training"), dict) else {}
    saved_schedule = training_state.get("schedule")
    saved_kind = saved_schedule.get("type") if isinstance(saved_schedule, dict) else None
    _check_combinations(args, optimizer, args.schedule or _SCHEDULE_NAMES.get(saved_kind)
                        or f"{path}'s {saved_kind or 'constant rate'}")
    overrides = {name: getattr(args, name) for name in ("batch_size", "seed", "momentum", "weight_decay")
                 if getattr(args, name) is not None}
    if args.schedule is None and args.milestones is None:
        if args.lr is not None:
            overrides["lr"] = args.lr  # the saved schedule restarts from it
        return overrides
    try:  # a new schedule; what it takes from the file must be sound
        if args.schedule is None:  # new milestones for the saved step schedule
            config = {**saved_schedule, "milestones": sorted(set(args.milestones))}
            overrides["schedule"] = optim.schedule_from_config(
                config if args.lr is None else {**config, "lr": args.lr})
        else:
            lr = args.lr if args.lr is not None else (
                saved_schedule["lr"] if saved_kind is not None else info["hyper"]["lr"])
            overrides["schedule"] = _make_schedule(args.schedule, lr, args.epochs, args.milestones)
    except (KeyError, TypeError, ValueError) as error:
        raise checkpoint.CheckpointError(
            f"{path}: cannot resume from its training state: {type(error).__name__}: {error}") from error
    return overrides


def _resumed_trainer(args):
    overrides = _resume_overrides(args, checkpoint.read_header(args.resume))
    trainer = training.Trainer.resume(args.resume, progress=not args.no_progress, **overrides)
    if trainer.epoch >= args.epochs:
        raise CommandError(f"{args.resume} already holds {_count(trainer.epoch, 'epoch')}; "
                           f"ask for more with --epochs")
    meta = trainer.metadata
    loaded = training.load_dataset(meta["dataset"], meta["layout"], root=args.data_dir,
                                   download=not args.no_download, train_limit=args.train_limit)
    return trainer, loaded


def _count(n, noun):
    """``1 epoch``, ``2 epochs``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _epoch_range(first, last):
    """``epoch 3`` or ``epochs 3..5``."""
    return f"epoch {first}" if first == last else f"epochs {first}..{last}"


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
    print(f"training {_describe(trainer)}: {len(dataset.train[0])} training and {len(dataset.test[0])} test "
          f"samples, {_epoch_range(trainer.epoch + 1, args.epochs)}, {_count(get_num_threads(), 'thread')}",
          file=sys.stderr)
    save = args.save
    try:
        trainer.fit(dataset.train, dataset.test, epochs=args.epochs, checkpoint=save)
    except KeyboardInterrupt:
        if save and trainer.epoch > 0:
            print(f"{PROG} train: {save} holds the first {_count(trainer.epoch, 'epoch')}; continue with "
                  f"'{PROG} train --resume {save} --epochs {args.epochs} --save {save}'", file=sys.stderr)
        raise
    final = trainer.history.last()
    elapsed = time.perf_counter() - start
    print(f"test accuracy {100 * final['test_accuracy']:.2f}% (loss {final['test_loss']:.4f}) - "
          f"{_describe(trainer)}, {_count(trainer.epoch, 'epoch')}, {elapsed:.1f} s")
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

    from .threads import threading_layer

    layer, concurrent, fork = threading_layer()
    unsafe = [what for what, holds in (("concurrent calls", concurrent), ("fork", fork)) if not holds]
    layer += f" (NOT safe for {' or '.join(unsafe)})" if unsafe else " (safe for concurrent calls and fork)"
    rows = [
        ("fastbp", __version__),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("numpy", np.__version__),
        ("numba", numba.__version__),
        ("llvmlite", _optional_version("llvmlite")),
        ("threading layer", layer),
        ("threads", f"{get_num_threads()} (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})"),
        ("cpu", f"{cpu_name()}; {_count(os.cpu_count(), 'logical core')}; LLVM target "
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
