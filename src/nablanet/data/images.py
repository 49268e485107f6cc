"""Pictures as model input: any PNG, JPEG, BMP, GIF, WebP or TIFF made to look like the data set's images.

An image file is untrusted input. :func:`read_grey` opens only the formats above, recognised by their
content (not the file name); refuses a file over ``MAX_FILE_BYTES`` or a picture over ``MAX_PIXELS``
before decoding it (decompression bombs); and turns every pixel format into grey levels in [0, 1] by
scaling, never by clipping (16-bit and floating-point images included). A digit drawn on a
transparent background has its ink in the alpha channel, and that is what is read.

Then a style makes it look like the data set (``image_style`` of the data set's registry entry):

* ``"digit"`` (MNIST): light ink on dark, its strongest ink made 1 (a faint pencil stroke counts as much
  as a marker's), cropped to the ink, scaled to fit a 20×20 box and centred by its centre of mass in
  28×28 — how MNIST's digits were made;
* ``"object"`` (Fashion-MNIST): light on dark, cropped to the object, its longer side scaled to 28 and
  centred in 28×28; a picture that already is 28×28 is taken as it is.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .idx import DatasetError

SIZE, BOX = 28, 20  # MNIST: digits fitted in a 20×20 box, centred by centre of mass in 28×28
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
MAX_PIXELS = 40_000_000  # 40 megapixels: any photograph; decoding more could take gigabytes
MAX_FILE_BYTES = 100 * 2**20
MAX_JPEG_SCANS = 64  # a progressive JPEG has about 10; each scan is a pass over the whole picture when decoded
STYLES = ("digit", "object")
_STDERR_LOCK = threading.Lock()


def _jpeg_scans(opened: Path | io.BytesIO) -> int:
    """How many scans a JPEG file has: its start-of-scan markers (FF DA), counted without decoding. (Inside a
    scan's data every FF byte is followed by 00 or a restart marker, so FF DA is never data.)"""
    count, previous = 0, b""
    with contextlib.ExitStack() as stack:
        stream = opened if isinstance(opened, io.BytesIO) else stack.enter_context(open(opened, "rb"))
        position = stream.tell()
        stream.seek(0)
        while chunk := stream.read(2**20):
            count += (previous + chunk).count(b"\xff\xda")
            previous = chunk[-1:]
        stream.seek(position)
    return count


def read_grey(source, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The picture at ``source`` — a file path, or a file's bytes (an upload) — as grey levels in [0, 1]
    (a 2-D float64 array), ink light on dark.

    A picture whose border is light (dark ink on paper) is inverted; one with a transparent background
    is read from its alpha channel. A ``DatasetError`` for anything that is not such a picture, or one of
    more than ``max_pixels`` pixels (read from its header, before decoding).
    """
    opened: Path | io.BytesIO
    if isinstance(source, (bytes, bytearray)):
        path: Path | str = "the picture"
        size, opened = len(source), io.BytesIO(source)
    else:
        path = opened = Path(source)
        info = path.stat()  # FileNotFoundError for a missing file
        if not stat.S_ISREG(info.st_mode):
            raise DatasetError(f"{path}: not a regular file")
        size = info.st_size
    if size > MAX_FILE_BYTES:
        raise DatasetError(f"{path}: {size / 2**20:.0f} MiB is more than an image nablanet reads")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(opened, formats=FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise DatasetError(
                        f"{path}: {width}×{height} is more than the {max_pixels:,} pixels nablanet decodes"
                    )
                if width == 0 or height == 0:
                    raise DatasetError(f"{path}: the image is empty")
                # JPEG, and MPO (JPEG frames one after the other, as cameras write them): scans counted first
                if image.format in ("JPEG", "MPO") and (scans := _jpeg_scans(opened)) > MAX_JPEG_SCANS:
                    raise DatasetError(
                        f"{path}: a JPEG of {scans:,} scans, more than the {MAX_JPEG_SCANS} nablanet decodes"
                    )
                with _c_library_quiet() if image.format == "TIFF" else contextlib.nullcontext():
                    image.seek(0)  # the first frame of an animation
                    image = ImageOps.exif_transpose(image)  # a phone photo the right way up
                    grey, alpha = _grey_and_alpha(image)
    except UnidentifiedImageError:
        raise DatasetError(f"{path}: not an image in a format nablanet reads ({', '.join(FORMATS)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DatasetError(f"{path}: the picture is more than the {max_pixels:,} pixels nablanet decodes") from None
    except Exception as error:  # a hostile file reaches odd corners of the decoders (TypeError, struct.error, …)
        if isinstance(error, (DatasetError, FileNotFoundError)):
            raise
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise DatasetError(f"{path}: not a readable image ({reason})") from None
    if alpha is not None and alpha.max() > alpha.min():
        return alpha  # strokes drawn on a transparent background: the ink is where it is opaque
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 1.0 - grey if border.mean() > 0.5 else grey


@contextlib.contextmanager
def _c_library_quiet() -> Iterator[None]:
    """Send what libtiff prints straight to file descriptor 2 to /dev/null while a TIFF is decoded: a broken
    picture gets nablanet's one line, not the decoder's complaints besides. File descriptor 2 belongs to the
    whole process, so threads (the playground's requests) take turns — for TIFF only: the other decoders
    print nothing, and a slow decode of theirs must not make every other request wait."""
    with _STDERR_LOCK:
        yield from _stderr_to_devnull()


def _stderr_to_devnull() -> Iterator[None]:
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _grey_and_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey levels and alpha in [0, 1], scaled from whatever range the pixel format has."""
    mode = image.mode
    alpha = None
    if "A" in image.getbands() or (mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float64) / 255.0
    if mode.startswith("I;16"):
        grey = np.asarray(image, dtype=np.float64) / 65535.0
    elif mode == "I":  # 32-bit integers: 16-bit PNGs often arrive so
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max() <= 65535 else float(values.max())
        grey = np.clip(values, 0, None) / top
    elif mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("NaN or inf pixels")
        low, high = float(values.min()), float(values.max())
        grey = values if low >= 0 and high <= 1 else (values - low) / (high - low or 1.0)
    else:
        grey = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    return grey, alpha


def _ink_box(grey: np.ndarray, path) -> np.ndarray:
    ink = grey > 0.2 * grey.max() if grey.max() > 0 else np.zeros(grey.shape, dtype=bool)
    if not ink.any():
        raise DatasetError(f"{path}: the image is blank: nothing to classify")
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return grey[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def _resize(grey: np.ndarray, longer_side: int) -> np.ndarray:
    scale = longer_side / max(grey.shape)
    height, width = (max(1, round(side * scale)) for side in grey.shape)
    small = Image.fromarray(grey.astype(np.float32), mode="F").resize((width, height), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(small, dtype=np.float64), 0.0, 1.0)  # Lanczos overshoots a little at edges


def load_image(source, style: str = "digit", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a picture (a path or a file's bytes, as :func:`read_grey`) and make it look like the data
    set's images (``style``: "digit" or "object").

    Returns a (784, 1) column in [0, 1]: the notebooks' one-sample batch.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, received: {style!r}")
    grey = read_grey(source, max_pixels)
    path = source if not isinstance(source, (bytes, bytearray)) else "the picture"
    if style == "object" and grey.shape == (SIZE, SIZE):
        if not grey.any():
            raise DatasetError(f"{path}: the image is blank: nothing to classify")
        return grey.reshape(SIZE * SIZE, 1)
    box = _ink_box(grey, path)
    if style == "digit":
        box = box / box.max()  # MNIST's strokes are at full intensity, however the picture was drawn
    picture = _resize(box, BOX if style == "digit" else SIZE)
    height, width = picture.shape
    canvas = np.zeros((SIZE, SIZE))
    if style == "digit":
        total = picture.sum()
        centre_row = (picture.sum(axis=1) @ np.arange(height)) / total if total else height / 2
        centre_column = (picture.sum(axis=0) @ np.arange(width)) / total if total else width / 2
        top = int(np.clip(round(SIZE / 2 - centre_row), 0, SIZE - height))
        left = int(np.clip(round(SIZE / 2 - centre_column), 0, SIZE - width))
    else:
        top, left = (SIZE - height) // 2, (SIZE - width) // 2
    canvas[top : top + height, left : left + width] = picture
    return canvas.reshape(SIZE * SIZE, 1)
