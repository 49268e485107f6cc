"""Callbacks: hooks the trainer calls at the start and end of training and of every epoch.

A callback may set ``model.stop_training = True`` in ``on_epoch_end`` to end training early. A
callback that keeps state across epochs resets it in ``on_train_begin``, so that one callback object
can serve several ``fit`` calls.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from typing import Any

import numpy as np
from tqdm import tqdm

from ..core import _checks, ops
from ..core.layers import outputs


class Callback:
    """Base class: override the hooks you need. ``logs`` holds this epoch's figures (loss, accuracy, …)."""

    model: Any = None  # the model being trained, from on_train_begin on

    def on_train_begin(self, model) -> None:
        """Called once, before the first epoch: reset any state kept across epochs here.

        Args:
            model (Sequential): The Sequential that ``fit`` trains.
        """

    def on_epoch_begin(self, epoch: int, num_batches: int) -> None:
        """Called before each epoch's first batch.

        Args:
            epoch: The epoch's number, from 0.
            num_batches: How many mini-batches the epoch has.
        """

    def on_batch_end(self, batch: int, loss: float) -> None:
        """Called after each mini-batch's step.

        Args:
            batch: The batch's number within the epoch, from 0.
            loss: The batch's mean loss, before the step.
        """

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Called after each epoch (and its validation); set ``model.stop_training = True`` to end training.

        Args:
            epoch: The epoch's number, from 0.
            logs: The epoch's figures by name: ``loss``, ``accuracy`` (a classifier), ``val_loss``, … .
        """

    def on_train_end(self) -> None:
        """Called once, after the last epoch."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` (default ``val_loss``) has not improved by ``min_delta`` for ``patience``
    epochs, and put back the weights of the best epoch (``restore_best_weights``).

    Each ``fit`` starts afresh (best = ∞, no wait), unless :meth:`restore` was given the state a
    checkpoint recorded: then the next ``fit`` continues from it.

    Args:
        monitor: The figure of ``logs`` to watch, lower is better: "val_loss", "loss", … .
        patience: Epochs without improvement before training stops (a positive integer).
        min_delta: How much lower than the best a value must be to count as an improvement (≥ 0).
        restore_best_weights: True: put back the best epoch's weights (and buffers, BatchNorm's running
            statistics) when training ends.
    """

    def __init__(
        self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, restore_best_weights: bool = True
    ):
        self.monitor, self.patience, self.min_delta = (
            monitor,
            _checks.positive_int("patience", patience),
            float(min_delta),
        )
        self.restore_best_weights = restore_best_weights
        self._restored: dict[str, Any] | None = None
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.wait = 0

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: best value, its epoch, the epochs waited and the best weights."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_weights": self.best_weights}

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from a checkpoint's :meth:`state` in the next ``fit`` instead of starting afresh.

        Args:
            state: What :meth:`state` returned; None: start afresh.
        """
        self._restored = state

    def on_train_begin(self, model):
        self.model = model
        self._reset()
        if self._restored is not None:
            for key, value in self._restored.items():
                setattr(self, key, value)
            self._restored = None

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which this training does not "
                f"compute (available: {sorted(logs)}); give validation data"
            )
        value = logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                weights = self.model.get_weights().values()  # buffers too
                self.best_weights = [array.copy(order="K") for array in weights]  # each laid out as its array
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.model.stop_training = True

    def on_train_end(self):
        if self.restore_best_weights and self.best_weights is not None:
            names = self.model.get_weights()
            self.model.set_weights(dict(zip(names, self.best_weights, strict=True)))


def format_logs(epoch: int, epochs: int, logs: dict) -> str:
    """'Epoch 3/20: loss = 0.683426, val_loss = …' — the notebook's line, with any other figures."""
    figures = ", ".join(f"{key} = {value:.6f}" for key, value in logs.items())
    return f"Epoch {epoch + 1}/{epochs}: {figures}"


VERBOSITY = (0, 1, 2, "auto")


