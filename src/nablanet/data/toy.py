"""Two-dimensional toy data sets — points in the plane, a class or a number each — for seeing what a
network learns over the whole plane.

Each generator is registered in ``TOY_DATASETS`` under the name the playground and
:func:`toy_dataset` use:

* ``"spiral"``: interleaved spiral arms, one per class: the data set of the nnfs book (Kinsley &
  Kukieła, *Neural Networks from Scratch in Python*, 2020), after Stanford's CS231n notes. Arm k's
  i-th point has radius r = i/(n−1) and angle θ = 2.5 (4k + 4r) + noise, at (r sin θ, r cos θ);
* ``"circles"``: two concentric rings (radii 0.5 and 1) — no straight line separates them;
* ``"xor"``: points uniform in the square [−1, 1]², class 1 where x₁ x₂ > 0 — the problem a single
  neuron cannot learn (Minsky & Papert);
* ``"blobs"``: one Gaussian cloud per class, the cloud centres evenly spaced on a circle of radius 0.7.

The regressions — a real number y for each point, TensorFlow Playground's "plane" and "multi gaussian" —
are registered in ``TOY_REGRESSIONS`` and made by :func:`toy_regression`; their points are uniform in the
square [−1, 1]², and without noise every target lies in [−1, 1]:

* ``"plane"``: y = 0.6 x₁ + 0.4 x₂ — a network with no hidden layer (a linear model) fits it;
* ``"gaussians"``: y = Σₖ sₖ exp(−‖x − cₖ‖² / (2 · 0.35²)), four bumps at cₖ = (±0.5, ±0.5), up (sₖ = +1) at
  (0.5, 0.5) and (−0.5, −0.5), down (sₖ = −1) at the other two — no plane fits it: it needs hidden units.

Their noise is Gaussian, added to the target (its standard deviation; the mean squared error of the true
function itself is its square).

The points come in the notebooks' layout, a (2, N) matrix X with one column per point, so they go
straight into ``model.fit(X, Y)``. Coordinates lie roughly in [−1.2, 1.2].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core import _checks
from ..core.registry import Registry
from .datasets import Dataset


@dataclass(frozen=True)
class ToyInfo:
    """A registered toy data set: ``make(n, classes, noise, rng)`` → (points (n, 2), labels (n,)),
    its default number of classes and noise, and whether the number of classes can be chosen."""

    make: Callable[[int, int, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    classes: int
    noise: float
    choose_classes: bool


TOY_DATASETS: Registry[ToyInfo] = Registry("toy data set")


def _toy(name: str, *, classes: int, noise: float, choose_classes: bool = False):
    def register(make):
        TOY_DATASETS.register(name)(ToyInfo(make, classes, noise, choose_classes))
        return make

    return register


def _per_class(n: int, classes: int) -> np.ndarray:
    """The class of each of n points, as evenly shared as n allows: 0, 0, …, 1, 1, …"""
    return np.repeat(np.arange(classes), np.diff(np.linspace(0, n, classes + 1).round().astype(int)))


@_toy("spiral", classes=3, noise=0.2, choose_classes=True)
def _spiral(n, classes, noise, rng):
    labels = _per_class(n, classes)
    points = np.empty((n, 2))
    for k in range(classes):
        arm = labels == k
        r = np.linspace(0.0, 1.0, arm.sum())
        theta = 2.5 * (4 * k + 4 * r) + noise * rng.standard_normal(arm.sum())
        points[arm] = np.column_stack([r * np.sin(theta), r * np.cos(theta)])
    return points, labels


@_toy("circles", classes=2, noise=0.1)
def _circles(n, classes, noise, rng):
    labels = _per_class(n, 2)
    radius = np.where(labels == 0, 1.0, 0.5) + noise * rng.standard_normal(n)
    angle = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]), labels


@_toy("xor", classes=2, noise=0.1)
def _xor(n, classes, noise, rng):
    points = rng.uniform(-1, 1, (n, 2))
    labels = (points[:, 0] * points[:, 1] > 0).astype(int)  # decided before the noise: some points cross
    return points + noise * rng.standard_normal((n, 2)), labels


@_toy("blobs", classes=3, noise=0.2, choose_classes=True)
def _blobs(n, classes, noise, rng):
    labels = _per_class(n, classes)
    angle = 2 * np.pi * np.arange(classes) / classes + np.pi / 2
    centres = 0.7 * np.column_stack([np.cos(angle), np.sin(angle)])
    return centres[labels] + noise * rng.standard_normal((n, 2)), labels


def toy_dataset(
    name: str, samples: int = 300, *, classes: int | None = None, noise: float | None = None, seed=0, dtype=np.float64
) -> Dataset:
    """The toy data set ``name`` ("spiral", "circles", "xor", "blobs") as a :class:`~nablanet.Dataset`:
    ``samples`` training points and as many test points from the same distribution, each (2, N).

    ``classes`` (spiral and blobs only; 2 to 10) and ``noise`` (≥ 0) default to the data set's own.

    Args:
        name: "spiral", "circles", "xor" or "blobs".
        samples: Training points, and as many test points.
        classes: 2 to 10 (spiral and blobs); None: the data set's own.
        noise: The noise, ≥ 0; None: the data set's own.
        seed (int): Seeds both the training and the test points.
        dtype (numpy.float32 | numpy.float64): Of X.

    >>> data = toy_dataset("spiral", 300)
    >>> data.X_train.shape, data.num_classes, data.y_train[:3].tolist(), data.y_train[-3:].tolist()
    ((2, 300), 3, [0, 0, 0], [2, 2, 2])
    """
    info = TOY_DATASETS.lookup(name, argument="toy data set")
    samples = _checks.positive_int("samples", samples)
    if classes is None:
        classes = info.classes
    elif not info.choose_classes:
        raise ValueError(f"the {name} data set always has {info.classes} classes; classes cannot be chosen")
    elif isinstance(classes, bool) or not isinstance(classes, int) or not 2 <= classes <= 10:
        raise ValueError(f"classes must be an integer from 2 to 10, received: {classes!r}")
    if samples < classes:
        raise ValueError(f"{samples} samples are fewer than the {classes} classes")
    noise = _noise(info.noise if noise is None else noise)
    dtype = _checks.float_dtype("dtype", dtype)
    train_rng, test_rng = _streams(seed)
    X_train, y_train = info.make(samples, classes, noise, train_rng)
    X_test, y_test = info.make(samples, classes, noise, test_rng)
    class_names = tuple(str(k) for k in range(classes))
    return Dataset(name, X_train.T.astype(dtype), y_train, X_test.T.astype(dtype), y_test, class_names)


def _noise(noise) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 10:
        raise ValueError(f"noise must be a number from 0 to 10, received: {noise!r}")
    return float(noise)


def _streams(seed) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one seed: the training points', the test points'."""
    train, test = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(train), np.random.default_rng(test)


