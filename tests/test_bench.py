"""The benchmark instruments: the NumPy peer is correct, the work counts are right, the
kernel adapters cover what they advertise, compare.py writes its JSON schema, and the asv
suite passes ``asv check``."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import AS_AVX2
from fastbp import functional as F
from fastbp import machine
from fastbp.bench import compare, networks, numpy_peer, report, shapes, startup, torch_peer
from fastbp.bench.kernels import kernel_names, kernel_ops
from fastbp.bench.networks import fastbp_step

ROOT = Path(__file__).resolve().parents[1]
CONV_GEOMETRIES = [(1, 0), (2, 1), (1, 2)]
POOL_GEOMETRIES = [(2, 2, 0), (3, 2, 1), (3, 1, 1)]
# stride, padding, output_padding, dilation, groups
CONV_TRANSPOSE_GEOMETRIES = [(1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (2, 1, 0, 2, 2), (3, 2, 2, 1, 1)]
NEW_FAMILIES = ["conv_transpose", "batchnorm"]
needs_torch = pytest.mark.skipif(not torch_peer.available(), reason="torch is not installed")


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stride, padding", CONV_GEOMETRIES)
def test_numpy_conv_matches_fastbp(rng, stride, padding):
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    y = numpy_peer.conv2d(x, w, b, stride, padding)
    close(y, F.conv2d(x, w, b, stride, padding))
    dy = rng.standard_normal(y.shape)
    for ours, theirs in zip(numpy_peer.conv2d_backward(dy, x, w, stride, padding),
                            F.conv2d_backward(dy, x, w, stride, padding)):
        close(ours, theirs)


def test_numpy_linear_matches_fastbp(rng):
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    close(numpy_peer.linear(x, w, b), F.linear(x, w, b))
    dy = rng.standard_normal((5, 3))
    for ours, theirs in zip(numpy_peer.linear_backward(dy, x, w), F.linear_backward(dy, x, w)):
        close(ours, theirs)


@pytest.mark.parametrize("kernel, stride, padding", POOL_GEOMETRIES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_numpy_pooling_matches_fastbp(rng, kind, kernel, stride, padding):
    x = rng.standard_normal((2, 3, 9, 8))
    y = getattr(numpy_peer, f"{kind}_pool2d")(x, kernel, stride, padding)
    close(y, getattr(F, f"{kind}_pool2d")(x, kernel, stride, padding))
    dy = rng.standard_normal(y.shape)
    close(getattr(numpy_peer, f"{kind}_pool2d_backward")(dy, x, kernel, stride, padding),
          getattr(F, f"{kind}_pool2d_backward")(dy, x, kernel, stride, padding))


@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups",
                         CONV_TRANSPOSE_GEOMETRIES)
def test_numpy_conv_transpose_matches_fastbp(rng, stride, padding, output_padding, dilation,
                                             groups):
    x, w, b = (rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 6 // groups, 3, 3)),
               rng.standard_normal(6))
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = numpy_peer.conv_transpose2d(x, w, b, output_padding=output_padding, **geometry)
    close(y, F.conv_transpose2d(x, w, b, output_padding=output_padding, **geometry))
    dy = rng.standard_normal(y.shape)
    for ours, theirs in zip(numpy_peer.conv_transpose2d_backward(dy, x, w, **geometry),
                            F.conv_transpose2d_backward(dy, x, w, output_padding=output_padding,
                                                        **geometry)):
        close(ours, theirs)


def test_numpy_batch_norm_matches_fastbp(rng):
    x, weight, bias = (rng.standard_normal(shape) for shape in ((3, 4, 5, 6), (4,), (4,)))
    y, mean, inv_std = numpy_peer.batch_norm(x, weight, bias)
    theirs, cache = F.batch_norm(x, weight, bias)
    close(y, theirs)
    dy = rng.standard_normal(y.shape)
    for ours, theirs in zip(numpy_peer.batch_norm_backward(dy, x, weight, mean, inv_std),
                            F.batch_norm_backward(dy, cache, weight)):
        close(ours, theirs)


@needs_torch
@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_torch_passes_compute_what_fastbp_computes(family):
    """The ATen calls of the transposed convolution and batch norm passes (training) give
    fastbp's results: outputs and every gradient, on the tiny shapes' seeded data."""
    shape, dtype = shapes.tiny(family), np.float64
    data = shapes.inputs(shape, dtype)
    x, w, b, dy = data["x"], data["w"], data["b"], data["dy"]
    torch_passes = torch_peer.passes(shape, dtype)
    if family == "batchnorm":
        y, cache = F.batch_norm(x, w, b, eps=shape.eps)
        gradients = F.batch_norm_backward(dy, cache, w)
        theirs_y = torch_passes["forward"]()[0]
    else:
        geometry = dict(stride=shape.stride, padding=shape.pad, dilation=shape.dilation,
                        groups=shape.groups, output_padding=shape.output_padding)
        y = F.conv_transpose2d(x, w, b, **geometry)
        gradients = F.conv_transpose2d_backward(dy, x, w, **geometry)
        theirs_y = torch_passes["forward"]()
    close(theirs_y.numpy(), y)
    for ours, theirs in zip(gradients, torch_passes["backward"]()):
        close(theirs.numpy(), ours)


@needs_torch
def test_torch_activation_passes_compute_what_fastbp_computes():
    shape = shapes.tiny("activation")
    data = shapes.inputs(shape, np.float64)
    x, dy = data["x"], data["dy"]
    theirs = torch_peer.passes(shape, np.float64)
    assert set(theirs) == set(kernel_names("activation"))
    for name, kwargs in [("relu", {}), ("leaky_relu", {"slope": 0.01}), ("sigmoid", {}),
                         ("tanh", {}), ("elu", {"alpha": 1.0}), ("softplus", {})]:
        close(theirs[f"{name}_forward"]().numpy(), getattr(F, name)(x, **kwargs))
        close(theirs[f"{name}_backward"]().numpy(), getattr(F, f"{name}_backward")(dy, x, **kwargs))


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_mirror_of_the_resnet_computes_fastbp_forward(dtype):
    """The torch mirror of fastbp.models.resnet, holding the same weights and running
    statistics, gives fastbp's scores in training mode (the batch's statistics); the running
    statistics then move alike."""
    import torch

    model, mirrored = networks.fastbp_network("resnet", dtype), torch_peer.network("resnet", dtype)
    assert mirrored.training
    x, _ = networks.batch(shapes.Train("resnet_b8", "resnet", 8), dtype)
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mirrored(torch.from_numpy(x)).detach().numpy(), model.forward(x),
                               **tolerance)
    theirs = mirrored.state_dict()
    for key, value in model.buffers.items():
        np.testing.assert_allclose(theirs[key].numpy(), value, **tolerance)


def test_numpy_relu_and_loss_match_fastbp(rng):
    x = rng.standard_normal((6, 5))
    close(numpy_peer.relu(x), F.relu(x))
    close(numpy_peer.relu_backward(x[::-1].copy(), x), F.relu_backward(x[::-1].copy(), x))
    labels = rng.integers(0, 5, 6)
    ours, theirs = numpy_peer.softmax_cross_entropy(x, labels), F.softmax_cross_entropy(x, labels)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-12)
    close(ours[1], theirs[1])


@pytest.mark.parametrize("shape", [shapes.tiny("train"), shapes.Train("lenet5_b2", "lenet5", 2),
                                   shapes.BY_NAME["tiny_resnet"]], ids=lambda s: s.name)
def test_peers_train_the_same_network(shape):
    """Same network, same weights, same data: every peer's losses agree step after step."""
    peers = {"numpy": numpy_peer, **({"torch": torch_peer} if torch_peer.available() else {})}
    steps = {"fastbp": fastbp_step(shape, np.float64)}
    steps.update({name: peer.train_step(shape, np.float64) for name, peer in peers.items()
                  if peer.supports(shape)})
    for _ in range(3):
        losses = {name: step() for name, step in steps.items()}
        for loss in losses.values():
            assert loss == pytest.approx(losses["fastbp"], rel=1e-9)


