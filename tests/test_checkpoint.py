import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp import checkpoint, optim
from fastbp.checkpoint import CheckpointError


def every_layer_model(dtype=np.float32):
    kw = dict(dtype=dtype)
    return fastbp.Sequential(
        fastbp.Conv2D(2, 3, 3, stride=2, padding=1, seed=1, **kw), fastbp.LeakyReLU(0.2, **kw),
        fastbp.MaxPool2D(2, stride=1, padding=1, **kw), fastbp.Conv2D(3, 4, (2, 3), bias=False, seed=2, **kw),
        fastbp.ELU(0.5, **kw), fastbp.AvgPool2D(2, **kw), fastbp.Flatten(**kw),
        fastbp.Linear(8, 6, seed=3, **kw), fastbp.Tanh(**kw), fastbp.Dropout(0.3, seed=4, **kw),
        fastbp.Maxout(6, 5, pieces=3, seed=5, **kw), fastbp.Softplus(**kw),
        fastbp.Linear(5, 4, bias=False, seed=6, **kw), fastbp.Sigmoid(**kw), fastbp.ReLU(**kw),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_gives_identical_predictions(tmp_path, rng, dtype):
    model = every_layer_model(dtype)
    x = rng.standard_normal((3, 2, 9, 7)).astype(dtype)
    expected = model.forward(x, training=False)
    path = tmp_path / "model.npz"
    checkpoint.save(path, model)
    loaded = checkpoint.load_model(path)
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert repr(loaded) == repr(model)
    for name, array in model.params.items():
        assert loaded.params[name].dtype == dtype
        np.testing.assert_array_equal(loaded.params[name], array)
    np.testing.assert_array_equal(loaded.forward(x, training=False), expected)


def test_a_layer_is_saved_as_its_config():
    """Each layer's ``config()`` rebuilds it and is what the header stores (tuples as JSON
    lists, as files written before ``config()`` existed store them)."""
    for layer in every_layer_model(np.float64).layers:
        assert repr(type(layer)(**layer.config())) == repr(layer)
    conv = fastbp.Conv2D(2, 3, 3, stride=2, padding=1)
    assert checkpoint.describe_layer(conv) == {"type": "Conv2D", "kwargs": {
        "in_channels": 2, "out_channels": 3, "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1],
        "bias": True, "dtype": "float32"}}
    assert checkpoint.describe_layer(fastbp.MaxPool2D(2)) == {
        "type": "MaxPool2D", "kwargs": {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}}
    assert fastbp.MaxPool2D(2, dtype="float32").config() == fastbp.MaxPool2D(2).config()  # older files
    assert fastbp.Linear.param_shapes(**fastbp.Linear(4, 3, bias=False).config()) == {"weight": (3, 4)}


def test_dropout_generator_state_is_restored(tmp_path):
    model = fastbp.Sequential(fastbp.Dropout(0.5, seed=3))
    x = np.ones((4, 50), np.float32)
    model.forward(x)  # advance the generator
    checkpoint.save(tmp_path / "d.npz", model)
    loaded = checkpoint.load_model(tmp_path / "d.npz")
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_optimizer_state_epoch_and_extras_round_trip(tmp_path, rng):
    model = fastbp.Sequential(fastbp.Linear(3, 2, seed=0), fastbp.ReLU(), fastbp.Linear(2, 2, seed=1))
    opt = optim.SGD(model, 0.1, momentum=0.9, weight_decay=1e-3, nesterov=True)
    model.forward(rng.standard_normal((5, 3)).astype(np.float32))
    model.backward(np.ones((5, 2), np.float32))
    opt.step()
    opt.step()
    path = tmp_path / "ckpt"
    checkpoint.save(path, model, opt, epoch=7, history={"epoch": [1]}, training={"seed": 3},
                    metadata={"dataset": "digits", "stats": [0.5, 0.25]})
    assert path.exists()  # written at exactly the given path
    state = checkpoint.load(path)
    assert (state.epoch, state.history, state.training) == (7, {"epoch": [1]}, {"seed": 3})
    assert state.metadata == {"dataset": "digits", "stats": [0.5, 0.25]}
    restored = state.make_optimizer()
    assert isinstance(restored, optim.SGD) and restored.hyper() == opt.hyper()
    assert restored.step_count == 2
    for name, velocity in opt.buffers["velocity"].items():
        np.testing.assert_array_equal(restored.buffers["velocity"][name], velocity)
        assert restored.params[name] is state.model.params[name]


def test_load_weights_into_the_same_architecture(tmp_path):
    source = every_layer_model()
    checkpoint.save(tmp_path / "m.npz", source)
    target = every_layer_model()
    for array in target.params.values():
        array[...] = 0
    checkpoint.load_weights(target, tmp_path / "m.npz")
    for name, array in source.params.items():
        np.testing.assert_array_equal(target.params[name], array)


def test_load_weights_from_another_architecture_names_the_layer(tmp_path):
    checkpoint.save(tmp_path / "m.npz", fastbp.Sequential(fastbp.Linear(4, 3), fastbp.ReLU()))
    with pytest.raises(CheckpointError, match=r"layer 0: the file has Linear\(in_features=4"):
        checkpoint.load_weights(fastbp.Sequential(fastbp.Linear(5, 3), fastbp.ReLU()), tmp_path / "m.npz")
    with pytest.raises(CheckpointError, match="layer 2: the file has no layer"):
        checkpoint.load_weights(
            fastbp.Sequential(fastbp.Linear(4, 3), fastbp.ReLU(), fastbp.Linear(3, 1)), tmp_path / "m.npz")
    with pytest.raises(CheckpointError, match="layer 0"):
        checkpoint.load_weights(
            fastbp.Sequential(fastbp.Linear(4, 3, dtype=np.float64), fastbp.ReLU(dtype=np.float64)),
            tmp_path / "m.npz")


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "m.npz"
    checkpoint.save(path, every_layer_model())
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            checkpoint.load(path)


def test_corrupt_member_is_a_clear_error(tmp_path):
    path = tmp_path / "m.npz"
    checkpoint.save(path, fastbp.Sequential(fastbp.Linear(40, 30)))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the weight array: the zip CRC check fails
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=str(path.name)):
        checkpoint.load(path)


