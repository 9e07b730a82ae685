"""Save and load a ``Sequential`` model (architecture and weights), optionally with its
optimiser state and training progress, to one ``.npz`` file. No code is pickled.

File layout (a NumPy ``.npz`` archive, readable with ``allow_pickle=False``):

- ``__fastbp__``: a JSON header: format name and version, the layers as
  ``{"type": class name, "kwargs": constructor arguments}`` (plus a Dropout's random
  generator state), each parameter's shape and dtype, the optimiser's type,
  hyper-parameters and step count, the epoch, the training history, and free-form
  ``training`` and ``metadata`` dicts;
- ``param/<name>``: each parameter (``param/0.weight``);
- ``optim/<buffer>/<name>``: each optimiser buffer (``optim/velocity/0.weight``);
- ``buffer/<name>``: each layer buffer (batch norm's ``buffer/1.running_mean``), listed
  with shape and dtype under the header's ``buffers`` (absent from files of models
  without buffers, and from older files).

A ``Sequential`` inside the model and a ``Residual`` are saved as ``{"type": "Sequential",
"kwargs": {"layers": [...]}}`` and ``{"type": "Residual", "kwargs": {"block": {...},
"shortcut": {...} or None}}``, their parts described the same way, recursively.

Writes go to a temporary file beside the target that is renamed over it only once
complete, so an interrupted save leaves the previous file intact; the file gets the
permissions of any file the process creates (0o666 less the umask), and a destination
that cannot be written is reported before anything is written, naming the path given.
Every problem with a file (not a fastbp checkpoint, truncated, corrupt, a header that
disagrees with the arrays stored, another architecture) raises ``CheckpointError``, a
``ValueError``, naming the file and what is wrong; ``load`` checks the header against
the stored arrays before it builds (allocates) any layer.

Layers are rebuilt through a registry of class names: a layer is saved as its
``config()`` (its constructor's arguments) and rebuilt as ``cls(**config)``; a layer
class's ``param_shapes`` lets ``load`` check the file before building it.
``register_layer`` adds user layers.
"""

import contextlib
import inspect
import json
import numbers
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import layers as L
from .data.idx import check_writable, open_atomic
from .optim import OPTIMIZERS
from .sequential import Sequential

FORMAT = "fastbp-checkpoint"
FORMAT_VERSION = 1
HEADER_KEY = "__fastbp__"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class CheckpointError(ValueError):
    """A file that is not a readable fastbp checkpoint, or one that does not fit a model."""


_LAYER_REGISTRY = {}  # class name -> (class, kwargs_of, param_shapes or None)


def register_layer(cls, kwargs_of=None, param_shapes=None):
    """Make layers of ``cls`` savable, rebuilt on load as ``cls(**kwargs)``.

    ``kwargs_of(layer)`` returns the JSON-able keyword arguments (default: the layer's
    ``config()``; ``dtype`` is added where the layer has one). ``param_shapes(**kwargs)``
    (default: ``cls.param_shapes`` where the class has one) returns ``{name: shape}`` of
    the parameters such a layer allocates, raising TypeError or ValueError for bad
    arguments: ``load`` then checks a file's layer arguments against the arrays it stores
    before building the layer, so that a corrupt header cannot make it allocate more than
    the file holds.
    """
    _LAYER_REGISTRY[cls.__name__] = (cls, kwargs_of or cls.config,
                                     param_shapes or getattr(cls, "param_shapes", None))


for _cls in (L.Linear, L.Conv2D, L.ConvTranspose2D, L.Maxout, L.BatchNorm1D, L.BatchNorm2D):
    register_layer(_cls)
for _cls in (L.MaxPool2D, L.AvgPool2D, L.Dropout, L.Flatten, L.ReLU, L.LeakyReLU, L.Sigmoid, L.Tanh,
             L.ELU, L.Softplus, L.GlobalAvgPool2D):
    register_layer(_cls, param_shapes=lambda **_: {})  # no parameters, whatever the arguments

