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

from fastbp import functional as F
from fastbp import machine
from fastbp.bench import compare, numpy_peer, report, shapes, startup, torch_peer
from fastbp.bench.kernels import kernel_names, kernel_ops
from fastbp.bench.networks import fastbp_step

ROOT = Path(__file__).resolve().parents[1]
CONV_GEOMETRIES = [(1, 0), (2, 1), (1, 2)]
POOL_GEOMETRIES = [(2, 2, 0), (3, 2, 1), (3, 1, 1)]


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


def test_numpy_relu_and_loss_match_fastbp(rng):
    x = rng.standard_normal((6, 5))
    close(numpy_peer.relu(x), F.relu(x))
    close(numpy_peer.relu_backward(x[::-1].copy(), x), F.relu_backward(x[::-1].copy(), x))
    labels = rng.integers(0, 5, 6)
    ours, theirs = numpy_peer.softmax_cross_entropy(x, labels), F.softmax_cross_entropy(x, labels)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-12)
    close(ours[1], theirs[1])


@pytest.mark.parametrize("shape", [shapes.tiny("train"), shapes.Train("lenet5_b2", "lenet5", 2)],
                         ids=lambda s: s.name)
def test_peers_train_the_same_network(shape):
    """Same network, same weights, same data: every peer's losses agree step after step."""
    steps = {"fastbp": fastbp_step(shape, np.float64), "numpy": numpy_peer.train_step(shape, np.float64)}
    if torch_peer.available():
        steps["torch"] = torch_peer.train_step(shape, np.float64)
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


def test_shape_names_are_unique():
    every = shapes.DEFAULT + shapes.TINY
    assert len({s.name for s in every}) == len(every) == len(shapes.BY_NAME)


@pytest.mark.parametrize("family", ["conv", "linear", "pool", "activation", "loss"])
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


def test_startup_first_calls_time_every_family():
    seconds = startup.first_calls()
    assert set(seconds) == set(startup.FAMILIES)
    assert all(s > 0 for s in seconds.values())


AS_AVX2 = {"NUMBA_CPU_NAME": "haswell",
           "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fxsr,+lzcnt,"
                                 "+mmx,+movbe,+pclmul,+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave"}


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


def test_compare_rejects_unknown_shape(capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--only", "no_such_shape"])
    assert exit_info.value.code == 2
    assert "no_such_shape" in capsys.readouterr().err


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