def test_files_that_are_not_fastbp_checkpoints(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a fastbp checkpoint"):
        checkpoint.load(text)
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    for path, what in [(text, "it starts with b'hello, n'"), (noise, "it starts with"),
                       (empty, "the file is empty")]:
        for read in (checkpoint.load, checkpoint.read_header):
            with pytest.raises(CheckpointError) as info:
                read(path)
            message = str(info.value)
            assert message.startswith(f"{path}: not a fastbp checkpoint (not an .npz archive: {what}")
            assert "pickle" not in message
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(CheckpointError, match="plain .npy"):
        checkpoint.load(npy)
    plain = tmp_path / "plain.npz"
    np.savez(plain, weight=np.zeros(3))
    with pytest.raises(CheckpointError, match="without a fastbp header"):
        checkpoint.load(plain)
    other = tmp_path / "other.npz"
    np.savez(other, __fastbp__=np.array(json.dumps({"format": "something-else"})))
    with pytest.raises(CheckpointError, match="header format"):
        checkpoint.load(other)
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.npz")


def _rewrite_header(path, change):
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(str(arrays["__fastbp__"]))
    change(header)
    arrays["__fastbp__"] = np.array(json.dumps(header))
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, match", [
    (lambda h: h.update(version=99), "version 99"),
    (lambda h: h["layers"].__setitem__(0, {"type": "Evil", "kwargs": {}}), "unknown layer type"),
    (lambda h: h["layers"][0]["kwargs"].update(in_features=-3), "cannot build Linear"),
    (lambda h: h["layers"][0]["kwargs"].update(in_features=5), "do not match"),
    (lambda h: h.pop("layers"), "inconsistent"),
    (lambda h: h.update(layers=[], params={}), "non-empty list of layers"),
    (lambda h: h.update(metadata=["digits"]), r"inconsistent fastbp header \(metadata is not a dict"),
    (lambda h: h.update(training=7), r"training is not a dict"),
    (lambda h: h.update(epoch="3"), r"epoch '3' is not a count"),
])
def test_inconsistent_headers_are_clear_errors(tmp_path, change, match):
    path = tmp_path / "m.npz"
    checkpoint.save(path, fastbp.Sequential(fastbp.Linear(4, 3)))
    _rewrite_header(path, change)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(path)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    first = fastbp.Sequential(fastbp.Linear(4, 3, seed=0))
    checkpoint.save(path, first)
    original = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, fastbp.Sequential(fastbp.Linear(4, 3, seed=1)))
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind
    np.testing.assert_array_equal(checkpoint.load_model(path).params["0.weight"], first.params["0.weight"])


