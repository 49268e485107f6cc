"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model, the optimizer and its state (momentum, Adam moments, step count,
learning-rate schedule), the number of finished epochs, the history, the state of every random
generator (batch shuffling, each Dropout layer) and, if used, early stopping's state. Resuming from
it gives the same weights, bit for bit, as a run that was never interrupted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.layers import Dropout
from ..core.optimizers import OPTIMIZERS, Optimizer
from ..core.schedules import SCHEDULES
from ..training.callbacks import Callback, EarlyStopping
from ..training.loop import History, TrainingDiverged
from ..training.model import Sequential
from .serialization import ModelFileError, build_model, read_archive, write_archive

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


def _rng_state(generator: np.random.Generator) -> dict[str, Any]:
    return copy.deepcopy(dict(generator.bit_generator.state))


def _restore_rng(state, path, what) -> np.random.Generator:
    generator = np.random.default_rng()
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as error:
        raise ModelFileError(f"{path}: invalid random-generator state for {what} ({error})") from None
    return generator


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
    ):
        self.directory = Path(directory) if directory is not None else None
        self.optimizer, self.rng, self.history = optimizer, rng, history
        self.settings = settings or {}
        self.early_stopping = early_stopping
        self.snapshot: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None

    def on_train_begin(self, model):
        self.model = model
        self.snapshot = self._take(len(self.history.loss))
        if self.directory is not None:  # so that a checkpoint exists even if the first epoch fails
            self.write(self.directory / FILENAME)

    def on_epoch_end(self, epoch, logs):
        for parameter in self.model.parameters():
            if not np.isfinite(parameter.value).all():
                raise TrainingDiverged(
                    f"the weights became NaN or inf in epoch {epoch + 1}: training diverged; "
                    f"try a lower learning rate (the last good checkpoint is kept)"
                )
        # the early-stopping callback runs before this one, so its state for this epoch is final
        self.snapshot = self._take(epoch + 1)
        if self.directory is not None:
            self.write(self.directory / FILENAME)

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
        arrays = {key: value.copy() for key, value in self.model.get_weights().items()}
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
                arrays[f"optimizer.{index}.{key}"] = value.copy()
        if self.early_stopping is not None:
            state = self.early_stopping.state()
            best_weights = state.pop("best_weights") or []
            state["best"] = state["best"] if np.isfinite(state["best"]) else None
            config["early_stopping"] = state
            for index, value in enumerate(best_weights):
                arrays[f"early_stopping.{index}"] = value.copy()
        return config, arrays


def load_checkpoint(path) -> TrainingState:
    """Read a checkpoint written by :class:`Checkpoint`; every part is checked as a model file is."""
    config, arrays = read_archive(path, "checkpoint")
    known = ("layer", "optimizer.", "early_stopping.")
    strangers = sorted(key for key in arrays if not key.startswith(known))
    if strangers:
        raise ModelFileError(f"{path}: arrays {strangers} belong to no part of a checkpoint")
    model = build_model(config, arrays, path)
    try:
        optimizer = _build_optimizer(config["optimizer"], arrays, model, path)
        epoch, history = int(config["epoch"]), History(**config["history"])
        rng = _restore_rng(config["rng"], path, "batch shuffling")
        for position, state in config["dropout_rngs"].items():
            layer = model.layers[int(position)]
            if not isinstance(layer, Dropout):
                raise ModelFileError(f"{path}: layer {position} is not a Dropout layer")
            layer.rng = _restore_rng(state, path, f"Dropout layer {position}")
        settings = dict(config["settings"])
        early_stopping = config.get("early_stopping")
        if early_stopping is not None:
            early_stopping = {key: early_stopping[key] for key in ("best", "best_epoch", "wait")}
            early_stopping["best"] = float(early_stopping["best"]) if early_stopping["best"] is not None else np.inf
            early_stopping["best_weights"] = [
                arrays[f"early_stopping.{index}"]
                for index in range(len(model.parameters()))
                if f"early_stopping.{index}" in arrays
            ] or None
    except (KeyError, TypeError, ValueError, IndexError) as error:
        if isinstance(error, ModelFileError):
            raise
        raise ModelFileError(f"{path}: malformed checkpoint ({type(error).__name__}: {error})") from None
    return TrainingState(model, optimizer, rng, epoch, history, settings, early_stopping)


def _build_optimizer(config, arrays, model, path):
    cls = OPTIMIZERS.get(config["type"])
    schedule_cls = SCHEDULES.get(config["schedule"]["type"])
    if cls is None or schedule_cls is None:
        raise ModelFileError(f"{path}: unknown optimizer {config['type']!r} or schedule {config['schedule']['type']!r}")
    optimizer = cls(schedule_cls(**config["schedule"]["config"]), **config["config"])
    optimizer.iterations = int(config["iterations"])
    parameters = model.parameters()
    keys = config["state_keys"]
    if keys and len(keys) != len(parameters):
        raise ModelFileError(f"{path}: optimizer state for {len(keys)} parameters, the model has {len(parameters)}")
    for index, (names, parameter) in enumerate(zip(keys, parameters, strict=False)):  # no keys before the first step
        state = {}
        for name in names:
            key = f"optimizer.{index}.{name}"
            if key not in arrays:
                raise ModelFileError(f"{path}: the array {key!r} is missing")
            if arrays[key].shape != parameter.value.shape or arrays[key].dtype != parameter.value.dtype:
                raise ModelFileError(f"{path}: array {key!r} does not match parameter {index}")
            state[name] = arrays[key]
        optimizer.state.append(state)
    return optimizer