# ---------------------------------------------------------------------------------------------- regressions


@dataclass(frozen=True)
class RegressionInfo:
    """A registered toy regression: ``make(n, noise, rng)`` → (points (n, 2), targets (n,)), its default noise,
    and ``limit``: without noise every target lies in [−limit, limit]."""

    make: Callable[[int, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    noise: float
    limit: float


TOY_REGRESSIONS: Registry[RegressionInfo] = Registry("toy regression")


def _regression(name: str, *, noise: float, limit: float):
    def register(function):
        def make(n, noise, rng):
            points = rng.uniform(-1, 1, (n, 2))
            return points, function(points) + noise * rng.standard_normal(n)

        TOY_REGRESSIONS.register(name)(RegressionInfo(make, noise, limit))
        return function

    return register


@_regression("plane", noise=0.05, limit=1.0)
def plane(points: np.ndarray) -> np.ndarray:
    """y = 0.6 x₁ + 0.4 x₂ for each row of ``points`` (n, 2): in [−1, 1] on the square [−1, 1]²."""
    return points @ np.array([0.6, 0.4])


BUMP_CENTRES = np.array([[0.5, 0.5], [-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]])
BUMP_SIGNS = np.array([1.0, 1.0, -1.0, -1.0])
BUMP_WIDTH = 0.35


@_regression("gaussians", noise=0.05, limit=1.0)
def gaussians(points: np.ndarray) -> np.ndarray:
    """y = Σₖ sₖ exp(−‖x − cₖ‖² / (2 · 0.35²)) for each row x of ``points`` (n, 2): two bumps up, two down,
    each of height 1 where the others add less than 0.04, so that |y| < 1 everywhere."""
    distances = ((points[:, None, :] - BUMP_CENTRES[None, :, :]) ** 2).sum(axis=2)  # (n, 4)
    return np.exp(-distances / (2 * BUMP_WIDTH**2)) @ BUMP_SIGNS


@dataclass(frozen=True)
class ToyRegression:
    """A toy regression in the notebook's layout: points ``X_train``, ``X_test`` (2, N) and their targets
    ``Y_train``, ``Y_test`` (1, N), one real number per point — what ``model.fit(X, Y, loss="mse")`` takes.
    ``limit``: without noise every target lies in [−limit, limit]."""

    name: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    limit: float


def toy_regression(name: str, samples: int = 300, *, noise: float | None = None, seed=0, dtype=np.float64):
    """The toy regression ``name`` ("plane", "gaussians"): ``samples`` training points, uniform in [−1, 1]²,
    and as many test points, each with its target y (the function plus Gaussian noise of standard deviation
    ``noise``).

    A :class:`~nablanet.Dataset` holds classes; a regression's targets are numbers, so this returns a
    :class:`ToyRegression` whose ``Y_train`` and ``Y_test`` are (1, N) rows of them.

    Args:
        name: "plane" or "gaussians".
        samples: Training points, and as many test points.
        noise: The targets' noise (a standard deviation), ≥ 0; None: the data set's own (0.05).
        seed (int): Seeds both the training and the test points.
        dtype (numpy.float32 | numpy.float64): Of X and Y.

    >>> data = toy_regression("plane", 200, noise=0.0)
    >>> data.X_train.shape, data.Y_train.shape, bool(abs(data.Y_train).max() <= data.limit)
    ((2, 200), (1, 200), True)
    """
    info = TOY_REGRESSIONS.lookup(name, argument="toy regression")
    samples = _checks.positive_int("samples", samples)
    noise = _noise(info.noise if noise is None else noise)
    dtype = _checks.float_dtype("dtype", dtype)
    train_rng, test_rng = _streams(seed)
    X_train, y_train = info.make(samples, noise, train_rng)
    X_test, y_test = info.make(samples, noise, test_rng)
    return ToyRegression(
        name,
        X_train.T.astype(dtype),
        y_train[None, :].astype(dtype),
        X_test.T.astype(dtype),
        y_test[None, :].astype(dtype),
        info.limit,
    )


# ---------------------------------------------------------------------------------------------- input features

TOY_FEATURES: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "x1": ("x₁", lambda x1, x2: x1),
    "x2": ("x₂", lambda x1, x2: x2),
    "x1sq": ("x₁²", lambda x1, x2: x1 * x1),
    "x2sq": ("x₂²", lambda x1, x2: x2 * x2),
    "x1x2": ("x₁x₂", lambda x1, x2: x1 * x2),
    "sinx1": ("sin x₁", lambda x1, x2: np.sin(x1)),
    "sinx2": ("sin x₂", lambda x1, x2: np.sin(x2)),
}
"""The input features a toy network may take instead of the point itself (TensorFlow Playground's): name →
(how it is written, the function of the point's coordinates x₁, x₂)."""


def toy_features(points: np.ndarray, features) -> np.ndarray:
    """The features named in ``features`` (of ``TOY_FEATURES``: "x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1",
    "sinx2") of each point: ``points`` (2, N) → (len(features), N), one row per feature in the order given.

    >>> toy_features(np.array([[1.0, 2.0], [3.0, -1.0]]), ["x1x2", "x1sq"]).tolist()
    [[3.0, -2.0], [1.0, 4.0]]
    """
    points = _checks.matrix("points", points, rows=2)
    names = list(features) if isinstance(features, (list, tuple)) else None
    if not names or any(not isinstance(name, str) or name not in TOY_FEATURES for name in names):
        raise ValueError(f"features must be a non-empty list of {list(TOY_FEATURES)}, received: {features!r}"[:300])
    if len(set(names)) != len(names):
        raise ValueError(f"features must name each feature once, received: {names!r}")
    return np.stack([TOY_FEATURES[name][1](points[0], points[1]) for name in names])


def split_points(X: np.ndarray, Y: np.ndarray, train_fraction: float, *, seed=0):
    """A random split of the columns of ``X`` (features, N) and ``Y`` (outputs, N) into training and test data:
    ``round(train_fraction · N)`` columns, drawn by a permutation seeded with ``seed``, train; the rest test.
    Returns (X_train, Y_train, X_test, Y_test); each part keeps at least one column.

    >>> X_train, Y_train, X_test, Y_test = split_points(np.arange(10.0)[None], np.arange(10.0)[None], 0.7)
    >>> X_train.shape, X_test.shape, sorted([*X_train[0], *X_test[0]]) == list(range(10))
    ((1, 7), (1, 3), True)
    """
    X, Y = _checks.matrix("X", X), _checks.matrix("Y", Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must have the same number of columns, received {X.shape[1]} and {Y.shape[1]}")
    train_fraction = _checks.fraction("train_fraction", train_fraction)
    count = round(train_fraction * X.shape[1])
    if not 1 <= count < X.shape[1]:
        raise ValueError(f"train_fraction {train_fraction} of {X.shape[1]} points leaves no training or no test point")
    order = np.random.default_rng(seed).permutation(X.shape[1])
    train, test = order[:count], order[count:]
    return X[:, train], Y[:, train], X[:, test], Y[:, test]
