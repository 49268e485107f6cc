"""Argument checks shared by the library: each error names the argument and what was expected."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, received: {value!r}")
    return int(value)


def positive_float(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < math.inf:
        raise ValueError(f"{name} must be a positive finite number, received: {value!r}")
    return float(value)


def layer_sizes(name: str, value: Any) -> tuple[int, ...]:
    """Return ``value`` if it is a tuple of layer sizes (units, or filters: positive integers), else raise
    ``ValueError`` naming ``name``."""
    if not isinstance(value, tuple) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in value
    ):
        raise ValueError(f"{name} must be positive sizes, received {value!r:.60}")
    return value


def non_negative_int(name: str, value: Any) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` unless it is an integer ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an integer ≥ 0, received: {value!r}")
    return int(value)


def non_negative_float(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is finite and ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) < math.inf:
        raise ValueError(f"{name} must be a finite number ≥ 0, received: {value!r}")
    return float(value)


def int_in_range(name: str, value: Any, low: int, high: int, *, high_name: str | None = None) -> int:
    """Return ``value`` as an int if it lies in [low, high], else raise ``ValueError`` (``high_name`` names
    what the upper bound is, e.g. ``"epochs"``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= int(value) <= high:
        upper = f"{high_name} = {high}" if high_name else f"{high}"
        raise ValueError(f"{name} must be an integer in [{low}, {upper}], received: {value!r}")
    return int(value)


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of the strings ``choices``, else raise ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, received: {value!r}")
    return value


def one_of(name: str, value: Any, choices: tuple) -> Any:
    """Return ``value`` if it equals one of ``choices`` (of any type), else raise ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, received: {value!r}")
    return value


def fraction(name: str, value: Any, *, upper_inclusive: bool = False) -> float:
    """Return ``value`` if it lies in [0, 1) (or [0, 1]), else raise ``ValueError``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value) >= 0
    ok = ok and (float(value) <= 1 if upper_inclusive else float(value) < 1)
    if not ok:
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}, received: {value!r}")
    return float(value)


def float_dtype(name: str, dtype) -> np.dtype:
    """Return ``dtype`` as a NumPy dtype if it is float32 or float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, received: {dtype!r}")
    return resolved


def matrix(name: str, array, *, rows: int | None = None, finite: bool = True) -> np.ndarray:
    """Check that ``array`` is a 2-D float array (features, batch), optionally with ``rows`` rows."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, received: {type(array).__name__}")
    if array.ndim != 2:
        column = f": one sample is a column, {name}[:, None]" if array.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D (features, batch) matrix, received shape {array.shape}{column}")
    if rows is not None and array.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows (features, batch), received shape {array.shape}")
    if array.dtype.kind != "f":
        raise ValueError(f"{name} must hold floating-point numbers, received dtype {array.dtype}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no samples: it needs at least one column")
    if finite and not all_finite(array):
        raise ValueError(f"{name} contains NaN or inf")
    return array


def features_first(name: str, array, *, rows: int | None = None, finite: bool = True) -> np.ndarray:
    """Check that ``array`` is a (features, b) matrix, as :func:`matrix` does, or a (features, T, b) batch of
    sequences (T positions of b sequences), optionally with ``rows`` features."""
    if not isinstance(array, np.ndarray) or array.ndim != 3:
        return matrix(name, array, rows=rows, finite=finite)
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no positions: a (features, T, b) batch needs T ≥ 1, received shape {array.shape}")
    if rows is not None and array.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} features (features, T, batch), received shape {array.shape}")
    matrix(name, array[:, 0, :], finite=False)  # the dtype and the samples
    if finite and not all_finite(array):
        raise ValueError(f"{name} contains NaN or inf")
    return array


def token_ids(name: str, array, vocabulary_size: int) -> np.ndarray:
    """Check that ``array`` is a (T, b) float or integer array of token ids — whole numbers in
    [0, vocabulary_size) — and return them as integers (``numpy.intp``), for indexing."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of token ids, received: {type(array).__name__}")
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty (T, batch) matrix of token ids, received shape {array.shape}")
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold token ids (whole numbers), received dtype {array.dtype}")
    if array.dtype.kind == "f" and not all_finite(array):
        raise ValueError(f"{name} must hold token ids (whole numbers), received NaN or inf")
    low, high = array.min(), array.max()
    if low < 0 or high >= vocabulary_size:
        raise ValueError(f"{name} must hold token ids in [0, {vocabulary_size}), received ids from {low:g} to {high:g}")
    ids = array.astype(np.intp)
    if array.dtype.kind == "f" and not np.array_equal(ids, array):
        raise ValueError(f"{name} must hold whole numbers (token ids), received fractions")
    return ids


def all_finite(array: np.ndarray) -> bool:
    """True if no entry is NaN or ±inf. A finite sum proves it without a temporary array as large as
    the data (NaN and inf propagate through a sum); only a sum that overflows needs the full check."""
    with np.errstate(over="ignore", invalid="ignore"):  # a sum that overflows is a question, not a warning
        return bool(np.isfinite(np.sum(array))) or bool(np.isfinite(array).all())


def image_shape(name: str, shape: Any) -> tuple[int, int, int]:
    """Return ``shape`` as a tuple (C, H, W) of three positive integers; ``name`` is the layer that needs it."""
    if shape is None:
        raise ValueError(f"{name} needs its input_shape (C, H, W): give input_shape=… to the first layer")
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 3
        or not all(
            isinstance(size, numbers.Integral) and not isinstance(size, bool) and int(size) > 0 for size in shape
        )
    ):
        raise ValueError(f"input_shape must be three positive integers (C, H, W), received: {shape!r}")
    channels, height, width = (int(size) for size in shape)
    return channels, height, width


def gradient(name: str, array: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Check that ``array`` is a NumPy array of ``shape`` — the gradient of an output of that shape, as a
    layer's ``backward`` receives it; ``name`` is the method that checks (``"Dense.backward"``)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name}: output_gradient must be a NumPy array, received: {type(array).__name__}")
    if array.shape != shape:
        raise ValueError(
            f"{name}: output_gradient must have the shape of the layer's output {shape}, received {array.shape}"
        )
    return array


def same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, received {a.shape} and {b.shape}")


def labels(name: str, values, num_classes: int) -> np.ndarray:
    """Check integer class labels in [0, num_classes) and return them as a 1-D int array."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class labels, received shape {array.shape}")
    integral = array.dtype.kind in "iu" or (
        array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array))
    )
    if array.size and not integral:
        raise ValueError(f"{name} must hold integer class labels, received dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        bad = array[(array < 0) | (array >= num_classes)][0]
        raise ValueError(f"{name} must lie in [0, {num_classes}), received label {bad}")
    return array
