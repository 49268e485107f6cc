"""Fused loops for the optimizers' element-wise updates, compiled by numba when it is installed.

NumPy runs an update such as Adam's as a dozen whole-array passes — one per operation, each reading and
writing every entry again. A loop compiled by numba (the ``fast`` extra: ``pip install 'nablanet[fast]'``)
does all of them for one entry before it moves to the next: one pass over memory. Each kernel here is the
same arithmetic, in the same order, as the NumPy code beside it in :mod:`nablanet.core.optimizers` (which
is its reference, and what runs without numba), so the two give bit-identical results; the tests check it.

``NABLANET_KERNELS=0`` in the environment turns the kernels off. numba is imported, and each kernel
compiled (then cached on disk), the first time an optimizer step needs it, so that ``import nablanet``
stays fast.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable

import numpy as np


def enabled() -> bool:
    """Whether the fused kernels are used: numba is installed and ``NABLANET_KERNELS`` is not ``0``."""
    return _numba_installed() and os.environ.get("NABLANET_KERNELS", "1") != "0"


@functools.cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def adam_loop(w, g, m, v, beta1, beta2, step, epsilon_hat):
    """One Adam step for every entry i of the flat arrays w, g, m, v (see ``Adam.update`` for the algebra):

    m ← (m − g) β₁ + g,  v ← (v − g²) β₂ + g²,  w ← w + step · m / (√v + ε̂).
    """
    for i in range(w.size):
        gi = g[i]
        square = gi * gi
        mi = (m[i] - gi) * beta1 + gi
        vi = (v[i] - square) * beta2 + square
        m[i] = mi
        v[i] = vi
        w[i] += step * (mi / (np.sqrt(vi) + epsilon_hat))


@functools.cache
def compiled(loop: Callable) -> Callable:
    """``loop`` compiled by numba: no bounds checks, NumPy's floating-point semantics (a division by zero
    gives inf, as in NumPy, instead of raising), the GIL released (the playground trains in threads)."""
    import numba

    return numba.njit(boundscheck=False, error_model="numpy", nogil=True, cache=True)(loop)


def fusable(*arrays: np.ndarray) -> bool:
    """Whether a kernel can run on these arrays in place: all C-contiguous, of one float dtype."""
    return all(array.flags.c_contiguous and array.dtype == arrays[0].dtype for array in arrays)


def adam(w, g, m, v, beta1, beta2, step, epsilon_hat) -> None:
    """Run the compiled :func:`adam_loop` on the arrays (any shape), the scalars in their dtype."""
    scalar = w.dtype.type
    compiled(adam_loop)(
        w.reshape(-1),
        g.reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        scalar(beta1),
        scalar(beta2),
        scalar(step),
        scalar(epsilon_hat),
    )
