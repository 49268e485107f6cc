"""Hostile model files, checkpoints and images: each builder writes one file that nablanet must refuse
(with one line) or handle correctly, without running anything from it and without large allocations."""

from __future__ import annotations

import io
import json
import pickle
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import nablanet as nn
from nablanet.files.checkpoint import Checkpoint
from nablanet.files.serialization import write_archive

MARKER = Path("/tmp/nablanet-test-pickle-ran")
MAX_MEMBERS_PLUS_ONE = 10_001


class Exploit:
    """Unpickling this would create MARKER: proof that code from the file ran."""

    def __reduce__(self):
        return (Path.touch, (MARKER,))


def reference_model():
    return nn.Sequential(
        [nn.Dense(6, 5, rng=0), nn.ReLU(), nn.Dropout(0.3, rng=1), nn.Dense(5, 3, rng=2), nn.Softmax()]
    )


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _parts(model, kind="model"):
    config = model.get_config()
    return {"format": "nablanet", "version": 1, "kind": kind, **config}, dict(model.get_weights())


def _write(path: Path, document: dict, arrays: dict[str, np.ndarray]) -> Path:
    members = {"config.npy": _npy(np.frombuffer(json.dumps(document).encode(), dtype=np.uint8))}
    members.update({f"{name}.npy": _npy(array) for name, array in arrays.items()})
    return _zip(path, members, zipfile.ZIP_DEFLATED)


def _variant(folder: Path, name: str, change) -> Path:
    document, arrays = _parts(reference_model())
    arrays = {key: value.copy() for key, value in arrays.items()}
    change(document, arrays)
    return _write(folder / f"{name}.npz", document, arrays)


def _bomb(folder: Path) -> Path:
    """2 MB on disk; its one member declares and would inflate to 2 GB of zeros."""
    path = folder / "zip-bomb.npz"
    header = _npy(np.zeros(0, dtype=np.float64))[: -0 or None]
    size = 2 * 10**9
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = compressor.compress(bytes(2**20))
    body = chunk * (size // 2**20 // 1024)  # truncated stream of repeated blocks: never inflated anyway
    body += compressor.flush()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.npy", _npy(np.frombuffer(json.dumps(_parts(reference_model())[0]).encode(), np.uint8)))
    # append a member by hand, with a central directory that declares 2 GB uncompressed
    data = path.read_bytes()
    end = data.rindex(b"PK\x05\x06")
    directory_start = struct.unpack("<I", data[end + 16 : end + 20])[0]
    local_files, directory = data[:directory_start], data[directory_start:end]
    name = b"layer0.weights.npy"
    crc = 0
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(body), size, len(name), 0) + name
    offset = len(local_files)
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(body), size, len(name), 0, 0, 0, 0, 0, offset
        )
        + name
    )
    new_directory = directory + central
    directory_offset = offset + len(local) + len(body)
    record = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 2, 2, len(new_directory), directory_offset, 0)
    path.write_bytes(local_files + local + body + new_directory + record)
    del header
    return path


