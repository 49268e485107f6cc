"""Preparing data the notebook's way: one-hot labels, min-max scaling, shuffled batch indices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks


def one_hot(labels, num_classes: int, dtype=np.float64) -> np.ndarray:
    """One-hot encode integer labels as a (num_classes, b) matrix, one column per sample.

    Args:
        labels (array of int): The class of each sample, 0 … num_classes − 1.
        num_classes: The rows of the result.
        dtype (numpy.float32 | numpy.float64): Of the result.

    >>> one_hot([2, 0], 3)
    array([[0., 1.],
           [0., 0.],
           [1., 0.]])
    """
    num_classes = _checks.positive_int("num_classes", num_classes)
    labels = _checks.labels("labels", labels, num_classes)
    encoded = np.zeros((num_classes, labels.size), dtype=_checks.float_dtype("dtype", dtype))
    encoded[labels, np.arange(labels.size)] = 1
    return encoded


@dataclass(frozen=True)
class MinMaxScaler:
    """The notebook's scaling x ← (x − xmin) / (xmax − xmin), with xmin and xmax from the training data.

    Fit on the training set, then apply the same ``minimum``/``maximum`` to the test set.
    """

    minimum: float
    maximum: float

    @classmethod
    def fit(cls, data: np.ndarray) -> MinMaxScaler:
        data = np.asarray(data)
        if data.size == 0:
            raise ValueError("data must not be empty")
        minimum, maximum = float(data.min()), float(data.max())
        if not np.isfinite([minimum, maximum]).all():
            raise ValueError("data contains NaN or inf")
        if maximum == minimum:
            raise ValueError(f"data must not be constant, every value is {minimum}")
        return cls(minimum, maximum)

    def transform(self, data: np.ndarray, dtype=np.float64) -> np.ndarray:
        dtype = _checks.float_dtype("dtype", dtype)
        scaled = np.subtract(data, dtype.type(self.minimum), dtype=dtype)  # one new array; data is not changed
        scaled *= 1.0 / (self.maximum - self.minimum)
        return scaled


def generate_batch_indices(num_samples: int, batch_size: int, rng=None) -> list[np.ndarray]:
    """A random permutation of range(num_samples) split into batches of ``batch_size`` (the last may be smaller).

    Args:
        num_samples: N, the columns of the data.
        batch_size: b, the size of every batch but the last.
        rng (int | numpy.random.Generator | None): Seed or generator of the permutation.

    >>> [batch.size for batch in generate_batch_indices(10, 4, np.random.default_rng(0))]
    [4, 4, 2]
    """
    num_samples = _checks.positive_int("num_samples", num_samples)
    batch_size = _checks.positive_int("batch_size", batch_size)
    order = np.random.default_rng(rng).permutation(num_samples)
    return np.split(order, np.arange(batch_size, num_samples, batch_size))
