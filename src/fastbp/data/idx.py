"""Reader and writer for the IDX format of the MNIST files, plain or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the items in C order,
big-endian. Gzip is detected by its magic bytes, never by the file name.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from gzip import BadGzipFile, GzipFile
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["MAX_IDX_DIMS", "check_writable", "open_atomic", "read_idx", "write_idx"]

DTYPE_BY_TYPE_CODE: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
TYPE_CODE_BY_DTYPE: dict[np.dtype, int] = {
    dtype.newbyteorder("="): code for code, dtype in DTYPE_BY_TYPE_CODE.items()
}
MAX_IDX_DIMS = 16
GZIP_MAGIC = b"\x1f\x8b"
_HEADER = struct.Struct(">BBBB")
_CHUNK_BYTES = 1 << 20


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a native-byte-order array.

    Returns a writable C-contiguous array whose shape is the file's dimensions and
    whose dtype is uint8, int8, int16, int32, float32 or float64 per the type code.
    Raises FileNotFoundError for a missing file and ValueError for anything that is
    not a complete, well-formed IDX file (bad magic, truncation, trailing bytes,
    corrupt gzip).
    """
    path = Path(path)
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not is_gzip:
            return _read_idx_stream(raw, path)
        try:
            with GzipFile(fileobj=raw, mode="rb") as stream:
                return _read_idx_stream(stream, path)
        except (BadGzipFile, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: corrupt gzip data: {error}") from error


def write_idx(path: str | os.PathLike, array: np.ndarray, gzip: bool = False) -> None:
    """Write ``array`` as an IDX file, gzipped if ``gzip``, replacing ``path`` atomically.

    ``array`` must be uint8, int8, int16, int32, float32 or float64 with 1 to
    ``MAX_IDX_DIMS`` dimensions, each below 2**32.
    """
    array = np.asarray(array)
    native_dtype = array.dtype.newbyteorder("=")
    if native_dtype not in TYPE_CODE_BY_DTYPE:
        supported = ", ".join(str(dtype) for dtype in TYPE_CODE_BY_DTYPE)
        raise ValueError(f"IDX cannot store dtype {array.dtype}; supported: {supported}")
    if not 1 <= array.ndim <= MAX_IDX_DIMS:
        raise ValueError(f"IDX arrays need 1 to {MAX_IDX_DIMS} dimensions, got {array.ndim}")
    if any(size >= 2**32 for size in array.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {array.shape}")
    header = _HEADER.pack(0, 0, TYPE_CODE_BY_DTYPE[native_dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=native_dtype.newbyteorder(">")).tobytes()
    with open_atomic(path) as file:
        if gzip:
            with GzipFile(fileobj=file, mode="wb", mtime=0) as stream:
                stream.write(header)
                stream.write(payload)
        else:
            file.write(header)
            file.write(payload)


def create_temporary(directory: str | os.PathLike, prefix: str, suffix: str) -> tuple[int, str]:
    """Create a new empty file ``{prefix}{8 hex digits}{suffix}`` in ``directory`` for writing;
    returns ``(descriptor, path)``.

    The file is created with mode ``0o666`` less the process umask (as ``open`` and
    ``np.save`` would create it), not ``tempfile.mkstemp``'s 0600: a file renamed over its
    destination keeps the permissions of any other file its user writes. This is fastbp's
    one way of creating files (checkpoints, IDX files, downloads, writability checks).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(directory, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no unused temporary file name {prefix}XXXXXXXX{suffix}", directory)


@contextlib.contextmanager
def open_atomic(path: str | os.PathLike, prefix: str | None = None,
                what: str = "") -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on success move it onto ``path``.

    The temporary file is ``{prefix}XXXXXXXX.part`` (default prefix ``.{name}.``), created
    by ``create_temporary``, so ``path`` ends up with the umask's permissions. If it cannot
    be created, the error is ``check_writable``'s, naming ``path``. If the block raises,
    the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    descriptor, temporary_name = _create_beside(path, prefix, what)
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
        os.replace(temporary_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary_name)
        raise


def check_writable(path: str | os.PathLike, what: str = "") -> None:
    """Raise an ``OSError`` naming ``path`` unless a file can be written there now.

    The honest test: a temporary file is created beside ``path`` (as ``open_atomic`` will
    create it) and removed again. Errors: ``FileNotFoundError`` (no such directory),
    ``NotADirectoryError`` (a part of the path is a file), ``IsADirectoryError`` (``path`` is
    a directory), ``PermissionError`` and others from the system, each with the message
    ``cannot write [what ]'path': reason``; ``what`` (e.g. "checkpoint") only adds to it.
    """
    descriptor, temporary_name = _create_beside(Path(path), None, what)
    os.close(descriptor)
    os.unlink(temporary_name)


def _cannot_write(path: Path, what: str) -> str:
    return f"cannot write {what + ' ' if what else ''}{os.fspath(path)!r}"


def _create_beside(path: Path, prefix: str | None, what: str) -> tuple[int, str]:
    """``create_temporary`` in ``path``'s directory, its errors naming ``path`` (and a
    directory at ``path`` one of them: the rename onto it would fail)."""
    if path.is_dir():
        raise IsADirectoryError(f"{_cannot_write(path, what)}: it is a directory")
    directory = path.parent
    try:
        return create_temporary(directory, f".{path.name}." if prefix is None else prefix, ".part")
    except FileNotFoundError:
        problem = f"no such directory {os.fspath(directory)!r}"
        error_type = FileNotFoundError
    except NotADirectoryError:
        blocking = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()),
                        directory)
        problem = f"{os.fspath(blocking)!r} is not a directory"
        error_type = NotADirectoryError
    except OSError as error:
        problem = f"{error.strerror or error} in {os.fspath(directory)!r}"
        error_type = type(error)
    raise error_type(f"{_cannot_write(path, what)}: {problem}")


def _read_idx_stream(stream: BinaryIO, path: Path) -> np.ndarray:
    header = _read_up_to(stream, _HEADER.size)
    if len(header) < _HEADER.size:
        raise ValueError(f"{path}: not an IDX file: {len(header)} bytes, shorter than the header")
    zero_a, zero_b, type_code, ndim = _HEADER.unpack(header)
    if zero_a != 0 or zero_b != 0:
        raise ValueError(
            f"{path}: not an IDX file: magic number starts with {header[:2].hex()}, expected 0000"
        )
    if type_code not in DTYPE_BY_TYPE_CODE:
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise ValueError(f"{path}: IDX dimension count {ndim} is outside 1..{MAX_IDX_DIMS}")
    dims_bytes = _read_up_to(stream, 4 * ndim)
    header_size = _HEADER.size + 4 * ndim
    dtype = DTYPE_BY_TYPE_CODE[type_code]
    if len(dims_bytes) < 4 * ndim:
        raise _size_error(path, header_size, None, _HEADER.size + len(dims_bytes))
    shape = struct.unpack(f">{ndim}I", dims_bytes)
    data_size = math.prod(shape) * dtype.itemsize
    data = _read_up_to(stream, data_size)
    trailing_size = _count_remaining(stream)
    if len(data) < data_size or trailing_size:
        actual_size = header_size + len(data) + trailing_size
        raise _size_error(path, header_size + data_size, shape, actual_size)
    items = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)
    return items.reshape(shape)


def _size_error(
    path: Path, expected_size: int, shape: tuple[int, ...] | None, actual_size: int
) -> ValueError:
    what = f"the header and shape {shape}" if shape is not None else "the IDX header"
    problem = "truncated" if actual_size < expected_size else "has trailing bytes"
    return ValueError(
        f"{path}: IDX data {problem}: {what} imply {expected_size} bytes"
        f" (uncompressed), the file holds {actual_size}"
    )


def _read_up_to(stream: BinaryIO, size: int) -> bytearray:
    """Read ``size`` bytes, fewer only at end of stream; memory grows with what is read."""
    buffer = bytearray()
    while len(buffer) < size:
        chunk = stream.read(min(_CHUNK_BYTES, size - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return buffer


def _count_remaining(stream: BinaryIO) -> int:
    count = 0
    while chunk := stream.read(_CHUNK_BYTES):
        count += len(chunk)
    return count
