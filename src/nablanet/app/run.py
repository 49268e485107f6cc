"""A training run as ``nablanet train`` performs it, as library functions that a notebook can call too.

:func:`train_run` is a whole run: load the data, build the classifier (or resume it from a checkpoint),
fit it with callbacks (checkpoints, early stopping, progress, dynamics), save the model, evaluate it
on the test set, and write the plots and ``metrics.json`` to a run folder. Nothing is lost on the way:
an interruption during training writes the last finished epoch's state (the ``with`` block of
``_state_saved_on_interrupt``), one after training saves the model first (``_model_kept``), and a full
disk sends either to the temporary folder. The command line only parses its options into
:class:`TrainingSettings`, calls it and prints. In a notebook::

    from nablanet.app.run import TrainingSettings, train_run
    result = train_run(TrainingSettings(hidden=(256, 128), optimizer="adam", epochs=5), out="runs/mlp")
    result.test_accuracy

The commands that use a trained model (evaluate, predict, inspect) and gradcheck and toy are in
:mod:`nablanet.app.model_commands`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import os
import tempfile
import time
import types
import typing
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..core import _checks, fusion, kernels, ops
from ..core.optimizers import OPTIMIZERS, Optimizer
from ..core.parameter import shapes_only
from ..core.schedules import make_schedule
from ..data.datasets import Dataset, load_dataset
from ..files.atomic import write_json
from ..files.checkpoint import FILENAME, Checkpoint, CheckpointWriteError, TrainingState, load_checkpoint
from ..files.folders import claim_folder, new_run_folder
from ..files.serialization import ModelFileError, save
from ..training.budget import memory_bytes, training_bytes
from ..training.callbacks import Callback, Dynamics, EarlyStopping, ProgressBar
from ..training.loop import History
from ..training.model import Sequential, build_classifier
from . import language, plots
from .language import TEXT_DATASETS, TEXT_MODELS, TextData
from .signals import deferred, safe_point, signals_held, signals_ignored


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """Everything that decides what a run computes; the defaults are the course notebook's recipe
    (the softmax classifier on MNIST, 20 epochs of SGD, batch 200, learning rate 0.01), in float32.

    ``conv`` adds a 3×3 convolution, activation and 2×2 max-pooling per entry (its number of filters)
    before the hidden layers; ``batch_norm`` a BatchNorm before every convolution's and hidden layer's
    activation. ``lr=None`` means 0.01 for SGD and 0.001 for Adam and AdamW. ``schedule``
    names a registered learning-rate schedule ("step": ÷10 every 10 epochs; "cosine": to 0 at the last epoch).
    ``dynamics=True`` records gradient and weight norms, dead units and activations per epoch.

    ``model`` is "classifier" for the image data sets; a text data set (``words``) trains a character model
    instead (see :mod:`nablanet.app.language`): "bigram", "lstm" (an LSTM of ``hidden[0]`` units, 128 by
    default) or "transformer" (``blocks`` blocks of ``heads`` heads), on windows of ``context`` characters
    embedded in ``embed`` features; its validation set is the data set's own.
    """

    dataset: str = "mnist"
    data_home: str | None = None
    hidden: tuple[int, ...] = ()
    conv: tuple[int, ...] = ()
    activation: str = "relu"
    init: str = "auto"
    epochs: int = 20
    batch_size: int = 200
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.0
    nesterov: bool = False
    schedule: str = "constant"
    weight_decay: float = 0.0
    clip_norm: float | None = None
    dropout: float = 0.0
    batch_norm: bool = False
    val_split: float = 0.0
    early_stopping: int | None = None
    dtype: str = "float32"
    seed: int = 0
    dynamics: bool = False
    model: str = "classifier"
    context: int = 32
    embed: int = 64
    heads: int = 4
    blocks: int = 2

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (lists for tuples), as checkpoints and ``metrics.json`` keep it."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in vars(self).items()}

    def _optimizer_arguments(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(OPTIMIZERS.lookup(self.optimizer, argument="optimizer")).parameters)

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimizer's own default (0.01 for SGD, 0.001 for Adam and AdamW)."""
        return self.lr if self.lr is not None else float(self._optimizer_arguments()["learning_rate"].default)

    def check(self) -> None:
        """Refuse values of the wrong type (a checkpoint's settings are read from a file), values out of
        range (each through :data:`VALUE_CHECKS`, as the command line's parser does) and combinations that
        cannot work, naming the command-line option."""
        for name, hint in typing.get_type_hints(TrainingSettings).items():
            value, option = getattr(self, name), _option(name)
            expected = _accepted_types(hint)
            if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
                raise ValueError(
                    f"{option} must be {' or '.join(t.__name__ for t in expected)}, received {value!r:.60}"
                )
        for name, check in VALUE_CHECKS.items():
            if getattr(self, name) is not None:  # lr and early_stopping: None is "the default", "off"
                check(_option(name), getattr(self, name))
        self._check_model()
        if self.early_stopping and not self.val_split and not self.text:
            raise ValueError("--early-stopping needs a validation set: add --val-split, e.g. 0.1")
        if self.nesterov and not self.momentum and "momentum" in self._optimizer_arguments():
            raise ValueError("--nesterov needs --momentum above 0, e.g. --momentum 0.9")
        if (self.momentum or self.nesterov) and "momentum" not in self._optimizer_arguments():
            raise ValueError(f"--momentum and --nesterov apply to --optimizer sgd, not {self.optimizer}")

    @property
    def text(self) -> bool:
        """Whether these settings train a character model (on a text data set)."""
        return self.model in TEXT_MODELS

    def _check_model(self) -> None:
        """Refuse a model that does not fit the data set, and options the model has no use for."""
        _checks.choice("--model", self.model, ("classifier", *TEXT_MODELS))
        if self.dataset in TEXT_DATASETS and not self.text:
            raise ValueError(
                f"--dataset {self.dataset} is text: choose a character model, --model {' or '.join(TEXT_MODELS)}"
            )
        if not self.text:
            changed = [name for name in TEXT_OPTIONS if getattr(self, name) != getattr(TrainingSettings, name)]
            if self.model != "classifier" or changed:
                option = "--model" if self.model != "classifier" else _option(changed[0])
                raise ValueError(f"{option} is for character models: add --dataset {TEXT_DATASETS[0]}")
            return
        if self.dataset not in TEXT_DATASETS:
            raise ValueError(f"--model {self.model} is a character model: it trains on --dataset {TEXT_DATASETS[0]}")
        for option, used, note in (
            ("--conv", not self.conv, ""),
            ("--hidden", not self.hidden or (self.model == "lstm" and len(self.hidden) == 1), " (lstm: one size)"),
            ("--dropout", not self.dropout, ""),
            ("--batch-norm", not self.batch_norm, " (the transformer has its LayerNorms)"),
            ("--val-split", not self.val_split, f" ({self.dataset} has its own validation set)"),
            ("--dynamics", not self.dynamics, ""),
            ("--init", self.init == "auto", ""),
            ("--data-home", self.data_home is None, " (the word list is read from the system, or bundled)"),
        ):
            if not used:
                raise ValueError(f"{option} does not apply to --model {self.model}{note}: leave it out")
        unused = {"bigram": ("embed", "heads", "blocks"), "lstm": ("heads", "blocks"), "transformer": ()}[self.model]
        for name in unused:
            if getattr(self, name) != getattr(TrainingSettings, name):
                raise ValueError(f"{_option(name)} does not apply to --model {self.model}: leave it out")
        if self.model == "transformer" and self.embed % self.heads:
            raise ValueError(f"--embed {self.embed} must be a multiple of --heads {self.heads}")

    def make_optimizer(self) -> Optimizer:
        """The optimizer (with its schedule) these settings describe."""
        schedule = make_schedule(self.schedule, self.learning_rate, self.epochs)
        options: dict[str, Any] = {"weight_decay": self.weight_decay, "clip_norm": self.clip_norm}
        if "momentum" in self._optimizer_arguments():
            options.update(momentum=self.momentum, nesterov=self.nesterov)
        return OPTIMIZERS.lookup(self.optimizer, argument="optimizer")(schedule, **options)


