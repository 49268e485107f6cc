"""Property tests: arbitrary and mutated IDX/gzip bytes give DatasetError or a valid array, nothing else,
and never a large allocation."""

import gzip
import tracemalloc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import nablanet as nn

VALID = bytes([0, 0, 0x08, 2, 0, 0, 0, 3, 0, 0, 0, 4]) + bytes(range(12))
MAX_ALLOCATION = 1 << 20  # 1 MiB: far above what these few-hundred-byte files can hold


def read(tmp_path_factory, content: bytes):
    path = tmp_path_factory.mktemp("fuzz") / "file"
    path.write_bytes(content)
    tracemalloc.start()
    try:
        try:
            array = nn.read_idx(path)
        except nn.DatasetError:
            array = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_ALLOCATION, f"allocated {peak} bytes for a {len(content)}-byte file"
    if array is not None:
        assert isinstance(array, np.ndarray) and array.dtype.isnative
    return array


@settings(max_examples=200)
@given(content=st.binary(max_size=300))
def test_arbitrary_bytes(tmp_path_factory, content):
    read(tmp_path_factory, content)


@settings(max_examples=200)
@given(content=st.binary(max_size=300))
def test_arbitrary_bytes_behind_a_gzip_header(tmp_path_factory, content):
    read(tmp_path_factory, b"\x1f\x8b" + content)


@settings(max_examples=300)
@given(
    position=st.integers(0, len(VALID) - 1),
    value=st.integers(0, 255),
    cut=st.integers(0, len(VALID)),
    extra=st.binary(max_size=8),
    compress=st.booleans(),
)
def test_mutated_valid_files(tmp_path_factory, position, value, cut, extra, compress):
    mutated = bytearray(VALID)
    mutated[position] = value
    content = bytes(mutated[:cut]) + extra
    read(tmp_path_factory, gzip.compress(content) if compress else content)


@settings(max_examples=200)
@given(position=st.integers(0, 60), value=st.integers(0, 255), cut=st.integers(0, 80))
def test_mutated_gzip_streams(tmp_path_factory, position, value, cut):
    compressed = bytearray(gzip.compress(VALID))
    compressed[position % len(compressed)] = value
    read(tmp_path_factory, bytes(compressed[:cut]))


@settings(max_examples=100)
@given(dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4), code=st.sampled_from([8, 9, 11, 12, 13, 14]))
def test_huge_declared_dimensions_are_refused_before_allocating(tmp_path_factory, dims, code):
    header = bytes([0, 0, code, len(dims)]) + b"".join(size.to_bytes(4, "big") for size in dims)
    read(tmp_path_factory, gzip.compress(header + bytes(64)))


def test_the_valid_file_reads(tmp_path_factory):
    np.testing.assert_array_equal(read(tmp_path_factory, VALID), np.arange(12).reshape(3, 4))