def test_work_counts():
    conv1 = shapes.BY_NAME["lenet_conv1"]
    assert conv1.out_hw == (28, 28)
    assert conv1.flops == 2 * 64 * 6 * 28 * 28 * 1 * 5 * 5
    assert shapes.BY_NAME["conv3x3s2_64to128_32px"].out_hw == (16, 16)
    assert shapes.BY_NAME["stem7x7s2_3to64_224px"].out_hw == (112, 112)
    assert shapes.BY_NAME["conv3x3s2_3to25_31px"].out_hw == (16, 16)
    assert shapes.BY_NAME["linear_784to256_b256"].flops == 2 * 256 * 784 * 256
    pool = shapes.BY_NAME["pool3x3s2_64x32x32x32"]
    assert pool.out_hw == (15, 15) and pool.flops == 64 * 32 * 15 * 15 * 9
    transposed = shapes.BY_NAME["convT4x4s2_64x32x16x16to16"]
    assert transposed.out_hw == (32, 32) and shapes.tiny("conv_transpose").out_hw == (10, 10)
    assert transposed.flops == 2 * 64 * 32 * 16 * 16 * 16 * 4 * 4
    assert {k: a.shape for k, a in shapes.inputs(transposed, np.float32).items()} == {
        "x": (64, 32, 16, 16), "w": (32, 16, 4, 4), "b": (16,), "dy": (64, 16, 32, 32)}
    norm = kernel_ops(shapes.tiny("batchnorm"), np.float32)
    assert norm["forward"].nbytes == 2 * 4 * 2 * 3 * 4 * 4  # x read, y written
    assert norm["backward"].nbytes == 3 * 4 * 2 * 3 * 4 * 4  # dy and x read, dx written


