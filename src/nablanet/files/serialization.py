"""Saving and loading models (and the archives checkpoints use), safely.

A file is one ``.npz`` archive: a JSON document under the key ``config`` (stored as UTF-8 bytes) and
plain numeric arrays. What goes into it is the model's own description (``Sequential.get_config`` and
``get_weights``); a model comes back through ``Sequential.from_config`` and ``set_weights``, which build
only registered layers — never a name imported from the file.

A file is untrusted input, so it is checked before it costs memory or time, in this order:

1. it is a regular file (not a FIFO or a device) of at most ``MAX_FILE_BYTES``, starting as a zip does,
   whose end record announces at most ``MAX_MEMBERS`` members (read before the zip's directory is);
2. the zip's directory: each member named ``<name>.npy`` once, neither
   encrypted nor compressed other than by deflate, and declaring no more bytes than deflate can
   produce from its compressed size (no zip bombs: nothing is decompressed yet);
3. the config (at most ``MAX_CONFIG_BYTES``): valid UTF-8 JSON of this format, version and kind;
4. every array's ``.npy`` header (a few hundred bytes each): a plain numeric dtype, and a shape whose
   size matches the member's declared size;
5. the config's layers (at most ``MAX_LAYERS``), which say what arrays must be there: exactly those,
   with those shapes and dtypes, at most ``MAX_ARRAY_BYTES`` in all — and only then is any array read
   (never with pickles: ``allow_pickle=False``), checked to be finite, and a layer built;
6. the model's price, from its config alone (:func:`check_cost`): one sample's values through all its layers
   at most ``MAX_VALUES_PER_SAMPLE``, its operations at most ``MAX_OPERATIONS_PER_SAMPLE``, its Python loop
   steps at most ``MAX_STEPS_PER_SAMPLE``, and the array passes of a batch at most ``MAX_PASSES_PER_BATCH``,
   so that using the model cannot cost more memory or time than its file suggests.

Anything else is a :class:`ModelFileError` naming the file and what is wrong. Writes are atomic.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import stat
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core import _checks
from ..core.parameter import shapes_only
from ..training.model import ArraySpec, Sequential
from .atomic import atomic_write

FORMAT = "nablanet"
VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"  # every .npz is a zip archive
MAX_ARRAY_BYTES = 256 * 2**20  # the memory ceiling: all the arrays of one file together
MAX_CONFIG_BYTES = 10 * 2**20
MAX_FILE_BYTES = MAX_ARRAY_BYTES + MAX_CONFIG_BYTES
MAX_MEMBERS = 10_000
MAX_LAYERS = 1_000
MAX_VALUES_PER_SAMPLE = 2**24  # all the layers' outputs for one sample: at most 128 MiB in float64
MAX_OPERATIONS_PER_SAMPLE = 2**31  # ~2·10⁹ operations: 0.02 s a sample in float32 on two cores (measured)
MAX_STEPS_PER_SAMPLE = 2_000  # a Python loop's iterations per sample: 4.6 µs each, 0.01 s (measured)
MAX_PASSES_PER_BATCH = 1_024  # e.g. the 32² views of a 32×32 pooling window
DEFLATE_MAX_RATIO = 1100  # deflate cannot expand data more than ~1032 times
MEMBER_NAME = re.compile(r"[A-Za-z0-9_.]{1,200}\.npy")


class ModelFileError(ValueError):
    """A model or checkpoint file is unreadable, malformed, or not what it claims to be."""


def write_archive(path, kind: str, config: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``config`` (JSON) and ``arrays`` into one ``.npz`` file, atomically."""
    document = {"format": FORMAT, "version": VERSION, "kind": kind, **config}
    encoded = np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as file:
        np.savez(file, config=encoded, **arrays)  # type: ignore[arg-type]  # numpy's stubs: **kwds as bool
    return Path(path)


