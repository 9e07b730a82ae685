"""MNIST-family loaders (on small fake files) and the scikit-learn digits loader."""

import dataclasses
import hashlib
import io
import socket
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from fastbp.data import (
    ChecksumMismatchError,
    DatasetNotFoundError,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    mnist,
    write_idx,
)

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
REAL_OPEN_URL = mnist._open_url  # before the autouse fixture replaces it
SPLIT_SIZES = {"train": 7, "test": 3}


def fake_split(split, seed=0):
    rng = np.random.default_rng(seed)
    n = SPLIT_SIZES[split]
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    return images, rng.integers(0, 10, n, dtype=np.uint8)


def write_fake_dataset(directory, compress=False, splits=("train", "test")):
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for split in splits:
        images, labels = fake_split(split)
        images_stem, labels_stem = mnist._FILE_STEMS[split]
        write_idx(directory / f"{images_stem}{suffix}", images, gzip=compress)
        write_idx(directory / f"{labels_stem}{suffix}", labels, gzip=compress)
    return directory


def assert_loaded_fake(result, split):
    images, labels = result
    expected_images, expected_labels = fake_split(split)
    assert images.dtype == np.uint8 and images.shape == (SPLIT_SIZES[split], 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (SPLIT_SIZES[split],)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


@pytest.fixture(autouse=True)
def isolated_locations(tmp_path, monkeypatch):
    """Keep the real environment, cache and system directories out of every test."""
    monkeypatch.delenv("FASTBP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fashion_with_fake_system_dir = dataclasses.replace(
        mnist.FASHION_MNIST, system_dirs=(tmp_path / "system",)
    )
    monkeypatch.setattr(mnist, "FASHION_MNIST", fashion_with_fake_system_dir)

    def refuse_network(url):
        raise AssertionError(f"a test tried to open {url}")

    monkeypatch.setattr(mnist, "_open_url", refuse_network)


def cache_files(tmp_path):
    cache = tmp_path / "cache"
    return sorted(path for path in cache.rglob("*") if path.is_file()) if cache.exists() else []


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_loads_from_root(tmp_path, split, compress):
    root = write_fake_dataset(tmp_path / "root", compress)
    assert_loaded_fake(load_mnist(split, root=root, download=False), split)
    assert_loaded_fake(load_fashion_mnist(split, root=str(root), download=False), split)


@pytest.mark.parametrize("subdir", ["mnist", ""])
def test_loads_from_fastbp_data(tmp_path, monkeypatch, subdir):
    write_fake_dataset(tmp_path / "data" / subdir)
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "data"))
    assert_loaded_fake(load_mnist("test", download=False), "test")


def test_fastbp_data_subdir_is_per_dataset(tmp_path, monkeypatch):
    write_fake_dataset(tmp_path / "data" / "fashion-mnist")
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "data"))
    assert_loaded_fake(load_fashion_mnist("train", download=False), "train")
    with pytest.raises(DatasetNotFoundError):
        load_mnist("train", download=False)


def test_loads_from_cache_and_system_dirs(tmp_path):
    write_fake_dataset(tmp_path / "cache" / "fastbp" / "mnist", compress=True)
    write_fake_dataset(tmp_path / "system", compress=True)
    assert_loaded_fake(load_mnist("train", download=False), "train")
    assert_loaded_fake(load_fashion_mnist("train", download=False), "train")


def test_root_comes_first(tmp_path, monkeypatch):
    write_fake_dataset(tmp_path / "root")
    other = tmp_path / "data" / "mnist"
    other.mkdir(parents=True)
    for path in (tmp_path / "root").iterdir():
        (other / path.name).write_bytes(b"not an idx file")
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "data"))
    assert_loaded_fake(load_mnist("train", root=tmp_path / "root", download=False), "train")


def test_split_files_must_be_together(tmp_path):
    write_fake_dataset(tmp_path / "root", splits=("train",))
    (tmp_path / "root" / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError):
        load_mnist("train", root=tmp_path / "root", download=False)


def test_not_found_without_download_lists_places_and_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "data"))
    with pytest.raises(DatasetNotFoundError) as raised:
        load_fashion_mnist("test", root=tmp_path / "root", download=False)
    message = str(raised.value)
    assert isinstance(raised.value, FileNotFoundError)
    for place in ["root", "data/fashion-mnist", "data", "cache/fastbp/fashion-mnist", "system"]:
        assert str(tmp_path / place) in message
    assert "t10k-images-idx3-ubyte" in message and "download=False" in message
    assert "apt-get install dataset-fashion-mnist" in message and "FASTBP_DATA" in message
    assert cache_files(tmp_path) == []


def test_failed_download_lists_urls_tried(tmp_path, monkeypatch):
    def offline(url):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(mnist, "_open_url", offline)
    with pytest.raises(DatasetNotFoundError) as raised:
        load_mnist("train")
    for mirror in mnist.MNIST.mirrors:
        failure = f"{mirror}train-images-idx3-ubyte.gz: <urlopen error no network>"
        assert failure in str(raised.value)
    assert cache_files(tmp_path) == []


def serve(files):
    def open_url(url):
        return io.BytesIO(files[url.rsplit("/", 1)[1]])

    return open_url


def test_checksum_mismatch_is_an_error_and_keeps_nothing(tmp_path, monkeypatch):
    tampered = {name: b"tampered" for name in mnist.MNIST.md5_by_file}
    monkeypatch.setattr(mnist, "_open_url", serve(tampered))
    with pytest.raises(ChecksumMismatchError, match="MD5"):
        load_mnist("train")
    assert cache_files(tmp_path) == []


