"""MNIST and Fashion-MNIST loaders: find the IDX files locally or download them.

Both return ``(images, labels)``: images uint8 of shape (N, 28, 28), labels int64 of
shape (N,) with values 0..9; N is 60000 for "train" and 10000 for "test".

Search order for a split's two files (each plain or ``.gz``, both in one directory):
the ``root`` argument, ``$FASTBP_DATA/<name>``, ``$FASTBP_DATA``, the user cache
``$XDG_CACHE_HOME/fastbp/<name>`` (default ``~/.cache/fastbp/<name>``), then system
directories (Debian's ``dataset-fashion-mnist`` package for Fashion-MNIST). If none
holds them and ``download`` is true, the gzipped files are downloaded into the user
cache and checked against their published MD5 sums.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .idx import open_atomic, read_idx

__all__ = [
    "ChecksumMismatchError",
    "DatasetNotFoundError",
    "load_fashion_mnist",
    "load_mnist",
]

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
#: seconds without an answer (to connect, or between two reads) before a mirror counts as down
DOWNLOAD_TIMEOUT_S = 15
_DOWNLOAD_CHUNK_BYTES = 1 << 20
_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are in none of the searched places and could not be downloaded."""


class ChecksumMismatchError(ValueError):
    """A downloaded file's MD5 sum differs from the published one; nothing was kept."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where an MNIST-format data set lives: cache name, mirrors, MD5 per ``.gz`` file."""

    name: str
    title: str
    mirrors: tuple[str, ...]
    md5_by_file: dict[str, str]
    system_dirs: tuple[Path, ...] = ()
    install_hint: str = ""


MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    md5_by_file={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5_by_file={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    install_hint="on Debian/Ubuntu: apt-get install dataset-fashion-mnist",
)


def load_mnist(
    split: str = "train", root: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST split: images uint8 (N, 28, 28), labels int64 (N,)."""
    return _find_and_load(MNIST, split, root, download)


def load_fashion_mnist(
    split: str = "train", root: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load a Fashion-MNIST split: images uint8 (N, 28, 28), labels int64 (N,)."""
    return _find_and_load(FASHION_MNIST, split, root, download)


def _find_and_load(
    spec: DatasetSpec, split: str, root: str | os.PathLike | None, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Find (or download) and load ``split`` of the MNIST-format data set ``spec``."""
    if split not in _FILE_STEMS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    stems = _FILE_STEMS[split]
    searched = search_dirs(spec, root)
    for directory in searched:
        paths = _find_files(directory, stems)
        if paths is not None:
            return _load_pair(*paths)
    failures: list[str] = []
    if download:
        cache = cache_dir(spec)
        try:
            _download_missing(spec, stems, cache, failures)
        except OSError as error:
            failures.append(f"{cache}: {error}")
        paths = _find_files(cache, stems)
        if paths is not None:
            return _load_pair(*paths)
    message = _not_found_message(spec, split, stems, searched, download, failures)
    raise DatasetNotFoundError(message)


def search_dirs(spec: DatasetSpec, root: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for ``spec``'s files, in order, without duplicates."""
    candidates: list[Path] = []
    if root is not None:
        candidates.append(Path(root))
    if data_root := os.environ.get("FASTBP_DATA"):
        candidates += [Path(data_root) / spec.name, Path(data_root)]
    candidates.append(cache_dir(spec))
    candidates += spec.system_dirs
    return list(dict.fromkeys(path.expanduser() for path in candidates))


def cache_dir(spec: DatasetSpec) -> Path:
    """``$XDG_CACHE_HOME/fastbp/<name>``, or ``~/.cache/fastbp/<name>`` without XDG_CACHE_HOME."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "fastbp" / spec.name


def _find_files(directory: Path, stems: tuple[str, ...]) -> list[Path] | None:
    found = []
    for stem in stems:
        candidates = (directory / stem, directory / f"{stem}.gz")
        existing = next((path for path in candidates if path.is_file()), None)
        if existing is None:
            return None
        found.append(existing)
    return found


def _load_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28),"
            f" got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise ValueError(f"{labels_path}: label {labels.max()} is outside 0..{NUM_CLASSES - 1}")
    return images, labels.astype(np.int64)


def _download_missing(
    spec: DatasetSpec, stems: tuple[str, ...], cache: Path, failures: list[str]
) -> None:
    """Download into ``cache`` each of ``stems`` not already there, appending failures."""
    cache.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        if _find_files(cache, (stem,)) is None and not _download_from_mirrors(
            spec, f"{stem}.gz", cache, failures
        ):
            return


def _download_from_mirrors(
    spec: DatasetSpec, file_name: str, cache: Path, failures: list[str]
) -> bool:
    for mirror in spec.mirrors:
        url = mirror + file_name
        # visible, so that a slow or silent network is not mistaken for a hang
        print(f"downloading {url} ...", file=sys.stderr, flush=True)
        try:
            _download(url, cache / file_name, spec.md5_by_file[file_name])
            return True
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"{url}: {error}")
    return False


def _download(url: str, destination: Path, expected_md5: str) -> None:
    """Stream ``url`` into ``destination`` atomically, keeping it only if its MD5 matches."""
    digest = hashlib.md5(usedforsecurity=False)
    with open_atomic(destination) as file, _open_url(url) as response:
        while chunk := response.read(_DOWNLOAD_CHUNK_BYTES):
            digest.update(chunk)
            file.write(chunk)
        if digest.hexdigest() != expected_md5:
            raise ChecksumMismatchError(
                f"{url}: MD5 {digest.hexdigest()} differs from the published {expected_md5};"
                " the download was discarded"
            )


def _open_url(url: str) -> BinaryIO:
    return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)


def _not_found_message(
    spec: DatasetSpec,
    split: str,
    stems: tuple[str, ...],
    searched: list[Path],
    download: bool,
    failures: list[str],
) -> str:
    wanted = " and ".join(f"{stem}[.gz]" for stem in stems)
    lines = [f"{spec.title} {split!r} split not found: looked for {wanted} in:"]
    lines += [f"  {directory}" for directory in searched]
    if not download:
        lines.append("Downloading is off (download=False).")
    else:
        lines.append("Download failed:")
        lines += [f"  {failure}" for failure in failures]
    lines.append("To provide the files:")
    if spec.install_hint:
        lines.append(f"  - {spec.install_hint}")
    lines.append(
        f"  - download the .gz files from {' or '.join(spec.mirrors)}"
        f" into $FASTBP_DATA/{spec.name}, or pass root=<their directory>"
    )
    return "\n".join(lines)
