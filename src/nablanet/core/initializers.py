"""Weight initialisers for :class:`~nablanet.Dense`, chosen by name.

Each returns the full (output_size, input_size + 1) matrix W̃ = [W | b] of the bias trick.

========================  ===========================================  ======
name                      weights W                                    bias b
========================  ===========================================  ======
``"notebook"``            0.01 · N(0, 1)  (the course notebook)        0.01
``"he_normal"``           N(0, 2 / fan_in)                             0
``"he_uniform"``          U(−√(6 / fan_in), +√(6 / fan_in))            0
``"glorot_normal"``       N(0, 2 / (fan_in + fan_out))                 0
``"glorot_uniform"``      U(−√(6 / (fan_in + fan_out)), +…)            0
========================  ===========================================  ======

He suits ReLU-family hidden layers, Glorot suits sigmoid/tanh; the notebook's tiny weights are kept
as the default so that the notebook's softmax classifier is reproduced.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .parameter import zeros
from .registry import Registry

INITIALIZERS: Registry = Registry("init")


@INITIALIZERS.register("notebook")
def _notebook(rng, fan_in, fan_out):
    return 0.01 * rng.standard_normal((fan_out, fan_in)), 0.01


@INITIALIZERS.register("he_normal")
def _he_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_out, fan_in)), 0.0


@INITIALIZERS.register("he_uniform")
def _he_uniform(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, (fan_out, fan_in)), 0.0


@INITIALIZERS.register("glorot_normal")
def _glorot_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), (fan_out, fan_in)), 0.0


@INITIALIZERS.register("glorot_uniform")
def _glorot_uniform(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_out, fan_in)), 0.0


def initialize(
    name: str, input_size: int, output_size: int, rng: np.random.Generator, dtype, order: Literal["C", "F"] = "C"
) -> np.ndarray:
    """Return W̃ of shape (output_size, input_size + 1), bias in the last column, laid out in memory in ``order``
    (only its shape inside :func:`~nablanet.core.parameter.shapes_only`).

    >>> initialize("notebook", 3, 2, np.random.default_rng(0), np.float64)[:, -1]
    array([0.01, 0.01])
    """
    initializer = INITIALIZERS.lookup(name, argument="init")
    full = zeros((output_size, input_size + 1), dtype, order)
    if not full.flags.writeable:  # inside shapes_only(): the shape is all that is wanted
        return full
    weights, bias = initializer(rng, input_size, output_size)
    full[:, :-1] = weights
    full[:, -1] = bias
    return full