_NESTED_MAX_DEPTH = 32  # how deep Sequentials and Residuals may nest in a file


def _describe_nested(layer):
    """The spec of a Sequential or Residual inside a model, or None for another layer."""
    if isinstance(layer, Sequential):
        return {"type": "Sequential", "kwargs": {"layers": [describe_layer(part) for part in layer.layers]}}
    if type(layer) is L.Residual:
        shortcut = None if layer.shortcut is None else describe_layer(layer.shortcut)
        return {"type": "Residual", "kwargs": {"block": describe_layer(layer.block), "shortcut": shortcut}}
    return None


def _nested_parts(spec):
    """``[(name prefix, part spec or None)]`` of a Sequential or Residual spec; TypeError
    for a malformed one."""
    kwargs = spec.get("kwargs")
    if not isinstance(kwargs, dict):
        raise TypeError(f"the arguments of {spec['type']} are not a dict: {kwargs!r}")
    if spec["type"] == "Sequential":
        if set(kwargs) != {"layers"} or not isinstance(kwargs["layers"], list) or not kwargs["layers"]:
            raise TypeError(f"a Sequential's arguments are {{'layers': [one or more layers]}}, got {kwargs!r}")
        return [(str(j), part) for j, part in enumerate(kwargs["layers"])]
    if set(kwargs) - {"block", "shortcut"} or "block" not in kwargs:
        raise TypeError(f"a Residual's arguments are 'block' and 'shortcut', got {sorted(kwargs)}")
    return [("block", kwargs["block"]), ("shortcut", kwargs.get("shortcut"))]


def _build_layer(spec, where, depth=0):
    """A freshly initialised layer (or Sequential) from ``describe_layer``'s output."""
    if not isinstance(spec, dict) or not (spec.get("type") in _LAYER_REGISTRY
                                          or spec.get("type") in ("Sequential", "Residual")):
        known = ", ".join(sorted([*_LAYER_REGISTRY, "Residual", "Sequential"]))
        raise CheckpointError(f"{where}: unknown layer type {spec!r} (known: {known})")
    if spec["type"] in ("Sequential", "Residual"):
        if depth >= _NESTED_MAX_DEPTH:
            raise CheckpointError(f"{where}: nested more than {_NESTED_MAX_DEPTH} deep")
        try:
            parts = _nested_parts(spec)
        except TypeError as error:
            raise CheckpointError(f"{where}: {error}") from error
        built = [None if part is None and name == "shortcut" else
                 _build_layer(part, f"{where}.{name}", depth + 1) for name, part in parts]
        try:
            return Sequential(*built) if spec["type"] == "Sequential" else L.Residual(*built)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{where}: cannot build {spec['type']}: {error}") from error
    cls = _LAYER_REGISTRY[spec["type"]][0]
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{where}: the arguments of {spec['type']} are not a dict: {kwargs!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, MemoryError) as error:
        raise CheckpointError(f"{where}: cannot build {spec['type']}({kwargs}): {error}") from error


