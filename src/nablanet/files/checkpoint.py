"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model, the optimizer and its state (momentum, Adam moments, step count,
learning-rate schedule), the number of finished epochs, the history, the state of every random
generator (batch shuffling, each Dropout layer) and, if used, early stopping's state. Resuming from
it gives the same weights, bit for bit, as a run that was never interrupted.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.layers import Dropout
from ..core.optimizers import OPTIMIZERS, Optimizer
from ..core.schedules import SCHEDULES
from ..training.callbacks import Callback, Dynamics, EarlyStopping
from ..training.loop import History, TrainingDiverged
from ..training.model import Sequential
from .serialization import Archive, ModelFileError, model_specs, open_archive, read_model, write_archive

FILENAME = "checkpoint.npz"


@dataclass
class TrainingState:
    """What :func:`load_checkpoint` returns: pass these to ``fit`` to continue."""

    model: Sequential
    optimizer: Optimizer
    rng: np.random.Generator
    epoch: int
    history: History
    settings: dict[str, Any]
    early_stopping: dict[str, Any] | None
    stopped_early: bool = False
    dynamics: dict[str, Any] | None = None


def _rng_state(generator: np.random.Generator) -> dict[str, Any]:
    return copy.deepcopy(dict(generator.bit_generator.state))


def _restore_rng(state, path, what) -> np.random.Generator:
    generator = np.random.default_rng()
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as error:
        raise ModelFileError(f"{path}: invalid random-generator state for {what} ({error})") from None
    return generator


class CheckpointWriteError(OSError):
    """An epoch's checkpoint could not be written (a full disk, say). The file written before is intact (writes
    are atomic), and the state the new one should have held is still in :attr:`Checkpoint.snapshot`."""


