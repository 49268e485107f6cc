"""A trainable array, its gradient, and the part of it that weight decay may touch; and a layer's
non-trainable state (a :class:`Buffer`), saved with the model but never trained."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

_SHAPES_ONLY = contextvars.ContextVar("shapes_only", default=False)


@dataclass(eq=False)
class Parameter:
    """A trainable array ``value``, the gradient ∇ L of the last backward pass (same shape), and
    ``decay_index``, the entries that L2 weight decay applies to: for a Dense layer every column of
    W̃ but the last, so that the bias is never decayed.

    Optimizers update ``value`` in place and keep their state (momentum, Adam's moments) per
    Parameter object, so layers hand out the same objects for their whole life.

    ``order`` is how ``value`` and ``gradient`` lie in memory — ``"C"``, row by row, or ``"F"``, column by
    column, as a Dense layer's W̃ does — and so how the arrays of a model file or a checkpoint are laid out when
    they are read into it.
    """

    name: str
    value: np.ndarray
    gradient: np.ndarray
    decay_index: tuple = (slice(None),)
    order: Literal["C", "F"] = "C"


@dataclass(eq=False)
class Buffer:
    """A layer's non-trainable state, ``value``, saved and loaded with its parameters: BatchNorm's running mean
    and variance. It has no gradient, so no optimizer and no weight decay ever touches it.

    A layer changes it by assignment, ``buffer.value = new``, never in place: a shallow copy of the layer that
    runs inference at the same time (:func:`nablanet.core.layers.outputs`) then reads either the old array or
    the new one, never one half written.
    """

    name: str
    value: np.ndarray


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Inside this block, :func:`zeros` — and so every layer's initial weights — costs no memory: a layer
    built here has parameters of the right shapes and dtypes, read-only and all zero. That is how the
    arrays a model file must hold are worked out from its config alone, before anything is allocated
    (:func:`nablanet.core.layers.parameter_specs`)."""
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def zeros(shape: tuple[int, ...], dtype, order: Literal["C", "F"] = "C") -> np.ndarray:
    """``np.zeros(shape, dtype, order)``; inside :func:`shapes_only`, a read-only stand-in of that shape and dtype
    that holds one number (every entry a view of it)."""
    return full(shape, 0, dtype, order)


def full(shape: tuple[int, ...], value: float, dtype, order: Literal["C", "F"] = "C") -> np.ndarray:
    """``np.full(shape, value, dtype, order)`` — e.g. BatchNorm's γ = 1 —; inside :func:`shapes_only`, a
    read-only stand-in as :func:`zeros` makes."""
    try:
        if _SHAPES_ONLY.get():
            return np.broadcast_to(np.full((), value, dtype), shape)
        return np.full(shape, value, dtype, order)
    except ValueError:  # NumPy's "maximum allowed dimension exceeded", "array is too big"
        raise ValueError(f"an array of shape {shape} is larger than NumPy can hold") from None