def _declared_shapes(spec, depth=0):
    """``{name: shape}`` of the parameters the layer ``spec`` describes, or None where that
    cannot be told before building it (an unknown type, a custom layer registered without
    ``param_shapes``). TypeError or ValueError for bad arguments."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind in ("Sequential", "Residual"):
        if depth >= _NESTED_MAX_DEPTH:
            raise ValueError(f"nested more than {_NESTED_MAX_DEPTH} deep")
        shapes = {}
        for prefix, part in _nested_parts(spec):
            if part is None and prefix == "shortcut":
                continue
            inner = _declared_shapes(part, depth + 1)
            if inner is None:
                return None
            shapes.update({f"{prefix}.{name}": tuple(shape) for name, shape in inner.items()})
        return shapes
    entry = _LAYER_REGISTRY.get(kind)
    if entry is None or entry[2] is None:
        return None
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise TypeError(f"the arguments of {kind} are not a dict: {kwargs!r}")
    return {name: tuple(shape) for name, shape in entry[2](**kwargs).items()}


def describe_layer(layer):
    """``{"type", "kwargs"}`` of a registered layer (``kwargs`` includes its dtype, if any),
    or of a Sequential or Residual with its parts described recursively."""
    nested = _describe_nested(layer)
    if nested is not None:
        return nested
    name = type(layer).__name__
    entry = _LAYER_REGISTRY.get(name)
    if entry is None or type(layer) is not entry[0]:
        raise TypeError(
            f"cannot save a {name} layer: it is not registered (see fastbp.checkpoint.register_layer)"
        )
    kwargs = dict(entry[1](layer))
    if layer.dtype is not None:  # a layer without parameters may take any float dtype
        kwargs.setdefault("dtype", layer.dtype.name)
    return {"type": name, "kwargs": json.loads(json.dumps(kwargs))}  # as load reads it: lists


def describe_model(model):
    """The JSON-able architecture of a Sequential: one ``describe_layer`` per layer."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastbp.Sequential, got {type(model).__name__}")
    return [describe_layer(layer) for layer in model.layers]


def build_model(architecture):
    """A new Sequential (freshly initialised) from ``describe_model``'s output."""
    if not isinstance(architecture, list) or not architecture:
        raise CheckpointError(f"the architecture must be a non-empty list of layers, got {architecture!r}")
    return Sequential(*[_build_layer(spec, f"layer {i}") for i, spec in enumerate(architecture)])


@dataclass
class Checkpoint:
    """What ``load`` returns.

    ``model``: the rebuilt Sequential with the saved weights; ``optimizer_state``: the
    optimiser's ``state_dict()`` or None; ``epoch``: epochs completed (None if not saved);
    ``history``, ``training``, ``metadata``: the JSON values given to ``save``.
    """

    model: Sequential
    optimizer_state: dict | None = None
    epoch: int | None = None
    history: dict | None = None
    training: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def make_optimizer(self, **changes):
        """The saved optimiser, rebuilt over ``model`` with its state restored.

        ``changes`` replace saved hyper-parameters among those its constructor takes (for
        ``SGD``: lr, momentum, weight_decay, nesterov; for ``Adam``: lr, eps, weight_decay),
        checked as the constructor checks them; any other name is a TypeError.
        """
        if self.optimizer_state is None:
            raise CheckpointError("this checkpoint holds no optimiser state")
        return _optimizer(self.model, self.optimizer_state, changes)


def _optimizer(model, state, changes):
    """The optimiser ``state`` (a ``state_dict()``) describes, over ``model``, with the
    hyper-parameters in ``changes`` replacing the saved ones. The constructor checks every
    value it takes (ranges, combinations), ``load_state_dict`` the rest."""
    cls = OPTIMIZERS[state["type"]]
    settable = [name for name in inspect.signature(cls).parameters if name in cls.hyper_names]
    unknown = sorted(set(changes) - set(settable))
    if unknown:
        raise TypeError(f"cannot change {', '.join(map(repr, unknown))} of a {cls.__name__} optimiser; "
                        f"it takes {', '.join(settable)}")
    hyper = {**state["hyper"], **changes}
    optimizer = cls(model, **{name: hyper[name] for name in settable if name in hyper})
    optimizer.load_state_dict({**state, "hyper": hyper})
    return optimizer