class Checkpoint(Callback):
    """After every epoch, snapshot the training state; with a ``directory``, also write it there as
    ``checkpoint.npz`` (atomically: the previous checkpoint stays until the new one is complete).

    ``settings`` is any JSON-able dict to keep with it (the CLI keeps its options there).
    """

    def __init__(
        self,
        directory,
        *,
        optimizer,
        rng: np.random.Generator,
        history: History,
        settings: dict | None = None,
        early_stopping: EarlyStopping | None = None,
        dynamics: Dynamics | None = None,
    ):
        self.directory = Path(directory) if directory is not None else None
        self.optimizer, self.rng, self.history = optimizer, rng, history
        self.settings = settings or {}
        self.early_stopping = early_stopping
        self.dynamics = dynamics
        self.snapshot: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None

    def on_train_begin(self, model):
        self.model = model
        self.snapshot = self._take(len(self.history.loss))
        self._write_to_directory()  # so that a checkpoint exists even if the first epoch fails

    def on_epoch_end(self, epoch, logs):
        for parameter in self.model.parameters():
            if not np.isfinite(parameter.value).all():
                raise TrainingDiverged(
                    f"the weights became NaN or inf in epoch {epoch + 1}: training diverged; "
                    f"try a lower learning rate (the last good checkpoint is kept)"
                )
        # the early-stopping callback runs before this one, so its state for this epoch is final
        self.snapshot = self._take(epoch + 1)
        self._write_to_directory()

    def _write_to_directory(self) -> None:
        """Write the snapshot to the directory, if there is one; a :class:`CheckpointWriteError` if that fails."""
        if self.directory is None:
            return
        path = self.directory / FILENAME
        try:
            self.write(path)
        except OSError as error:
            raise CheckpointWriteError(error.errno, f"could not write {path} ({error.strerror or error})") from error

    @property
    def epoch(self) -> int:
        """The number of finished epochs in the latest snapshot."""
        return int(self.snapshot[0]["epoch"]) if self.snapshot is not None else 0

    def write(self, path) -> Path:
        """Write the latest snapshot (the state after the last finished epoch) to ``path``."""
        if self.snapshot is None:
            raise RuntimeError("a checkpoint is written only once training has begun")
        config, arrays = self.snapshot
        return write_archive(path, "checkpoint", config, arrays)

    def _take(self, epoch: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        config = self.model.get_config()
        # order="K": each copy laid out as its array (a Dense layer's W̃ column by column), so that reading the
        # checkpoint adopts the arrays without copying them again
        arrays = {key: value.copy(order="K") for key, value in self.model.get_weights().items()}
        optimizer = self.optimizer
        schedule = optimizer.schedule
        config.update(
            epoch=epoch,
            history=self.history.as_dict(),
            settings=self.settings,
            rng=_rng_state(self.rng),
            dropout_rngs={
                str(position): _rng_state(layer.rng)
                for position, layer in enumerate(self.model.layers)
                if isinstance(layer, Dropout)
            },
            optimizer={
                "type": optimizer.name,
                "config": optimizer.get_config(),
                "iterations": optimizer.iterations,
                "schedule": {"type": SCHEDULES.name_of(type(schedule)), "config": schedule.get_config()},
                "state_keys": [sorted(state) for state in optimizer.state],
            },
        )
        for index, state in enumerate(optimizer.state):
            for key, value in state.items():
                arrays[f"optimizer.{index}.{key}"] = value.copy(order="K")
        config["stopped_early"] = bool(self.model.stop_training)
        if self.dynamics is not None:
            config["dynamics"] = self.dynamics.dynamics
        if self.early_stopping is not None:
            state = self.early_stopping.state()
            best_weights = state.pop("best_weights") or []
            state["best"] = state["best"] if np.isfinite(state["best"]) else None
            config["early_stopping"] = state
            for index, value in enumerate(best_weights):
                arrays[f"early_stopping.{index}"] = value.copy(order="K")
        return config, arrays


def load_checkpoint(path) -> TrainingState:
    """Read a checkpoint written by :class:`Checkpoint`. It is checked as a model file is (see
    :mod:`nablanet.files.serialization`), and its optimizer and early-stopping arrays are matched to
    the model's parameters before anything is read."""
    with open_archive(path, "checkpoint") as archive:
        try:
            return _read_state(archive, path)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as error:
            raise ModelFileError(f"{path}: malformed checkpoint ({type(error).__name__}: {error})") from None


def _read_state(archive: Archive, path) -> TrainingState:
    """The training state in an open checkpoint; a ``KeyError``, ``ValueError``, … for a malformed one."""
    config = archive.config
    parameters = list(model_specs(archive, buffers=False).values())  # what the optimizer's state follows
    optimizer = _build_optimizer(config["optimizer"])
    keys = _state_keys(config["optimizer"]["state_keys"], optimizer, len(parameters))
    stopping = config.get("early_stopping")
    weights = list(model_specs(archive).values())  # what early stopping keeps: the parameters and the buffers
    stopping_arrays = len(weights) if any(name.startswith("early_stopping.") for name in archive.headers) else 0
    others = {f"optimizer.{index}.{name}": parameters[index] for index, names in enumerate(keys) for name in names}
    others.update({f"early_stopping.{index}": weights[index] for index in range(stopping_arrays)})
    model = read_model(archive, others)
    optimizer.iterations = _count("iterations", config["optimizer"]["iterations"])
    orders = [parameter.order for parameter in model.parameters()]  # laid out as the optimizer's own state is
    optimizer.state = [
        {name: np.require(archive.read(f"optimizer.{index}.{name}"), requirements=[orders[index]]) for name in names}
        for index, names in enumerate(keys)  # none before the first step
    ]
    epoch = _count("epoch", config["epoch"])
    history = _history(config["history"], epoch)
    rng = _restore_rng(config["rng"], path, "batch shuffling")
    _restore_dropout_rngs(model, config["dropout_rngs"], path)
    settings = dict(config["settings"])
    early_stopping = None if stopping is None else _early_stopping_state(stopping, archive, stopping_arrays)
    stopped_early = config.get("stopped_early", False)
    dynamics = config.get("dynamics")
    if not isinstance(stopped_early, bool) or not isinstance(dynamics, (dict, type(None))):
        raise ValueError("stopped_early must be true or false and dynamics an object")
    return TrainingState(model, optimizer, rng, epoch, history, settings, early_stopping, stopped_early, dynamics)


def _restore_dropout_rngs(model: Sequential, states, path) -> None:
    """Give each Dropout layer the random generator state the checkpoint kept for it."""
    for position, state in states.items():
        layer = model.layers[int(position)]
        if not isinstance(layer, Dropout):
            raise ModelFileError(f"{path}: layer {position} is not a Dropout layer")
        layer.rng = _restore_rng(state, path, f"Dropout layer {position}")


def _early_stopping_state(stopping, archive: Archive, arrays: int) -> dict[str, Any]:
    """Early stopping's state as :meth:`EarlyStopping.restore` takes it, with the best weights if kept
    (``arrays`` of them)."""
    best = stopping["best"]
    return {
        "best": float(best) if best is not None else np.inf,
        "best_epoch": None if stopping["best_epoch"] is None else _count("best_epoch", stopping["best_epoch"]),
        "wait": _count("wait", stopping["wait"]),
        "best_weights": [archive.read(f"early_stopping.{index}") for index in range(arrays)] or None,
    }


def _history(figures, epochs: int) -> History:
    """The per-epoch figures of a checkpoint: known names, each a list of at most ``epochs`` finite numbers."""
    names = {field.name for field in dataclasses.fields(History)}
    if not isinstance(figures, dict) or not set(figures) <= names:
        raise ValueError(f"the history must be an object with some of {sorted(names)}")
    for name, values in figures.items():
        numbers = isinstance(values, list) and all(
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) for value in values
        )
        if not numbers or len(values) > epochs:
            raise ValueError(f"the history's {name!r} must be a list of at most {epochs} finite numbers")
    return History(**{name: [float(value) for value in values] for name, values in figures.items()})


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a count ≥ 0, received {value!r}")
    return value


def _build_optimizer(config) -> Optimizer:
    """The optimizer and its schedule, from registered classes only, without its state."""
    cls = OPTIMIZERS.lookup(config["type"], argument="the optimizer")
    schedule_class = SCHEDULES.lookup(config["schedule"]["type"], argument="the schedule")
    return cls(schedule_class(**config["schedule"]["config"]), **config["config"])


def _state_keys(keys, optimizer: Optimizer, count: int) -> list[list[str]]:
    """The names of the optimizer's state arrays per parameter: none before the first step, else the
    optimizer's own names (momentum's velocity, Adam's m and v) for every parameter."""
    if not isinstance(keys, list) or (keys and len(keys) != count):
        raise ValueError(
            f"optimizer state for {len(keys) if isinstance(keys, list) else keys!r} parameters, the model has {count}"
        )
    allowed = sorted(optimizer.initial_state(np.zeros(1)))
    for names in keys:
        if names != allowed:
            raise ValueError(f"optimizer state {names!r:.80}, expected {allowed}")
    return keys
