"""The training loop: seeded mini-batch epochs, evaluation, history, checkpoints, resume."""

import math
import numbers
import os
import time

import numpy as np

from .. import checkpoint as ckpt
from .. import distributed
from .._validation import class_labels, positive_int
from ..data import minibatches
from ..layers import Dropout, Residual
from ..optim import SGD, Optimizer, Schedule, schedule_from_config
from ..sequential import Sequential
from .history import History
from .objectives import OBJECTIVES, get_objective
from .progress import make_progress


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before applying that step.

    ``epoch`` and ``step`` count from 1; ``history`` holds the epochs completed before.
    """

    def __init__(self, loss, epoch, epochs, step, steps, lr, history):
        self.loss, self.epoch, self.step, self.history = loss, epoch, step, history
        super().__init__(
            f"the training loss became {loss} at epoch {epoch}/{epochs}, step {step}/{steps} "
            f"(learning rate {lr:.4g}); training stopped. Try a smaller learning rate."
        )


def _all_layers(layers):
    """Every layer, those inside nested Sequentials and Residuals included."""
    for layer in layers:
        if isinstance(layer, Sequential):
            yield from _all_layers(layer.layers)
        elif isinstance(layer, Residual):
            yield from _all_layers([part for part in (layer.block, layer.shortcut) if part is not None])
        else:
            yield layer


def _paired(name, data):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (x, y) of arrays")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y):
        raise ValueError(f"{name}: x and y differ in length: {len(x)} != {len(y)}")
    if len(x) == 0:
        raise ValueError(f"{name} is empty")
    return x, y


def evaluate(model, x, y, loss="cross_entropy", batch_size=1000, comm=None):
    """``{"loss", "accuracy"}`` of ``model`` (in evaluation mode) on ``x`` (N, ...), ``y``.

    The loss is the mean over all N samples; ``accuracy`` is the fraction of arg-max
    predictions equal to the integer labels ``y`` for classification losses, else None.
    With ``comm`` (an MPI communicator whose ranks hold the same model and data) rank r
    evaluates the batches r, r + K, ... and every rank gets the result of one process,
    bit for bit: the batches' figures are gathered and added up in their order.
    """
    objective = get_objective(loss)
    x, y = _paired("data", (x, y))
    batch_size = positive_int("batch_size", batch_size)
    comm = distributed._check_comm(comm)
    rank, size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())
    figures = []
    for i, (xb, yb) in enumerate(minibatches(x, y, batch_size, shuffle=False)):
        if i % size != rank:
            continue
        out = model.forward(np.ascontiguousarray(xb), training=False)
        value, _ = objective.loss(out, yb)
        figures.append((value, len(xb), objective.correct(out, yb) if objective.classification else 0))
    if comm is not None:
        gathered = comm.allgather(figures)
        figures = [gathered[i % size][i // size] for i in range(sum(map(len, gathered)))]
    total, correct = 0.0, 0
    for value, count, right in figures:
        total += value * count
        correct += right
    n = len(x)
    return {"loss": total / n, "accuracy": correct / n if objective.classification else None}


def predict(model, x, batch_size=1000):
    """The model's outputs (evaluation mode) for ``x`` (N, ...), computed in batches."""
    batch_size = positive_int("batch_size", batch_size)
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"x must hold at least one sample along axis 0, got shape {x.shape}")
    outs = [model.forward(np.ascontiguousarray(x[i:i + batch_size]), training=False)
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)