def save(path, model, optimizer=None, *, epoch=None, history=None, training=None, metadata=None):
    """Write ``model`` (a Sequential) and optionally ``optimizer``'s state to ``path``, atomically.

    ``epoch`` (epochs completed), ``history``, ``training`` and ``metadata`` must be
    JSON-serialisable (dicts of numbers, strings, lists). The file is written exactly at
    ``path`` (no suffix is added).

    The data goes to a temporary file ``.{name}.{pid}.XXXXXXXX.part`` beside ``path``,
    renamed over it once complete and removed if the save fails. A writer killed mid-save
    cannot remove its file; the next save of the same name does, once the process named in
    it is gone (POSIX), so a concurrent save's file, here or in another thread, is never
    touched. Saving one checkpoint name from several machines (or process-id namespaces)
    at once in a shared directory is not supported: a save may then fail, never damaging
    the file.
    """
    architecture = describe_model(model)
    for name, value in (("history", history), ("training", training), ("metadata", metadata)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0):
        raise ValueError(f"epoch must be a non-negative int or None, got {epoch!r}")
    for layer, spec in zip(model.layers, architecture):
        rng = getattr(layer, "rng", None)
        if isinstance(rng, np.random.Generator):
            spec["rng_state"] = rng.bit_generator.state
    arrays = {f"param/{name}": array for name, array in model.params.items()}
    arrays.update({f"buffer/{name}": array for name, array in model.buffers.items()})
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "layers": architecture,
        "params": {name: {"shape": list(a.shape), "dtype": a.dtype.name}
                   for name, a in model.params.items()},
        "optimizer": None,
        "epoch": None if epoch is None else int(epoch),
        "history": history,
        "training": training or {},
        "metadata": metadata or {},
    }
    if optimizer is not None:
        if set(optimizer.params) != set(model.params) or any(
            optimizer.params[n] is not a for n, a in model.params.items()
        ):
            raise ValueError("optimizer does not hold this model's parameters")
        state = optimizer.state_dict()
        header["optimizer"] = {"type": state["type"], "hyper": state["hyper"], "step": state["step"],
                               "buffers": sorted(state["buffers"])}
        for buffer, by_name in state["buffers"].items():
            for name, array in by_name.items():
                arrays[f"optim/{buffer}/{name}"] = array
    if model.buffers:
        header["buffers"] = {name: {"shape": list(a.shape), "dtype": a.dtype.name}
                             for name, a in model.buffers.items()}
    try:
        text = json.dumps(header)
    except (TypeError, ValueError) as error:
        raise TypeError(f"history, training and metadata must be JSON-serialisable: {error}") from error
    arrays[HEADER_KEY] = np.array(text)
    _write_atomic(Path(path), arrays)


def _write_atomic(path, arrays):
    with open_atomic(path, prefix=f".{path.name}.{os.getpid()}.", what="checkpoint") as file:
        np.savez(file, **arrays)
        file.flush()
        os.fsync(file.fileno())
    _remove_abandoned_temporaries(path)


def _remove_abandoned_temporaries(path):
    """Delete the temporary files of ``path``'s name whose writing process has ended, that
    is what a save killed mid-write left (POSIX only: Windows' ``os.kill`` kills)."""
    if os.name != "posix":
        return
    pattern = re.compile(rf"\.{re.escape(path.name)}\.([0-9]+)\.[0-9a-f]{{8}}\.part")
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and not _process_exists(int(match[1])):
                with contextlib.suppress(OSError):  # it may vanish meanwhile
                    os.unlink(entry.path)


def _process_exists(pid):
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a number we cannot ask about: keep its file
    return True


def check_destination(path):
    """Raise an ``OSError`` naming ``path`` unless ``save(path, ...)`` can write there now
    (``path`` is not a directory, its directory exists and takes new files). ``Trainer.fit``
    calls it before the first step rather than failing after the first epoch."""
    check_writable(path, "checkpoint")


# What reading a damaged archive raises: zipfile also raises NotImplementedError for a
# compression method it does not know and RuntimeError for an "encrypted" flag, both of
# which a single flipped bit in a header produces.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError)


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive


