"""Reader for the IDX files of MNIST and Fashion-MNIST, plain or gzip-compressed.

IDX layout (all integers big-endian)::

    0x00 0x00 | dtype code (1 byte) | number of dimensions n (1 byte)
    n × uint32 dimension sizes
    the data, C order, big-endian items

Every way a file can be wrong — random bytes, a broken gzip stream, a bad magic number, an
unknown dtype code, dimensions that disagree with the file's length, trailing bytes — raises
:class:`DatasetError`. The reader never allocates more than the file can hold: the size the header
declares is checked against the file's size (for gzip, against deflate's maximum ratio) first.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib

import numpy as np

DTYPE_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"
MAX_DIMENSIONS = 8
DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data by more than ~1032 : 1


class DatasetError(ValueError):
    """A dataset file is missing, corrupted, or not what it claims to be."""


class _HashingReader:
    """Reads exactly the bytes asked for from a stream, hashing what it reads."""

    def __init__(self, stream, path):
        self.stream, self.path = stream, path
        self.hash = hashlib.sha256()

    def read_exactly(self, size: int, what: str) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise DatasetError(f"{self.path}: truncated file: expected {size} bytes of {what}, found {len(data)}")
        self.hash.update(data)
        return data

    def read_into(self, buffer: np.ndarray, what: str) -> None:
        """Fill a uint8 array from the stream, with no intermediate bytes object."""
        filled = 0
        while filled < buffer.size:
            count = self.stream.readinto(buffer[filled:])
            if not count:
                raise DatasetError(
                    f"{self.path}: truncated file: expected {buffer.size} bytes of {what}, found {filled}"
                )
            filled += count
        self.hash.update(buffer.data)


def read_idx(path, *, expected_sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or not, detected from its first bytes) into a native-endian array.

    ``expected_sha256``, if given, is the SHA-256 of the uncompressed IDX bytes; a mismatch raises
    :class:`DatasetError`.

    Args:
        path (str | os.PathLike): The IDX file, gzip-compressed or not.
        expected_sha256: The SHA-256 (hex) of the uncompressed bytes, checked if given.
    """
    path = os.fspath(path)
    file_size = os.path.getsize(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            return _parse(raw, path, file_size, expected_sha256)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, path, DEFLATE_MAX_RATIO * file_size + 64, expected_sha256)
        except (OSError, EOFError, zlib.error) as error:
            raise DatasetError(f"{path}: not a valid gzip file ({error})") from None


def _parse(stream, path: str, max_size: int, expected_sha256: str | None) -> np.ndarray:
    reader = _HashingReader(stream, path)
    zero1, zero2, dtype_code, ndim = reader.read_exactly(4, "header")
    if zero1 != 0 or zero2 != 0:
        raise DatasetError(f"{path}: bad magic number: an IDX file starts with two zero bytes")
    if dtype_code not in DTYPE_CODES:
        raise DatasetError(f"{path}: unknown IDX dtype code 0x{dtype_code:02x}")
    if not 1 <= ndim <= MAX_DIMENSIONS:
        raise DatasetError(f"{path}: IDX files here have 1 to {MAX_DIMENSIONS} dimensions, header says {ndim}")
    dims = np.frombuffer(reader.read_exactly(4 * ndim, "dimensions"), dtype=">u4")
    shape = tuple(int(size) for size in dims)
    dtype = np.dtype(DTYPE_CODES[dtype_code])
    data_size = math.prod(shape) * dtype.itemsize
    header_size = 4 + 4 * ndim
    if header_size + data_size > max_size:
        raise DatasetError(f"{path}: dimensions {shape} need {data_size} bytes of data, more than the file can hold")
    data = np.empty(data_size, dtype=np.uint8)
    reader.read_into(data, f"data for dimensions {shape}")
    if stream.read(1):
        raise DatasetError(f"{path}: trailing bytes after the {data_size} bytes that dimensions {shape} declare")
    if expected_sha256 is not None and reader.hash.hexdigest() != expected_sha256:
        raise DatasetError(
            f"{path}: SHA-256 of the IDX content is {reader.hash.hexdigest()}, expected {expected_sha256}"
        )
    array = data.view(dtype).reshape(shape)
    if not dtype.isnative:
        array.byteswap(inplace=True)  # big-endian bytes → native order, in place
        array = array.view(dtype.newbyteorder("="))
    return array
