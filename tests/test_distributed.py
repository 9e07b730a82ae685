"""Data-parallel training (fastbp.distributed): micro-batches, their exchange and fold, and
``mpirun -n K fastbp train`` ending with the weights of one process, bit for bit.

The quick tests run the exchange on K threads of this process standing in for K MPI
ranks (``ThreadComm``). The tests marked slow start real MPI jobs (``mpirun -n 2`` and
``-n 4``, oversubscribed on a 2-core machine); they skip only where mpi4py or mpirun is
not installed (``pip install -e '.[mpi]'``, which .ci/run does).
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp import checkpoint, cli, distributed, models, optim
from fastbp.training import Trainer

# ----------------------------------------------------------------------------- helpers


class ThreadGroup:
    def __init__(self, size):
        self.size = size
        self.posts = [None] * size
        self.barrier = threading.Barrier(size, timeout=120)


class ThreadComm:
    """Rank ``rank`` of ``group``: the part of an MPI communicator that fastbp uses, for
    ranks that are threads of one process."""

    def __init__(self, group, rank):
        self.group, self.rank = group, rank

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.group.size

    def _collective(self, value, read):
        group = self.group
        group.posts[self.rank] = value
        group.barrier.wait()
        try:
            return read(list(group.posts))
        finally:
            group.barrier.wait()  # nobody reuses a buffer before everyone has read it

    def allgather(self, value):
        return self._collective(value, lambda posts: posts)

    def bcast(self, value, root=0):
        return self._collective(value, lambda posts: posts[root])

    def Barrier(self):
        self._collective(None, lambda posts: None)

    def Alltoallv(self, send, recv):
        buffer, (counts, displs) = recv

        def read(posts):
            for i, (sent, (sent_counts, sent_displs)) in enumerate(posts):
                start, count = sent_displs[self.rank], sent_counts[self.rank]
                assert count == counts[i]
                buffer[displs[i]:displs[i] + count] = sent[start:start + count]

        self._collective(send, read)

    def Allgatherv(self, send, recv):
        buffer, (counts, displs) = recv
        mine = send[0] if isinstance(send, list) else send

        def read(posts):
            for i, sent in enumerate(posts):
                assert len(sent) == counts[i]
                buffer[displs[i]:displs[i] + counts[i]] = sent

        self._collective(mine, read)


def on_threads(size, function):
    """``function(comm)`` on ``size`` threads, as ranks; the results by rank."""
    group = ThreadGroup(size)
    results, errors = [None] * size, []

    def run(rank):
        try:
            results[rank] = function(ThreadComm(group, rank))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
            group.barrier.abort()

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def synthetic(n=203, features=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = rng.integers(0, 10, n)
    return x, y


def make_trainer(kind="mlp", optimizer="sgd", schedule="step", micro_batches=1, comm=None, **options):
    if kind == "mlp":
        model = models.mlp(64, hidden=(32, 16), out_features=10, seed=1)
    elif kind == "lenet":
        model = models.lenet5(8, 1, 10, seed=1)
    else:
        model = fastbp.Sequential(fastbp.Linear(64, 10, seed=1))
    if optimizer == "sgd":
        opt = optim.SGD(model, 0.05, momentum=0.9, weight_decay=5e-4)
    else:
        opt = optim.Adam(model, 1e-3, weight_decay=5e-4)
    sched = {"step": optim.MultiStep(opt.lr, [1]), "cosine": optim.Cosine(opt.lr, 2),
             "constant": optim.Constant(opt.lr)}[schedule]
    return Trainer(model, opt, batch_size=options.pop("batch_size", 20), schedule=sched, seed=5,
                   progress=False, micro_batches=micro_batches, comm=comm, **options)


def data_for(kind):
    x, y = synthetic()
    xt, yt = synthetic(57, seed=1)
    if kind == "lenet":
        x, xt = x.reshape(-1, 1, 8, 8), xt.reshape(-1, 1, 8, 8)
    return (x, y), (xt, yt)


def assert_same_bits(a, b):
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
        assert np.array_equal(a[name].view(np.uint8), b[name].view(np.uint8)), name


def history_figures(history):
    return {key: values for key, values in history.to_dict().items() if key != "seconds"}


# ----------------------------------------------------------------------------- the split


def test_micro_batch_bounds_cut_a_batch_into_contiguous_runs_longest_first():
    assert distributed.micro_batch_bounds(10, 4).tolist() == [0, 3, 6, 8, 10]
    assert distributed.micro_batch_bounds(8, 4).tolist() == [0, 2, 4, 6, 8]
    assert distributed.micro_batch_bounds(2, 4).tolist() == [0, 1, 2, 2, 2]  # empty ones last
    assert distributed.micro_batch_bounds(5, 1).tolist() == [0, 5]


def test_ranks_take_contiguous_runs_of_micro_batches():
    assert [list(distributed.rank_micro_batches(8, r, 4)) for r in range(4)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert list(distributed.rank_micro_batches(4, 0, 1)) == [0, 1, 2, 3]


@pytest.mark.parametrize("value, size", [(0, 1), (-2, 1), (3, 2), (2.0, 1), (True, 1), ("4", 1)])
def test_bad_micro_batch_counts_are_refused(value, size):
    with pytest.raises(ValueError, match="micro_batches"):
        distributed.check_micro_batches(value, size)


def test_launched_reads_the_launchers_environment(monkeypatch):
    for name in distributed.SIZE_VARIABLES + distributed.RANK_VARIABLES + ("FASTBP_MPI",):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and distributed.environment_rank() is None
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    assert distributed.launched() and distributed.environment_rank() == 2
    assert distributed.environment_size() == 4
    monkeypatch.setenv("FASTBP_MPI", "0")
    assert not distributed.launched()
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    monkeypatch.delenv("OMPI_COMM_WORLD_RANK")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("FASTBP_MPI", "")
    assert distributed.launched()


def test_importing_fastbp_and_its_command_loads_no_mpi():
    code = ("import sys, fastbp, fastbp.cli, fastbp.distributed; "
            "assert not [m for m in sys.modules if m.startswith('mpi4py')], 'mpi4py imported'")
    env = {k: v for k, v in os.environ.items() if k not in distributed.SIZE_VARIABLES + distributed.RANK_VARIABLES}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


# ----------------------------------------------------------------------------- one process


def test_micro_batches_are_the_documented_fold():
    """One step with S = 3 is: each micro-batch's loss gradient scaled by its share of the
    batch, its parameter gradients alone, added in order, then the optimiser step."""
    (x, y), _ = data_for("mlp")
    x, y = x[:20], y[:20]
    trainer = make_trainer(micro_batches=3, batch_size=20)
    twin = make_trainer(batch_size=20)
    trainer.fit((x, y), epochs=1)
    order = np.random.default_rng([5, 0]).permutation(20)
    bounds = [0, 7, 14, 20]
    total = None
    for m in range(3):
        rows = order[bounds[m]:bounds[m + 1]]
        out = twin.model.forward(np.ascontiguousarray(x[rows]), training=True)
        _, grad = fastbp.functional.softmax_cross_entropy(out, y[rows])
        twin.model.backward(grad * np.float32(len(rows) / 20), input_grad=False)
        grads = {n: g.copy() for n, g in twin.model.grads.items()}
        total = grads if total is None else {n: total[n] + grads[n] for n in grads}
    twin.optimizer.lr = twin.schedule(0)
    twin.optimizer.step(total)
    assert_same_bits(trainer.model.params, twin.model.params)


def test_micro_batches_agree_with_whole_batches_to_rounding():
    train, test = data_for("mlp")
    whole, split = make_trainer(), make_trainer(micro_batches=4)
    whole.fit(train, test, epochs=2)
    split.fit(train, test, epochs=2)
    for name, array in whole.model.params.items():
        np.testing.assert_allclose(split.model.params[name], array, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(split.history.train_loss, whole.history.train_loss, rtol=1e-5)
    assert split.history.test_loss == whole.history.test_loss or np.allclose(
        split.history.test_loss, whole.history.test_loss, rtol=1e-4)


def test_micro_batches_are_saved_and_resumed(tmp_path):
    train, test = data_for("mlp")
    path = tmp_path / "run.npz"
    trainer = make_trainer(micro_batches=4)
    trainer.fit(train, test, epochs=1, checkpoint=path)
    assert checkpoint.read_header(path)["training"]["micro_batches"] == 4
    resumed = Trainer.resume(path, progress=False)
    assert resumed.micro_batches == 4
    resumed.fit(train, test, epochs=2)
    straight = make_trainer(micro_batches=4)
    straight.fit(train, test, epochs=2)
    assert_same_bits(resumed.model.params, straight.model.params)
    assert Trainer.resume(path, micro_batches=2, progress=False).micro_batches == 2


# ----------------------------------------------------------------------------- ranks as threads


@pytest.mark.parametrize("kind, optimizer, schedule", [
    ("mlp", "sgd", "step"), ("lenet", "adam", "cosine"), ("linear", "sgd", "constant")])
def test_ranks_end_with_the_weights_of_one_process(kind, optimizer, schedule):
    """203 samples in batches of 20: the last batch of 3 leaves micro-batch 3 empty."""
    train, test = data_for(kind)
    alone = make_trainer(kind, optimizer, schedule, micro_batches=4)
    alone.fit(train, test, epochs=2)
    for size in (2, 4):
        def run(comm):
            trainer = make_trainer(kind, optimizer, schedule, micro_batches=4, comm=comm)
            trainer.fit(train, test, epochs=2)
            return trainer
        trainers = on_threads(size, run)
        for trainer in trainers:
            assert_same_bits(trainer.model.params, alone.model.params)
            assert_same_bits({f"{b}/{n}": a for b, arrays in trainer.optimizer.buffers.items()
                              for n, a in arrays.items()},
                             {f"{b}/{n}": a for b, arrays in alone.optimizer.buffers.items()
                              for n, a in arrays.items()})
            assert history_figures(trainer.history) == history_figures(alone.history)


def test_only_rank_0_writes_the_checkpoint_and_its_errors_reach_every_rank(tmp_path):
    train, test = data_for("mlp")
    writes = []

    def run(comm):
        trainer = make_trainer(micro_batches=2, comm=comm)
        save = trainer.save
        trainer.save = lambda path, metadata=None: (writes.append(comm.Get_rank()), save(path, metadata))
        trainer.fit(train, test, epochs=1, checkpoint=tmp_path / "run.npz")
        with pytest.raises(OSError, match="cannot write"):
            trainer.fit(train, test, epochs=2, checkpoint=tmp_path / "missing" / "run.npz")
        return trainer

    on_threads(2, run)
    assert writes == [0]


def test_ranks_that_differ_are_refused_on_every_rank():
    train, test = data_for("mlp")

    def run(comm):
        trainer = make_trainer(micro_batches=2, comm=comm)
        if comm.Get_rank() == 1:
            trainer.model.params["0.weight"][0, 0] += 1
        with pytest.raises(ValueError, match="differ between rank 0 and rank"):
            trainer.fit(train, test, epochs=1)

    on_threads(2, run)


def test_a_trainer_refuses_what_ranks_cannot_share():
    group = ThreadGroup(2)
    comm = ThreadComm(group, 0)
    with pytest.raises(ValueError, match="multiple of the number of ranks"):
        make_trainer(micro_batches=3, comm=comm)
    model = models.mlp(64, hidden=(8,), out_features=10, dropout=0.5, seed=0)
    with pytest.raises(ValueError, match="Dropout"):
        Trainer(model, optim.SGD(model, 0.1), micro_batches=2, comm=comm)
    nested = fastbp.Sequential(fastbp.Linear(64, 8, seed=0), fastbp.Residual(
        fastbp.Sequential(fastbp.ReLU(), fastbp.Dropout(0.5, seed=1))), fastbp.Linear(8, 10, seed=2))
    with pytest.raises(ValueError, match="Dropout"):
        Trainer(nested, optim.SGD(nested, 0.1), micro_batches=2, comm=comm)
    model = models.resnet(8, blocks=(1, 1, 1), seed=0)
    with pytest.raises(ValueError, match="batch norm cannot train on several ranks"):
        Trainer(model, optim.SGD(model, 0.1), micro_batches=2, comm=comm)
    with pytest.raises(TypeError, match="MPI communicator"):
        make_trainer(micro_batches=2, comm=object())


def test_evaluation_shared_by_ranks_is_that_of_one_process():
    train, test = data_for("mlp")
    trainer = make_trainer()
    expected = fastbp.training.evaluate(trainer.model, *test, batch_size=10)
    results = on_threads(3, lambda comm: fastbp.training.evaluate(trainer.model, *test, batch_size=10, comm=comm))
    assert results == [expected] * 3


def test_the_command_takes_micro_batches(tmp_path, capsys):
    path = tmp_path / "run.npz"
    status = cli.main(["train", "--dataset", "digits", "--train-limit", "100", "--epochs", "1", "--threads", "1",
                       "--no-progress", "--micro-batches", "4", "--save", str(path)])
    assert status == 0
    assert "4 micro-batches" in capsys.readouterr().err
    assert checkpoint.read_header(path)["training"]["micro_batches"] == 4
    with pytest.raises(SystemExit) as exit:
        cli.main(["train", "--micro-batches", "0"])
    assert exit.value.code == 2
    assert "--micro-batches" in capsys.readouterr().err


# ----------------------------------------------------------------------------- real MPI jobs

HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None


def _launcher():
    here = Path(sys.executable).parent
    for candidate in (here / "mpirun", here / "mpiexec"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("mpirun") or shutil.which("mpiexec")


LAUNCHER = _launcher()
needs_mpi = pytest.mark.skipif(
    not (HAVE_MPI4PY and LAUNCHER),
    reason="needs mpi4py and mpirun: python -m pip install -e '.[mpi]' (.ci/run installs them)")

COMMON = ["--dataset", "digits", "--train-limit", "194", "--epochs", "2", "--batch-size", "64",
          "--micro-batches", "4", "--threads", "1", "--no-progress", "--seed", "3"]
CONFIGS = {
    "mlp-sgd-step": ["--model", "mlp", "--hidden", "64", "32"],
    "lenet-adam-cosine": ["--model", "lenet", "--optimizer", "adam", "--schedule", "cosine"],
    "linear-sgd-constant": ["--model", "linear", "--schedule", "constant", "--momentum", "0.5"],
}


def _mpirun_prefix(ranks):
    version = subprocess.run([LAUNCHER, "--version"], capture_output=True, text=True).stdout
    extra = ["--oversubscribe"] if "Open MPI" in version or "OpenRTE" in version else []
    return [LAUNCHER, *extra]


def _mpi_env(**more):
    env = {k: v for k, v in os.environ.items() if k not in distributed.SIZE_VARIABLES + distributed.RANK_VARIABLES}
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_mpi_yield_when_idle="1", NUMBA_NUM_THREADS="1", PYTHONUNBUFFERED="1", **more)
    return env


def mpirun(ranks, args, timeout=600, **env):
    command = [*_mpirun_prefix(ranks), "-n", str(ranks), sys.executable, "-m", "fastbp", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_mpi_env(**env))


def _load(path):
    state = checkpoint.load(path)
    buffers = {f"{b}/{n}": a for b, arrays in state.optimizer_state["buffers"].items() for n, a in arrays.items()}
    return state, buffers


def assert_same_run(path, reference):
    state, buffers = _load(path)
    expected, expected_buffers = _load(reference)
    assert_same_bits(state.model.params, expected.model.params)
    assert_same_bits(buffers, expected_buffers)
    assert state.epoch == expected.epoch
    drop = lambda history: {k: v for k, v in history.items() if k != "seconds"}  # noqa: E731
    assert drop(state.history) == drop(expected.history)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Each configuration trained in one process (this one), as the reference."""
    folder = tmp_path_factory.mktemp("references")
    paths = {}
    for name, options in CONFIGS.items():
        paths[name] = folder / f"{name}.npz"
        assert cli.main(["train", *COMMON, *options, "--save", str(paths[name])]) == 0
    return paths


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.slow
@needs_mpi
def test_mpirun_ends_with_the_weights_of_one_process(config, ranks, references, tmp_path):
    path = tmp_path / "run.npz"
    done = mpirun(ranks, ["train", *COMMON, *CONFIGS[config], "--save", str(path)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("test accuracy") == 1  # rank 0 speaks
    assert f"{ranks} MPI ranks x 1 thread, 4 micro-batches" in done.stderr
    assert_same_run(path, references[config])


@pytest.mark.slow
@needs_mpi
def test_resume_under_another_number_of_ranks(references, tmp_path):
    path = tmp_path / "run.npz"
    options = [*COMMON, *CONFIGS["mlp-sgd-step"]]
    first = mpirun(2, ["train", *options, "--epochs", "1", "--save", str(path)])
    assert first.returncode == 0, first.stderr
    resumed = mpirun(4, ["train", "--resume", str(path), "--epochs", "2", "--threads", "1", "--no-progress",
                         "--train-limit", "194", "--save", str(path)])
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(path, references["mlp-sgd-step"])


@pytest.mark.slow
@needs_mpi
def test_a_bad_save_path_is_refused_before_training(tmp_path):
    start = time.monotonic()
    done = mpirun(2, ["train", *COMMON, "--save", str(tmp_path / "missing" / "run.npz")], timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("cannot write") == 1
    assert "training mlp" not in done.stderr
    assert time.monotonic() - start < 60


@pytest.mark.slow
@needs_mpi
def test_an_error_on_every_rank_ends_the_job_and_is_printed_once():
    done = mpirun(2, ["train", *COMMON, "--lr", "1e30"], timeout=120)
    assert done.returncode == 1
    assert done.stderr.count("fastbp train: error: the training loss became") == 1, done.stderr


@pytest.mark.slow
@needs_mpi
def test_an_error_on_one_rank_ends_the_job(tmp_path):
    """Rank 1 alone cannot find its data set; rank 0 is left waiting for it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    program = [sys.executable, "-m", "fastbp", "train", *COMMON]
    command = [*_mpirun_prefix(2), "-n", "1", *program, ":", "-n", "1", *program, "--dataset", "mnist",
               "--no-download", "--data-dir", str(empty)]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=_mpi_env())
    assert done.returncode == 1
    assert done.stderr.count("rank 1: fastbp train: error:") == 1, done.stderr
    assert time.monotonic() - start < 60


def _processes_with(marker):
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"FASTBP_TEST_MARKER={marker}".encode() in environ:
            rank = next((v.split(b"=", 1)[1] for v in environ
                         if v.split(b"=", 1)[0].decode(errors="replace") in distributed.RANK_VARIABLES), None)
            found[int(entry.name)] = None if rank is None else int(rank)
    return found


@pytest.mark.slow
@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_a_killed_rank_ends_the_job(tmp_path):
    marker = uuid.uuid4().hex
    log = tmp_path / "stderr.txt"
    command = [*_mpirun_prefix(2), "-n", "2", sys.executable, "-m", "fastbp", "train", *COMMON, "--epochs", "100000"]
    with open(log, "w") as stderr:
        job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                               env=_mpi_env(FASTBP_TEST_MARKER=marker))
    try:
        deadline = time.monotonic() + 120
        while "training mlp" not in log.read_text() and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.2)
        assert "training mlp" in log.read_text(), log.read_text()
        time.sleep(1.0)  # well into the epochs
        ranks = {rank: pid for pid, rank in _processes_with(marker).items() if rank is not None}
        assert set(ranks) >= {0, 1}, ranks
        os.kill(ranks[1], signal.SIGKILL)
        killed = time.monotonic()
        status = job.wait(timeout=60)
        assert status != 0
        assert time.monotonic() - killed < 30
        time.sleep(1.0)
        assert not _processes_with(marker), "ranks left running"
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@needs_mpi
def test_info_shows_the_mpi_library_and_world_size():
    done = mpirun(2, ["info"], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("world size 2") == 1
    assert "MPI" in done.stdout and "mpi4py" in done.stdout