def hostile_model_files(folder: Path) -> dict[str, Path]:
    """description → a model file that ``nablanet.load`` must refuse."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def add(description: str, path: Path) -> None:
        files[description] = path

    (folder / "pickle.npz").write_bytes(pickle.dumps(Exploit()))
    add("a pickle renamed .npz", folder / "pickle.npz")
    buffer = io.BytesIO()
    np.save(buffer, np.array([Exploit()], dtype=object), allow_pickle=True)
    add("an object array as config", _zip(folder / "object-config.npz", {"config.npy": buffer.getvalue()}))
    document, arrays = _parts(reference_model())
    members = {"config.npy": _npy(np.frombuffer(json.dumps(document).encode(), np.uint8))}
    members.update({f"{name}.npy": _npy(value) for name, value in arrays.items()})
    add(
        "an object array as weights",
        _zip(folder / "object-weights.npz", {**members, "layer0.weights.npy": buffer.getvalue()}),
    )
    (folder / "random.npz").write_bytes(np.random.default_rng(0).bytes(5000))
    add("random bytes", folder / "random.npz")
    (folder / "empty.npz").write_bytes(b"")
    add("an empty file", folder / "empty.npz")
    (folder / "zip-magic-only.npz").write_bytes(b"PK\x03\x04" + bytes(40))
    add("a zip header and nothing else", folder / "zip-magic-only.npz")
    good = _write(folder / "good.npz", document, arrays).read_bytes()
    (folder / "truncated.npz").write_bytes(good[: len(good) // 2])
    add("a truncated archive", folder / "truncated.npz")
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF
    (folder / "flipped.npz").write_bytes(bytes(flipped))
    add("a flipped byte (CRC)", folder / "flipped.npz")
    add("a zip bomb (2 MB that inflates to 2 GB)", _bomb(folder))
    add("a member that is not .npy", _zip(folder / "not-npy.npz", {**members, "evil.py": b"import os"}))
    add(
        "a member in a subfolder",
        _zip(folder / "subfolder.npz", {**members, "../../escape.npy": members["config.npy"]}),
    )
    with zipfile.ZipFile(folder / "duplicate.npz", "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name: that is the point
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("layer0.weights.npy", members["layer0.weights.npy"])
    add("a member twice", folder / "duplicate.npz")
    encrypted = bytearray(_zip(folder / "tmp-enc.npz", members).read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := encrypted.find(signature, start)) >= 0:
            encrypted[start + flag_offset] |= 0x1
            start += 4
    (folder / "encrypted.npz").write_bytes(bytes(encrypted))
    (folder / "tmp-enc.npz").unlink()
    add("encrypted members", folder / "encrypted.npz")
    add("bzip2-compressed members", _zip(folder / "bzip2.npz", members, zipfile.ZIP_BZIP2))
    add("lzma-compressed members", _zip(folder / "lzma.npz", members, zipfile.ZIP_LZMA))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    huge_header = header.getvalue()
    add(
        "an .npy header declaring 8 TB",
        _zip(folder / "huge-header.npz", {**members, "layer0.weights.npy": huge_header}),
    )
    add(
        "an .npy header whose size is not the member's",
        _zip(folder / "short-member.npz", {**members, "layer0.weights.npy": members["layer0.weights.npy"][:-8]}),
    )
    big_endian = _npy(arrays["layer0.weights"].astype(">f8"))
    add("big-endian weights", _zip(folder / "big-endian.npz", {**members, "layer0.weights.npy": big_endian}))
    structured = _npy(np.zeros(3, dtype=[("a", "<f8")]))
    add("a structured array", _zip(folder / "structured.npz", {**members, "layer0.weights.npy": structured}))
    no_config = dict(members)
    no_config.pop("config.npy")
    add("no config", _zip(folder / "no-config.npz", no_config))
    add("a config that is not bytes", _zip(folder / "float-config.npz", {**members, "config.npy": _npy(np.ones(3))}))
    add(
        "a config that is not UTF-8",
        _zip(folder / "latin1.npz", {**members, "config.npy": _npy(np.frombuffer(b"\xff\xfe{", np.uint8))}),
    )
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    add(
        "a config nested 100,000 deep",
        _zip(folder / "deep.npz", {**members, "config.npy": _npy(np.frombuffer(deep, np.uint8))}),
    )
    add(
        "a config that is a list",
        _zip(folder / "list-config.npz", {**members, "config.npy": _npy(np.frombuffer(b"[1, 2]", np.uint8))}),
    )

    def variant(description, change):
        add(description, _variant(folder, description.replace(" ", "-").replace("'", "")[:40], change))

    variant("format version 99", lambda d, a: d.update(version=99))
    variant("another format", lambda d, a: d.update(format="keras"))
    variant("a checkpoint's kind", lambda d, a: d.update(kind="checkpoint"))
    variant("a missing array", lambda d, a: a.pop("layer0.weights"))
    variant("an extra array", lambda d, a: a.update({"layer9.weights": np.ones(2)}))
    variant("a wrong shape", lambda d, a: a.update({"layer0.weights": np.ones((5, 6))}))
    variant("a wrong dtype", lambda d, a: a.update({"layer0.weights": a["layer0.weights"].astype(np.float32)}))
    variant("a NaN weight", lambda d, a: a["layer3.weights"].__setitem__((0, 0), np.nan))
    variant("an infinite weight", lambda d, a: a["layer0.weights"].__setitem__((1, 1), np.inf))
    variant("an unknown layer", lambda d, a: d["layers"][1].update(type="Conv3D"))
    variant("a Python path as layer", lambda d, a: d["layers"][1].update(type="os.system"))
    variant("a layer type that is a list", lambda d, a: d["layers"][1].update(type=["ReLU"]))
    variant("an unknown layer argument", lambda d, a: d["layers"][0]["config"].update(code="rm -rf /"))
    variant("rng as a layer argument", lambda d, a: d["layers"][2]["config"].update(rng=0))
    variant("a dropout rate of 7", lambda d, a: d["layers"][2]["config"].update(rate=7))
    variant("a dropout rate of NaN", lambda d, a: d["layers"][2]["config"].update(rate=float("nan")))
    variant("a string layer size", lambda d, a: d["layers"][0]["config"].update(input_size="6"))
    variant("a boolean layer size", lambda d, a: d["layers"][0]["config"].update(output_size=True))
    variant("a negative layer size", lambda d, a: d["layers"][0]["config"].update(input_size=-6))
    variant("a Dense of 784 × 10⁹ (8 TB)", lambda d, a: d["layers"][0]["config"].update(output_size=10**9))
    variant("a Dense of 784 × 300,000 (1.9 GB)", lambda d, a: d["layers"][0]["config"].update(input_size=300_000))
    variant("an unknown dtype", lambda d, a: d["layers"][0]["config"].update(dtype="float16"))
    variant("an unknown softmax method", lambda d, a: d["layers"][4]["config"].update(method="magic"))
    variant("a layer config that is a list", lambda d, a: d["layers"][1].update(config=[1]))
    variant("layers that do not fit", lambda d, a: d["layers"].pop(0))
    variant("no layers", lambda d, a: d.update(layers=[]))
    variant("layers that are a dict", lambda d, a: d.update(layers={"0": "Dense"}))
    variant("metadata that is a list", lambda d, a: d.update(metadata=[1]))
    variant(
        "class names with a terminal escape", lambda d, a: d.update(metadata={"class_names": ["a", "\x1b[2Jb", "c"]})
    )
    variant("class names that do not match the outputs", lambda d, a: d.update(metadata={"class_names": ["a"]}))
    variant("a data-set name that is a list", lambda d, a: d.update(metadata={"dataset": ["mnist"]}))
    variant("a 100,000-long metadata list", lambda d, a: d.update(metadata={"notes": list(range(100_000))}))
    variant("duplicate class names", lambda d, a: d.update(metadata={"class_names": ["x", "x", "x"]}))
    variant("1,001 layers", lambda d, a: d["layers"].__setitem__(slice(1, 1), [{"type": "ReLU"}] * 996))

    def widen(document, arrays):  # Dense(6, 1,000,000) then 20 ReLUs: one sample makes 21 million numbers
        document["layers"] = [
            {
                "type": "Dense",
                "config": {"input_size": 6, "output_size": 1_000_000, "init": "notebook", "dtype": "float32"},
            }
        ] + [{"type": "ReLU"}] * 20
        arrays.clear()
        arrays["layer0.weights"] = np.zeros((1_000_000, 7), dtype=np.float32)

    variant("a model whose one sample makes 21 million numbers", widen)

    def image_model(*layers):
        """A model of a few kilobytes: ``layers`` (a Conv2D first, 1×1 and one filter unless said otherwise) on
        28×28 grey images, the convolution's weights all zero."""

        def change(document, arrays):
            document["layers"] = list(layers)
            arrays.clear()
            config = layers[0]["config"]
            arrays["layer0.weights"] = np.zeros((config["out_channels"], config["kernel_size"] ** 2 + 1))

        return change

    def conv(**config):
        base = {"in_channels": 1, "out_channels": 1, "kernel_size": 1, "input_shape": [1, 28, 28]}
        return {"type": "Conv2D", "config": {**base, **config}}

    variant(
        "a 1×1 convolution padded by 1,400, then a 2828×2828 average pool (39 hours of evaluation)",
        image_model(conv(padding=1400), {"type": "AvgPool2D", "config": {"pool_size": 2828, "stride": 1}}),
    )
    variant(
        "a 1×1 convolution padded by 3, then a 34×34 average pool (1,156 passes a batch)",
        image_model(conv(padding=3), {"type": "AvgPool2D", "config": {"pool_size": 34, "stride": 1}}),
    )
    variant(
        "a 1×1 convolution padded by 10³⁰ (more rows than NumPy can count)",
        image_model(conv(padding=10**30), {"type": "Flatten"}),
    )
    variant(
        "a Conv2D of 2,000 filters computed by the loop",
        image_model(conv(out_channels=2_000, method="loop"), {"type": "Flatten"}),
    )
    variant(
        "a 25×25 convolution of 4,000 filters (4 GFLOP a sample)",
        image_model(conv(out_channels=4_000, kernel_size=25, padding=12), {"type": "Flatten"}),
    )
    empty_members = {f"m{index}.npy": b"" for index in range(MAX_MEMBERS_PLUS_ONE)}
    add("10,001 members (read before the zip's directory)", _zip(folder / "many-members.npz", empty_members))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (2**45,)})
    add(
        "a config header declaring 32 TiB",
        _zip(folder / "config-header.npz", {**members, "config.npy": header.getvalue()}),
    )
    broken = bytearray(b"\x93NUMPY\x01\x00")
    text = b"{'descr': '<f8', 'fortran_order': False, 'shape': (5, 7, }"
    text = text.ljust(118 - len(broken) - 2 + 10) + b"\n"
    broken += struct.pack("<H", len(text)) + text
    add(
        "an .npy header with an unbalanced parenthesis",
        _zip(folder / "unbalanced.npz", {**members, "layer0.weights.npy": bytes(broken)}),
    )
    deflated = bytearray(_write(folder / "tmp-deflated.npz", document, arrays).read_bytes())
    start = deflated.index(b"layer0.weights.npy") + len("layer0.weights.npy") + 40
    deflated[start : start + 16] = bytes(16)
    (folder / "corrupt-deflate.npz").write_bytes(bytes(deflated))
    (folder / "tmp-deflated.npz").unlink()
    add("a corrupt deflate stream", folder / "corrupt-deflate.npz")
    return files


