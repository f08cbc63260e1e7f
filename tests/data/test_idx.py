import numpy as np
import pytest

from jax_anomaly.data import parse_idx, read_idx, write_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_roundtrip(tmp_path, suffix):
    arr = np.random.default_rng(0).integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    path = tmp_path / f"images-idx3-ubyte{suffix}"
    write_idx(path, arr)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (5, 3, 4)
    np.testing.assert_array_equal(out, arr)


def test_header_is_big_endian():
    raw = bytes([0, 0, 0x08, 1]) + (3).to_bytes(4, "big") + bytes([7, 8, 9])
    np.testing.assert_array_equal(parse_idx(raw), [7, 8, 9])


def test_int32_payload():
    raw = bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big") + np.array([1, -2], ">i4").tobytes()
    np.testing.assert_array_equal(parse_idx(raw), [1, -2])


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x01\x00\x08\x01", "bad magic"),
        (b"\x00\x00\x07\x01", "unknown IDX data type"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated"),
        (bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + b"\x01", "payload"),
    ],
)
def test_malformed(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_idx(raw)


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot read IDX file"):
        read_idx(path)
