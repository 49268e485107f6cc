"""The Train tab's sessions: a small network learning a 2-D toy data set in a background thread.

A :class:`ToySettings` is checked like every untrusted input (a ``ValueError`` that names the field): the data
set, its points in all and the share of them that trains (the others are the test data), the input features
the network takes (x₁, x₂, x₁², x₂², x₁x₂, sin x₁, sin x₂: ``TOY_FEATURES``), the network, its regularisation
(none, L1 or L2 and its rate: :mod:`nablanet.core.regularizers`) and the seed that makes the whole run — the
points, the split, the initial weights, the batches — the same again.

A :class:`ToySession` trains with the library's own loop — one ``model.fit`` call over all its epochs —
and a callback that, after every epoch, publishes a :meth:`~ToySession.snapshot` (loss, accuracy, the
decision boundary as a picture, the weight norms, the training and test losses, and for a network small enough
to draw each weight, its last gradient and each hidden unit's activation over the plane), keeps the chosen
pace, and waits while the session is paused. Pause, resume, one step, a weight's edit and close are
thread-safe; the server reads the latest snapshot, already encoded as JSON, without waiting for training.
Every edit is recorded with the epoch it followed, so that :mod:`.export` writes the run as code that
reproduces it.

A data set of ``TOY_REGRESSIONS`` ("plane", "gaussians") makes the session a regression: the network ends in
a Dense layer of one unit (no Softmax), trains with ``loss="mse"``, and its snapshots carry the training and
test mean squared errors and no accuracy (a number is near or far, never right or wrong); the picture is the
predicted value over the plane, on one fixed colour scale that also colours the points by their targets.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import threading
import time
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex

from ...core.activations import ACTIVATIONS
from ...core.layers import Dense, Layer, outputs
from ...core.optimizers import OPTIMIZERS
from ...core.regularizers import REGULARIZERS, Regularizer
from ...data.toy import (
    TOY_DATASETS,
    TOY_FEATURES,
    TOY_REGRESSIONS,
    split_points,
    toy_dataset,
    toy_features,
    toy_regression,
)
from ...training.callbacks import Callback
from ...training.loop import History, TrainingDiverged
from ...training.model import Sequential, build_classifier
from ..terminal import describe
from .inside import colour_scale, png_data_url, png_url
from .turns import Turns

SPEEDS = {"slow": 20.0, "normal": 200.0, "fast": float("inf")}  # epochs per second at most
GRID = 96  # the decision boundary is evaluated on GRID × GRID points
CURVE_POINTS = 400  # at most this many points of each curve go to the page
PALETTE = colormaps["tab10"](np.arange(10))[:, :3]  # ten well-separated class colours, RGB in [0, 1]
VALUES = "RdBu_r"  # a regression's colours: blue (low) through white (0) to red (high)
NEURON_GRID = 24  # each neuron's picture: its value on NEURON_GRID × NEURON_GRID points of the plane
DIAGRAM_UNITS = 16  # the network diagram is drawn for hidden layers of at most this many units
MAX_EDITS = 1000  # weight edits a session records (each one is a line of the exported code)


@dataclasses.dataclass(frozen=True)
class ToySettings:
    """What a Train-tab run computes. The defaults reach ≥ 95 % training accuracy on the spiral within a
    few seconds: two hidden layers of 16 ReLU units, Adam at 0.01, mini-batches of 32."""

    dataset: str = "spiral"
    samples: int = 600  # points in all: train_percent % of them train, the others test
    train_percent: int = 50
    features: tuple[str, ...] = ("x1", "x2")
    classes: int | None = None
    noise: float | None = None
    hidden: tuple[int, ...] = (16, 16)
    activation: str = "relu"
    optimizer: str = "adam"
    learning_rate: float = 0.01
    regularization: str = "none"
    regularization_rate: float = 0.001
    batch_size: int = 32
    epochs: int = 3000
    speed: str = "normal"
    seed: int = 0

    @classmethod
    def from_request(cls, data: Any) -> ToySettings:
        """Settings from a request's JSON object; a ``ValueError`` naming the first bad field."""
        if not isinstance(data, dict):
            raise ValueError("the settings must be a JSON object")
        fields = {field.name for field in dataclasses.fields(cls) if field.init}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown setting {unknown[0][:40]!r}; the settings are: {', '.join(sorted(fields))}")
        values = {**dataclasses.asdict(cls()), **data}
        settings = cls(**{**values, "hidden": _hidden(values["hidden"]), "features": _features(values["features"])})
        settings.check()
        return settings

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON data (the tuples as lists)."""
        return {**dataclasses.asdict(self), "hidden": list(self.hidden), "features": list(self.features)}

    @property
    def regression(self) -> bool:
        """Whether the data set is a regression (of ``TOY_REGRESSIONS``) rather than classes."""
        return self.dataset in TOY_REGRESSIONS

    def check(self) -> None:
        if self.dataset not in TOY_DATASETS and not self.regression:
            known = sorted([*TOY_DATASETS, *TOY_REGRESSIONS])
            raise ValueError(f"dataset must be one of {known}, received: {self.dataset!r}"[:300])
        ACTIVATIONS.lookup(self.activation, argument="activation")
        OPTIMIZERS.lookup(self.optimizer, argument="optimizer")
        if self.regularization != "none":
            REGULARIZERS.lookup(self.regularization, argument="regularization")
        _number("regularization_rate", self.regularization_rate, 0, 10)
        _features(self.features)
        if not isinstance(self.speed, str) or self.speed not in SPEEDS:
            raise ValueError(f"speed must be one of {list(SPEEDS)}, received: {self.speed!r}")
        _integer("samples", self.samples, 10, 2000)
        _integer("train_percent", self.train_percent, 10, 90)
        _integer("batch_size", self.batch_size, 1, 2000)
        _integer("epochs", self.epochs, 1, 100_000)
        _integer("seed", self.seed, 0, 2**32 - 1)
        _number("learning_rate", self.learning_rate, 1e-6, 10)
        if self.regression and self.classes is not None:
            raise ValueError(
                f"the {self.dataset} data set is a regression: its targets are numbers, not classes; "
                f"leave classes out (null), received: {self.classes!r}"[:200]
            )
        if self.regression:  # their own checks, cheap
            toy_regression(self.dataset, self.samples, noise=self.noise)
        else:
            toy_dataset(self.dataset, self.samples, classes=self.classes, noise=self.noise)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, received: {value!r}"[:200])
    return value


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, received: {value!r}"[:200])
    return value


def _features(value: Any) -> tuple[str, ...]:
    """The input features: distinct names of ``TOY_FEATURES``, at least one (the page's x₁, x₂ is ["x1", "x2"])."""
    expected = f"features must be distinct names of {list(TOY_FEATURES)}, at least one"
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= len(TOY_FEATURES):
        raise ValueError(f"{expected}, received: {value!r}"[:300])
    for name in value:
        if not isinstance(name, str) or name not in TOY_FEATURES:
            raise ValueError(f"{expected}, received: {name!r}"[:300])
    if len(set(value)) != len(value):
        raise ValueError(f"{expected}, received: {value!r}"[:300])
    return tuple(value)


def _hidden(value: Any) -> tuple[int, ...]:
    """The hidden layers' sizes: a list of at most 6 integers from 1 to 256 (the page's "8,8" is [8, 8])."""
    expected = "hidden layers must be at most 6 sizes from 1 to 256, such as 8,8 (in JSON: [8, 8]; none: [])"
    if not isinstance(value, (list, tuple)) or len(value) > 6:
        raise ValueError(f"{expected}, received: {value!r}"[:200])
    for size in value:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 256:
            raise ValueError(f"{expected}, received a layer of size {size!r}"[:200])
    return tuple(value)


def choices() -> dict[str, Any]:
    """What the Train tab's form offers: the defaults and every choice, from the registries."""
    return {
        "defaults": ToySettings().as_dict(),
        "datasets": {
            **{
                name: {
                    "task": "classification",
                    "classes": info.classes,
                    "noise": info.noise,
                    "choose_classes": info.choose_classes,
                }
                for name, info in TOY_DATASETS.items()
            },
            **{
                name: {"task": "regression", "classes": None, "noise": info.noise, "choose_classes": False}
                for name, info in TOY_REGRESSIONS.items()
            },
        },
        "features": {name: label for name, (label, _) in TOY_FEATURES.items()},
        "regularizations": ["none", *REGULARIZERS.names()],
        "activations": list(ACTIVATIONS.names()),
        "optimizers": list(OPTIMIZERS.names()),
        "speeds": list(SPEEDS),
    }


def finite(value: Any) -> Any:
    """``value`` (JSON-able data) with every NaN or infinite number replaced by ``None``: JSON has no
    Infinity, and a diverged training's norms have them. The page shows such a number as "diverged"."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def _downsample(values: list[float]) -> dict[str, list]:
    """A curve of one value per epoch as at most ``CURVE_POINTS`` (epoch, value) points."""
    if not values:
        return {"epochs": [], "values": []}
    positions = np.unique(np.linspace(0, len(values) - 1, min(len(values), CURVE_POINTS)).round().astype(int))
    return {"epochs": (positions + 1).tolist(), "values": [round(values[i], 6) for i in positions]}


@dataclasses.dataclass(frozen=True)
class ToyData:
    """A session's data: the points (2, N) that train and those that test, their targets (one-hot columns of a
    classifier, a row of numbers of a regression) and the network's inputs, the features of the points."""

    points_train: np.ndarray
    Y_train: np.ndarray
    points_test: np.ndarray
    Y_test: np.ndarray
    X_train: np.ndarray
    X_test: np.ndarray
    num_classes: int | None  # None: a regression
    limit: float | None  # a regression's targets lie in [−limit, limit] without noise


