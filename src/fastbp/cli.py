"""The ``fastbp`` command: ``fastbp train``, ``evaluate``, ``info`` and ``bench``.

Each command is a function ``NAME(args) -> exit status`` whose arguments are declared on
its argparse sub-parser (``build_parser``); ``fastbp bench ARGS...`` hands ARGS to
``fastbp.bench.compare.main``, which parses its own.

Exit statuses follow Unix habits: 0 success, 1 a runtime failure (missing data set,
unreadable checkpoint, diverged training: one ``fastbp <command>: error: ...`` line on
stderr), 2 a usage error (usage, then ``fastbp <command>: error: ...``: a value argparse
cannot parse or the library refuses, a missing input file or output directory, options
that do not go together; found before any work starts), 130 interrupted by Ctrl-C.
Results go to stdout, progress to stderr. Started by ``mpirun -n K`` (seen in the
environment, ``fastbp.distributed.launched``), every command runs on each rank under
``distributed.run_command``: only rank 0 prints, and a failure on any rank ends the job;
``train`` then trains data-parallel. The values themselves are checked by the
library: a command builds what its options configure (an optimiser and a schedule over a
stand-in model, the thread count) before it loads anything, and turns the library's
``ValueError``/``TypeError`` into a usage error.
"""

import argparse
import contextlib
import os
import platform
import sys
import time

import numpy as np

from . import __version__, _heap, checkpoint, data, distributed, machine, models, optim, training
from ._validation import positive_int
from .layers import Conv2D, Linear, Maxout
from .sequential import Sequential
from .threads import get_num_threads, set_num_threads

PROG = "fastbp"
BENCH_HELP = "time fastbp beside PyTorch and NumPy (see benchmarks/README.md)"


class CommandError(Exception):
    """A failure to report as ``fastbp <command>: error: <message>`` with exit status 1."""


class UsageError(Exception):
    """Arguments that parse but that the library refuses or that do not go together:
    reported like argparse's own errors (usage, then ``fastbp <command>: error:
    <message>``) with exit status 2."""


@contextlib.contextmanager
def library_checks(option=None):
    """Turn the library's ``ValueError``/``TypeError`` raised in the block (a value it
    refuses) into a ``UsageError`` naming ``option``."""
    try:
        yield
    except (TypeError, ValueError) as error:
        raise UsageError(f"argument {option}: {error}" if option else str(error)) from None


def set_threads(count):
    """``set_num_threads(count)`` unless None, its refusal a usage error of ``--threads``."""
    if count is not None:
        with library_checks("--threads"):
            set_num_threads(count)


# ----------------------------------------------------------------------------- paths

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


