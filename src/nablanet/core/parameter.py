"""A trainable array, its gradient, and the part of it that weight decay may touch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class Parameter:
    """A trainable array ``value``, the gradient ∇ L of the last backward pass (same shape), and
    ``decay_index``, the entries that L2 weight decay applies to: for a Dense layer every column of
    W̃ but the last, so that the bias is never decayed.

    Optimizers update ``value`` in place and keep their state (momentum, Adam's moments) per
    Parameter object, so layers hand out the same objects for their whole life.
    """

    name: str
    value: np.ndarray
    gradient: np.ndarray
    decay_index: tuple = (slice(None),)