def toy_data(settings: ToySettings) -> ToyData:
    """The points of ``settings.samples`` of its data set (seeded with its seed), split at random — by a
    permutation of the same seed — into ``train_percent`` % training points and test points, and their
    features. The exported notebook makes them with the same calls (:mod:`.export`)."""
    if settings.regression:
        made: Any = toy_regression(settings.dataset, settings.samples, noise=settings.noise, seed=settings.seed)
        num_classes, limit = None, made.limit
    else:
        made = toy_dataset(
            settings.dataset, settings.samples, classes=settings.classes, noise=settings.noise, seed=settings.seed
        )
        num_classes, limit = made.num_classes, None
    parts = split_points(made.X_train, made.Y_train, settings.train_percent / 100, seed=settings.seed)
    points_train, Y_train, points_test, Y_test = parts
    return ToyData(
        points_train,
        Y_train,
        points_test,
        Y_test,
        toy_features(points_train, settings.features),
        toy_features(points_test, settings.features),
        num_classes,
        limit,
    )


def regularizer_of(settings: ToySettings) -> Regularizer | None:
    """The settings' regularizer object, None for "none"."""
    if settings.regularization == "none":
        return None
    return REGULARIZERS.lookup(settings.regularization)(settings.regularization_rate)


@dataclasses.dataclass(frozen=True)
class Edit:
    """A weight set by hand: after ``epoch`` epochs, W̃[row, column] of the ``layer``-th Dense layer (from 0;
    column = its inputs is the bias) became ``value``."""

    epoch: int
    layer: int
    row: int
    column: int
    value: float