def test_unsavable_inputs_are_type_errors(tmp_path):
    class Custom(fastbp.layers.Layer):
        pass

    with pytest.raises(TypeError, match="not registered"):
        checkpoint.save(tmp_path / "m.npz", fastbp.Sequential(Custom()))
    with pytest.raises(TypeError, match="Sequential"):
        checkpoint.save(tmp_path / "m.npz", fastbp.Linear(2, 2))
    with pytest.raises(TypeError, match="JSON"):
        checkpoint.save(tmp_path / "m.npz", fastbp.Sequential(fastbp.ReLU()), metadata={"x": object()})
    model = fastbp.Sequential(fastbp.Linear(2, 2))
    other = optim.SGD(fastbp.Sequential(fastbp.Linear(2, 2)), 0.1)
    with pytest.raises(ValueError, match="optimizer"):
        checkpoint.save(tmp_path / "m.npz", model, other)
    assert not (tmp_path / "m.npz").exists()


def test_registered_custom_layer_round_trips(tmp_path):
    class Scale(fastbp.layers.Layer):
        def __init__(self, factor, *, dtype=np.float32):
            super().__init__(dtype)
            self.factor = factor

        def forward(self, x, training=True):
            return x * self.dtype.type(self.factor)

    checkpoint.register_layer(Scale, lambda layer: {"factor": layer.factor})
    try:
        checkpoint.save(tmp_path / "m.npz", fastbp.Sequential(Scale(2.5)))
        loaded = checkpoint.load_model(tmp_path / "m.npz")
        np.testing.assert_array_equal(loaded.forward(np.ones((1, 2), np.float32)), [[2.5, 2.5]])
    finally:
        checkpoint._LAYER_REGISTRY.pop("Scale")


@pytest.mark.parametrize("change, match", [
    (lambda h: h["training"]["schedule"].update(lr="fast"), "lr must be a real number"),
    (lambda h: h["training"]["schedule"].update(warmup=3), "schedule config needs the arguments"),
    (lambda h: h["training"].update(batch_size=0), "batch_size must be a positive int"),
    (lambda h: h["training"].update(loss="l1"), "unknown loss 'l1'"),
    (lambda h: h.update(history={"epoch": 1}), "history field 'epoch' must be a list, got int"),
])
def test_damaged_training_state_cannot_be_resumed(tmp_path, change, match):
    model = fastbp.Sequential(fastbp.Linear(4, 3, seed=0))
    trainer = fastbp.Trainer(model, optim.SGD(model, 0.1, momentum=0.5), schedule=optim.Step(0.1, 2),
                             progress=False)
    x, y = np.ones((6, 4), np.float32), np.arange(6) % 3
    path = tmp_path / "run.npz"
    trainer.fit((x, y), epochs=1, checkpoint=path)
    assert fastbp.Trainer.resume(path, progress=False).epoch == 1
    _rewrite_header(path, change)
    with pytest.raises(CheckpointError, match=f"{path}: cannot resume from its training state: .*{match}"):
        fastbp.Trainer.resume(path, progress=False)
    # An override is the caller's argument: its errors are not the file's.
    path2 = tmp_path / "good.npz"
    trainer.save(path2)
    with pytest.raises(ValueError, match="batch_size must be a positive int") as info:
        fastbp.Trainer.resume(path2, progress=False, batch_size=0)
    assert not isinstance(info.value, CheckpointError)


