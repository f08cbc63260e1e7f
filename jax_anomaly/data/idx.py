"""Reading the IDX format of the original MNIST / Fashion-MNIST files, with NumPy only."""

from __future__ import annotations

import gzip
import os

import numpy as np

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_header(raw: bytes, *, source: str = "<bytes>") -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, dims, header bytes)`` from the start of an IDX file (at least its header).

    Raises:
      ValueError: a bad magic number, an unknown data type or a truncated header.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{source}: not an IDX file (bad magic number)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{source}: unknown IDX data type 0x{type_code:02x}")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise ValueError(f"{source}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    return _IDX_DTYPES[type_code], dims, header_end


def _opener(path: str):
    return gzip.open if path.endswith(".gz") else open


def parse_idx(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parses the bytes of one IDX file.

    Args:
      raw: the (already decompressed) file contents.
      source: a name used in error messages.

    Returns:
      An array whose shape is the dims from the header, in native byte order.

    Raises:
      ValueError: if the header is malformed or the payload size does not match.
    """
    dtype, dims, header_end = parse_header(raw, source=source)
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_end != expected:
        raise ValueError(
            f"{source}: IDX payload has {len(raw) - header_end} bytes, header dims {dims} need {expected}"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file, gzip-compressed (``.gz``) or raw."""
    path = os.fspath(path)
    try:
        with _opener(path)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read IDX file {path}: {e}") from e
    return parse_idx(raw, source=path)


class IdxRows:
    """The records of an IDX file, read on demand: ``rows[idx]`` decompresses the file once,
    in blocks, and keeps only the records ``idx`` (in that order), so a process that needs
    a share of a data set holds only its share. ``len`` and ``shape`` come from the header."""

    BLOCK = 4096  # records decompressed at a time

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._opener = _opener(self.path)
        try:
            with self._opener(self.path, "rb") as f:
                head = f.read(4)
                head += f.read(4 * head[3]) if len(head) == 4 else b""
        except (OSError, EOFError) as e:
            raise ValueError(f"cannot read IDX file {self.path}: {e}") from e
        self.dtype, self.shape, self._offset = parse_header(head, source=self.path)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> np.ndarray:
        idx = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx, dtype=np.int64)
        record = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        out = np.empty((len(idx), *self.shape[1:]), self.dtype.newbyteorder("="))
        order = np.argsort(idx, kind="stable")
        with self._opener(self.path, "rb") as f:
            f.read(self._offset)
            done, first = 0, 0
            while done < len(idx):
                block = f.read(record * self.BLOCK)
                n = len(block) // record
                if n == 0:
                    raise ValueError(f"{self.path}: truncated IDX payload")
                data = np.frombuffer(block[: n * record], dtype=self.dtype).reshape(n, *self.shape[1:])
                stop = done + int(np.searchsorted(idx[order[done:]], first + n))
                out[order[done:stop]] = data[idx[order[done:stop]] - first]
                done, first = stop, first + n
        return out


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes a uint8 array as a (gzip-compressed if ``.gz``) IDX file; used by tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
