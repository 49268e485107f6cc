"""Turning a picture of a digit (PNG, JPEG, any size) into an MNIST-like 784-pixel column."""

from __future__ import annotations

import numpy as np
from PIL import Image, UnidentifiedImageError

from .idx import DatasetError

SIZE, BOX = 28, 20  # MNIST: digits fitted in a 20×20 box, centred by centre of mass in 28×28


def load_digit(path) -> np.ndarray:
    """Read an image as MNIST does its digits: grey levels, light ink on a dark background (a dark-on-light
    picture is inverted), cropped to the ink, scaled to fit 20×20, centred by centre of mass in 28×28,
    pixels in [0, 1]. Returns a (784, 1) column.
    """
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.float64)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise DatasetError(f"{path}: not a readable image ({error})") from None
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 127:
        grey = 255.0 - grey
    ink = grey > 0.2 * grey.max() if grey.max() > 0 else np.zeros_like(grey, dtype=bool)
    if not ink.any():
        raise DatasetError(f"{path}: the image is blank: no digit found")
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    cropped = grey[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    scale = BOX / max(cropped.shape)
    height, width = (max(1, round(side * scale)) for side in cropped.shape)
    small = Image.fromarray(cropped.astype(np.uint8)).resize((width, height), Image.Resampling.LANCZOS)
    digit = np.asarray(small, dtype=np.float64)
    canvas = np.zeros((SIZE, SIZE))
    total = digit.sum()
    centre_row = (digit.sum(axis=1) @ np.arange(height)) / total if total else height / 2
    centre_column = (digit.sum(axis=0) @ np.arange(width)) / total if total else width / 2
    top = int(np.clip(round(SIZE / 2 - centre_row), 0, SIZE - height))
    left = int(np.clip(round(SIZE / 2 - centre_column), 0, SIZE - width))
    canvas[top : top + height, left : left + width] = digit
    return (canvas / 255.0).reshape(SIZE * SIZE, 1)