def jupyter_kernel() -> Any:
    """IPython's shell when this runs inside a Jupyter kernel, else None (IPython is never imported here)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if type(shell).__name__ == "ZMQInteractiveShell" else None


def in_notebook() -> bool:
    """True inside a Jupyter kernel that can show widgets (ipywidgets installed)."""
    return jupyter_kernel() is not None and importlib.util.find_spec("ipywidgets") is not None


class ProgressBar(Callback):
    """What ``fit`` says while it trains, at Keras's ``verbose`` levels:

    * 1 (and "auto"): a bar over the batches of each epoch — a widget in a Jupyter notebook, a text bar
      on a terminal — then the epoch's line; where a bar cannot redraw (a pipe, a log file, CI) only the
      line, so that a log holds no control characters;
    * 2: the epoch's line only, ``Epoch 3/20: loss = 0.683426, accuracy = …``;
    * 0: nothing (``fit`` then adds no ProgressBar at all).

    Args:
        epochs: The number of epochs of the training, shown as "Epoch 3/20".
        stream (TextIO | None): The text file the bar and lines go to; None: sys.stdout.
        verbose: 1 or "auto", 2 or 0, as above.
    """

    def __init__(self, epochs: int, stream=None, verbose: int | str = 1):
        _checks.one_of("verbose", verbose, VERBOSITY)
        self.epochs, self.verbose = epochs, verbose
        self.stream = stream or sys.stdout
        self.notebook = verbose in (1, "auto") and stream is None and in_notebook()
        self.terminal = verbose in (1, "auto") and not self.notebook and self.stream.isatty()
        self.bar: Any = None

    def on_epoch_begin(self, epoch, num_batches):
        description = f"Epoch {epoch + 1}/{self.epochs}"
        if self.notebook:
            from tqdm.notebook import tqdm as notebook_tqdm

            self.bar = notebook_tqdm(total=num_batches, desc=description, leave=False, unit="batch")
        elif self.terminal:
            self.bar = tqdm(total=num_batches, desc=description, file=self.stream, leave=False, unit="batch")

    def on_batch_end(self, batch, loss):
        if self.bar is not None:
            self.bar.update()
            if batch % 20 == 0:
                self.bar.set_postfix(loss=f"{loss:.4f}")

    def on_epoch_end(self, epoch, logs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.verbose:
            print(format_logs(epoch, self.epochs, logs), file=self.stream, flush=True)


class Dynamics(Callback):
    """Opt-in record of what happens inside during training, per epoch and per layer:

    * ``gradient_norm``: the mean over the epoch's batches of ‖∇_W̃ L‖ (Frobenius, all of a layer's
      parameter arrays together) of each layer with parameters;
    * ``weight_norm``: ‖W̃‖ at the end of the epoch;
    * for each activation layer between Dense layers, on the ``probe`` samples (features, n) in
      inference mode: ``dead_fraction``, the share of units that output 0 for every probe sample,
      and ``activation_histogram`` (counts, bin edges) of the last epoch's outputs.

    The result, ``dynamics``, is plain JSON-able data for :func:`nablanet.app.plots.plot_dynamics`.
    ``record``, the ``dynamics`` of an earlier part of the run (a checkpoint keeps it), is continued.
    """

    def __init__(self, probe, bins: int = 40, record: dict[str, Any] | None = None):
        self.probe, self.bins = probe, bins
        empty: dict[str, dict[str, Any]] = {
            "gradient_norm": {},
            "weight_norm": {},
            "dead_fraction": {},
            "activation_histogram": {},
        }
        self.dynamics = {key: dict((record or {}).get(key, {})) for key in empty}
        self._sums: dict[str, float] = {}
        self._batches = 0

    def _trainable_layers(self):
        return {
            f"{position} {type(layer).__name__}": layer
            for position, layer in enumerate(self.model.layers)
            if layer.parameters()
        }

    def on_train_begin(self, model):
        self.model = model

    def on_epoch_begin(self, epoch, num_batches):
        self._sums = dict.fromkeys(self._trainable_layers(), 0.0)
        self._batches = 0

    def on_batch_end(self, batch, loss):
        for name, layer in self._trainable_layers().items():
            self._sums[name] += _norm([parameter.gradient for parameter in layer.parameters()])
        self._batches += 1

    def on_epoch_end(self, epoch, logs):
        for name, layer in self._trainable_layers().items():
            self.dynamics["gradient_norm"].setdefault(name, []).append(self._sums[name] / max(self._batches, 1))
            weight_norm = _norm([parameter.value for parameter in layer.parameters()])
            self.dynamics["weight_norm"].setdefault(name, []).append(weight_norm)
        layers = self.model.layers
        for position, output in enumerate(outputs(layers[:-1], self.probe, inference=True)):
            layer = layers[position]
            if not layer.parameters() and position and layers[position - 1].parameters():
                name = f"{position} {type(layer).__name__}"
                dead = float(np.mean(np.all(output == 0, axis=1)))
                self.dynamics["dead_fraction"].setdefault(name, []).append(dead)
                counts, edges = np.histogram(output, bins=self.bins)
                self.dynamics["activation_histogram"][name] = (counts.tolist(), edges.tolist())


def _norm(arrays) -> float:
    """‖(A₁, A₂, …)‖: the Frobenius norm of all of a layer's parameter arrays together."""
    return float(np.sqrt(sum(ops.squared_norm(array) for array in arrays)))