def serve_fake_downloads(tmp_path, monkeypatch):
    """Gzipped fake test-split files, registered as MNIST's published MD5 sums."""
    source = write_fake_dataset(tmp_path / "served", compress=True, splits=("test",))
    served = {path.name: path.read_bytes() for path in source.iterdir()}
    md5s = {name: hashlib.md5(content).hexdigest() for name, content in served.items()}
    monkeypatch.setattr(mnist, "MNIST", dataclasses.replace(mnist.MNIST, md5_by_file=md5s))
    return served


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    served = serve_fake_downloads(tmp_path, monkeypatch)
    requested = []

    def open_url(url):
        requested.append(url)
        return serve(served)(url)

    monkeypatch.setattr(mnist, "_open_url", open_url)
    assert_loaded_fake(load_mnist("test"), "test")
    assert [url.rsplit("/", 1)[1] for url in requested] == sorted(served)
    cached = tmp_path / "cache" / "fastbp" / "mnist"
    assert cache_files(tmp_path) == sorted(cached / name for name in served)
    requested.clear()
    assert_loaded_fake(load_mnist("test"), "test")
    assert requested == []


def test_download_falls_back_to_next_mirror(tmp_path, monkeypatch):
    served = serve_fake_downloads(tmp_path, monkeypatch)
    first_mirror = mnist.MNIST.mirrors[0]

    def open_url(url):
        if url.startswith(first_mirror):
            raise urllib.error.URLError("mirror down")
        return serve(served)(url)

    monkeypatch.setattr(mnist, "_open_url", open_url)
    assert_loaded_fake(load_mnist("test"), "test")


def test_a_network_that_never_answers_times_out_visibly(tmp_path, monkeypatch, capsys):
    """A local server that accepts connections (the kernel completes them from the listen
    backlog) and never answers: each mirror is announced on stderr, then given up after
    DOWNLOAD_TIMEOUT_S, and the error lists both."""
    assert mnist.DOWNLOAD_TIMEOUT_S <= 20  # not minutes of silence per mirror
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        base = f"http://127.0.0.1:{server.getsockname()[1]}"
        mirrors = (f"{base}/first/", f"{base}/second/")
        monkeypatch.setattr(mnist, "MNIST", dataclasses.replace(mnist.MNIST, mirrors=mirrors))
        monkeypatch.setattr(mnist, "_open_url", REAL_OPEN_URL)
        monkeypatch.setattr(mnist, "DOWNLOAD_TIMEOUT_S", 0.2)
        with pytest.raises(DatasetNotFoundError) as raised:
            load_mnist("train")
    err = capsys.readouterr().err
    for mirror in mirrors:
        url = f"{mirror}train-images-idx3-ubyte.gz"
        assert f"downloading {url} ...\n" in err
        assert f"{url}: timed out" in str(raised.value)
    assert cache_files(tmp_path) == []


def test_each_download_is_announced_on_stderr(tmp_path, monkeypatch, capsys):
    served = serve_fake_downloads(tmp_path, monkeypatch)
    monkeypatch.setattr(mnist, "_open_url", serve(served))
    load_mnist("test")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"downloading {mnist.MNIST.mirrors[0]}{name} ..." for name in sorted(served)]


def test_invalid_split_is_rejected():
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", download=False)


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (np.zeros((3, 28, 27), np.uint8), np.zeros(3, np.uint8), "28, 28"),
        (np.zeros((3, 28, 28), np.float32), np.zeros(3, np.uint8), "uint8 images"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros((3, 1), np.uint8), "labels"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros(4, np.uint8), "3 images.*4 labels"),
        (np.zeros((3, 28, 28), np.uint8), np.array([0, 10, 1], np.uint8), "label 10"),
    ],
)
def test_inconsistent_files_are_rejected(tmp_path, images, labels, message):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, gzip=True)
    with pytest.raises(ValueError, match=message):
        load_mnist("test", root=tmp_path, download=False)


@pytest.mark.skipif(
    not DEBIAN_FASHION_DIR.is_dir(),
    reason=f"{DEBIAN_FASHION_DIR} absent (apt-get install dataset-fashion-mnist)",
)
@pytest.mark.parametrize("split, count", [("train", 60000), ("test", 10000)])
def test_debian_fashion_mnist(split, count):
    images, labels = load_fashion_mnist(split, root=DEBIAN_FASHION_DIR, download=False)
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.min() == 0 and labels.max() == 9
    assert np.all(np.bincount(labels) == count // 10)


def test_digits_full():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(np.unique(labels)) == set(range(10))


@pytest.mark.parametrize("seed", [0, 1])
def test_digits_split_is_deterministic_and_partitions(seed):
    train_images, train_labels = load_digits("train", seed=seed)
    test_images, test_labels = load_digits("test", seed=seed)
    assert (len(train_labels), len(test_labels)) == (1438, 359)
    again_images, again_labels = load_digits("test", seed=seed)
    np.testing.assert_array_equal(again_images, test_images)
    np.testing.assert_array_equal(again_labels, test_labels)
    all_images, all_labels = load_digits()
    split_images = np.concatenate([train_images, test_images])
    assert sorted(map(bytes, split_images)) == sorted(map(bytes, all_images))
    assert np.all(np.abs(np.bincount(test_labels) - 0.2 * np.bincount(all_labels)) <= 1)


def test_digits_seeds_differ_and_fraction_is_used():
    assert not np.array_equal(load_digits("test", seed=0)[0], load_digits("test", seed=1)[0])
    assert len(load_digits("test", test_fraction=0.5)[1]) == round(1797 * 0.5)
    with pytest.raises(ValueError, match="split"):
        load_digits("val")


def test_digits_without_sklearn_explains_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"fastbp\[digits\]"):
        load_digits()
