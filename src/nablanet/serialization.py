"""Saving and loading models and training checkpoints, safely.

A file is one ``.npz`` archive: a JSON document under the key ``config`` (stored as UTF-8 bytes) and
plain numeric arrays. Loading never unpickles (``allow_pickle=False``), rebuilds layers only from the
fixed registry below — never by importing a name found in the file — and checks every array's
name, shape, dtype and finiteness against what the config says. Writes are atomic.
"""

from __future__ import annotations

import inspect
import json
import zipfile
from pathlib import Path

import numpy as np

from ._io import atomic_write
from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .layers import Dense, Dropout
from .model import Sequential

FORMAT = "nablanet"
VERSION = 1
LAYERS = {cls.__name__: cls for cls in (Dense, Dropout, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax)}
MAX_CONFIG_BYTES = 10_000_000
ZIP_MAGIC = b"PK\x03\x04"  # every .npz is a zip archive


class ModelFileError(ValueError):
    """A model or checkpoint file is unreadable, malformed, or not what it claims to be."""


def write_archive(path, kind: str, config: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``config`` (JSON) and ``arrays`` into one ``.npz`` file, atomically."""
    document = {"format": FORMAT, "version": VERSION, "kind": kind, **config}
    encoded = np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as file:
        np.savez(file, config=encoded, **arrays)
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
        raise ModelFileError(f"{path} has format version {config.get('version')!r}; this nablanet reads version {VERSION}")
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


def model_config(model: Sequential) -> tuple[dict, dict[str, np.ndarray]]:
    """The model as plain data: layer names with their arguments, and the parameter arrays."""
    layers, arrays = [], {}
    for position, layer in enumerate(model.layers):
        name = type(layer).__name__
        if LAYERS.get(name) is not type(layer):
            raise TypeError(f"layer {position} ({name}) is not a built-in nablanet layer and cannot be saved")
        layers.append({"type": name, "config": layer.config()})
        for parameter in layer.parameters():
            arrays[f"layer{position}.{parameter.name}"] = parameter.value
    return {"layers": layers, "metadata": model.metadata}, arrays


def build_model(config: dict, arrays: dict[str, np.ndarray], path) -> Sequential:
    """Rebuild a model from :func:`model_config`'s output, checking everything against the config."""
    entries = config.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ModelFileError(f"{path}: the config has no list of layers")
    layers, expected = [], set()
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not isinstance(entry.get("config"), dict):
            raise ModelFileError(f"{path}: layer {position} is not of the form {{'type': name, 'config': {{...}}}}")
        cls = LAYERS.get(entry["type"])
        if cls is None:
            raise ModelFileError(f"{path}: layer {position} has unknown type {entry['type']!r} "
                                 f"(known: {', '.join(sorted(LAYERS))})")
        allowed = set(inspect.signature(cls).parameters) - {"rng"}
        unknown = set(entry["config"]) - allowed
        if unknown:
            raise ModelFileError(f"{path}: layer {position} ({cls.__name__}) has unknown arguments {sorted(unknown)}")
        try:
            layer = cls(**entry["config"])
        except (TypeError, ValueError) as error:
            raise ModelFileError(f"{path}: layer {position} ({cls.__name__}): {error}") from None
        for parameter in layer.parameters():
            key = f"layer{position}.{parameter.name}"
            expected.add(key)
            if key not in arrays:
                raise ModelFileError(f"{path}: the array {key!r} is missing")
            _check_array(path, key, arrays[key], parameter.value)
            parameter.value[...] = arrays[key]
        layers.append(layer)
    model = Sequential(layers)
    metadata = config.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: metadata must be a JSON object")
    model.metadata = metadata
    extra = {key for key in arrays if key.startswith("layer")} - expected
    if extra:
        raise ModelFileError(f"{path}: arrays {sorted(extra)} belong to no layer")
    try:
        model.output_size(model.input_size)
    except ValueError as error:
        raise ModelFileError(f"{path}: the layers do not fit together: {error}") from None
    model.train(False)
    return model


def _check_array(path, key: str, array: np.ndarray, like: np.ndarray) -> None:
    if array.shape != like.shape or array.dtype != like.dtype:
        raise ModelFileError(f"{path}: array {key!r} has shape {array.shape} and dtype {array.dtype}, "
                             f"the config needs {like.shape} and {like.dtype}")
    if not np.isfinite(array).all():
        raise ModelFileError(f"{path}: array {key!r} contains NaN or inf")


def save(model: Sequential, path) -> Path:
    """Save ``model`` to ``path`` (an ``.npz`` file), atomically. ``nablanet.load`` reads it back."""
    config, arrays = model_config(model)
    return write_archive(path, "model", config, arrays)


def load(path) -> Sequential:
    """Load a model saved by :func:`save`, in inference mode. Never runs code from the file.

    >>> import tempfile, os, nablanet as nn
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> _ = nn.Sequential([nn.Dense(4, 3, rng=0), nn.Softmax()]).save(path)
    >>> nn.load(path)
    Sequential([Dense(input_size=4, output_size=3, init='notebook', dtype='float64'), Softmax(method='vectorized')])
    """
    config, arrays = read_archive(path, "model")
    return build_model(config, arrays, path)