class ToySession:
    """One Train-tab run: the data, the model, its optimizer and history, and the thread that trains it.

    It starts paused at epoch 0; :meth:`resume` trains until ``settings.epochs`` (or :meth:`pause`),
    :meth:`step` trains one epoch while paused, :meth:`set_weight` edits a weight between epochs while paused,
    :meth:`close` stops it for good. ``turns``: the :class:`~.turns.Turns` it shares the server's CPU by
    (default: its own, without limits).
    """

    def __init__(self, settings: ToySettings, turns: Turns | None = None):
        self.settings = settings
        self.turns = turns or Turns(at_once=None)
        self.data = toy_data(settings)
        inputs = len(settings.features)
        if settings.regression:
            self.model = regressor(settings.hidden, settings.activation, rng=settings.seed, inputs=inputs)
            self.loss = "mse"
            # one colour scale for the whole session: the targets' range, widened to the largest noisy target
            targets = np.concatenate([self.data.Y_train, self.data.Y_test], axis=1)
            limit = max(self.data.limit or 1.0, math.ceil(10 * float(np.abs(targets).max())) / 10)
            self.scale: dict[str, Any] | None = colour_scale(VALUES, -limit, limit)
        else:
            assert self.data.num_classes is not None  # a classifier's data has classes
            self.model = build_classifier(
                inputs, self.data.num_classes, settings.hidden, activation=settings.activation, rng=settings.seed
            )
            self.loss = "auto"  # the fused softmax cross-entropy
            self.scale = None
        self.optimizer = OPTIMIZERS.lookup(settings.optimizer)(settings.learning_rate)
        self.regularizer = regularizer_of(settings)
        self.history = History()
        self.test_losses: list[float] = []  # the test data's loss after each epoch
        self.norms: list[list[float]] = []  # ‖W‖ of each Dense layer, per epoch
        self.edits: list[Edit] = []
        self.drawn = all(size <= DIAGRAM_UNITS for size in settings.hidden)  # whether the page draws the network
        points = np.concatenate([self.data.points_train, self.data.points_test], axis=1)
        low, high = points.min(axis=1), points.max(axis=1)
        centre, half = (low + high) / 2, float((high - low).max()) * 0.55 or 1.0
        self.bounds = [
            float(centre[0] - half),
            float(centre[0] + half),
            float(centre[1] - half),
            float(centre[1] + half),
        ]
        self._grid = toy_features(self._plane(GRID), settings.features)
        self._neuron_grid = toy_features(self._plane(NEURON_GRID), settings.features)
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._idle = True  # no epoch under way: the weights may be read and edited
        self.state = "paused"  # paused, running, done, diverged, failed, closed
        self.message = ""
        self._steps = 0  # epochs that Step allowed while paused
        self.version = 0
        self.last_used = time.monotonic()
        self.snapshot_json = ""
        self._publishing = threading.Lock()
        self._latest: dict[str, Any] = {}
        self._publish()

    def _plane(self, size: int) -> np.ndarray:
        """``size`` × ``size`` points over the plane's bounds, (2, size²), row by row from the top."""
        xs = np.linspace(self.bounds[0], self.bounds[1], size)
        ys = np.linspace(self.bounds[3], self.bounds[2], size)  # the picture's first row is the top
        return np.stack(np.meshgrid(xs, ys)).reshape(2, -1)

    # ------------------------------------------------------------------ control, from the server's threads

    def resume(self) -> None:
        with self._condition:
            if self.state == "paused":
                self.state = "running"
                self._start()
                self._condition.notify_all()

    def pause(self) -> None:
        """Pause after the epoch in progress; the snapshot published then shows the state "paused"."""
        with self._condition:
            if self.state == "running":
                self.state = "paused"

    def step(self) -> None:
        with self._condition:
            if self.state == "paused":
                self._steps += 1
                self._start()
                self._condition.notify_all()

    def set_weight(self, layer: Any, row: Any, column: Any, value: Any) -> None:
        """W̃[row, column] of the ``layer``-th Dense layer (column = its inputs: the bias) becomes ``value``, a
        number from -100 to 100; only while paused between epochs (a ``ValueError`` otherwise, or for a weight
        that does not exist). The edit is recorded, and a new snapshot shows it."""
        dense = self.dense_layers()
        _integer("layer", layer, 0, len(dense) - 1)
        _integer("row", row, 0, dense[layer].units - 1)
        _integer("column", column, 0, dense[layer].input_size)
        _number("value", value, -100, 100)
        with self._condition:
            if self.state not in ("running", "paused"):
                raise ValueError(
                    f"the training is {self.state}: a weight can be edited only in a run paused between epochs; "
                    "press Reset for a new one"
                )
            if self.state != "paused" or not self.between_epochs:
                raise ValueError(
                    "a weight can be edited only while the training is paused between epochs: press Pause first "
                    "(a pause takes effect when the epoch under way ends)"
                )
            if len(self.edits) >= MAX_EDITS:
                raise ValueError(f"a session keeps at most {MAX_EDITS} edits: press Reset for a new one")
            dense[layer].weights[row, column] = value
            self.edits.append(Edit(len(self.history.loss), layer, row, column, float(value)))
            self._publish()

    @property
    def between_epochs(self) -> bool:
        """Whether the model is the one of the last epoch shown, and stays so: paused between epochs, or the
        training over. Not while running, nor once Pause was pressed but the epoch under way has not ended. It
        waits for a snapshot being published (the page may see a paused one before the thread is idle)."""
        with self._condition:
            return self.state not in ("running", "paused") or (self.state == "paused" and self._idle)

    def close(self, message: str = "closed") -> None:
        with self._condition:
            self.state, self.message = "closed", message
            self._condition.notify_all()
        self._publish(full=False)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _start(self) -> None:  # with the condition held
        if self._thread is None:
            self._idle = False
            self._thread = threading.Thread(target=self._train_by_turns, name="nablanet-toy-training", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ the training thread

    def _train_by_turns(self) -> None:
        with self.turns.trainer():
            self._train()

    def _train(self) -> None:
        settings = self.settings
        try:
            self.model.fit(
                self.data.X_train,
                self.data.Y_train,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
                optimizer=self.optimizer,
                loss=self.loss,
                regularizer=self.regularizer,
                rng=settings.seed,
                history=self.history,
                callbacks=[_Control(self)],
                verbose=0,
            )
            outcome, message = "done", f"finished: {settings.epochs} epochs"
        except TrainingDiverged as error:
            outcome, message = "diverged", str(error)
        except Exception as error:  # shown on the page; the server goes on
            outcome, message = "failed", describe(error)[:300]
        with self._condition:
            if self.state != "closed":
                self.state, self.message = outcome, message
        self._publish()

    def after_epoch(self, model, epoch: int) -> None:
        """Called by the training thread after each epoch: record, publish, keep the pace, wait if paused (but
        not after the last epoch: then ``fit`` returns and the session is done)."""
        self.norms.append(self._norms())
        self.test_losses.append(self.model.evaluate(self.data.X_test, self.data.Y_test, loss=self.loss)["loss"])
        pace = 1.0 / SPEEDS[self.settings.speed]
        if pace:
            self.turns.give()  # no place held while it waits
            time.sleep(max(0.0, self._epoch_started + pace - time.monotonic()))
            self.turns.take()
        with self._condition:  # held while publishing, so that a pause cannot slip in before the wait
            stepping = self._steps > 0
            self._steps = max(0, self._steps - 1)
            last = epoch + 1 >= self.settings.epochs
            waiting = self.state == "paused" and self._steps == 0 and not last
            if stepping or waiting or time.monotonic() - self._published >= self.turns.snapshot_seconds():
                self._publish()  # the model is not training between epochs: a full snapshot is safe here
            self._idle = True  # published first: whoever sees the session idle sees this epoch's snapshot
            if waiting:
                self.turns.give()
            while self.state == "paused" and self._steps == 0 and not last:
                self._condition.wait()
            self._idle = last  # after the last epoch fit returns: nothing changes the weights any more
            if self.state == "closed":
                model.stop_training = True
        if waiting:
            self.turns.take()
        self._epoch_started = time.monotonic()

    _epoch_started = 0.0
    _published = 0.0

    # ------------------------------------------------------------------ what the page sees

    def dense_layers(self) -> list[Dense]:
        return [layer for layer in self.model.layers if isinstance(layer, Dense)]

    def boundary(self) -> str:
        """The picture of the plane. A classifier's decision boundary: each grid point in its predicted class's
        colour, paler where the model is unsure (the colour is the probability-weighted mix of the class
        colours). A regression's predicted value ŷ at each grid point, on the session's colour scale (a value
        beyond its ends takes the colour of the end)."""
        if self.scale is not None:
            values = self.model.predict_proba(self._grid).reshape(GRID, GRID)  # the output itself: no Softmax
            return png_data_url(values, VALUES, low=self.scale["low"], high=self.scale["high"])
        probabilities = self.model.predict_proba(self._grid)  # (classes, GRID²)
        colours = probabilities.T @ PALETTE[: probabilities.shape[0]]
        confidence = (probabilities.max(axis=0) - 1 / len(probabilities)) / (1 - 1 / len(probabilities))
        strength = 0.25 + 0.45 * confidence[:, None]
        rgb = (1 - strength) + strength * colours
        pixels = (rgb.reshape(GRID, GRID, 3) * 255).round().astype(np.uint8)
        return png_url(pixels)

    def network(self) -> dict[str, Any] | None:
        """The diagram's numbers, for a network of hidden layers of at most ``DIAGRAM_UNITS`` units (None for a
        larger one): each Dense layer's W̃ = [W | b] and its stored gradient ∇_W̃ L (that of the last
        mini-batch, with the regularizer's term), and for each hidden layer its units' activations over the plane
        as one picture (:func:`_pictures`)."""
        if not self.drawn:
            return None
        layers = list(outputs(self.model.layers, self._neuron_grid, inference=True))
        hidden = [layers[2 * k + 1] for k in range(len(self.settings.hidden))]  # Dense, activation, Dense, …
        stepped = bool(self.history.loss)
        return {
            "weights": [_rounded(layer.weights) for layer in self.dense_layers()],
            "gradients": [_rounded(layer.weights_gradient) for layer in self.dense_layers()] if stepped else None,
            "neurons": [_pictures(values) for values in hidden],
        }

    def snapshot(self) -> dict[str, Any]:
        """The page's view now: the training loss (the mean over the last epoch's batches) and the test loss,
        their curves and, for a classifier, the training and test accuracies (a regression's losses are mean
        squared errors, and it has no accuracy at all); the network's numbers (:meth:`network`)."""
        history = self.history
        epoch = len(history.loss)
        norms = self.norms[-1] if self.norms else self._norms()
        test = self.model.evaluate(self.data.X_test, self.data.Y_test, loss=self.loss)
        figures: dict[str, Any] = {"test_loss": test["loss"]}
        if not self.settings.regression:
            figures |= {
                "accuracy": history.accuracy[-1] if epoch else None,
                "test_accuracy": test["accuracy"],
                "accuracy_curve": _downsample(history.accuracy),
            }
        return {
            "state": self.state,
            "message": self.message,
            "epoch": epoch,
            "epochs": self.settings.epochs,
            "loss": history.loss[-1] if epoch else None,
            **figures,
            "boundary": self.boundary(),
            "loss_curve": _downsample(history.loss),
            "test_loss_curve": _downsample(self.test_losses),
            "norms": norms,
            "norm_curves": [_downsample([row[i] for row in self.norms]) for i in range(len(norms))],
            "network": self.network(),
            "edits": len(self.edits),
        }

    def _norms(self) -> list[float]:
        """‖W‖ of each Dense layer (the bias column left out), first layer first."""
        return [float(np.linalg.norm(layer.W)) for layer in self.dense_layers()]

    def _publish(self, full: bool = True) -> None:
        """Make the latest snapshot the one the page gets. Only the training thread (or, before it starts
        and after it ends, or while it waits paused, the caller) computes a ``full`` one: the optimizer updates
        the weights in place between batches, and a picture drawn from another thread could show a model
        half-way through a step. Other threads only update the state."""
        with self._publishing:
            self._latest = self.snapshot() if full else {**self._latest, "state": self.state, "message": self.message}
            self.snapshot_json = json.dumps(finite(self._latest), allow_nan=False)  # strict JSON: no Infinity
            self._published = time.monotonic()
            self.version += 1

    def description(self) -> dict[str, Any]:
        """What the page needs once: the task, the training and the test points and the colour of each, the
        class colours (which also tell the weight norms apart), the plane's bounds, the model and the sizes of
        its layers, the input features' values over the plane as pictures (:func:`_pictures`); a classifier's
        labels, or a regression's targets and its colour scale."""
        if self.scale is not None:
            scale = self.scale

            def colours(Y: np.ndarray) -> list[str]:
                scaled = (Y[0] - scale["low"]) / (scale["high"] - scale["low"])
                return [to_hex(colour) for colour in colormaps[VALUES](scaled)]

            task: dict[str, Any] = {
                "task": "regression",
                "targets": np.round(self.data.Y_train[0], 4).tolist(),
                "scale": self.scale,
            }
        else:

            def colours(Y: np.ndarray) -> list[str]:
                return [to_hex(PALETTE[label]) for label in Y.argmax(axis=0)]

            task = {"task": "classification", "labels": self.data.Y_train.argmax(axis=0).tolist()}
        dense = self.dense_layers()
        return {
            "settings": self.settings.as_dict(),
            **task,
            "bounds": self.bounds,
            "points": np.round(self.data.points_train.T, 4).tolist(),
            "point_colours": colours(self.data.Y_train),
            "test_points": np.round(self.data.points_test.T, 4).tolist(),
            "test_point_colours": colours(self.data.Y_test),
            "colours": [to_hex(colour) for colour in PALETTE],
            "summary": self.model.summary(),
            "sizes": [dense[0].input_size, *(layer.units for layer in dense)],
            "drawn": self.drawn,
            "features": [{"name": name, "label": TOY_FEATURES[name][0]} for name in self.settings.features],
            "feature_pictures": _pictures(self._neuron_grid),
            "picture_size": NEURON_GRID,
        }


def _rounded(array: np.ndarray) -> list:
    """An array as nested lists of numbers of 6 significant digits (what the page shows, and enough)."""
    return [[float(f"{value:.6g}") for value in row] for row in array.tolist()]


_VALUE_COLOURS = colormaps[VALUES](np.linspace(0, 1, 256), bytes=True)[:, :3]  # the colour map as a table


def _pictures(values: np.ndarray) -> str:
    """Units' (or features') values over the plane, (units, ``NEURON_GRID``²), each row the grid's points row by
    row from the top, as one picture of the units side by side (NEURON_GRID high, units × NEURON_GRID wide),
    each on its own scale: white 0, full red its largest |value| if positive, full blue if negative. One PNG and
    a table of 256 colours: a diagram has dozens of these pictures, 20 times a second."""
    limits = np.abs(values).max(axis=1, keepdims=True)
    levels = np.rint((values / np.where(limits > 0, limits, 1.0) + 1) * 127.5).astype(np.uint8)
    side = (len(values), NEURON_GRID, NEURON_GRID)
    strip = levels.reshape(side).transpose(1, 0, 2).reshape(NEURON_GRID, len(values) * NEURON_GRID)
    return png_url(np.ascontiguousarray(_VALUE_COLOURS[strip]))


def regressor(hidden: tuple[int, ...], activation: str, *, rng=None, inputs: int = 2) -> Sequential:
    """A regression network on ``inputs`` features (the point's 2 coordinates by default): Dense layers of sizes
    ``hidden``, each followed by ``activation``,
    then Dense(·, 1) with nothing after it — its output ŷ = wᵀa + b can be any real number, as a target can.
    Initialised as :func:`~nablanet.build_classifier` initialises a classifier: He for ReLU-family hidden layers,
    Glorot otherwise, Glorot for the output."""
    activation_layer = ACTIVATIONS.lookup(activation, argument="activation")
    hidden_init = "he_normal" if "relu" in activation else "glorot_uniform"
    rng = np.random.default_rng(rng)
    layers: list[Layer] = []
    sizes = [inputs, *hidden]
    for size_in, size_out in itertools.pairwise(sizes):
        layers += [Dense(size_in, size_out, init=hidden_init, rng=rng), activation_layer()]
    return Sequential([*layers, Dense(sizes[-1], 1, init="glorot_uniform", rng=rng)])


class _Control(Callback):
    def __init__(self, session: ToySession):
        self.session = session
        self.model = None

    def on_train_begin(self, model):
        self.model = model
        self.session._epoch_started = time.monotonic()

    def on_batch_end(self, batch, loss):
        self.session.turns.switch()

    def on_epoch_end(self, epoch, logs):
        self.session.after_epoch(self.model, epoch)