def _open_archive(path):
    """The ``.npz`` archive at ``path``, after checking by its first bytes that it is one
    (NumPy would try any other file as a pickle and say so)."""
    with open(path, "rb") as file:  # a missing or unreadable file: the OSError as it is
        start = file.read(8)
    if start.startswith(_NPY_MAGIC):
        raise CheckpointError(f"{path}: not a fastbp checkpoint (a plain .npy array, not an .npz archive)")
    if not start.startswith(_ZIP_MAGICS):
        what = "the file is empty" if not start else f"it starts with {start!r}"
        raise CheckpointError(f"{path}: not a fastbp checkpoint (not an .npz archive: {what})")
    try:
        return np.load(path, allow_pickle=False)
    except _DAMAGED as error:
        raise _unreadable(path, error) from error


def _unreadable(path, error):
    return CheckpointError(
        f"{path}: not a fastbp checkpoint, or truncated or corrupt ({type(error).__name__}: {error})"
    )


def read_header(path):
    """The JSON header of a checkpoint file, checked for format and version (the arrays
    are not read)."""
    return _parse(Path(path), header_only=True)[0]


def _parse(path, header_only=False):
    """``(header, {name: array})``, every array read eagerly so that truncation shows up here."""
    archive = _open_archive(path)
    if HEADER_KEY not in archive.files:
        archive.close()
        raise CheckpointError(f"{path}: not a fastbp checkpoint (an .npz file without a fastbp header)")
    try:
        arrays = {key: archive[key] for key in ([HEADER_KEY] if header_only else archive.files)}
    except _DAMAGED as error:
        raise _unreadable(path, error) from error
    finally:
        archive.close()
    try:
        header = json.loads(str(arrays.pop(HEADER_KEY)))
    except ValueError as error:
        raise CheckpointError(f"{path}: corrupt fastbp header: {error}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fastbp checkpoint (header format is not {FORMAT!r})")
    if header.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {header.get('version')!r} is not supported "
            f"(this fastbp reads version {FORMAT_VERSION})"
        )
    return header, arrays


def _check_contents(header, arrays):
    """Check, before anything is built or allocated, that the header's parameter table is
    what the file stores, that every layer's arguments declare exactly those parameters
    (for layers registered with ``param_shapes``), and that the optimiser section is a
    known optimiser with a step count and buffers stored beside each parameter. Returns
    ``{parameter name: (shape, dtype name)}``."""
    for key in ("layers", "params"):
        if key not in header:
            raise CheckpointError(f"inconsistent fastbp header (no {key!r} entry)")
    layers, params = header["layers"], header["params"]
    if not isinstance(layers, list) or not layers:
        raise CheckpointError(f"the architecture must be a non-empty list of layers, got {layers!r}")
    if not isinstance(params, dict):
        raise CheckpointError(f"inconsistent fastbp header (params is not a dict: {params!r})")
    declared = {}
    for name, info in params.items():
        shape = info.get("shape") if isinstance(info, dict) else None
        if (not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape)
                or info.get("dtype") not in ("float32", "float64")):
            raise CheckpointError(
                f"inconsistent fastbp header (parameter {name!r}: {info!r} is not a shape and a float dtype)")
        declared[name] = (tuple(shape), info["dtype"])
    stored = {key[len("param/"):]: array for key, array in arrays.items() if key.startswith("param/")}
    if set(stored) != set(declared):
        raise CheckpointError(f"the header lists the parameters {sorted(declared)}, "
                              f"the file stores {sorted(stored)}")
    for name, (shape, dtype) in declared.items():
        if stored[name].shape != shape or stored[name].dtype.name != dtype:
            raise CheckpointError(f"parameter {name!r} is stored as {stored[name].dtype} "
                                  f"{stored[name].shape}, the header says {dtype} {shape}")
    buffers = header.get("buffers", {})
    if not isinstance(buffers, dict):
        raise CheckpointError(f"inconsistent fastbp header (buffers is not a dict: {buffers!r})")
    stored_buffers = {key[len("buffer/"):]: array for key, array in arrays.items() if key.startswith("buffer/")}
    if set(stored_buffers) != set(buffers):
        raise CheckpointError(f"the header lists the buffers {sorted(buffers)}, "
                              f"the file stores {sorted(stored_buffers)}")
    for name, info in buffers.items():
        array = stored_buffers[name]
        if not isinstance(info, dict) or info.get("shape") != list(array.shape) \
                or info.get("dtype") != array.dtype.name:
            raise CheckpointError(f"buffer {name!r} is stored as {array.dtype} {array.shape}, "
                                  f"the header says {info!r}")
    for i, spec in enumerate(layers):
        if isinstance(spec, dict) and spec.get("type") not in (*_LAYER_REGISTRY, "Sequential", "Residual"):
            continue  # an unknown type: build_model names it
        try:
            expected = _declared_shapes(spec)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"layer {i}: cannot build {spec['type']}({spec.get('kwargs')}): {error}") \
                from error
        if expected is None:
            continue  # a custom layer: built as it is
        listed = {name.partition(".")[2]: shape for name, (shape, _) in declared.items()
                  if name.partition(".")[0] == str(i)}
        if listed != expected:
            raise CheckpointError(
                f"layer {i}: {_spec_text(spec)} has parameters {expected}; the file's {listed} do not match")
    info = header.get("optimizer")
    if info is not None:
        _check_optimizer_contents(info, declared, arrays)
    return declared