class Trainer:
    """Trains ``model`` (a Sequential) with ``optimizer`` on ``loss``.

    ``loss``: "cross_entropy" (integer labels), "hinge", "mse" (targets shaped like the
    outputs), an ``Objective`` or a callable ``(outputs, targets) -> (loss, grad)``.
    ``schedule``: a ``fastbp.optim.Schedule`` that sets ``optimizer.lr`` at the start of
    each epoch (None keeps the optimiser's rate). ``seed``: epoch e's mini-batches are a
    permutation drawn from ``numpy.random.default_rng([seed, e])``, so a run is a
    function of the seed and a resumed run repeats the uninterrupted one exactly.
    ``progress``: True (tqdm bar if installed, else a line per epoch on stderr), "plain",
    "tqdm" or False.

    ``micro_batches``: S > 1 cuts every batch into S micro-batches whose gradients, each
    scaled by its share of the batch, are summed in a fixed order (``fastbp.distributed``
    defines it); the result agrees with S = 1 to rounding. ``comm``: an MPI communicator
    (``mpi4py.MPI.COMM_WORLD``) of K ranks, K dividing S, each holding the same model,
    optimiser, settings and data (checked when ``fit`` starts): each rank computes S/K of
    the micro-batches, the ranks exchange their gradients (``MPI_Alltoallv``, then each
    folds a slice of them in the fixed order, then ``MPI_Allgatherv``) and every rank
    takes the same step, so that the weights are, bit for bit, those of one process
    with the same ``micro_batches``. Only rank 0 shows progress and writes the
    ``checkpoint``; an error is raised on every rank alike. ``exchange_seconds`` adds up
    the time spent exchanging gradients.

    ``epoch`` is the number of epochs completed and ``history`` their record.
    """

    def __init__(self, model, optimizer, loss="cross_entropy", *, batch_size=64, schedule=None,
                 seed=0, progress=True, eval_batch_size=1000, micro_batches=1, comm=None):
        if not isinstance(model, Sequential):
            raise TypeError(f"model must be a fastbp.Sequential, got {type(model).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp.optim.Optimizer, got {type(optimizer).__name__}")
        if set(optimizer.params) != set(model.params) or any(
            optimizer.params[n] is not a for n, a in model.params.items()
        ):
            raise ValueError("optimizer was not built over this model's parameters")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a fastbp.optim.Schedule or None, got {type(schedule).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.model = model
        self.optimizer = optimizer
        self.objective = get_objective(loss)
        self.batch_size = positive_int("batch_size", batch_size)
        self.eval_batch_size = positive_int("eval_batch_size", eval_batch_size)
        self.schedule = schedule
        self.seed = int(seed)
        self.comm = distributed._check_comm(comm)
        self.rank, self.size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())
        self.micro_batches = distributed.check_micro_batches(micro_batches, self.size)
        if self.size > 1 and model.buffers:
            raise ValueError("a model with batch norm cannot train on several ranks bit for bit: "
                             "each rank would update its running statistics from its own "
                             "micro-batches only")
        if self.size > 1 and any(isinstance(layer, Dropout) and layer.p > 0
                                 for layer in _all_layers(model.layers)):
            raise ValueError("a model with Dropout cannot train on several ranks bit for bit: each "
                             "rank's dropout draws its own random numbers")
        self.progress = progress
        make_progress(progress)  # validate now, not after the first epoch
        self._exchange = None
        self.exchange_seconds = 0.0
        self.epoch = 0
        self.history = History()
        self.metadata = {}

    def fit(self, train, test=None, epochs=1, checkpoint=None):
        """Train until ``epochs`` epochs are complete in total (continuing from ``self.epoch``).

        ``train`` and ``test`` are ``(x, y)`` pairs of arrays with samples along axis 0.
        ``epochs`` is the total to reach, so it must exceed ``self.epoch`` (ValueError
        otherwise). With ``checkpoint`` (a path) the trainer is saved there after every
        epoch. Returns ``self.history``. Raises ``NonFiniteLossError`` if the loss becomes
        NaN or inf.

        Everything that can be checked before the first step is: the arguments, that a
        file can be written at ``checkpoint`` (an ``OSError`` naming it otherwise), and,
        for the classification losses, that every label of ``train`` and ``test`` is a
        class index below the model's number of outputs.
        """
        x, y = _paired("train", train)
        if test is not None:
            test = _paired("test", test)
        epochs = positive_int("epochs", epochs)
        if epochs <= self.epoch:
            raise ValueError(
                f"epochs={epochs}, but this trainer already holds {self.epoch} epochs: epochs is "
                f"the total to reach, not a number to add (pass epochs={self.epoch + 1} or more)")
        if checkpoint is not None:  # an OSError naming the path, before any step
            self._on_root(lambda: ckpt.check_destination(checkpoint))
        self._check_labels(x, y, "train")
        if test is not None:
            self._check_labels(*test, "test")
        if self.comm is not None:
            self._check_replicas(x, y, test, epochs)
        if self.micro_batches > 1 or self.comm is not None:
            if self._exchange is None or not self._exchange.matches(self.model.params):
                self._exchange = distributed.GradientExchange(self.model.params, self.micro_batches, self.comm)
        reporter = make_progress(self.progress if self.rank == 0 else False)
        steps = math.ceil(len(x) / self.batch_size)
        try:
            while self.epoch < epochs:
                self._run_epoch(x, y, test, epochs, steps, reporter)
                if checkpoint is not None:
                    self._on_root(lambda: self.save(checkpoint))
        finally:
            reporter.close()
        return self.history

    def _on_root(self, function):
        """``function()`` here, or on rank 0 only with its error raised on every rank."""
        return function() if self.comm is None else distributed.on_root(self.comm, function)

    def _check_replicas(self, x, y, test, epochs):
        """Every rank must start from the same state and data, or the ranks' steps differ."""
        optimizer = self.optimizer
        parts = [self.epoch, epochs, self.seed, self.batch_size, self.micro_batches, self.eval_batch_size,
                 self.objective.name, None if self.schedule is None else self.schedule.to_config(),
                 type(optimizer).__name__, optimizer.hyper(), optimizer.step_count, x.shape, x.dtype.str,
                 y, *(("no test",) if test is None else (test[0].shape, test[0].dtype.str, test[1]))]
        for name, array in self.model.params.items():
            parts += [name, array]
        for buffer, arrays in optimizer.buffers.items():
            parts += [buffer, *arrays.values()]
        distributed.replicas_agree(self.comm, parts)

    def _check_labels(self, x, y, name):
        """For classification, ``y`` must be class indices in [0, outputs): checked over the
        whole set now rather than batch by batch, after steps were already taken."""
        if not self.objective.classification:
            return
        outputs = self.model.forward(np.ascontiguousarray(x[:1]), training=False)
        if outputs.ndim != 2:
            return  # the loss names this problem at the first step, before any update
        try:
            class_labels(f"{name} labels", y, len(y), outputs.shape[1])
        except ValueError as error:
            raise ValueError(f"{error} (the model has {outputs.shape[1]} outputs)") from None

    def _run_epoch(self, x, y, test, epochs, steps, reporter):
        start = time.perf_counter()
        index = self.epoch
        if self.schedule is not None:
            self.optimizer.lr = self.schedule(index)
        lr = self.optimizer.lr
        reporter.start_epoch(index + 1, epochs, steps)
        rng = np.random.default_rng([self.seed, index])
        total, correct, seen = 0.0, 0, 0
        if self._exchange is not None:
            batches = self._micro_batch_steps(x, y, rng)
        else:
            batches = self._steps(x, y, rng)
        for step, (value, count, right) in enumerate(batches, start=1):
            if not math.isfinite(value):
                raise NonFiniteLossError(value, index + 1, epochs, step, steps, lr, self.history)
            self.optimizer.check_params(self.model.params)  # no layer or array replaced
            self.optimizer.step(self.model.grads)
            total += value * count
            seen += count
            correct += right
            reporter.step(value)
        test_loss = test_accuracy = None
        if test is not None:
            reporter.start_evaluation()
            result = evaluate(self.model, *test, loss=self.objective, batch_size=self.eval_batch_size,
                              comm=self.comm)
            reporter.end_evaluation()
            test_loss, test_accuracy = result["loss"], result["accuracy"]
        self.epoch += 1
        self.history.append(
            epoch=self.epoch, lr=lr, train_loss=total / seen,
            train_accuracy=correct / seen if self.objective.classification else None,
            test_loss=test_loss, test_accuracy=test_accuracy,
            seconds=time.perf_counter() - start,
        )
        reporter.end_epoch(self.history.last())

    def _steps(self, x, y, rng):
        """Each batch's gradient in the model's ``grads``, then ``(loss, samples, correct)``."""
        for xb, yb in minibatches(x, y, self.batch_size, rng=rng):
            out = self.model.forward(np.ascontiguousarray(xb), training=True)
            value, grad = self.objective.loss(out, yb)
            if math.isfinite(value):
                self.model.backward(grad, input_grad=False)  # nobody reads d loss / d input
            right = self.objective.correct(out, yb) if self.objective.classification else 0
            yield value, len(xb), right

    def _micro_batch_steps(self, x, y, rng):
        """``_steps`` by micro-batches (``fastbp.distributed``): this rank's micro-batches of
        each batch, then the exchange and the fold of all of them in the global order."""
        exchange, model, objective = self._exchange, self.model, self.objective
        order = rng.permutation(len(x))  # the order minibatches(..., rng=rng) draws
        for start in range(0, len(x), self.batch_size):
            batch = order[start:start + self.batch_size]
            n = len(batch)
            bounds = distributed.micro_batch_bounds(n, self.micro_batches)
            for m in exchange.local:
                lo, hi = int(bounds[m]), int(bounds[m + 1])
                if lo == hi:
                    continue  # an empty micro-batch (n < S): left out of the fold
                rows = batch[lo:hi]
                xb, yb = np.ascontiguousarray(x[rows]), y[rows]
                out = model.forward(xb, training=True)
                value, grad = objective.loss(out, yb)
                model.backward(distributed.scaled_loss_gradient(grad, hi - lo, n), input_grad=False)
                exchange.store(m, model.grads, value, objective.correct(out, yb) if objective.classification else 0)
            before = exchange.exchange_seconds
            value, right = exchange.combine(bounds, model.grads)
            self.exchange_seconds += exchange.exchange_seconds - before
            yield value, n, right

    def evaluate(self, x, y):
        """``evaluate(self.model, x, y)`` with this trainer's loss (shared by the ranks of ``comm``)."""
        return evaluate(self.model, x, y, loss=self.objective, batch_size=self.eval_batch_size, comm=self.comm)

    def save(self, path, metadata=None):
        """Checkpoint the model, optimiser state, epoch, history and this trainer's settings,
        with ``metadata`` (default: ``self.metadata``, a JSON-able dict kept for the caller)."""
        metadata = self.metadata if metadata is None else metadata
        training = {"seed": self.seed, "batch_size": self.batch_size, "micro_batches": self.micro_batches,
                    "loss": self.objective.name if self.objective.name in OBJECTIVES else None,
                    "schedule": None if self.schedule is None else self.schedule.to_config()}
        ckpt.save(path, self.model, self.optimizer, epoch=self.epoch,
                  history=self.history.to_dict(), training=training, metadata=metadata)

    @classmethod
    def resume(cls, path, loss=None, *, progress=True, comm=None, **overrides):
        """A trainer restored from a ``save``d checkpoint: model weights, optimiser state,
        epoch, history, seed, batch size, micro-batches, schedule and (named) loss. ``loss``
        is needed when the saved one was a custom callable. ``comm``: the MPI communicator
        to train on (any number of ranks that divides the micro-batches; every rank resumes
        the same file).

        ``overrides`` replace saved settings: the trainer's ``batch_size``, ``schedule``,
        ``seed``, ``micro_batches`` and ``eval_batch_size``, and the optimiser's hyper-parameters that its
        constructor takes (``lr``, ``weight_decay``, and ``momentum``, ``nesterov`` for SGD
        or ``eps`` for Adam), checked as the constructor checks them. ``lr`` restarts the
        saved schedule from that rate (its rate at epoch 0 becomes ``lr``); without a saved
        schedule it is the optimiser's rate. ``lr`` with ``schedule`` is a ValueError: the
        schedule sets the rate every epoch. Errors in ``overrides`` are TypeErrors or
        ValueErrors; errors in the file are ``CheckpointError``s.
        """
        state = ckpt.load(path)
        if state.optimizer_state is None or state.epoch is None:
            raise ckpt.CheckpointError(f"{path}: a model-only checkpoint cannot resume training")
        training = state.training
        if loss is not None:
            loss = get_objective(loss)  # the caller's argument: its errors are the caller's
        elif training.get("loss") is None:
            raise ValueError(f"{path} was trained with a custom loss: pass loss= to resume it")
        settings = {name: overrides.pop(name)
                    for name in ("batch_size", "schedule", "seed", "micro_batches", "eval_batch_size")
                    if name in overrides}
        if "lr" in overrides and "schedule" in settings:
            raise ValueError("pass lr or schedule, not both: the schedule sets the learning rate every epoch")
        # What the file holds must make a trainer; anything wrong in it is the file's problem.
        try:
            saved = {"batch_size": training.get("batch_size", 64), "seed": training.get("seed", 0),
                     "micro_batches": training.get("micro_batches", 1)}
            if training.get("schedule") is not None:
                saved["schedule"] = schedule_from_config(training["schedule"])
            trainer = cls(state.model, state.make_optimizer(), loss or training["loss"],
                          progress=False, **saved)
            history = History.from_dict(state.history or {})
        except (TypeError, ValueError) as error:
            raise ckpt.CheckpointError(f"{path}: cannot resume from its training state: {error}") from error
        optimizer = trainer.optimizer
        if overrides:  # optimiser hyper-parameters, the caller's
            try:
                optimizer = state.make_optimizer(**overrides)
            except TypeError as error:
                raise TypeError(f"{error}; the trainer's own settings are batch_size, schedule, seed, "
                                f"micro_batches and eval_batch_size") from None
            if "lr" in overrides and "schedule" in saved:
                settings["schedule"] = schedule_from_config({**saved["schedule"].to_config(),
                                                             "lr": overrides["lr"]})
        trainer = cls(state.model, optimizer, trainer.objective, progress=progress, comm=comm,
                      **{**saved, **settings})
        trainer.epoch = state.epoch
        trainer.history = history
        trainer.metadata = state.metadata
        return trainer


def fit(model, train, test=None, *, epochs=10, optimizer=None, lr=0.1, loss="cross_entropy",
        batch_size=64, schedule=None, seed=0, progress=True, checkpoint=None, micro_batches=1,
        comm=None):
    """Train ``model`` for ``epochs`` epochs and return the ``History``.

    ``optimizer`` defaults to plain ``SGD(model, lr)``; the other arguments are those of
    ``Trainer`` and ``Trainer.fit``.
    """
    if optimizer is None:
        optimizer = SGD(model, lr)
    trainer = Trainer(model, optimizer, loss, batch_size=batch_size, schedule=schedule,
                      seed=seed, progress=progress, micro_batches=micro_batches, comm=comm)
    return trainer.fit(train, test, epochs, checkpoint=checkpoint)