class Archive:
    """An opened, checked archive: its ``config`` and the ``headers`` (shape, dtype) of its arrays.

    Arrays are read only through :meth:`read`, after :meth:`expect` has matched them to the config.
    """

    def __init__(self, path: Path, archive: zipfile.ZipFile, config: dict[str, Any], headers: dict[str, ArraySpec]):
        self.path, self._zip, self.config, self.headers = path, archive, config, headers
        self._expected: dict[str, ArraySpec] | None = None

    def error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    def expect(self, specs: dict[str, ArraySpec]) -> None:
        """Check that the arrays are exactly ``specs`` (name → (shape, dtype)) and fit the ceiling."""
        missing = sorted(set(specs) - set(self.headers))
        if missing:
            raise self.error(f"the array {missing[0]!r} is missing")
        extra = sorted(set(self.headers) - set(specs))
        if extra:
            raise self.error(f"arrays {extra} belong to nothing the config describes")
        total = sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in specs.values())
        if total > MAX_ARRAY_BYTES:
            raise self.error(
                f"the config describes {total / 2**20:.0f} MiB of arrays, more than the "
                f"{MAX_ARRAY_BYTES / 2**20:.0f} MiB nablanet reads from one file"
            )
        for name, (shape, dtype) in specs.items():
            found_shape, found_dtype = self.headers[name]
            if tuple(found_shape) != tuple(shape) or np.dtype(found_dtype) != np.dtype(dtype):
                raise self.error(
                    f"array {name!r} has shape {tuple(found_shape)} and dtype {np.dtype(found_dtype)}, "
                    f"the config needs {tuple(shape)} and {np.dtype(dtype)}"
                )
        self._expected = specs

    def read(self, name: str) -> np.ndarray:
        """Read one expected array and check that every number in it is finite."""
        if self._expected is None or name not in self._expected:
            raise RuntimeError(f"read {name!r} only after expect() has matched it to the config")
        with self._zip.open(f"{name}.npy") as member:
            array = np.lib.format.read_array(member, allow_pickle=False)
        if array.dtype.kind == "f" and not _checks.all_finite(array):
            raise self.error(f"array {name!r} contains NaN or inf")
        return array


@contextlib.contextmanager
def open_archive(path, kind: str) -> Iterator[Archive]:
    """Open a file written by :func:`write_archive` and check steps 1–4 above; a :class:`ModelFileError`
    (or ``FileNotFoundError``) if it is not such a file. The caller does step 5 with ``expect``."""
    path = Path(path)
    info = path.stat()  # FileNotFoundError for a missing file
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"{path} is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ModelFileError(
            f"{path} is {info.st_size / 2**20:.0f} MiB, more than a nablanet file can be "
            f"({MAX_FILE_BYTES / 2**20:.0f} MiB)"
        )
    with open(path, "rb") as file:
        start = file.read(6)
        if not start.startswith(ZIP_MAGIC):
            what = "a Python pickle, which nablanet never loads" if start[:1] == b"\x80" else "not an .npz archive"
            raise ModelFileError(f"{path} is not a nablanet {kind} file ({what})")
        _check_member_count(path, file, info.st_size)
    try:
        with zipfile.ZipFile(path) as archive:
            members = _check_members(path, archive)
            config = _read_config(path, archive, members.pop("config", None), kind)
            headers = {name: _read_header(path, archive, member) for name, member in members.items()}
            yield Archive(path, archive, config, headers)
    except ModelFileError:
        raise
    except MemoryError:
        raise ModelFileError(f"{path}: reading it would need more memory than there is") from None
    except Exception as error:  # a hostile file reaches odd corners: zlib, numpy's header parser, …
        raise ModelFileError(f"{path} is not a nablanet {kind} file ({_reason(error)})") from None