def _check_optimizer_contents(info, declared, arrays):
    def corrupt(problem):
        return CheckpointError(f"corrupt optimiser state: {problem}")

    if not isinstance(info, dict):
        raise corrupt(f"{info!r} is not a dict")
    kind = info.get("type")
    if kind not in OPTIMIZERS:
        raise corrupt(f"unknown optimiser type {kind!r}; expected one of {sorted(OPTIMIZERS)}")
    step = info.get("step")
    if type(step) is not int or step < 0:
        raise corrupt(f"the step count {step!r} is not a non-negative int")
    if not isinstance(info.get("hyper"), dict):
        raise corrupt(f"hyper-parameters must be a dict, got {info.get('hyper')!r}")
    buffers = info.get("buffers")
    expected = sorted(OPTIMIZERS[kind].buffer_names)
    if not isinstance(buffers, list) or sorted(map(str, buffers)) != expected or len(set(buffers)) != len(buffers):
        raise corrupt(f"a {kind} optimiser has the buffers {expected}, the header lists {buffers!r}")
    for buffer in buffers:
        for name, (shape, dtype) in declared.items():
            key = f"optim/{buffer}/{name}"
            if key not in arrays:
                raise corrupt(f"buffer {key!r} is missing")
            if arrays[key].shape != shape or arrays[key].dtype.name != dtype:
                raise corrupt(f"buffer {key!r} is {arrays[key].dtype} {arrays[key].shape}, "
                              f"its parameter {dtype} {shape}")


def _restore_rng(layer, state, where):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise CheckpointError(f"{where}: unsupported random generator state {name!r}")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{where}: corrupt random generator state: {error}") from error
    layer.rng = np.random.Generator(bit_generator)


def _copy_params(model, arrays, header, path):
    expected = {name: (tuple(a.shape), a.dtype.name) for name, a in model.params.items()}
    saved = {name: (tuple(info["shape"]), info["dtype"]) for name, info in header["params"].items()}
    if saved != expected:
        raise CheckpointError(
            f"{path}: parameters do not match the architecture: file lists {saved}, "
            f"the model has {expected}"
        )
    for name, target in model.params.items():
        key = f"param/{name}"
        if key not in arrays:
            raise CheckpointError(f"{path}: parameter {name!r} is missing from the file")
        array = arrays[key]
        if array.shape != target.shape or array.dtype != target.dtype:
            raise CheckpointError(
                f"{path}: parameter {name!r} is {array.dtype} {array.shape}, "
                f"expected {target.dtype} {target.shape}"
            )
        target[...] = array
    expected = {name: (tuple(a.shape), a.dtype.name) for name, a in model.buffers.items()}
    saved = {name: (tuple(info["shape"]), info["dtype"]) for name, info in header.get("buffers", {}).items()}
    if saved != expected:
        raise CheckpointError(f"{path}: buffers do not match the architecture: file lists {saved}, "
                              f"the model has {expected}")
    for name, target in model.buffers.items():
        target[...] = arrays[f"buffer/{name}"]


