"""Whole-system guarantees: training is bit-identical whatever the thread count, and a
process killed while saving never leaves a damaged checkpoint behind."""

import subprocess
import sys
import time

import numpy as np
import pytest

import fastbp
from fastbp import checkpoint, models, optim, training


def _train_lenet_on_digits(threads):
    before = fastbp.get_num_threads()
    fastbp.set_num_threads(threads)
    try:
        data = training.load_dataset("digits", "image", train_limit=256)
        model = models.lenet5(image_size=data.train[0].shape[-1], seed=3)
        trainer = fastbp.Trainer(model, optim.SGD(model, 0.05, momentum=0.9, weight_decay=1e-4),
                                 batch_size=32, seed=5, progress=False)
        history = trainer.fit(data.train, data.test, epochs=2)
        return {k: v.copy() for k, v in model.params.items()}, history.train_loss
    finally:
        fastbp.set_num_threads(before)


def test_training_is_bit_identical_for_one_and_two_threads():
    params_1, losses_1 = _train_lenet_on_digits(1)
    params_2, losses_2 = _train_lenet_on_digits(2)
    assert losses_1 == losses_2
    for name, value in params_1.items():
        assert value.tobytes() == params_2[name].tobytes(), name


SAVER = """
import sys
import numpy as np
import fastbp
from fastbp import checkpoint
model = fastbp.Sequential(fastbp.Linear(1500, 1500, seed=1), fastbp.ReLU(), fastbp.Linear(1500, 1500, seed=2))
print("ready", flush=True)
value = 0.0
while True:
    value += 1.0
    for array in model.params.values():
        array[...] = value
    checkpoint.save(sys.argv[1], model)
"""


@pytest.mark.slow
def test_a_process_killed_while_saving_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    small = fastbp.Sequential(fastbp.Linear(1500, 1500, seed=1), fastbp.ReLU(),
                              fastbp.Linear(1500, 1500, seed=2))
    checkpoint.save(path, small)
    original = {k: v.copy() for k, v in small.params.items()}
    left_behind = []
    for delay in (0.05, 0.3, 0.8):
        saver = subprocess.Popen([sys.executable, "-c", SAVER, str(path)],
                                 stdout=subprocess.PIPE, text=True)
        assert saver.stdout.readline().strip() == "ready"
        time.sleep(delay)
        # Kill while this writer's temporary file exists, i.e. in the middle of writing.
        writing = f".model.npz.{saver.pid}.*.part"
        deadline = time.monotonic() + 10
        while not list(tmp_path.glob(writing)) and time.monotonic() < deadline:
            time.sleep(0.001)
        saver.kill()  # SIGKILL: no cleanup
        saver.wait()
        left_behind.append(bool(list(tmp_path.glob(writing))))
        loaded = checkpoint.load_model(path)
        params = loaded.params
        # Either the checkpoint from before, or one complete save: every parameter holds
        # the same whole value, never a mixture or a torn array.
        if not all(np.array_equal(params[k], original[k]) for k in original):
            value = params["0.weight"].flat[0]
            assert value >= 1.0
            for name, array in params.items():
                assert np.all(array == value), name
    # A kill leaves its temporary file (named apart from the checkpoint) behind, unless
    # the save finished between the look and the kill: ask that one of the three did.
    assert any(left_behind), left_behind
    # The next successful save removes what the killed writers left.
    checkpoint.save(path, small)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


CONCURRENT_SAVER = """
import sys
import fastbp
from fastbp import checkpoint
model = fastbp.Sequential(fastbp.Linear(300, 300, seed=1))
print("ready", flush=True)
sys.stdin.readline()
for value in range(40):
    model.params["0.weight"][...] = float(sys.argv[2]) + value
    checkpoint.save(sys.argv[1], model)
"""


@pytest.mark.slow
def test_concurrent_saves_never_remove_each_others_temporary_files(tmp_path):
    """Each save cleans up stale temporary files of its checkpoint; a concurrent saver's file
    in progress is not stale, so both processes' saves all succeed."""
    path = tmp_path / "model.npz"
    savers = [subprocess.Popen([sys.executable, "-c", CONCURRENT_SAVER, str(path), str(base)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for base in (1000, 2000)]
    for saver in savers:
        assert saver.stdout.readline().strip() == "ready"
    for saver in savers:
        saver.stdin.write("go\n")
        saver.stdin.flush()
    for saver in savers:
        _, err = saver.communicate(timeout=120)
        assert saver.returncode == 0, err
    weights = checkpoint.load_model(path).params["0.weight"]
    assert weights.flat[0] in (1039.0, 2039.0) and np.all(weights == weights.flat[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
