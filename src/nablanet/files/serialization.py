"""Saving and loading models (and the archives checkpoints use), safely.

A file is one ``.npz`` archive: a JSON document under the key ``config`` (stored as UTF-8 bytes) and
plain numeric arrays. This module only reads and writes archives: what goes into them is the model's
own description (``Sequential.get_config``/``get_weights``), and a model comes back through
``Sequential.from_config``/``set_weights``, which build only registered layers — never a name imported
from the file — and check every array's name, shape, dtype and finiteness. Loading never unpickles
(``allow_pickle=False``). Writes are atomic.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..training.model import Sequential
from .atomic import atomic_write

FORMAT = "nablanet"
VERSION = 1
MAX_CONFIG_BYTES = 10_000_000
ZIP_MAGIC = b"PK\x03\x04"  # every .npz is a zip archive


class ModelFileError(ValueError):
    """A model or checkpoint file is unreadable, malformed, or not what it claims to be."""


def write_archive(path, kind: str, config: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``config`` (JSON) and ``arrays`` into one ``.npz`` file, atomically."""
    document = {"format": FORMAT, "version": VERSION, "kind": kind, **config}
    encoded = np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as file:
        np.savez(file, config=encoded, **arrays)  # type: ignore[arg-type]  # numpy's stubs: **kwds as bool
    return Path(path)


def read_archive(path, kind: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`write_archive`; raise :class:`ModelFileError` if it is not one."""
    path = Path(path)
    with open(path, "rb") as file:
        start = file.read(6)
    if not start.startswith(ZIP_MAGIC):
        what = "a Python pickle, which nablanet never loads" if start[:1] == b"\x80" else "not an .npz archive"
        raise ModelFileError(f"{path} is not a nablanet {kind} file ({what})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ModelFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ModelFileError(f"{path} is not a nablanet {kind} file ({_reason(error)})") from None
    encoded = arrays.pop("config", None)
    if encoded is None or encoded.dtype != np.uint8 or encoded.ndim != 1 or encoded.size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path} has no valid config entry: not a nablanet {kind} file")
    try:
        config = json.loads(encoded.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: the config is not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a nablanet file")
    if config.get("version") != VERSION:
        raise ModelFileError(
            f"{path} has format version {config.get('version')!r}; this nablanet reads version {VERSION}"
        )
    if config.get("kind") != kind:
        raise ModelFileError(f"{path} holds a {config.get('kind')!r}, expected a {kind!r}")
    for name, array in arrays.items():
        if array.dtype.kind not in "fiu":
            raise ModelFileError(f"{path}: array {name!r} has dtype {array.dtype}, expected numbers")
    return config, arrays


def _reason(error: Exception) -> str:
    text = str(error)
    if "pickle" in text:
        return "it contains pickled Python objects, which nablanet never loads"
    return text.splitlines()[0] if text else type(error).__name__


def build_model(config: dict[str, Any], arrays: dict[str, np.ndarray], path) -> Sequential:
    """Rebuild a model from an archive's config and arrays; a :class:`ModelFileError` naming ``path``
    for anything that is not exactly what the config describes."""
    layer_arrays = {key: value for key, value in arrays.items() if key.startswith("layer")}
    try:
        model = Sequential.from_config(config)
        model.set_weights(layer_arrays)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    return model


def save(model: Sequential, path) -> Path:
    """Save ``model`` to ``path`` (an ``.npz`` file), atomically. :func:`load` reads it back."""
    return write_archive(path, "model", model.get_config(), model.get_weights())


def load(path) -> Sequential:
    """Load a model saved by :func:`save`, in inference mode. Never runs code from the file.

    >>> import tempfile, os, nablanet as nn
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> _ = nn.save(nn.Sequential([nn.Dense(4, 3, rng=0), nn.Softmax()]), path)
    >>> nn.load(path)
    Sequential([Dense(input_size=4, output_size=3, init='notebook', dtype='float64'), Softmax(method='vectorized')])
    """
    config, arrays = read_archive(path, "model")
    strangers = sorted(key for key in arrays if not key.startswith("layer"))
    if strangers:
        raise ModelFileError(f"{path}: arrays {strangers} belong to no layer")
    model = build_model(config, arrays, path)
    model.train(False)
    return model
