"""MNIST (bundled with the package) and Fashion-MNIST (system install, cache or download).

Both come in the notebook's layout: images as a (784, N) matrix, one column per image, pixels
min-max scaled to [0, 1] with the training set's min and max; labels as integers. The matrix is
stored sample-major in memory (it is the transpose of a C-ordered (N, 784) array), so gathering the
columns of a shuffled mini-batch reads contiguous rows of 784 pixels; the mathematical layout is
still (features, batch).

Each data set is registered in ``DATASETS`` (its loader, class names and the style in which a picture
is made to look like its images) under the name the command line and model files use;
``load_dataset(name)`` loads one by that name.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..core import _checks
from ..core.preprocessing import MinMaxScaler, one_hot
from ..core.registry import Registry
from ..files.atomic import atomic_write
from .idx import DatasetError, read_idx

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
FASHION_CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
# SHA-256 of the *uncompressed* IDX bytes: mirrors and distributions recompress the .gz files
# (Debian's differ from upstream's byte for byte), but the IDX content inside is the same.
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


@dataclass
class Dataset:
    """Train and test split in the notebook's layout.

    ``X_train`` (784, N_train) and ``X_test`` (784, N_test) in [0, 1]; ``y_train``/``y_test`` integer
    labels; ``Y_train``/``Y_test`` the one-hot matrices (classes, N), built when first asked for.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    _one_hot: dict = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def Y_train(self) -> np.ndarray:
        return self._encoded("train", self.y_train)

    @property
    def Y_test(self) -> np.ndarray:
        return self._encoded("test", self.y_test)

    def _encoded(self, split: str, labels: np.ndarray) -> np.ndarray:
        if split not in self._one_hot:
            self._one_hot[split] = one_hot(labels, self.num_classes, dtype=self.X_train.dtype)
        return self._one_hot[split]


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set: its ``load`` function, ``class_names``, and ``image_style``, how
    :func:`nablanet.data.images.load_image` makes a picture look like its images ("digit", "object")."""

    name: str
    load: Callable[..., Dataset]
    class_names: tuple[str, ...]
    image_style: str


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def register_dataset(name: str, class_names: tuple[str, ...], *, image_style: str):
    """Decorator for a loader ``load(dtype, *, data_home)``: register it in ``DATASETS`` as ``name``."""

    def register(load: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS.register(name)(DatasetInfo(name, load, tuple(class_names), image_style))
        return load

    return register


def _info(load: Callable[..., Dataset]) -> DatasetInfo:
    return next(info for info in DATASETS.values() if info.load is load)


def load_dataset(name: str, data_home=None, dtype=np.float64) -> Dataset:
    """The data set registered as ``name`` ("mnist", "fashion-mnist").

    Args:
        name: "mnist" or "fashion-mnist".
        data_home (str | os.PathLike | None): Where a loader that downloads keeps its files (ignored by the
            bundled MNIST); None: under the NABLANET_DATA environment variable's folder, or ~/.cache/nablanet.
        dtype (numpy.float32 | numpy.float64): Of the images.
    """
    return DATASETS.lookup(name, argument="dataset").load(data_home=data_home, dtype=dtype)


@register_dataset("mnist", MNIST_CLASS_NAMES, image_style="digit")
def load_mnist(dtype=np.float64, *, data_home=None) -> Dataset:
    """The MNIST digits bundled with nablanet: 60,000 training and 10,000 test images (no download).

    ``data_home`` is accepted for a uniform loader signature and not used: nothing is downloaded.

    Args:
        dtype (numpy.float32 | numpy.float64): Of the images, scaled to [0, 1].
        data_home (str | os.PathLike | None): Not used (nothing is downloaded).

    >>> data = load_mnist()
    >>> data.X_train.shape, data.X_test.shape, data.y_train[:5].tolist()
    ((784, 60000), (784, 10000), [5, 0, 4, 1, 9])
    """
    folder = resources.files("nablanet.data") / "mnist"
    with resources.as_file(folder) as path:
        paths = [Path(path) / name for name in FILES]
        return _build(_info(load_mnist), paths, dtype, checksums=None)


def default_data_home() -> Path:
    """Where downloads are cached: ``$NABLANET_DATA`` or ``~/.cache/nablanet``."""
    return Path(os.environ.get("NABLANET_DATA") or Path.home() / ".cache" / "nablanet")


@register_dataset("fashion-mnist", FASHION_CLASS_NAMES, image_style="object")
def load_fashion_mnist(data_home=None, dtype=np.float64, *, base_url: str = FASHION_URL) -> Dataset:
    """Fashion-MNIST (Zalando, MIT licence): 60,000 + 10,000 28×28 images of 10 kinds of clothing.

    Looks for the four files in ``data_home`` (default: ``default_data_home()/fashion-mnist``), then in
    Debian's ``/usr/share/datasets/fashion-mnist``; a file found nowhere is downloaded from
    ``base_url`` into ``data_home``. Every file's IDX content is checked against its SHA-256.

    Args:
        data_home (str | os.PathLike | None): Where the four files are looked for and downloaded to.
        dtype (numpy.float32 | numpy.float64): Of the images, scaled to [0, 1].
        base_url: Where a missing file is downloaded from.
    """
    home = Path(data_home) if data_home is not None else default_data_home() / "fashion-mnist"
    paths = []
    for filename in FILES:
        candidates = [home / filename, FASHION_SYSTEM_DIR / filename]
        found = next((path for path in candidates if path.is_file()), None)
        paths.append(found or download(base_url + filename, home / filename, FASHION_SHA256[filename]))
    return _build(_info(load_fashion_mnist), paths, dtype, checksums=FASHION_SHA256)


MAX_DOWNLOAD_BYTES = 100 * 2**20  # the largest Fashion-MNIST file is 26 MB


def download(
    url: str,
    destination,
    sha256: str,
    *,
    timeout: float = 30.0,
    deadline: float = 600.0,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Download ``url`` to ``destination``, atomically, only if its IDX content's SHA-256 matches.

    ``timeout`` bounds each wait for the server, ``deadline`` the whole download (a server that trickles
    bytes cannot hold it for longer), and ``max_bytes`` its size. The bytes go to a temporary file in the
    destination's folder (:func:`~nablanet.files.atomic.atomic_write`); it is checked, then moved into
    place. On any failure the temporary file is removed and nothing is left.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with atomic_write(destination) as file:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise DatasetError(
                        f"{url} is {int(declared) / 2**20:.0f} MiB, more than the {max_bytes / 2**20:.0f} MiB expected"
                    )
                received = 0
                while chunk := response.read1(64 * 1024):  # what has arrived: a trickle cannot block it
                    received += len(chunk)
                    if received > max_bytes:
                        raise DatasetError(f"{url} sent more than the {max_bytes / 2**20:.0f} MiB expected")
                    if time.monotonic() - started > deadline:
                        raise DatasetError(
                            f"downloading {url} took longer than {deadline:g} s "
                            f"({received / 2**20:.1f} MiB received): the server is too slow; try later"
                        )
                    file.write(chunk)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise DatasetError(f"could not download {url}: {error}") from None
        file.flush()
        read_idx(file.name, expected_sha256=sha256)  # a bad file raises here, and nothing is left behind
    return destination


def _build(info: DatasetInfo, paths, dtype, checksums) -> Dataset:
    name, class_names = info.name, info.class_names
    dtype = _checks.float_dtype("dtype", dtype)
    arrays = [read_idx(path, expected_sha256=checksums and checksums[path.name]) for path in paths]
    train_images, train_labels, test_images, test_labels = arrays
    for images, labels, split in ((train_images, train_labels, "train"), (test_images, test_labels, "test")):
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
            raise DatasetError(
                f"{name} {split}: expected (N, 28, 28) images and N labels, found {images.shape} and {labels.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{name} {split}: {images.shape[0]} images but {labels.shape[0]} labels")
        if labels.size and not 0 <= labels.min() <= labels.max() < len(class_names):
            raise DatasetError(f"{name} {split}: labels outside 0..{len(class_names) - 1}")
    scaler = MinMaxScaler.fit(train_images)

    def features(images):  # (N, 28, 28) → (784, N) whose memory is N contiguous rows of 784 pixels
        return scaler.transform(images.reshape(images.shape[0], -1), dtype=dtype).T

    return Dataset(
        name,
        features(train_images),
        train_labels.astype(np.int64),
        features(test_images),
        test_labels.astype(np.int64),
        tuple(class_names),
    )
