"""IDX reader/writer: round trips for every type code, and rejection of bad files."""

import gzip
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbp.data import read_idx, write_idx
from fastbp.data.idx import MAX_IDX_DIMS

DTYPE_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}
fuzz_settings = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def sample_array(dtype, shape=(3, 4, 5)):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    values = np.linspace(info.min / 2, info.max / 2, num=int(np.prod(shape)))
    return values.astype(dtype).reshape(shape)


def idx_bytes(type_code, dims, payload=b""):
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("dtype", list(DTYPE_CODES), ids=lambda d: np.dtype(d).name)
def test_round_trip_every_type_code(tmp_path, dtype, compress):
    array = sample_array(dtype)
    path = tmp_path / "array.idx"
    write_idx(path, array, gzip=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    loaded = read_idx(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.dtype.isnative
    assert loaded.shape == array.shape
    assert loaded.flags.c_contiguous and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize("dtype", list(DTYPE_CODES), ids=lambda d: np.dtype(d).name)
def test_file_layout_is_big_endian_with_type_code(tmp_path, dtype):
    array = sample_array(dtype, shape=(2, 3))
    path = tmp_path / "array.idx"
    write_idx(path, array)
    big_endian = array.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    expected = idx_bytes(DTYPE_CODES[dtype], (2, 3), big_endian)
    assert path.read_bytes() == expected


def test_write_accepts_any_byte_order(tmp_path):
    array = np.arange(-3, 3, dtype=">i2")
    write_idx(tmp_path / "a.idx", array)
    loaded = read_idx(tmp_path / "a.idx")
    assert loaded.dtype == np.int16 and loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


def test_gzip_is_detected_by_magic_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    plain_named_gz, gzip_named_plain = tmp_path / "plain.gz", tmp_path / "compressed.idx"
    write_idx(plain_named_gz, array)
    write_idx(gzip_named_plain, array, gzip=True)
    np.testing.assert_array_equal(read_idx(plain_named_gz), array)
    np.testing.assert_array_equal(read_idx(gzip_named_plain), array)


def test_reads_mnist_style_header(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = tmp_path / "images"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2, 28, 28) + images.tobytes())
    np.testing.assert_array_equal(read_idx(path), images)


def test_empty_dimension_round_trips(tmp_path):
    path = tmp_path / "empty.idx"
    write_idx(path, np.zeros((0, 28, 28), dtype=np.uint8))
    assert read_idx(path).shape == (0, 28, 28)


def test_write_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "a", np.float32(1.0))
    assert list(tmp_path.iterdir()) == []


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "shorter than the header"),
        (b"\x00\x00\x08", "shorter than the header"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x00", "magic"),
        (b"\x00\x07\x08\x01\x00\x00\x00\x00", "magic"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x00", "type code 0x0a"),
        (b"\x00\x00\x08\x00", "dimension count 0"),
        (bytes([0, 0, 8, MAX_IDX_DIMS + 1]) + bytes(4 * (MAX_IDX_DIMS + 1)), "dimension count"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated"),
        (idx_bytes(0x08, (2, 3), bytes(5)), "truncated"),
        (idx_bytes(0x0C, (2,), bytes(7)), "truncated"),
        (idx_bytes(0x08, (2, 3), bytes(7)), "trailing"),
        (idx_bytes(0x08, (2**32 - 1,) * 3), "truncated"),
    ],
)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_rejects_malformed_content(tmp_path, content, message, compress):
    path = tmp_path / "bad.idx"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=message) as raised:
        read_idx(path)
    assert str(path) in str(raised.value)


def test_size_error_states_expected_and_actual_bytes(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(idx_bytes(0x0B, (4, 2), bytes(10)))
    with pytest.raises(ValueError, match=r"\(4, 2\) imply 28 bytes.*holds 22"):
        read_idx(path)


@pytest.mark.parametrize("cut", [1, 2, 10, 20, -9, -1])
def test_rejects_truncated_gzip_stream(tmp_path, cut):
    compressed = gzip.compress(idx_bytes(0x08, (100,), bytes(range(100))))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[:cut])
    with pytest.raises(ValueError, match=r"gzip|truncated|header"):
        read_idx(path)