def hostile_checkpoint_files(folder: Path) -> dict[str, Path]:
    """description → a checkpoint file that ``load_checkpoint`` must refuse."""
    folder.mkdir(parents=True, exist_ok=True)
    model = reference_model()
    optimizer = nn.Adam(0.01)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 40)), nn.one_hot(rng.integers(0, 3, 40), 3)
    stopper = nn.EarlyStopping(patience=5)
    checkpoint = Checkpoint(
        None, optimizer=optimizer, rng=rng, history=nn.History(), settings={"epochs": 2}, early_stopping=stopper
    )
    model.fit(
        X,
        Y,
        epochs=2,
        batch_size=10,
        optimizer=optimizer,
        rng=rng,
        validation_split=0.25,
        callbacks=[stopper, checkpoint],
        history=checkpoint.history,
    )
    config, arrays = checkpoint.snapshot

    def variant(description, change):
        document, changed = json.loads(json.dumps(config)), {key: value.copy() for key, value in arrays.items()}
        change(document, changed)
        path = folder / (description.replace(" ", "-")[:40] + ".npz")
        write_archive(path, "checkpoint", document, changed)
        files[description] = path

    files: dict[str, Path] = {}
    variant("an unknown optimizer", lambda d, a: d["optimizer"].update(type="os.system"))
    variant("an optimizer argument that is code", lambda d, a: d["optimizer"]["config"].update(code="x"))
    variant("an unknown schedule", lambda d, a: d["optimizer"]["schedule"].update(type="eval"))
    variant("optimizer state of the wrong shape", lambda d, a: a.update({"optimizer.0.m": np.ones((2, 2))}))
    variant("optimizer state names not Adam's", lambda d, a: d["optimizer"].update(state_keys=[["velocity"]] * 2))
    variant("optimizer state for 5 parameters", lambda d, a: d["optimizer"].update(state_keys=[["m", "v"]] * 5))
    variant("an infinite epoch", lambda d, a: d.update(epoch=float("inf")))
    variant("a negative epoch", lambda d, a: d.update(epoch=-2))
    variant("a history longer than the epochs", lambda d, a: d["history"].update(loss=[1.0] * 9))
    variant("a history that is a number", lambda d, a: d["history"].update(loss=5))
    variant("a history holding strings", lambda d, a: d["history"].update(loss=["1.0", "x"]))
    variant("a history holding NaN", lambda d, a: d["history"].update(loss=[float("nan")]))
    variant("a history of unknown figures", lambda d, a: d["history"].update(cost=[1.0]))
    variant("a random state of 2**200", lambda d, a: d["rng"]["state"].update(state=2**200))
    variant("a random state that is a string", lambda d, a: d.update(rng="seed"))
    variant("dropout states that are a list", lambda d, a: d.update(dropout_rngs=[1]))
    variant("a dropout state for a Dense layer", lambda d, a: d.update(dropout_rngs={"0": d["rng"]}))
    variant("an early-stopping weight of shape (1,)", lambda d, a: a.update({"early_stopping.0": np.zeros(1)}))
    variant("a NaN early-stopping weight", lambda d, a: a["early_stopping.0"].__setitem__((0, 0), np.nan))
    variant("a missing early-stopping weight", lambda d, a: a.pop("early_stopping.0"))
    variant("a stray array", lambda d, a: a.update({"payload": np.ones(3)}))
    variant("stopped_early that is a string", lambda d, a: d.update(stopped_early="yes"))
    return files


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def hostile_images(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """description → (an image file, the message expected, or None if it must be classified)."""
    folder.mkdir(parents=True, exist_ok=True)
    images: dict[str, tuple[Path, str | None]] = {}

    def add(description, name, writer, expected):
        path = folder / name
        writer(path)
        images[description] = (path, expected)

    def digit(size=140):
        canvas = np.zeros((size, size), dtype=np.uint8)
        canvas[size // 5 : 4 * size // 5, size // 2 - size // 20 : size // 2 + size // 20] = 255  # a "1"
        return canvas

    not_an_image = "not an image in a format nablanet reads"
    add("a text file named .png", "notes.png", lambda p: p.write_text("hello"), not_an_image)
    add("an empty file", "empty.png", lambda p: p.write_bytes(b""), not_an_image)
    add("random bytes", "random.jpg", lambda p: p.write_bytes(np.random.default_rng(1).bytes(3000)), not_an_image)
    add("an SVG", "digit.svg", lambda p: p.write_text("<svg xmlns='http://www.w3.org/2000/svg'></svg>"), not_an_image)
    add(
        "an EPS (would run Ghostscript)",
        "digit.eps",
        lambda p: p.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"),
        not_an_image,
    )
    add("a PDF", "digit.pdf", lambda p: p.write_bytes(b"%PDF-1.4\n%%EOF\n"), not_an_image)
    add("an ICO", "digit.ico", lambda p: Image.fromarray(digit(32)).save(p, format="ICO"), not_an_image)
    add(
        "a PNG cut in half",
        "truncated.png",
        lambda p: (
            Image.fromarray(np.random.default_rng(2).integers(0, 255, (140, 140), dtype=np.uint8)).save(p),
            p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        ),
        "not a readable image",
    )
    add(
        "a PNG of 100,000 × 100,000 pixels (a decompression bomb)",
        "bomb.png",
        lambda p: p.write_bytes(_png_header(100_000, 100_000)),
        "pixels nablanet decodes",
    )
    add(
        "a PNG of 10,000 × 5,000 pixels declared, 40 bytes long",
        "wide.png",
        lambda p: p.write_bytes(_png_header(10_000, 5_000)),
        "pixels nablanet decodes",
    )
    add("a blank white image", "white.png", lambda p: Image.new("L", (40, 40), 255).save(p), "the image is blank")
    add("a blank black image", "black.png", lambda p: Image.new("L", (40, 40), 0).save(p), "the image is blank")
    add(
        "a fully transparent image",
        "transparent.png",
        lambda p: Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(p),
        "the image is blank",
    )
    add("a folder named like an image", "folder.png", lambda p: p.mkdir(), "not a regular file")
    add("a 1 × 1 image", "dot.png", lambda p: Image.new("L", (1, 1), 255).save(p), "the image is blank")
    add("a digit, 8-bit grey", "one.png", lambda p: Image.fromarray(digit()).save(p), None)
    add(
        "a digit, 16-bit grey (scaled, not clipped)",
        "one16.png",
        lambda p: Image.fromarray(digit().astype(np.uint16) * 257).save(p),
        None,
    )
    add(
        "a digit, 16-bit, faint (ink at 1,000 of 65,535)",
        "faint16.png",
        lambda p: Image.fromarray((digit() > 0).astype(np.uint16) * 1000).save(p),
        None,
    )
    add(
        "a digit, 32-bit float TIFF in [0, 1]",
        "float.tiff",
        lambda p: Image.fromarray((digit() / 255).astype(np.float32), mode="F").save(p),
        None,
    )
    add(
        "a digit, 32-bit float TIFF in [-5, 300]",
        "float-range.tiff",
        lambda p: Image.fromarray((digit() / 255 * 305 - 5).astype(np.float32), mode="F").save(p),
        None,
    )
    add(
        "a black digit on a transparent background",
        "ink-in-alpha.png",
        lambda p: Image.fromarray(np.dstack([np.zeros_like(digit())] * 3 + [digit()]), mode="RGBA").save(p),
        None,
    )
    add(
        "a white digit on a transparent background",
        "white-ink-in-alpha.png",
        lambda p: Image.fromarray(np.dstack([np.full_like(digit(), 255)] * 3 + [digit()]), mode="RGBA").save(p),
        None,
    )
    add(
        "a dark digit on white paper, JPEG",
        "paper.jpg",
        lambda p: Image.fromarray(255 - digit()).save(p, quality=90),
        None,
    )
    add("a digit in a palette GIF", "one.gif", lambda p: Image.fromarray(digit()).convert("P").save(p), None)
    add("a digit as a CMYK JPEG", "cmyk.jpg", lambda p: Image.fromarray(digit()).convert("CMYK").save(p), None)
    add("a digit as a 1-bit BMP", "one.bmp", lambda p: Image.fromarray(digit()).convert("1").save(p), None)
    add("a digit as WebP", "one.webp", lambda p: Image.fromarray(digit()).save(p, lossless=True), None)
    return images