def output_path(text):
    """An argparse type for a path to write later: checked now, as ``checkpoint.save``
    will write it (``check_writable``), not only after an epoch of training. Under mpirun
    only rank 0 writes, so only rank 0 checks (other machines need not have the directory)."""
    if distributed.launched() and distributed.environment_rank():
        return text
    try:
        checkpoint.check_writable(text)
    except OSError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _add_data_arguments(parser):
    parser.add_argument("--data-dir", type=_existing_directory, metavar="DIR", default=None,
                        help="directory holding the MNIST-format IDX files (default: search the usual places)")
    parser.add_argument("--no-download", action="store_true",
                        help="never download MNIST/Fashion-MNIST; fail if the files are not found")
    parser.add_argument("--threads", type=int, default=None, metavar="T",
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
    parser.add_argument("--epochs", type=int, default=20, metavar="N",
                        help="total epochs to train (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help=f"mini-batch size (default: {d['batch_size']}{_RESUMED})")
    parser.add_argument("--micro-batches", type=int, default=None, metavar="S",
                        help="cut each batch into S micro-batches whose gradients are summed in a fixed "
                             "order; under mpirun -n K (K dividing S) the ranks share them and end with the "
                             "weights of one process run with the same S (default: 1, or K under mpirun"
                             f"{_RESUMED})")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default=None,
                        help=f"(default: {d['optimizer']}; on --resume: the saved one, which cannot change)")
    parser.add_argument("--lr", type=float, default=None,
                        help="initial learning rate, which the schedule decays from (default: 0.05 for sgd, "
                             f"0.001 for adam{_RESUMED})")
    parser.add_argument("--momentum", type=float, default=None,
                        help=f"SGD momentum, 0 for plain SGD (default: {d['momentum']}{_RESUMED})")
    parser.add_argument("--weight-decay", type=float, default=None, metavar="LAMBDA",
                        help=f"L2 weight decay lambda/2 ||W||^2 on weights (default: {d['weight_decay']}"
                             f"{_RESUMED})")
    parser.add_argument("--schedule", choices=("constant", "step", "cosine"), default=None,
                        help="learning-rate schedule; step divides it by 10 at --milestones "
                             f"(default: {d['schedule']}{_RESUMED})")
    parser.add_argument("--milestones", type=int, nargs="+", default=None, metavar="E",
                        help=f"epochs where the step schedule decays (default: half of --epochs{_RESUMED})")
    parser.add_argument("--hidden", type=int, nargs="+", default=None, metavar="H",
                        help="mlp hidden layer sizes (default: 256 128)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"seed of weights and shuffling (default: {d['seed']}{_RESUMED})")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N",
                        help="train on the first N training samples only")
    parser.add_argument("--save", type=output_path, metavar="PATH", default=None,
                        help="checkpoint (.npz) written after every epoch; resume with --resume")
    parser.add_argument("--resume", type=_existing_file, metavar="PATH", default=None,
                        help="continue a run saved with --save up to --epochs in total, with its saved "
                             "settings except the options given")
    parser.add_argument("--plot", type=output_path, metavar="PNG", default=None,
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


def _make_trainer(args, model):
    """The Trainer, optimiser and schedule the options (or their defaults) describe, over ``model``."""
    optimizer_name = _option(args, "optimizer")
    lr = args.lr if args.lr is not None else (0.05 if optimizer_name == "sgd" else 1e-3)
    if optimizer_name == "sgd":
        optimizer = optim.SGD(model, lr, momentum=_option(args, "momentum"),
                              weight_decay=_option(args, "weight_decay"))
    else:
        optimizer = optim.Adam(model, lr, weight_decay=_option(args, "weight_decay"))
    schedule = _make_schedule(_option(args, "schedule"), lr, args.epochs, args.milestones)
    return training.Trainer(model, optimizer, "cross_entropy", batch_size=_option(args, "batch_size"),
                            schedule=schedule, seed=_option(args, "seed"), progress=not args.no_progress,
                            micro_batches=_micro_batches(args), comm=distributed.command_comm())


def _micro_batches(args):
    """``--micro-batches``, or for a new run its default: 1, or K under ``mpirun -n K``."""
    comm = distributed.command_comm()
    if args.micro_batches is not None:
        return args.micro_batches
    return 1 if comm is None else comm.Get_size()


def _check_train_arguments(args):
    """Refuse (exit 2), before any work, options that do not go together and every value
    the library refuses: the sizes by its validator, the rest by building the optimiser,
    schedule and Trainer they describe over a stand-in model."""
    if args.hidden and (args.model or "mlp") != "mlp":
        raise UsageError(f"--hidden applies to the mlp model, not {args.model}")
    if args.resume is None:
        _check_combinations(args, _option(args, "optimizer"), _option(args, "schedule"))
    set_threads(args.threads)
    sizes = [("--epochs", args.epochs), ("--train-limit", args.train_limit),
             ("--micro-batches", args.micro_batches), *(("--hidden", size) for size in args.hidden or ())]
    for option, value in sizes:
        if value is not None:
            with library_checks(option):
                positive_int(option[2:].replace("-", "_"), value)
    comm = distributed.command_comm()
    if comm is not None and args.micro_batches is not None:
        with library_checks("--micro-batches"):
            distributed.check_micro_batches(args.micro_batches, comm.Get_size())
    with library_checks():
        _make_trainer(args, Sequential(Linear(1, 1)))


def _new_trainer(args):
    model_name = args.model or "mlp"
    dataset = args.dataset or "digits"
    loaded = training.load_dataset(dataset, models.MODELS[model_name], root=args.data_dir,
                                   download=not args.no_download, train_limit=args.train_limit)
    options = {"hidden": args.hidden} if (model_name == "mlp" and args.hidden) else {}
    model, layout = models.build_classifier(model_name, loaded.image_shape, loaded.num_classes,
                                            seed=_option(args, "seed"), **options)
    trainer = _make_trainer(args, model)
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
    comm = distributed.command_comm()
    saved_micro_batches = training_state.get("micro_batches", 1)
    if (comm is not None and args.micro_batches is None and isinstance(saved_micro_batches, int)
            and saved_micro_batches % comm.Get_size()):
        raise UsageError(f"{path} was trained with {saved_micro_batches} micro-batches, which "
                         f"{comm.Get_size()} MPI ranks cannot share: pass --micro-batches with a multiple "
                         f"of {comm.Get_size()} (its steps then differ from the saved run's)")
    overrides = {name: getattr(args, name)
                 for name in ("batch_size", "seed", "micro_batches", "momentum", "weight_decay")
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
    trainer = training.Trainer.resume(args.resume, progress=not args.no_progress,
                                      comm=distributed.command_comm(), **overrides)
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


def _parallelism(trainer):
    """``2 threads``, ``1 thread, 4 micro-batches``, ``4 MPI ranks x 1 thread, 4 micro-batches``."""
    text = _count(get_num_threads(), "thread")
    if trainer.comm is not None:
        text = f"{_count(trainer.size, 'MPI rank')} x {text}"
    if trainer.micro_batches > 1:
        text += f", {trainer.micro_batches} micro-batches"
    return text


def train(args):
    _check_train_arguments(args)
    _check_plot_dependency(args.plot)
    _heap.keep_freed_memory()  # this process trains: keep each step's arrays for the next
    comm = distributed.command_comm()
    if comm is not None and args.threads is None:  # this machine's cores shared by its ranks
        set_num_threads(max(1, machine.usable_cores() // distributed.local_size(comm)))
    start = time.perf_counter()
    trainer, dataset = _resumed_trainer(args) if args.resume else _new_trainer(args)
    print(f"training {_describe(trainer)}: {len(dataset.train[0])} training and {len(dataset.test[0])} test "
          f"samples, {_epoch_range(trainer.epoch + 1, args.epochs)}, {_parallelism(trainer)}",
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
    if args.plot and trainer.rank == 0:  # under mpirun, rank 0 writes
        training.plot_history(trainer.history, args.plot, title=_describe(trainer))
        print(f"wrote {args.plot}")
    return 0


# ----------------------------------------------------------------------------- evaluate

def _evaluate_arguments(parser):
    parser.add_argument("checkpoint", type=_existing_file, metavar="MODEL.npz",
                        help="a file written by 'fastbp train --save'")
    parser.add_argument("--dataset", choices=training.DATASETS, default=None,
                        help="data set to test on (default: the one the model was trained on)")
    parser.add_argument("--batch-size", type=int, default=1000, metavar="B",
                        help="evaluation batch size (default: %(default)s)")
    _add_data_arguments(parser)


def _layout_of(model):
    first = next((layer for layer in model.layers if layer.params), None)
    if isinstance(first, Conv2D):
        return "image"
    if isinstance(first, (Linear, Maxout)):
        return "flat"
    raise CommandError("cannot tell the input layout of a model whose first layer is not Linear or Conv2D")


def evaluate(args):
    set_threads(args.threads)
    with library_checks("--batch-size"):
        positive_int("batch_size", args.batch_size)
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


def _mpi_text():
    comm = distributed.command_comm()
    if comm is None:
        return f"not started by mpirun (mpi4py: {_optional_version('mpi4py')})"
    return (f"{distributed.library_version()}; world size {comm.Get_size()}, "
            f"{distributed.local_size(comm)} on this machine")


def info(args):
    import numba

    rows = [
        ("fastbp", __version__),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("numpy", np.__version__),
        ("numba", numba.__version__),
        ("llvmlite", _optional_version("llvmlite")),
        ("threading layer", machine.threading_layer_text()),
        ("threads", f"{get_num_threads()} (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})"),
        ("cpu", f"{machine.cpu_name()}; {_count(os.cpu_count(), 'logical core')}, "
                f"{machine.usable_cores()} usable"),
        ("compiled for", machine.isa_text()),
        ("platform", platform.platform()),
        ("scikit-learn", _optional_version("sklearn")),
        ("tqdm", _optional_version("tqdm")),
        ("matplotlib", _optional_version("matplotlib")),
        ("mpi", _mpi_text()),
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
    for name, help_text, add_arguments, run in [
        ("train", "train a network and report its test accuracy", _train_arguments, train),
        ("evaluate", "report a saved model's test loss and accuracy", _evaluate_arguments, evaluate),
        ("info", "versions, numba threading layer, thread count, CPU and instruction set", None, info),
    ]:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if add_arguments:
            add_arguments(sub)
        sub.set_defaults(run=run, parser=sub)
    commands.add_parser("bench", help=BENCH_HELP, add_help=False)  # run by main before parsing
    return parser


def main(argv=None):
    """Run ``fastbp`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if distributed.launched() and distributed.command_comm() is None:
        return distributed.run_command(main, argv)  # started by mpirun: on every rank, rank 0 speaks
    if argv[:1] == ["bench"]:  # it parses its own arguments
        from .bench import compare

        return compare.main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
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
