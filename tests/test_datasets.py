import gzip
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import nablanet as nn
from nablanet.data.datasets import FILES

IDX_SUMS = Path(__file__).with_name("mnist_SHA256SUMS.idx.txt")


@pytest.mark.parametrize("name", FILES)
def test_bundled_mnist_is_the_original(name):
    expected = dict(line.split()[::-1] for line in IDX_SUMS.read_text().splitlines())
    data = (resources.files("nablanet.data") / "mnist" / name).read_bytes()
    assert hashlib.sha256(gzip.decompress(data)).hexdigest() == expected[name.removesuffix(".gz")]


def test_mnist_in_the_notebooks_layout(mnist):
    assert mnist.X_train.shape == (784, 60000) and mnist.X_test.shape == (784, 10000)
    assert mnist.X_train.min() == 0.0 and mnist.X_train.max() == 1.0
    assert mnist.X_train.mean() == pytest.approx(0.1307, abs=5e-5)
    assert mnist.X_train.std() == pytest.approx(0.3081, abs=5e-5)
    np.testing.assert_array_equal(
        np.bincount(mnist.y_train), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    )
    np.testing.assert_array_equal(mnist.y_train[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(mnist.y_test[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert mnist.Y_train.shape == (10, 60000)
    np.testing.assert_array_equal(mnist.Y_test.argmax(axis=0), mnist.y_test)


def test_mnist_columns_are_contiguous_in_memory(mnist):
    # the (784, N) matrix is the transpose of a C-ordered (N, 784) one: a sample's pixels are adjacent
    assert mnist.X_train.flags.f_contiguous
    assert mnist.X_train.strides[0] == mnist.X_train.itemsize


def test_mnist_pixel_order_is_row_major(mnist):
    # the notebook reshapes each 28×28 image row by row: row 0 of the first "5" is blank, its centre is not
    image = mnist.X_train[:, 0].reshape(28, 28)
    assert image[0].sum() == 0 and image[10:18, 10:18].sum() > 10


def test_float32_load():
    data = nn.load_mnist(np.float32)
    assert data.X_train.dtype == np.float32 and data.Y_train.dtype == np.float32


def _idx(dtype_code, dims, payload):
    header = bytes([0, 0, dtype_code, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
    return header + payload


def test_read_idx_plain_and_gzip(tmp_path):
    values = np.arange(6, dtype=">i2").reshape(2, 3)
    raw = _idx(0x0B, (2, 3), values.tobytes())
    (tmp_path / "a.idx").write_bytes(raw)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(raw))
    for name in ("a.idx", "a.idx.gz"):
        array = nn.read_idx(tmp_path / name)
        np.testing.assert_array_equal(array, values)
        assert array.dtype == np.int16 and array.dtype.isnative


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic number"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX dtype code 0x07"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "more than the file can hold"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "trailing bytes"),
        (b"\x00\x00\x08", "truncated"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated"),
        (b"\x1f\x8b\x08\x00garbage", "not a valid gzip file"),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(nn.DatasetError, match=message):
        nn.read_idx(path)


def test_read_idx_checks_the_sha256(tmp_path):
    path = tmp_path / "a.idx"
    path.write_bytes(_idx(0x08, (1,), b"\x05"))
    with pytest.raises(nn.DatasetError, match="SHA-256"):
        nn.read_idx(path, expected_sha256="0" * 64)


def test_a_huge_declared_size_is_refused_before_allocating(tmp_path):
    path = tmp_path / "bomb.idx.gz"
    path.write_bytes(gzip.compress(_idx(0x0E, (100000, 100000, 1000), b"")))
    with pytest.raises(nn.DatasetError, match="more than the file can hold"):
        nn.read_idx(path)