def test_shape_names_are_unique():
    every = shapes.DEFAULT + shapes.TINY
    assert len({s.name for s in every}) == len(every) == len(shapes.BY_NAME)


@pytest.mark.parametrize("family", ["conv", "linear", "pool", "activation", "loss", *NEW_FAMILIES])
def test_kernel_ops_cover_their_names_and_count_work(family):
    ops = kernel_ops(shapes.tiny(family), np.float32)
    assert tuple(ops) == kernel_names(family)
    for op in ops.values():
        op.run()
        assert (op.flops > 0) != (op.nbytes > 0)


def test_compare_passes_are_the_kernels_work():
    shape = shapes.tiny("conv")
    fns, work = compare.fastbp_passes(shape, np.float64)
    assert set(fns) == {"forward", "backward"}
    oh, ow = shape.out_hw
    assert work == {"forward": shape.flops, "backward": 2 * shape.flops + shape.n * shape.o * oh * ow}
    transposed = shapes.tiny("conv_transpose")
    work = compare.fastbp_passes(transposed, np.float64)[1]
    dy_size = transposed.n * transposed.o * math.prod(transposed.out_hw)
    assert work == {"forward": transposed.flops, "backward": 2 * transposed.flops + dy_size}
    norm = shapes.tiny("batchnorm")
    x_bytes = 8 * norm.n * norm.c * norm.h * norm.w
    assert compare.fastbp_passes(norm, np.float64)[1] == {"forward": 2 * x_bytes,
                                                          "backward": 3 * x_bytes}
    assert [compare.unit_of(s) for s in (shape, transposed, norm, shapes.tiny("train"))] == [
        "GFLOP/s", "GFLOP/s", "GB/s", "images/s"]


def test_startup_first_calls_time_every_family():
    seconds = startup.first_calls()
    assert set(seconds) == set(startup.FAMILIES)
    assert all(s > 0 for s in seconds.values())


