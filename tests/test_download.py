"""Downloads against a local HTTP server on 127.0.0.1: good, corrupted and truncated files."""

import gzip
import hashlib
import http.server
import os
import shutil
import stat
import threading

import numpy as np
import pytest

import nablanet as nn
from nablanet.data import datasets
from nablanet.data.datasets import FASHION_SYSTEM_DIR, FILES, download


def idx_bytes(values: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, values.ndim]) + b"".join(int(size).to_bytes(4, "big") for size in values.shape)
    return header + values.astype(np.uint8).tobytes()


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/'served' on 127.0.0.1; yields (base URL, folder, list of requested paths)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder, requests
    httpd.shutdown()
    httpd.server_close()


def test_good_file_is_cached_bad_files_leave_nothing(server, tmp_path):
    base, folder, _ = server
    content = idx_bytes(np.arange(12).reshape(3, 4))
    digest = hashlib.sha256(content).hexdigest()
    (folder / "good.gz").write_bytes(gzip.compress(content))
    corrupted = bytearray(content)
    corrupted[-1] ^= 0xFF
    (folder / "corrupted.gz").write_bytes(gzip.compress(bytes(corrupted)))
    (folder / "truncated.gz").write_bytes(gzip.compress(content)[:-10])
    cache = tmp_path / "cache"

    path = download(base + "good.gz", cache / "good.gz", digest)
    np.testing.assert_array_equal(nn.read_idx(path), np.arange(12).reshape(3, 4))
    for name, message in (
        ("corrupted.gz", "SHA-256"),
        ("truncated.gz", "not a valid gzip file"),
        ("missing.gz", "could not download"),
    ):
        with pytest.raises(nn.DatasetError, match=message):
            download(base + name, cache / name, digest)
    assert sorted(entry.name for entry in cache.iterdir()) == ["good.gz"]  # no partial files either


def test_a_download_gets_the_usual_file_permissions(server, tmp_path):
    base, folder, _ = server
    content = idx_bytes(np.arange(6).reshape(2, 3))
    (folder / "good.gz").write_bytes(gzip.compress(content))
    previous = os.umask(0o022)
    try:
        path = download(base + "good.gz", tmp_path / "cache" / "good.gz", hashlib.sha256(content).hexdigest())
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # 0.1 left downloads at mkstemp's 0600


@pytest.mark.slow
def test_fashion_mnist_downloads_once_then_uses_the_cache(server, tmp_path, monkeypatch):
    base, folder, requests = server
    assert FASHION_SYSTEM_DIR.is_dir(), "install Debian's dataset-fashion-mnist (.ci/run does)"
    for name in FILES:
        shutil.copy(FASHION_SYSTEM_DIR / name, folder / name)
    monkeypatch.setattr(datasets, "FASHION_SYSTEM_DIR", tmp_path / "not-installed")
    home = tmp_path / "home"
    first = nn.load_fashion_mnist(home, np.float32, base_url=base)
    assert sorted(requests) == sorted(f"/{name}" for name in FILES)
    second = nn.load_fashion_mnist(home, np.float32, base_url=base)
    assert len(requests) == 4  # nothing fetched twice
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert first.X_train.shape == (784, 60000)


def test_a_tampered_mirror_is_refused(server, tmp_path, monkeypatch):
    base, folder, _ = server
    for name in FILES:
        (folder / name).write_bytes(
            gzip.compress(idx_bytes(np.zeros((2, 28, 28)) if "images" in name else np.zeros(2)))
        )
    monkeypatch.setattr(datasets, "FASHION_SYSTEM_DIR", tmp_path / "not-installed")
    with pytest.raises(nn.DatasetError, match="SHA-256"):
        nn.load_fashion_mnist(tmp_path / "home", base_url=base)
    assert list((tmp_path / "home").iterdir()) == []