def test_rejects_corrupt_gzip_checksum_and_data(tmp_path):
    compressed = bytearray(gzip.compress(idx_bytes(0x08, (100,), bytes(range(100)))))
    path = tmp_path / "corrupt.gz"
    crc_corrupt = compressed.copy()
    crc_corrupt[-6] ^= 0xFF
    path.write_bytes(bytes(crc_corrupt))
    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)
    path.write_bytes(b"\x1f\x8b" + bytes(range(40)))
    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


def test_rejects_garbage_after_gzip_member(tmp_path):
    path = tmp_path / "extra.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (3,), b"abc")) + b"not gzip")
    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


def test_every_truncation_of_a_valid_file_is_rejected(tmp_path):
    content = idx_bytes(0x0D, (3, 2), np.ones(6, dtype=">f4").tobytes())
    path = tmp_path / "cut.idx"
    for length in range(len(content)):
        path.write_bytes(content[:length])
        with pytest.raises(ValueError):
            read_idx(path)


def assert_array_or_value_error(path):
    try:
        result = read_idx(path)
    except ValueError:
        return
    assert isinstance(result, np.ndarray)


@fuzz_settings
@given(content=st.binary(max_size=256))
def test_fuzz_random_bytes_only_raise_value_error(tmp_path, content):
    path = tmp_path / "fuzz.idx"
    path.write_bytes(content)
    assert_array_or_value_error(path)


@fuzz_settings
@given(
    type_code=st.sampled_from([*DTYPE_CODES.values(), 0x00, 0x0A, 0xFF]),
    dims=st.lists(st.integers(0, 6), min_size=0, max_size=4),
    payload=st.binary(max_size=128),
    compress=st.booleans(),
)
def test_fuzz_plausible_headers_only_raise_value_error(
    tmp_path, type_code, dims, payload, compress
):
    content = idx_bytes(type_code, dims, payload)
    path = tmp_path / "fuzz.idx"
    path.write_bytes(gzip.compress(content) if compress else content)
    assert_array_or_value_error(path)


@fuzz_settings
@given(content=st.binary(max_size=128), flip_at=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_fuzz_damaged_gzip_only_raises_value_error(tmp_path, content, flip_at, flip):
    damaged = bytearray(gzip.compress(content))
    damaged[flip_at % len(damaged)] ^= flip
    path = tmp_path / "fuzz.gz"
    path.write_bytes(bytes(damaged))
    assert_array_or_value_error(path)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, mask, mode, compress):
    """Like files written with open(): 0o666 less the umask (tempfile.mkstemp would give 0600)."""
    path = tmp_path / "labels.idx"
    previous = os.umask(mask)
    try:
        write_idx(path, np.arange(5, dtype=np.uint8), gzip=compress)
        write_idx(path, np.arange(6, dtype=np.uint8), gzip=compress)  # replacing the file
    finally:
        os.umask(previous)
    assert os.stat(path).st_mode & 0o777 == mode
    assert os.listdir(tmp_path) == ["labels.idx"]
    np.testing.assert_array_equal(read_idx(path), np.arange(6))


def test_writing_where_no_file_can_be_written_names_the_path(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    with pytest.raises(NotADirectoryError, match=f"^cannot write '{blocker / 'a.idx'}': '{blocker}' is not a directory$"):
        write_idx(blocker / "a.idx", np.zeros(2, np.uint8))
    with pytest.raises(FileNotFoundError, match="^cannot write .*: no such directory"):
        write_idx(tmp_path / "missing" / "a.idx", np.zeros(2, np.uint8))
    with pytest.raises(IsADirectoryError, match=f"^cannot write '{tmp_path}': it is a directory$"):
        write_idx(tmp_path, np.zeros(2, np.uint8))
    assert os.listdir(tmp_path) == ["blocker"]