def test_the_instruction_set_compiled_for_is_in_the_header_and_the_asv_results():
    """``fastbp bench``'s header and JSON, and the asv suite's ``track_compiled_for_avx512``,
    say whether numba compiles with AVX-512; under ``as-avx2``'s settings, that it does not."""
    from benchmarks import common
    from fastbp.kernels import isa

    described = machine.isa()
    assert isinstance(described["cpu_name"], str) and described["avx512"] is isa.masked_vectors()
    assert common.track_compiled_for_avx512() == int(described["avx512"])
    result = {"date": "today", "cpu": "a CPU", "cores": 2, "isa": described, "threads": 1,
              "dtype": "float32", "repeat": 3, "versions": {"fastbp": "0"},
              "roof": {"what": "matmul", "gflops": 1.0}}
    assert f"| compiled for {machine.isa_text(described)} |" in report.header(result)[0]
    script = ("from benchmarks import common; from fastbp import machine; "
              "print(common.track_compiled_for_avx512(), machine.isa_text())")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **AS_AVX2},
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "haswell", "(no", "AVX-512)"]


def test_thread_speedup_is_one_threads_fastest_sample_over_several_threads(monkeypatch):
    """``timing.thread_speedup``: the fastest sample on one thread over the fastest on
    ``threads``, the warm-up round and slow samples left out, the thread count restored;
    on a clock that a call advances by 1 / threads (every fifth call 10x slower)."""
    import types

    from fastbp import get_num_threads, set_num_threads
    from fastbp.bench import timing

    clock = types.SimpleNamespace(now=0.0, calls=0)

    def call():
        clock.calls += 1
        clock.now += (10.0 if clock.calls % 5 == 0 else 1.0) / get_num_threads()

    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: clock.now,
                                                         sleep=lambda seconds: None))
    before = get_num_threads()
    set_num_threads(1)
    try:
        assert timing.thread_speedup(2, repeat=4, fn=call) == 2.0
        assert get_num_threads() == 1
    finally:
        set_num_threads(before)


def test_compare_says_what_several_threads_gave_before_and_after_the_rows(tmp_path, capsys):
    """On two threads, the header and a line after the table give ``thread_speedup`` of
    fastbp's dense forward, and the JSON both figures; on one thread neither."""
    for threads in (1, 2):
        out = tmp_path / f"compare{threads}.json"
        assert compare.main(["--quick", "--repeat", "1", "--threads", str(threads), "--only",
                             "tiny_conv", "--json", str(out), "--no-torch"]) == 0
        lines = capsys.readouterr().out.splitlines()
        result = json.loads(out.read_text())
        said = [line for line in lines if line.startswith("threads: fastbp float32 dense")]
        if threads == 1:
            assert "thread_speedup" not in result and said == []
            continue
        check = result["thread_speedup"]
        assert check["start"] > 0 and check["end"] > 0 and "2 threads against 1" in check["what"]
        assert said == [report.thread_speedup_line({**result, "thread_speedup": {
            k: v for k, v in check.items() if k != "end"}}), report.thread_speedup_line(result)]
        rows = [i for i, line in enumerate(lines) if line.startswith("| tiny_conv |")]
        assert lines.index(said[0]) < rows[0] < rows[-1] < lines.index(said[1])
        assert f"{check['start']:.2f}x before the rows, {check['end']:.2f}x after them" in said[1]