def _check_member_count(path: Path, file, size: int) -> None:
    """Read the member count from the zip's end record (and its zip64 form) before ``zipfile`` reads the
    directory, which it would do whole, however many members it announces."""
    tail_length = min(size, 22 + 65535)
    file.seek(size - tail_length)
    tail = file.read(tail_length)
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or end + 22 > len(tail):
        return  # no end record: zipfile will say it is not a zip file
    count, directory_size = struct.unpack("<HI", tail[end + 10 : end + 16])
    if count == 0xFFFF or directory_size == 0xFFFFFFFF:
        locator = tail.rfind(b"PK\x06\x07", 0, end)
        if locator >= 0:
            (record_offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
            file.seek(record_offset)
            record = file.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                count, directory_size = struct.unpack("<QQ", record[32:48])
    if count > MAX_MEMBERS or directory_size > MAX_MEMBERS * 400:
        raise ModelFileError(f"{path}: the archive announces {count} members, more than a nablanet file has")


def _check_members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{path}: {len(infos)} members, more than a nablanet file has")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if not MEMBER_NAME.fullmatch(info.filename):
            raise ModelFileError(f"{path}: the member {info.filename[:80]!r} is not an .npy array")
        name = info.filename[: -len(".npy")]
        if name in members:
            raise ModelFileError(f"{path}: the member {info.filename!r} appears twice")
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{path}: the member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(
                f"{path}: the member {info.filename!r} uses compression method "
                f"{info.compress_type}; nablanet reads stored or deflated members only"
            )
        ratio_limit = 1 if info.compress_type == zipfile.ZIP_STORED else DEFLATE_MAX_RATIO
        if info.file_size > ratio_limit * info.compress_size + 1024 or info.file_size > MAX_FILE_BYTES:
            raise ModelFileError(
                f"{path}: the member {info.filename!r} claims {info.file_size} bytes from "
                f"{info.compress_size} compressed: refused before decompressing"
            )
        members[name] = info
    if sum(info.file_size for info in members.values()) > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: the members add up to more than {MAX_FILE_BYTES / 2**20:.0f} MiB")
    return members


def _read_config(path: Path, archive: zipfile.ZipFile, member: zipfile.ZipInfo | None, kind: str) -> dict:
    if member is None or member.file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path} has no valid config entry: not a nablanet {kind} file")
    shape, dtype = _read_header(path, archive, member)  # its size agrees with the member's: no surprise
    if dtype != np.uint8 or len(shape) != 1:
        raise ModelFileError(f"{path} has no valid config entry: not a nablanet {kind} file")
    with archive.open(member) as stream:
        encoded = np.lib.format.read_array(stream, allow_pickle=False)
    if encoded.dtype != np.uint8 or encoded.ndim != 1:
        raise ModelFileError(f"{path} has no valid config entry: not a nablanet {kind} file")
    try:
        config = json.loads(encoded.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelFileError(f"{path}: the config is not valid JSON ({_reason(error)})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a nablanet file")
    if config.get("version") != VERSION:
        raise ModelFileError(
            f"{path} has format version {config.get('version')!r:.40}; this nablanet reads version {VERSION}"
        )
    if config.get("kind") != kind:
        raise ModelFileError(f"{path} holds a {config.get('kind')!r:.40}, expected a {kind!r}")
    return config


def _read_header(path: Path, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> ArraySpec:
    """The (shape, dtype) an ``.npy`` member declares, read from its header alone."""
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ModelFileError(f"{path}: the member {member.filename!r} has .npy version {version}")
        header_bytes = stream.tell()
    if dtype.kind not in "fiu" or dtype.fields is not None or dtype.subdtype is not None:
        raise ModelFileError(f"{path}: array {member.filename[:-4]!r} has dtype {dtype}, expected numbers")
    if any(not isinstance(size, int) or size < 0 for size in shape):
        raise ModelFileError(f"{path}: array {member.filename[:-4]!r} has the shape {shape}")
    if header_bytes + math.prod(shape) * dtype.itemsize != member.file_size:
        raise ModelFileError(
            f"{path}: array {member.filename[:-4]!r} declares the shape {shape}, which does not match its size"
        )
    return tuple(shape), dtype


def _reason(error: BaseException) -> str:
    text = str(error)
    if "pickle" in text:
        return "it contains pickled Python objects, which nablanet never loads"
    return text.splitlines()[0][:200] if text else type(error).__name__


def model_specs(archive: Archive, *, buffers: bool = True) -> dict[str, ArraySpec]:
    """The arrays the archive's layers need, name → (shape, dtype), from the config alone: their parameters
    and buffers (BatchNorm's running statistics), or with ``buffers=False`` the parameters only."""
    layers = archive.config.get("layers")
    if isinstance(layers, list) and len(layers) > MAX_LAYERS:
        raise archive.error(f"{len(layers)} layers, more than the {MAX_LAYERS} nablanet reads")
    try:
        return Sequential.parameter_specs(archive.config, buffers=buffers)
    except ValueError as error:
        raise archive.error(str(error)) from None


def read_model(archive: Archive, other_arrays: dict[str, ArraySpec] | None = None) -> Sequential:
    """Build the model an opened archive describes: check that its arrays are exactly the layers' (and
    ``other_arrays``, for a checkpoint) — step 5 —, price it from its config alone — step 6 —, then build
    the layers and read the weights into them."""
    specs = model_specs(archive)
    archive.expect({**specs, **(other_arrays or {})})
    try:
        with shapes_only():  # the layers without their arrays: what using the model would cost
            model = Sequential.from_config(archive.config)
        check_cost(model, archive.error)
        model.set_weights({name: archive.read(name) for name in specs}, adopt=True)  # the arrays read, not copies
    except ValueError as error:
        if isinstance(error, ModelFileError):
            raise
        raise archive.error(str(error)) from None
    return model


def check_cost(model: Sequential, error: Callable[[str], Exception] = ValueError) -> None:
    """Raise ``error(message)`` if one sample through ``model`` costs more than a model file may ask for (the
    ``MAX_*_PER_SAMPLE`` and ``MAX_PASSES_PER_BATCH`` ceilings; see :mod:`nablanet.training.budget`). A model
    whose layers fix no input size (a learner's own first layer) is priced by its data instead."""
    if model.input_shape is None:
        return
    price = model.cost()
    for figure, ceiling, what in (
        (price.values, MAX_VALUES_PER_SAMPLE, "makes {:,} numbers"),
        (price.operations, MAX_OPERATIONS_PER_SAMPLE, "takes {:,} floating-point operations"),
        (price.steps, MAX_STEPS_PER_SAMPLE, "takes {:,} steps of a Python loop (Conv2D's method 'loop')"),
    ):
        if figure > ceiling:
            raise error(
                f"one sample through this model {what.format(figure)}, more than the {ceiling:,} "
                f"nablanet allows a model file"
            )
    if price.passes > MAX_PASSES_PER_BATCH:
        raise error(
            f"each batch through this model takes {price.passes:,} array passes (pooling and convolution windows), "
            f"more than the {MAX_PASSES_PER_BATCH:,} nablanet allows a model file"
        )


def save(model: Sequential, path) -> Path:
    """Save ``model`` to ``path`` (an ``.npz`` file), atomically. :func:`load` reads it back.

    A model with a NaN or infinite weight is refused (``ValueError``): such a file could not be loaded.

    Args:
        model: The model to save.
        path (str | os.PathLike): The `.npz` file to write.
    """
    weights = model.get_weights()
    for name, array in weights.items():
        if not _checks.all_finite(array):
            raise ValueError(f"the model's array {name!r} contains NaN or inf: {path} was not written")
    return write_archive(path, "model", model.get_config(), weights)


def load(path) -> Sequential:
    """Load a model saved by :func:`save`, in inference mode. Never runs code from the file.

    Args:
        path (str | os.PathLike): An `.npz` file written by `save`.

    >>> import tempfile, os, nablanet as nn
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> _ = nn.save(nn.Sequential([nn.Dense(4, 3, rng=0), nn.Softmax()]), path)
    >>> nn.load(path)
    Sequential([Dense(input_size=4, output_size=3, init='notebook', dtype='float64'), Softmax(method='vectorized')])
    """
    with open_archive(path, "model") as archive:
        model = read_model(archive)
    model.train(False)
    return model