def load(path):
    """Read a checkpoint written by ``save``: returns a ``Checkpoint``.

    Raises FileNotFoundError for a missing file and ``CheckpointError`` naming the file
    for a file that is not a fastbp checkpoint, is truncated or corrupt, or is internally
    inconsistent. The header is checked against the stored arrays before any layer is
    built, so a damaged header cannot make it allocate more than the file holds; the
    optimiser state is checked as the optimiser's constructor would check it.
    """
    path = Path(path)
    header, arrays = _parse(path)
    try:
        _check_contents(header, arrays)
        model = build_model(header["layers"])
        for i, (layer, spec) in enumerate(zip(model.layers, header["layers"])):
            if "rng_state" in spec:
                _restore_rng(layer, spec["rng_state"], f"{path}: layer {i}")
        _copy_params(model, arrays, header, path)
        optimizer_state = None
        if header.get("optimizer") is not None:
            info = header["optimizer"]
            buffers = {buffer: {name: arrays[f"optim/{buffer}/{name}"] for name in model.params}
                       for buffer in info["buffers"]}
            optimizer_state = {"type": info["type"], "hyper": info["hyper"], "step": info["step"],
                               "buffers": buffers}
            try:
                _optimizer(model, optimizer_state, {})  # what resuming will do, checked now
            except (TypeError, ValueError) as error:
                raise CheckpointError(f"corrupt optimiser state: {error}") from error
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: inconsistent fastbp header ({type(error).__name__}: {error})") from error
    except CheckpointError as error:
        if str(error).startswith(str(path)):
            raise
        raise CheckpointError(f"{path}: {error}") from error
    extras = {"training": header.get("training") or {}, "metadata": header.get("metadata") or {},
              "history": header.get("history")}
    for key, value in extras.items():
        if not isinstance(value, dict) and not (key == "history" and value is None):
            raise CheckpointError(f"{path}: inconsistent fastbp header ({key} is not a dict: {value!r})")
    epoch = header.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise CheckpointError(f"{path}: inconsistent fastbp header (epoch {epoch!r} is not a count)")
    return Checkpoint(model=model, optimizer_state=optimizer_state, epoch=epoch, **extras)


def load_model(path):
    """Only the model of a checkpoint."""
    return load(path).model


def load_weights(model, path):
    """Copy a checkpoint's weights into an existing ``model`` of the same architecture.

    Raises ``CheckpointError`` naming the first differing layer when the architectures differ.
    """
    path = Path(path)
    header, arrays = _parse(path)
    ours = describe_model(model)
    theirs = [{k: v for k, v in spec.items() if k != "rng_state"} if isinstance(spec, dict) else spec
              for spec in header.get("layers", [])]
    for i in range(max(len(ours), len(theirs))):
        mine = ours[i] if i < len(ours) else None
        saved = theirs[i] if i < len(theirs) else None
        if mine != saved:
            raise CheckpointError(
                f"{path}: architecture mismatch at layer {i}: the file has {_spec_text(saved)}, "
                f"the model has {_spec_text(mine)}"
            )
    _copy_params(model, arrays, header, path)
    return model


def _spec_text(spec):
    if spec is None:
        return "no layer"
    args = ", ".join(f"{k}={v}" for k, v in spec.get("kwargs", {}).items())
    return f"{spec.get('type')}({args})"