def test_compare_rejects_unknown_shape(capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--only", "no_such_shape"])
    assert exit_info.value.code == 2
    assert "no_such_shape" in capsys.readouterr().err


def test_compare_help_lists_every_compared_family(capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(conv, conv_transpose, linear, pool, batchnorm, activation, train)" in out


def test_compare_runs_the_new_families_and_leaves_out_a_peer_without_them(tmp_path, capsys):
    """Transposed convolution (GFLOP/s), batch norm and activations (GB/s) and the ResNet
    step (images/s), by name and by family; NumPy has no residual network and is no peer
    for activations: "-" in its cells, absent from the row's JSON."""
    out = tmp_path / "compare.json"
    names = "tiny_conv_transpose,tiny_batchnorm,tiny_act,tiny_resnet"
    assert compare.main(["--quick", "--repeat", "1", "--threads", "1", "--only", names,
                         "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    peers = result["peers"]
    assert [(r["shape"], r["pass"], r["unit"]) for r in result["rows"]] == [
        ("tiny_conv_transpose", "forward", "GFLOP/s"),
        ("tiny_conv_transpose", "backward", "GFLOP/s"),
        ("tiny_batchnorm", "forward", "GB/s"), ("tiny_batchnorm", "backward", "GB/s"),
        *(("tiny_act", name, "GB/s") for name in kernel_names("activation")),
        ("tiny_resnet", "step", "images/s")]
    for row in result["rows"]:
        expected = [p for p in peers if p != "numpy" or row["shape"] not in ("tiny_resnet", "tiny_act")]
        assert list(row["ms"]) == list(row["throughput"]) == expected
        assert list(row["ratio"]) == expected[1:]
        if row["unit"] == "GB/s":
            ms = row["ms"]["fastbp"]
            assert math.isclose(row["throughput"]["fastbp"], row["work"] / ms * 1e-6)
    resnet_line = next(line for line in printed.splitlines() if line.startswith("| tiny_resnet |"))
    cells = [cell.strip() for cell in resnet_line.strip("|").split("|")]
    assert cells[2 + peers.index("numpy")] == "-" and cells[-1] == "-"
    assert "| tiny_batchnorm | forward |" in printed and "| GB/s |" in printed
    assert [s.name for s in compare.select(["conv_transpose,batchnorm"], None)] == [
        "convT4x4s2_64x32x16x16to16", "batchnorm2d_64x32x32x32"]
    assert "resnet_b64" in [s.name for s in compare.select(["train"], None)]


def _worktrees():
    listing = subprocess.run(["git", "-C", str(ROOT), "worktree", "list", "--porcelain"],
                             capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if line.startswith("worktree ")]


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="ab.py checks a revision out of git")
def test_ab_times_a_revision_beside_the_working_tree_and_cleans_up():
    before = _worktrees()
    command = [sys.executable, str(ROOT / "benchmarks" / "ab.py"), "HEAD", "tiny_linear,c_2_3_9_9_4_3_2_1",
               "--repeat", "2"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.startswith("base HEAD | new: the working tree | float32, 1 thread(s), median of 2")
    passes = [row.split()[0] for row in rows]
    assert passes == sorted(f"{name}:{kernel}" for name, family in
                            (("tiny_linear", "linear"), ("c_2_3_9_9_4_3_2_1", "conv"))
                            for kernel in kernel_names(family))
    for row in rows:
        old, new, ratio = float(row.split()[2]), float(row.split()[5]), float(row.split()[7][:-1])
        assert old > 0 and new > 0 and math.isclose(ratio, old / new, rel_tol=0.01, abs_tol=0.006)
    assert _worktrees() == before
    unknown = subprocess.run(command[:3] + ["no_such_shape"], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    assert unknown.returncode != 0 and "unknown shape 'no_such_shape'" in unknown.stderr
    assert _worktrees() == before


@pytest.mark.slow
def test_compare_smoke_writes_its_json_schema(tmp_path):
    out, plot = tmp_path / "compare.json", tmp_path / "ratios.png"
    command = [sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--quick", "--repeat", "2",
               "--threads", "1", "--only", "tiny_conv,tiny_mlp", "--json", str(out)]
    drawing = importlib.util.find_spec("matplotlib") is not None
    if drawing:
        command += ["--plot", str(plot)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())

    peers = ["fastbp", *(["torch"] if torch_peer.available() else []), "numpy"]
    assert result["peers"] == peers
    assert (result["threads"], result["dtype"], result["repeat"]) == (1, "float32", 2)
    assert isinstance(result["date"], str) and isinstance(result["cpu"], str)
    assert isinstance(result["cores"], int) and result["cores"] >= 1
    assert set(result["versions"]) >= {"fastbp", "numpy", "numba"}
    assert result["isa"] == machine.isa()  # what numba compiled the kernels for
    assert f"compiled for {machine.isa_text()}" in done.stdout.splitlines()[0]
    assert result["roof"]["gflops"] > 0 and "matmul" in result["roof"]["what"]
    assert [(r["shape"], r["pass"]) for r in result["rows"]] == [
        ("tiny_conv", "forward"), ("tiny_conv", "backward"), ("tiny_mlp", "step")]
    for row in result["rows"]:
        assert row["unit"] == ("images/s" if row["pass"] == "step" else "GFLOP/s")
        assert isinstance(row["work"], int) and row["work"] > 0
        assert set(row["ms"]) == set(row["throughput"]) == set(row["samples_ms"]) == set(peers)
        assert set(row["ratio"]) == set(peers[1:])
        scale = 1e-6 if row["unit"] == "GFLOP/s" else 1e3
        for peer in peers:
            ms = row["ms"][peer]
            assert isinstance(ms, float) and ms > 0
            assert len(row["samples_ms"][peer]) == 2
            assert min(row["samples_ms"][peer]) <= ms <= max(row["samples_ms"][peer])
            assert math.isclose(row["throughput"][peer], row["work"] / ms * scale, rel_tol=1e-9)
        for peer in peers[1:]:
            assert math.isclose(row["ratio"][peer], row["ms"][peer] / row["ms"]["fastbp"], rel_tol=1e-9)
    assert "| tiny_conv | forward |" in done.stdout
    if drawing:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_asv_check_passes():
    """The asv suite imports, and every benchmark's signature fits its parameters."""
    done = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No problems found" in done.stdout


@pytest.mark.slow
def test_asv_run_on_the_current_environment_publishes_its_result(tmp_path):
    """The README's commands, ``asv run --python=same --quick --set-commit-hash HEAD`` then
    ``asv publish``, store a result and publish it (without ``--set-commit-hash`` asv
    stores nothing for ``--python=same`` and publishes an empty site). One tiny benchmark,
    into a copy of asv.conf.json whose results and html live in tmp_path."""
    import re

    conf = json.loads("\n".join(line for line in (ROOT / "asv.conf.json").read_text().splitlines()
                                if not line.lstrip().startswith("//")))
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"),
                env_dir=str(tmp_path / "env"),
                branches=["HEAD"])  # whatever is checked out (a CI merge commit is on no branch)
    config = tmp_path / "asv.conf.json"
    config.write_text(json.dumps(conf))
    # asv keeps machine descriptions in ~/.asv-machine.json: a home of our own leaves the
    # user's alone; the numba cache stays where it was (warm).
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    env = dict(os.environ, HOME=str(tmp_path), USERPROFILE=str(tmp_path), XDG_CACHE_HOME=cache)
    name = "bench_affine.Affine.track_gflops"
    one = f"{name}('linear_784to256_b256', 'forward', 'float32', 1)"

    def asv(*args):
        done = subprocess.run([sys.executable, "-m", "asv", "--config", str(config), *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        return done.stdout

    asv("machine", "--yes", "--machine", "fastbp-test")
    ran = asv("run", "--python=same", "--quick", "--set-commit-hash", "HEAD", "--machine", "fastbp-test",
              "--show-stderr", "--bench", re.escape(one))
    asv("publish")

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    index = json.loads((tmp_path / "html" / "index.json").read_text())
    assert head in index["revision_to_hash"].values()
    benchmark = index["benchmarks"][name]
    assert benchmark["unit"] == "GFLOP/s"
    threads = [int(t) for t in benchmark["params"][-1]]
    assert threads[0] == 1 and max(threads) <= (os.cpu_count() or 1)  # no n/a thread counts
    graphs = list((tmp_path / "html" / "graphs").glob(f"branch-*/machine-fastbp-test/*/{name}.json"))
    assert len(graphs) == 1, graphs
    (revision, values), = json.loads(graphs[0].read_text())
    assert index["revision_to_hash"][str(revision)] == head
    value = values[0]  # the one combination run; the others were not selected
    assert value > 0 and all(v is None for v in values[1:])
    assert value == float(f"{value:.4g}") and str(value) in ran  # 4 significant digits