def test_save_refuses_extras_that_load_would_reject(tmp_path):
    model = fastbp.Sequential(fastbp.Linear(2, 2))
    with pytest.raises(TypeError, match="history must be a dict or None, got list"):
        checkpoint.save(tmp_path / "m.npz", model, history=[1, 2])
    with pytest.raises(ValueError, match="epoch must be a non-negative int"):
        checkpoint.save(tmp_path / "m.npz", model, epoch=-1)
    assert not list(tmp_path.iterdir())


def _ended_process_id():
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


@pytest.mark.skipif(os.name != "posix", reason="a writer's process is looked up on POSIX only")
def test_save_removes_killed_writers_temporary_files_and_keeps_live_ones(tmp_path):
    """After a successful save, the temporary files of the same checkpoint whose writer
    process has ended (a save killed mid-write) are removed; those of a writer still
    running (a concurrent save, in another process or thread) or of another checkpoint
    are kept."""
    path = tmp_path / "model.npz"
    dead = _ended_process_id()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        files = {
            # name: removed?
            f".model.npz.{dead}.0123abcd.part": True,  # killed writer
            f".model.npz.{live.pid}.0123abcd.part": False,  # a save in progress
            f".model.npz.{os.getpid()}.4567cdef.part": False,  # another thread's save
            f".model.npz.bak.{dead}.0123abcd.part": False,  # checkpoint "model.npz.bak"
            f".other.npz.{dead}.0123abcd.part": False,
            "model.npz.part": False,
        }
        for name in files:
            (tmp_path / name).write_bytes(b"PK partial")
        checkpoint.save(path, fastbp.Sequential(fastbp.Linear(3, 2, seed=0)))
        left = set(os.listdir(tmp_path))
        assert left == {"model.npz"} | {name for name, removed in files.items() if not removed}
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("change, match", [
    (lambda h: h["optimizer"].update(step="abc"), "the step count 'abc' is not a non-negative int"),
    (lambda h: h["optimizer"].update(step=-1), "the step count -1 is not a non-negative int"),
    (lambda h: h["optimizer"].update(step=2.5), "the step count 2.5 is not a non-negative int"),
    (lambda h: h["optimizer"].update(type="Lion"), "unknown optimiser type 'Lion'"),
    (lambda h: h["optimizer"].update(hyper=[0.1]), "hyper-parameters must be a dict"),
    (lambda h: h["optimizer"].update(buffers=[]), r"a SGD optimiser has the buffers \['velocity'\]"),
    (lambda h: h["optimizer"]["hyper"].update(nesterov="yes"), "nesterov must be a bool"),
    (lambda h: h["optimizer"]["hyper"].update(momentum=5), r"momentum must be a finite number in \[0.0, 1.0\)"),
    (lambda h: h["optimizer"]["hyper"].update(lr=-1), "lr must be a finite number"),
    (lambda h: h["optimizer"]["hyper"].pop("weight_decay"), "hyper-parameters"),
    (lambda h: h["optimizer"]["hyper"].update(momentum=0.0), "nesterov needs a momentum > 0"),
])
def test_corrupt_optimiser_state_is_refused_by_load(tmp_path, change, match):
    model = fastbp.Sequential(fastbp.Linear(4, 3, seed=0))
    path = tmp_path / "run.npz"
    checkpoint.save(path, model, optim.SGD(model, 0.1, momentum=0.5, nesterov=True), epoch=1)
    _rewrite_header(path, change)
    with pytest.raises(CheckpointError, match=f"^{path}: corrupt optimiser state: .*{match}"):
        checkpoint.load(path)