def _accepted_types(hint: Any) -> tuple[type, ...]:
    """The run-time types a setting's annotation allows (an int where a float is asked for too)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    accepted = tuple(typing.get_origin(option) or option for option in options)
    return (*accepted, int) if float in accepted else accepted


def _option(name: str) -> str:
    """The command-line option of a setting: ``val_split`` → ``--val-split``."""
    return "--" + name.replace("_", "-")


# The one check of each setting's value (beside its type): TrainingSettings.check calls it, and so does the
# command line's parser for the option (nablanet.app.commands), so that every value is checked by one function.
VALUE_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "hidden": _checks.layer_sizes,
    "conv": _checks.layer_sizes,
    "epochs": _checks.positive_int,
    "batch_size": _checks.positive_int,
    "lr": _checks.positive_float,
    "momentum": _checks.fraction,
    "weight_decay": _checks.non_negative_float,
    "clip_norm": _checks.positive_float,
    "dropout": _checks.fraction,
    "val_split": _checks.fraction,
    "early_stopping": _checks.positive_int,
    "seed": _checks.non_negative_int,
    "context": _checks.positive_int,
    "embed": _checks.positive_int,
    "heads": _checks.positive_int,
    "blocks": _checks.positive_int,
}
TEXT_OPTIONS = ("context", "embed", "heads", "blocks")  # what only a character model uses


@dataclasses.dataclass
class RunResult:
    """What a finished run produced: the folder and the files written there, the model, its history
    and its test figures."""

    folder: Path
    written: list[str]
    model: Sequential
    history: History
    test_loss: float
    test_accuracy: float | None  # None for a character model: its figure is the validation loss, test_loss
    seconds: float


RESUMABLE = ("epochs", "data_home")  # what --resume may change: extend the run, or find the data elsewhere


def resume_settings(
    settings: TrainingSettings, saved: dict[str, Any], given: Collection[str], finished: int
) -> TrainingSettings:
    """The settings of a resumed run: the checkpoint's, except ``epochs`` (to extend the run) and
    ``data_home`` where ``given`` names them. Any other option given with another value than the saved
    one is refused, never ignored. ``finished`` is the number of epochs the checkpoint has run."""
    if "epochs" not in saved:  # what the run was laid out for: the schedule and --epochs are checked against it
        raise ValueError("the checkpoint lacks the setting 'epochs'")
    values: dict[str, Any] = {}
    requested = settings.as_dict()
    for field in dataclasses.fields(TrainingSettings):
        key, option = field.name, _option(field.name)
        if key not in saved and field.default is dataclasses.MISSING:
            raise ValueError(f"the checkpoint lacks the setting {key!r}")
        value = saved.get(key, field.default)  # a setting added since the checkpoint was written: its default
        if key in given and requested[key] != value:
            if key not in RESUMABLE:
                shown = "not set" if value is None else value
                raise ValueError(
                    f"--resume continues the saved run, whose {option} is {shown}; {option} {requested[key]} would "
                    f"change it: leave {option} out, or start a new run in another --checkpoint-dir"
                )
            value = requested[key]
        values[key] = tuple(value) if key in ("hidden", "conv") and isinstance(value, list) else value
    try:
        resumed = TrainingSettings(**values)
    except TypeError as error:
        raise ValueError(f"the checkpoint's settings are malformed ({error})") from None
    resumed.check()
    if resumed.epochs < finished:
        raise ValueError(f"--epochs {resumed.epochs}: the saved run has finished {finished} epochs already")
    if resumed.epochs != saved["epochs"]:
        planned = make_schedule(resumed.schedule, resumed.learning_rate, saved["epochs"]).get_config()
        extended = make_schedule(resumed.schedule, resumed.learning_rate, resumed.epochs).get_config()
        if planned != extended:
            raise ValueError(
                f"--epochs {resumed.epochs}: the {resumed.schedule} schedule of the saved run was laid out for "
                f"{saved['epochs']} epochs, and one for {resumed.epochs} would have given the epochs already run "
                f"other learning rates; start a new run with --epochs {resumed.epochs} instead"
            )
    return resumed


def _write_state(checkpoint: Checkpoint, target: Path) -> Path:
    """Write the training state to ``target``, or, if that fails (a full disk), to the temporary folder;
    return where it went. If both fail, the error says so."""
    try:
        return checkpoint.write(target)
    except OSError as error:
        fallback = Path(tempfile.gettempdir()) / f"nablanet-state-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
        try:
            fallback.mkdir()
            return checkpoint.write(fallback / FILENAME)
        except OSError as second:
            with contextlib.suppress(OSError):
                fallback.rmdir()  # an empty folder left behind would only mislead
            raise OSError(
                f"could not save the training state to {target} ({error.strerror or error}) nor to {fallback} "
                f"({second.strerror or second}): the run is lost"
            ) from None


@dataclasses.dataclass
class _KeptModel:
    """Where the trained model went (empty until it is saved), and the notes said once the run has ended
    (so that a failure later is still one line)."""

    saved: list[Path] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def _save_model(model: Sequential, path: Path, checkpoint: Path | None, kept: _KeptModel) -> None:
    """Save the trained model to ``path`` and append where it went to ``kept.saved``; if the disk is full,
    save it to a file in the temporary folder instead, and append a note that says so to ``kept.notes``. If
    both fail, the error says what was lost and what was kept. Ctrl-C and SIGTERM wait until a save is
    complete."""
    try:
        with signals_held():
            save(model, path)
            kept.saved.append(path)
        return
    except OSError as error:
        fallback = Path(tempfile.gettempdir()) / f"nablanet-model-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.npz"
        try:
            with signals_held():
                save(model, fallback)
                kept.saved.append(fallback)
        except OSError as second:
            lost = f"; the state after its last epoch is in {checkpoint}" if checkpoint else ""
            raise OSError(
                f"could not write {path} ({error.strerror or error}) nor {fallback} ({second.strerror or second}): "
                f"the trained model is lost{lost}"
            ) from None
        kept.notes.append(f"could not write {path} ({error.strerror or error}); the trained model is in {fallback}")


@dataclasses.dataclass(frozen=True)
class _RunContext:
    """Where a run writes and how it reports: the run folder, the checkpoint folder (None: no checkpoint
    after each epoch), the function that receives each line of progress, and the command line that started
    the run (kept in ``metrics.json``), the callbacks added to the run's own, whether a progress bar and
    a line per epoch are shown, and whether a classifier trains with the fused path (``fit(..., fuse=True)``)."""

    folder: Path
    checkpoint_dir: Path | None
    report: Callable[[str], None]
    command: str
    callbacks: tuple[Callback, ...] = ()
    progress: bool = True
    fuse: bool = False

    @property
    def checkpoint_path(self) -> Path | None:
        """The checkpoint file written after every epoch, if there is one."""
        return self.checkpoint_dir / FILENAME if self.checkpoint_dir is not None else None

    @property
    def state_path(self) -> Path:
        """Where an interruption writes the training state: the checkpoint, else ``checkpoint.npz`` in the
        run folder."""
        return self.checkpoint_path or self.folder / FILENAME


def train_run(
    settings: TrainingSettings = TrainingSettings(),
    *,
    out: Path | str | None = None,
    checkpoint_dir: Path | str | None = None,
    resume: bool = False,
    given: Collection[str] | None = None,
    report: Callable[[str], None] = print,
    command: str = "",
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    fuse: bool = False,
) -> RunResult:
    """Run a whole training as ``nablanet train`` does, and write its files to ``out`` (default: a new
    folder under ``runs/``).

    ``checkpoint_dir`` writes ``checkpoint.npz`` there after every epoch; a folder that already holds one
    is refused unless ``resume=True``, which continues that run with its settings (see
    :func:`resume_settings`; ``given`` names the options the user typed — by default those that differ
    from the defaults). Both folders are locked for the run. ``report`` receives each line of progress;
    ``callbacks`` are called by ``fit`` after the run's own (the playground shows its epochs with one);
    ``progress=False`` leaves out the progress bar and the line per epoch (a sweep's trials say one line each).
    ``fuse=True`` trains a classifier with the fused path (``fit(..., fuse=True)``, :mod:`nablanet.core.fusion`):
    the same numbers, faster where numba's compiled loops run; the header says which blocks train fused, or why
    none does. It is not one of the settings: it changes no number of the run, so a run may be resumed with or
    without it, as its folders may change.

    Nothing is lost on the way: Ctrl-C or SIGTERM during training writes the last finished epoch's state
    and raises the interruption again, with a message that says where the state is; the model is saved
    as soon as training ends, before the test figures and plots, with a fallback if the disk is full.
    """
    given = set(given) if given is not None else _changed_settings(settings)
    with contextlib.ExitStack() as locks:
        checkpoints = None
        if checkpoint_dir is not None:
            locks.enter_context(claim_folder(checkpoint_dir, "--checkpoint-dir"))
            checkpoints = Path(checkpoint_dir)
        state = None
        if resume:
            state = _state_to_resume(checkpoints)
            settings = resume_settings(settings, state.settings, given, state.epoch)
        elif checkpoints is not None and (checkpoints / FILENAME).exists():
            raise ValueError(
                f"--checkpoint-dir {checkpoint_dir} holds the checkpoint of an earlier run: continue it with "
                f"--resume, or start afresh in another folder (or after removing {checkpoints / FILENAME})"
            )
        settings.check()
        if fuse and settings.text:
            raise ValueError(
                f"--fuse does not apply to --model {settings.model} (it fuses a classifier's Conv2D → ReLU → "
                "MaxPool2D and Dense → ReLU): leave it out"
            )
        created = out is None or not Path(out).exists()  # a folder made for this run goes if it stays empty
        folder = Path(out) if out is not None else new_run_folder()
        if not resume and checkpoints is None and (folder / FILENAME).exists():
            raise ValueError(
                f"--out {folder} holds the saved state of an interrupted run: continue it with --resume "
                f"--checkpoint-dir {folder}, or choose another --out"
            )
        earlier = [name for name in ("model.npz", "metrics.json") if (folder / name).exists()]
        if earlier:
            raise ValueError(
                f"--out {folder} holds the {earlier[0]} of an earlier run, which this run would replace: choose "
                f"another --out (or remove {folder / earlier[0]} first)"
            )
        if checkpoints is None or folder.resolve() != checkpoints.resolve():
            locks.enter_context(claim_folder(folder))
        try:
            with deferred():  # Ctrl-C and SIGTERM are acted on at safe points (see nablanet.app.signals)
                context = _RunContext(folder, checkpoints, report, command, tuple(callbacks), progress, fuse)
                return _train(settings, state, context)
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if the run left nothing in it (a model refused before training)
            raise


def _changed_settings(settings: TrainingSettings) -> set[str]:
    """The settings whose value differs from the default: what the user asked for, when nobody says."""
    defaults = TrainingSettings().as_dict()
    return {key for key, value in settings.as_dict().items() if value != defaults[key]}


def _state_to_resume(checkpoints: Path | None) -> TrainingState:
    """The training state that ``--resume`` continues, read from the checkpoint in ``checkpoints``; a
    checkpoint whose settings are malformed is refused, naming the file."""
    if checkpoints is None:
        raise ValueError("--resume needs --checkpoint-dir, the folder of the run to continue")
    path = checkpoints / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume: {path} does not exist")
    state = load_checkpoint(path)
    try:
        resume_settings(TrainingSettings(), state.settings, (), state.epoch)
    except (ValueError, TypeError) as error:
        raise ModelFileError(f"{path}: its settings are malformed ({error})") from None
    return state


@dataclasses.dataclass
class _Training:
    """A model ready for ``fit``, new or resumed, with what ``fit`` continues from: its optimizer, random
    generator, history and first epoch, and the callbacks (the checkpoint and dynamics among them)."""

    model: Sequential
    optimizer: Optimizer
    rng: np.random.Generator
    history: History
    initial_epoch: int
    checkpoint: Checkpoint
    dynamics: Dynamics | None
    callbacks: list[Callback]


def _train(settings: TrainingSettings, state: TrainingState | None, run: _RunContext) -> RunResult:
    """Fit the model (continuing ``state``, if given) with its state saved on an interruption, then save the
    model and write the test figures, plots and metrics.json."""
    optimizer = settings.make_optimizer() if state is None else state.optimizer
    started = time.perf_counter()
    data = _load(settings)
    training = _start(settings, state, data, optimizer, run)
    late: KeyboardInterrupt | None = None  # an interruption after the last epoch: keep the model, then stop
    if state is not None and state.stopped_early:
        _keep_best_weights(state, training.model, run.report)
    else:
        with _state_saved_on_interrupt(training, settings.epochs, run.state_path, run.fuse) as interruption:
            _fit(settings, data, training, run.fuse)
        late = interruption.late
    seconds = time.perf_counter() - started
    with _model_kept(training.model, run.folder, run.checkpoint_path) as kept:
        if late is not None:
            raise late
        if isinstance(data, TextData):
            result = _finish_text(settings, data, training, run, kept.saved[0], seconds)
        else:
            result = _finish(settings, data, training, run, kept.saved[0], seconds)
    for note in kept.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return result


def _load(settings: TrainingSettings) -> Dataset | TextData:
    """The data set of a run: images, or a text cut into windows of ``settings.context`` characters."""
    if settings.text:
        return language.load_text(settings.dataset, settings.context, settings.dtype)
    return load_dataset(settings.dataset, settings.data_home, settings.dtype)


def _start(
    settings: TrainingSettings,
    state: TrainingState | None,
    data: Dataset | TextData,
    optimizer: Optimizer,
    run: _RunContext,
) -> _Training:
    """The model to train — a new classifier, or the one in ``state`` — with its callbacks; report what is
    trained."""
    if state is None:
        with shapes_only():  # the model without its arrays, priced before anything is allocated
            _check_training_memory(_model(settings, data), settings)
        rng = np.random.default_rng(settings.seed)
        model = _model(settings, data, rng)
        history, initial_epoch = History(), 0
    else:
        model, rng, history, initial_epoch = state.model, state.rng, state.history, state.epoch
        _check_resumed_model(model, settings, data, run.checkpoint_path)
        _check_resumed_optimizer(optimizer, settings, run.checkpoint_path)
        _check_training_memory(model, settings)
        run.report(f"Resuming from {run.checkpoint_path} after epoch {initial_epoch}")
    if isinstance(data, TextData):
        model.metadata = language.text_metadata(settings.model, data, settings.context)
        run.report(
            f"Training a {settings.model} character model ({language.count_parameters(model):,} parameters) on "
            f"{data.name}: {data.X_train.shape[1]:,} windows of {settings.context} characters, "
            f"{data.X_val.shape[1]:,} for validation, {data.size} characters; {settings.epochs} "
            f"epoch{'' if settings.epochs == 1 else 's'}, batch {settings.batch_size}, {optimizer.name} "
            f"(learning rate {optimizer.learning_rate:g}), {settings.dtype}"
        )
        return _callbacks(settings, state, data, optimizer, run, model, rng, history, initial_epoch)
    model.metadata = {"dataset": data.name, "class_names": list(data.class_names)}
    images = data.X_train.shape[1]
    held_out = round(images * settings.val_split)
    if settings.val_split and not 0 < held_out < images:
        raise ValueError(
            f"--val-split {settings.val_split} of the {images:,} training images holds out {held_out:,}: "
            f"{'none is left to train on' if held_out else 'no image to validate on'}"
        )
    epochs = f"{settings.epochs} epoch{'' if settings.epochs == 1 else 's'}"
    run.report(
        f"Training on {data.name}: {images - held_out} samples, {data.X_train.shape[0]} features, "
        f"{data.num_classes} classes; {epochs}, batch {settings.batch_size}, {optimizer.name} "
        f"(learning rate {optimizer.learning_rate:g}), {settings.dtype}"
    )
    if run.fuse:
        run.report(_fusion_note(model))
    if settings.val_split:
        run.report(
            "An epoch's training loss is the mean over its batches while the weights moved, its validation loss "
            "is measured after the epoch: early on, the validation loss can lie below the training loss"
        )
    return _callbacks(settings, state, data, optimizer, run, model, rng, history, initial_epoch)


def _callbacks(
    settings: TrainingSettings,
    state: TrainingState | None,
    data: Dataset | TextData,
    optimizer: Optimizer,
    run: _RunContext,
    model: Sequential,
    rng: np.random.Generator,
    history: History,
    initial_epoch: int,
) -> _Training:
    """The run's callbacks (early stopping, dynamics, the checkpoint, progress, safe points) around ``model``."""
    stopper = None
    if settings.early_stopping:
        stopper = EarlyStopping(patience=settings.early_stopping)
        stopper.restore(state.early_stopping if state is not None else None)
    dynamics = None
    if settings.dynamics:
        dynamics = Dynamics(data.X_train[:, :1000], record=state.dynamics if state is not None else None)
    checkpoint = Checkpoint(
        run.checkpoint_dir,
        optimizer=optimizer,
        rng=rng,
        history=history,
        settings=settings.as_dict(),
        early_stopping=stopper,
        dynamics=dynamics,
    )
    # the dynamics before the checkpoint, which keeps their record; an epoch's line is printed once its state is saved
    callbacks: list[Callback] = [callback for callback in (stopper, dynamics) if callback is not None]
    progress = ProgressBar(settings.epochs, verbose=1 if run.progress else 0)  # at 0, silent (fit adds none then)
    callbacks += [checkpoint, progress, *run.callbacks, _SafePoints()]
    return _Training(model, optimizer, rng, history, initial_epoch, checkpoint, dynamics, callbacks)


def _model(settings: TrainingSettings, data: Dataset | TextData, rng: np.random.Generator | None = None) -> Sequential:
    """The model ``settings`` describe, for ``data``: a character model, or the classifier (see :func:`_classifier`)."""
    if isinstance(data, TextData):
        return language.build_text_model(
            settings.model,
            data.size,
            context=settings.context,
            embed=settings.embed,
            heads=settings.heads,
            blocks=settings.blocks,
            hidden=settings.hidden[0] if settings.hidden else 128,
            dtype=settings.dtype,
            rng=rng,
        )
    return _classifier(settings, data, rng)


def _classifier(settings: TrainingSettings, data: Dataset, rng: np.random.Generator | None = None) -> Sequential:
    """The classifier ``settings`` describe, for ``data``; a ``ValueError`` that names the option at fault."""
    try:
        return build_classifier(
            data.X_train.shape[0],
            data.num_classes,
            settings.hidden,
            conv=settings.conv,
            activation=settings.activation,
            dropout=settings.dropout,
            batch_norm=settings.batch_norm,
            init=settings.init,
            dtype=settings.dtype,
            rng=rng,
        )
    except ValueError as error:
        sizes = [
            (option, value) for option, value in (("--conv", settings.conv), ("--hidden", settings.hidden)) if value
        ]
        if not sizes:
            raise
        given, hint = " ".join(f"{option} {','.join(map(str, value)):.60}" for option, value in sizes), ""
        if settings.conv and "does not fit" in str(error):
            side, fitting = math.isqrt(data.X_train.shape[0]), 0
            while (side - 2) // 2 >= 1:  # a block: a 3×3 convolution (2 pixels less), a 2×2 max-pooling (half)
                side, fitting = (side - 2) // 2, fitting + 1
            hint = f"; {data.name}'s images have room for {fitting} blocks (a 3×3 convolution and a 2×2 pooling each)"
        raise ValueError(f"{given}: {error}{hint}") from None


def _check_resumed_model(
    model: Sequential, settings: TrainingSettings, data: Dataset | TextData, path: Path | None
) -> None:
    """Refuse a checkpoint whose settings do not describe its model (an altered file): the model the settings
    build for ``data`` must have the very layers, sizes and dtype of the one saved."""
    with shapes_only():
        expected = _model(settings, data).get_config()["layers"]
    saved = model.get_config()["layers"]
    if saved != expected:
        where = next(
            (
                f"layer {n} is {a['type']} {a.get('config')}, the settings make {b['type']} {b.get('config')}"
                for n, (a, b) in enumerate(zip(saved, expected, strict=False))
                if a != b
            ),
            f"it has {len(saved)} layers, the settings make {len(expected)}",
        )
        raise ValueError(f"{path}: the checkpoint's settings do not describe its model: {where:.300}")


def _check_resumed_optimizer(optimizer: Optimizer, settings: TrainingSettings, path: Path | None) -> None:
    """Refuse a checkpoint whose optimizer (kind, arguments, learning-rate schedule) is not the one its settings
    make: the run would go on with another learning rate than the one it records."""

    def described(made: Optimizer) -> tuple:
        return made.name, made.get_config(), type(made.schedule).__name__, made.schedule.get_config()

    saved, expected = described(optimizer), described(settings.make_optimizer())
    if saved != expected:
        raise ValueError(
            f"{path}: the checkpoint's settings do not describe its optimizer: it is {saved[0]} {saved[1]} with "
            f"{saved[2]} {saved[3]}, the settings make {expected[0]} {expected[1]} with {expected[2]} {expected[3]}"
        )


def _check_training_memory(model: Sequential, settings: TrainingSettings) -> None:
    """Refuse a model that cannot be trained in this computer's memory, saying how much it would need."""
    input_size = settings.context if settings.text else None  # a window of token ids
    needed, available = training_bytes(model, settings.batch_size, input_size), memory_bytes() * 3 // 4
    if needed > available:
        sizes = [
            f"{option} {','.join(map(str, sizes)):.60}"
            for option, sizes in (("--conv", settings.conv), ("--hidden", settings.hidden))
            if sizes
        ]
        if settings.text:
            sizes = [
                f"--model {settings.model}",
                *(f"{_option(name)} {getattr(settings, name)}" for name in TEXT_OPTIONS),
            ]
        raise ValueError(
            f"{' '.join(sizes) or 'the model'} with --batch-size {settings.batch_size} needs about "
            f"{needed / 2**30:.1f} GiB to train ({model.cost(input_size).values:,} numbers a sample), more than the "
            f"{available / 2**30:.1f} GiB nablanet allows on this computer (three quarters of its memory): "
            f"use fewer or smaller layers, or a smaller --batch-size"
        )


class _SafePoints(Callback):
    """``fit``'s safe points, where a Ctrl-C or SIGTERM noted meanwhile stops the run: between every two
    batches, and after each epoch once its state is kept and its line printed."""

    def on_batch_end(self, batch, loss):
        safe_point()

    def on_epoch_end(self, epoch, logs):
        safe_point()


def _keep_best_weights(state: TrainingState, model: Sequential, report: Callable[[str], None]) -> None:
    """A resumed run that had stopped early has nothing more to train: say so, and put back the weights of
    its best epoch."""
    report(f"The saved run stopped early after epoch {state.epoch}: there is nothing more to train")
    if state.early_stopping and state.early_stopping["best_weights"]:
        model.set_weights(dict(zip(model.get_weights(), state.early_stopping["best_weights"], strict=True)))


def _fusion_note(model: Sequential) -> str:
    """The header's line for ``--fuse``: the blocks that train fused, or why the eager layers train instead."""
    fused = [layer for layer in fusion.fuse(model.layers) if isinstance(layer, (fusion.ConvReLUPool, fusion.DenseReLU))]
    blocks = Counter(" → ".join(type(part).__name__ for part in layer.parts) for layer in fused)
    if blocks:
        listing = ", ".join(f"{count} × {name}" for name, count in blocks.items())
        skipping = sum(isinstance(layer, fusion.ConvReLUPool) and layer.skips() for layer in fused)
        numbers = "the eager layers' numbers"
        if skipping:
            which = "the block that leaves" if skipping == 1 else f"the {skipping} blocks that leave"
            numbers += f", to float32 rounding in {which} out the convolution's outputs no pooling window reads"
        return f"Fused path (--fuse): {listing}, each trained as one block ({numbers})"
    if not ops.fusable(model.parameters()[0].value):
        return (
            "Fused path (--fuse): the eager layers train, as without it: the fused blocks run on numba's compiled "
            f"loops, and this process runs {kernels.path()}"
        )
    return (
        "Fused path (--fuse): the eager layers train, as without it: this model has no Conv2D → ReLU → MaxPool2D "
        "or Dense → ReLU in a row to fuse (a BatchNorm between, or another activation than ReLU, keeps them apart)"
    )


def _fit(settings: TrainingSettings, data: Dataset | TextData, training: _Training, fuse: bool) -> None:
    """``fit`` the model on the training set, from ``training.initial_epoch`` to ``settings.epochs`` (a classifier
    with the fused path if ``fuse``)."""
    safe_point()  # a signal that came while the data loaded stops the run here, with nothing to save yet
    if isinstance(data, TextData):  # next-character ids scored by the sequence loss, the data set's validation set
        training.model.fit(
            data.X_train,
            data.Y_train,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            optimizer=training.optimizer,
            loss="sequence",
            rng=training.rng,
            validation_data=(data.X_val, data.Y_val),
            callbacks=training.callbacks,
            initial_epoch=training.initial_epoch,
            history=training.history,
        )
        return
    training.model.fit(
        data.X_train,
        data.Y_train,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        optimizer=training.optimizer,
        rng=training.rng,
        validation_split=settings.val_split,
        callbacks=training.callbacks,
        initial_epoch=training.initial_epoch,
        history=training.history,
        fuse=fuse,
    )


@dataclasses.dataclass
class _Interruption:
    """A Ctrl-C or SIGTERM that came once there was nothing left to train, raised again after the model is saved."""

    late: KeyboardInterrupt | None = None


@contextlib.contextmanager
def _state_saved_on_interrupt(training: _Training, epochs: int, target: Path, fuse: bool) -> Iterator[_Interruption]:
    """A ``with`` block around ``fit``: a Ctrl-C or SIGTERM (:class:`~nablanet.app.signals.Terminated`) in it
    writes the state after the last finished epoch to ``target`` (or to the temporary folder if the disk is
    full), further signals ignored meanwhile, and is raised again with a message that says where the state
    is and how to continue. One that comes before the first epoch began has nothing to save; one that comes
    after the last epoch, or once early stopping has stopped the run, ends the block quietly and is kept in
    the yielded record's ``late``, to be raised once the model is saved. An epoch's checkpoint that cannot be
    written (a full disk) stops the run the same way: the state goes to the temporary folder, and the error
    says where and how to continue (with ``--fuse`` if this run trained with it)."""
    interruption = _Interruption()
    try:
        yield interruption
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (signals.Terminated)
        checkpoint = training.checkpoint
        if checkpoint.snapshot is None:
            raise type(stop)("before the first epoch began: there was nothing to save yet") from None
        if checkpoint.epoch < epochs and not training.model.stop_training:
            with signals_ignored():  # a second signal must not cut the saving short
                written = _write_state(checkpoint, target)
            raise type(stop)(
                f"the state after epoch {checkpoint.epoch} is in {written}: continue with {_resume(written, fuse)}"
            ) from None
        interruption.late = stop
    except CheckpointWriteError as error:  # a full disk: the state goes where it can, and the run stops
        checkpoint = training.checkpoint
        if checkpoint.epoch == training.initial_epoch:  # nothing trained yet: nothing to keep
            raise error.__cause__ or error from None
        with signals_ignored():
            written = _write_state(checkpoint, target)
        raise OSError(
            f"{error.strerror}; the state after epoch {checkpoint.epoch} is in {written}: continue with "
            f"{_resume(written, fuse)}"
        ) from None


def _resume(state: Path, fuse: bool) -> str:
    """The command that continues the run whose state is in the file ``state``."""
    return f"nablanet train --resume --checkpoint-dir {state.parent}{' --fuse' if fuse else ''}"


@contextlib.contextmanager
def _model_kept(model: Sequential, folder: Path, checkpoint: Path | None) -> Iterator[_KeptModel]:
    """A ``with`` block for what follows training: on entering, the model is saved to ``folder/model.npz``
    (see :func:`_save_model`: the temporary folder if the disk is full); whatever then stops the block —
    a Ctrl-C, a SIGTERM, a file that cannot be written — is raised again with a message that says where
    the trained model is. A signal that came before the model was saved saves it first."""
    path = folder / "model.npz"
    kept = _KeptModel()
    try:
        _save_model(model, path, checkpoint, kept)
        yield kept
    except KeyboardInterrupt as stop:
        with signals_ignored():
            if not kept.saved:  # the signal came just before the save: save now, then stop
                _save_model(model, path, checkpoint, kept)
        message = (
            f"after training: the trained model is in {kept.saved[0]}; the test figures and plots were not all made"
        )
        raise type(stop)(message) from None
    except OSError as error:
        if not kept.saved:
            raise
        where = f"could not write {error.filename or folder} ({error.strerror or error})"
        raise OSError(f"{where}; the trained model is in {kept.saved[0]}") from None


def _finish(
    settings: TrainingSettings, data: Dataset, training: _Training, run: _RunContext, model_path: Path, seconds: float
) -> RunResult:
    """Test figures, plots and metrics.json of a trained (and already saved) model."""
    model, history, dynamics, folder = training.model, training.history, training.dynamics, run.folder
    test = model.evaluate(data.X_test, data.Y_test)
    probabilities = model.predict_proba(data.X_test)
    predictions = probabilities.argmax(axis=0)
    safe_point()  # here and below: a signal stops the run with the model saved (see _model_kept)
    run.report(f"Test accuracy: {test['accuracy']:.4f} (test loss {test['loss']:.6f})")
    run.report(f"Time: {seconds:.1f} s for loading and training")
    run.report(f"Array kernels: {kernels.used()}")
    figures = history.as_dict()
    written = [model_path.name if model_path.parent == folder else str(model_path)]
    plots.plot_history(figures, folder / "loss.png", "loss")
    written.append("loss.png")
    safe_point()
    if "val_accuracy" in figures:
        plots.plot_history(figures, folder / "accuracy.png", "accuracy")
        plots.plot_confusion_matrix(
            data.y_test,
            predictions,
            folder / "confusion_matrix.png",
            class_names=data.class_names,
            title=f"Confusion matrix on the {data.name} test set ({data.X_test.shape[1]} images)",
        )
        written += ["accuracy.png", "confusion_matrix.png"]
    plots.plot_misclassified(
        data.X_test,
        data.y_test,
        probabilities,
        folder / "misclassified.png",
        class_names=data.class_names,
        rng=settings.seed,
    )
    written.append("misclassified.png")
    safe_point()
    if dynamics:
        plots.plot_dynamics(dynamics.dynamics, folder / "dynamics.png")
        written.append("dynamics.png")
    metrics = {
        **_metrics_head(settings, data, run, figures),
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "seconds": round(seconds, 3),
        **({"dynamics": dynamics.dynamics} if dynamics else {}),
    }
    write_json(folder / "metrics.json", metrics)
    written.append("metrics.json")
    return RunResult(folder, written, model, history, test["loss"], test["accuracy"], seconds)


def _metrics_head(settings: TrainingSettings, data: Dataset | TextData, run: _RunContext, figures: dict) -> dict:
    """The first entries of every run's metrics.json: the data set, the command, the settings, the epochs run
    and the history of each figure."""
    return {
        "dataset": data.name,
        "command": run.command,
        "settings": settings.as_dict(),
        "epochs_run": len(figures["loss"]),
        "history": figures,
    }


def _finish_text(
    settings: TrainingSettings,
    data: TextData,
    training: _Training,
    run: _RunContext,
    model_path: Path,
    seconds: float,
) -> RunResult:
    """Validation loss, samples, pictures and metrics.json of a trained (and already saved) character model."""
    model, history, folder = training.model, training.history, run.folder
    loss = model.evaluate(data.X_val, data.Y_val, loss="sequence")["loss"]
    safe_point()  # here and below: a signal stops the run with the model saved (see _model_kept)
    run.report(
        f"Validation loss: {loss:.4f} nats per character ({loss / math.log(2):.3f} bits); a uniform guess over the "
        f"{data.size} characters costs log {data.size} = {math.log(data.size):.4f}"
    )
    run.report(f"Time: {seconds:.1f} s for loading and training")
    words = language.generate(model, count=10, seed=settings.seed)
    run.report("Samples (temperature 1): " + ", ".join(words))
    written = [model_path.name if model_path.parent == folder else str(model_path)]
    language.written_samples(folder / "samples.txt", words, 1.0, settings.seed)
    written.append("samples.txt")
    figures = history.as_dict()
    plots.plot_text_loss(figures, folder / "loss.png", vocabulary_size=data.size)
    written.append("loss.png")
    safe_point()
    if settings.model == "transformer":
        word = language.attention_sample(data, settings.context)
        plots.plot_attention(*language.attention_maps(model, word), folder / "attention.png")
        written.append("attention.png")
    metrics = {
        **_metrics_head(settings, data, run, figures),
        "validation_loss": loss,
        "parameters": language.count_parameters(model),
        "samples": words,
        "seconds": round(seconds, 3),
    }
    write_json(folder / "metrics.json", metrics)
    written.append("metrics.json")
    return RunResult(folder, written, model, history, loss, None, seconds)