def test_optimiser_buffers_must_match_their_parameters(tmp_path):
    model = fastbp.Sequential(fastbp.Linear(4, 3, seed=0))
    path = tmp_path / "run.npz"
    checkpoint.save(path, model, optim.Adam(model), epoch=1)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    for key, array, match in [("optim/m/0.weight", np.zeros((5, 5), np.float32), r"is float32 \(5, 5\)"),
                              ("optim/v/0.bias", np.zeros(3, np.float64), "is float64"),
                              ("optim/v/0.bias", None, "buffer 'optim/v/0.bias' is missing")]:
        changed = dict(arrays)
        if array is None:
            del changed[key]
        else:
            changed[key] = array
        np.savez(path, **changed)
        with pytest.raises(CheckpointError, match=f"^{path}: corrupt optimiser state: .*{match}"):
            checkpoint.load(path)


@pytest.mark.parametrize("change, match", [
    # a layer declared far larger than the arrays stored: refused before building it
    (lambda h: h["layers"][0]["kwargs"].update(in_features=50_000, out_features=1_000),
     r"layer 0: Linear\(in_features=50000, out_features=1000.*\) has parameters .* do not match"),
    (lambda h: h["layers"][0]["kwargs"].update(in_features=10**12, out_features=10**12), "do not match"),
    (lambda h: h["params"]["0.weight"].update(shape=[100_000, 4000]),
     r"parameter '0.weight' is stored as float32 \(3, 4\), the header says float32 \(100000, 4000\)"),
    (lambda h: h["params"].update({"0.extra": {"shape": [10**9], "dtype": "float32"}}),
     r"the header lists the parameters \['0.bias', '0.extra', '0.weight'\], the file stores"),
    (lambda h: h["params"]["0.weight"].update(shape=[-3, 4]), "is not a shape and a float dtype"),
    (lambda h: h["params"]["0.weight"].update(dtype="int8"), "is not a shape and a float dtype"),
    (lambda h: h["layers"][0]["kwargs"].update(bias="yes"), "bias must be a bool"),
    (lambda h: h["layers"][0]["kwargs"].update(out_features=2.5), "out_features must be a positive int"),
])
def test_a_header_is_checked_against_the_stored_arrays_before_allocating(tmp_path, change, match):
    import tracemalloc

    path = tmp_path / "m.npz"
    checkpoint.save(path, fastbp.Sequential(fastbp.Linear(4, 3), fastbp.ReLU()))
    _rewrite_header(path, change)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=f"^{path}: .*{match}"):
            checkpoint.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # the declared layer (200 MB and more) was never allocated


def test_read_header_reads_only_the_header(tmp_path):
    path = tmp_path / "m.npz"
    checkpoint.save(path, fastbp.Sequential(fastbp.Linear(4, 3)), epoch=2, metadata={"dataset": "digits"})
    header = checkpoint.read_header(path)
    assert header["epoch"] == 2 and header["metadata"] == {"dataset": "digits"}


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0o000, 0o666)])
def test_checkpoints_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "m.npz"
    model = fastbp.Sequential(fastbp.Linear(4, 3))
    checkpoint.save(path, model)
    assert os.stat(path).st_mode & 0o777 == mode
    checkpoint.save(path, model)  # replacing a file: the new one has the umask's mode too
    assert os.stat(path).st_mode & 0o777 == mode
    assert os.listdir(tmp_path) == ["m.npz"]


def test_saving_where_no_file_can_be_written_names_the_path_given(tmp_path):
    model = fastbp.Sequential(fastbp.Linear(4, 3))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    cases = [(blocker / "m.npz", NotADirectoryError, f"'{blocker}' is not a directory"),
             (tmp_path / "missing" / "m.npz", FileNotFoundError, f"no such directory '{tmp_path / 'missing'}'"),
             (tmp_path, IsADirectoryError, "it is a directory")]
    for target, error, problem in cases:
        with pytest.raises(error) as info:
            checkpoint.check_destination(target)
        assert str(info.value) == f"cannot write checkpoint '{target}': {problem}"
        with pytest.raises(error) as info:
            checkpoint.save(target, model)
        assert str(info.value) == f"cannot write checkpoint '{target}': {problem}"
    assert sorted(os.listdir(tmp_path)) == ["blocker"]
    checkpoint.check_destination(tmp_path / "fine.npz")
    assert sorted(os.listdir(tmp_path)) == ["blocker"]
