"""What each ``nablanet`` command does, as library functions that a notebook can call too.

:func:`train_run` is a whole training run as ``nablanet train`` performs it: load the data, build the
classifier, fit it with callbacks (checkpoints, early stopping, progress, dynamics), evaluate it on
the test set, and write the model, the plots and ``metrics.json`` to a run folder. The command line
only parses its options into :class:`TrainingSettings`, calls it and prints; likewise
:func:`evaluate_model`, :func:`inspect_model` and :func:`toy_run`. In a notebook::

    from nablanet.app.run import TrainingSettings, train_run
    result = train_run(TrainingSettings(hidden=(256, 128), optimizer="adam", epochs=5), out="runs/mlp")
    result.test_accuracy
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import tempfile
import time
import types
import typing
import warnings
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..core.activations import Softmax
from ..core.convolution import Conv2D
from ..core.gradcheck import GradcheckReport, gradcheck
from ..core.layers import Dense
from ..core.losses import cce, cce_gradient
from ..core.optimizers import OPTIMIZERS, Optimizer
from ..core.preprocessing import one_hot
from ..core.schedules import make_schedule
from ..data.datasets import DATASETS, load_dataset
from ..data.images import SIZE, load_image
from ..files.atomic import write_json
from ..files.checkpoint import FILENAME, Checkpoint, TrainingState, load_checkpoint
from ..files.folders import claim_folder, new_run_folder
from ..files.serialization import ModelFileError, load, save
from ..training.callbacks import Callback, Dynamics, EarlyStopping, ProgressBar
from ..training.loop import History
from ..training.model import Sequential, build_classifier
from . import plots
from .signals import signals_held, signals_ignored


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """Everything that decides what a run computes; the defaults are the course notebook's recipe
    (the softmax classifier on MNIST, 20 epochs of SGD, batch 200, learning rate 0.01), in float32.

    ``conv`` adds a 3×3 convolution, activation and 2×2 max-pooling per entry (its number of filters)
    before the hidden layers. ``lr=None`` means 0.01 for SGD and 0.001 for Adam and AdamW. ``schedule``
    names a registered learning-rate schedule ("step": ÷10 every 10 epochs; "cosine": to 0 at the last epoch).
    ``dynamics=True`` records gradient and weight norms, dead units and activations per epoch.
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
    dropout: float = 0.0
    val_split: float = 0.0
    early_stopping: int | None = None
    dtype: str = "float32"
    seed: int = 0
    dynamics: bool = False

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
        """Refuse values of the wrong type (a checkpoint's settings are read from a file) and combinations
        that cannot work, naming the command-line option."""
        for name, hint in typing.get_type_hints(TrainingSettings).items():
            value, option = getattr(self, name), "--" + name.replace("_", "-")
            expected = _accepted_types(hint)
            if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
                raise ValueError(
                    f"{option} must be {' or '.join(t.__name__ for t in expected)}, received {value!r:.60}"
                )
        for option, sizes in (("--hidden", self.hidden), ("--conv", self.conv)):
            if not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in sizes):
                raise ValueError(f"{option} must be positive sizes, received {sizes!r:.60}")
        if self.early_stopping and not self.val_split:
            raise ValueError("--early-stopping needs a validation set: add --val-split, e.g. 0.1")
        if (self.momentum or self.nesterov) and "momentum" not in self._optimizer_arguments():
            raise ValueError(f"--momentum and --nesterov apply to --optimizer sgd, not {self.optimizer}")

    def make_optimizer(self) -> Optimizer:
        """The optimizer (with its schedule) these settings describe."""
        schedule = make_schedule(self.schedule, self.learning_rate, self.epochs)
        options: dict[str, Any] = {"weight_decay": self.weight_decay}
        if "momentum" in self._optimizer_arguments():
            options.update(momentum=self.momentum, nesterov=self.nesterov)
        return OPTIMIZERS.lookup(self.optimizer, argument="optimizer")(schedule, **options)


def _accepted_types(hint: Any) -> tuple[type, ...]:
    """The run-time types a setting's annotation allows (an int where a float is asked for too)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    accepted = tuple(typing.get_origin(option) or option for option in options)
    return (*accepted, int) if float in accepted else accepted


@dataclasses.dataclass
class RunResult:
    """What a finished run produced: the folder and the files written there, the model, its history
    and its test figures."""

    folder: Path
    written: list[str]
    model: Sequential
    history: History
    test_loss: float
    test_accuracy: float
    seconds: float


RESUMABLE = ("epochs", "data_home")  # what --resume may change: extend the run, or find the data elsewhere


def resume_settings(
    settings: TrainingSettings, saved: dict[str, Any], given: Collection[str], finished: int
) -> TrainingSettings:
    """The settings of a resumed run: the checkpoint's, except ``epochs`` (to extend the run) and
    ``data_home`` where ``given`` names them. Any other option given with another value than the saved
    one is refused, never ignored. ``finished`` is the number of epochs the checkpoint has run."""
    values: dict[str, Any] = {}
    requested = settings.as_dict()
    for field in dataclasses.fields(TrainingSettings):
        key, option = field.name, "--" + field.name.replace("_", "-")
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
            raise OSError(
                f"could not save the training state to {target} ({error.strerror or error}) nor to {fallback} "
                f"({second.strerror or second}): the run is lost"
            ) from None


def _save_model(model: Sequential, path: Path, checkpoint: Path | None, saved: list[Path], notes: list[str]) -> None:
    """Save the trained model to ``path`` and append where it went to ``saved``; if the disk is full,
    save it to a file in the temporary folder instead, and append a note that says so to ``notes``. If
    both fail, the error says what was lost and what was kept. Ctrl-C and SIGTERM wait until a save is
    complete."""
    try:
        with signals_held():
            save(model, path)
            saved.append(path)
        return
    except OSError as error:
        fallback = Path(tempfile.gettempdir()) / f"nablanet-model-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.npz"
        try:
            with signals_held():
                save(model, fallback)
                saved.append(fallback)
        except OSError as second:
            kept = f"; the state after its last epoch is in {checkpoint}" if checkpoint else ""
            raise OSError(
                f"could not write {path} ({error.strerror or error}) nor {fallback} ({second.strerror or second}): "
                f"the trained model is lost{kept}"
            ) from None
        notes.append(f"could not write {path} ({error.strerror or error}); the trained model is in {fallback}")


def train_run(
    settings: TrainingSettings = TrainingSettings(),
    *,
    out: Path | str | None = None,
    checkpoint_dir: Path | str | None = None,
    resume: bool = False,
    given: Collection[str] | None = None,
    report: Callable[[str], None] = print,
    command: str = "",
) -> RunResult:
    """Run a whole training as ``nablanet train`` does, and write its files to ``out`` (default: a new
    folder under ``runs/``).

    ``checkpoint_dir`` writes ``checkpoint.npz`` there after every epoch; a folder that already holds one
    is refused unless ``resume=True``, which continues that run with its settings (see
    :func:`resume_settings`; ``given`` names the options the user typed — by default those that differ
    from the defaults). Both folders are locked for the run. ``report`` receives each line of progress.

    Nothing is lost on the way: Ctrl-C or SIGTERM during training writes the last finished epoch's state
    and raises the interruption again, with a message that says where the state is; the model is saved
    as soon as training ends, before the test figures and plots, with a fallback if the disk is full.
    """
    given = (
        set(given)
        if given is not None
        else {key for key, value in settings.as_dict().items() if value != TrainingSettings().as_dict()[key]}
    )
    with contextlib.ExitStack() as locks:
        checkpoint_path = None
        if checkpoint_dir is not None:
            locks.enter_context(claim_folder(checkpoint_dir, "--checkpoint-dir"))
            checkpoint_path = Path(checkpoint_dir) / FILENAME
        state: TrainingState | None = None
        if resume:
            if checkpoint_path is None:
                raise ValueError("--resume needs --checkpoint-dir, the folder of the run to continue")
            if not checkpoint_path.is_file():
                raise FileNotFoundError(f"no checkpoint to resume: {checkpoint_path} does not exist")
            state = load_checkpoint(checkpoint_path)
            try:
                resume_settings(TrainingSettings(), state.settings, (), state.epoch)
            except (ValueError, TypeError) as error:
                raise ModelFileError(f"{checkpoint_path}: its settings are malformed ({error})") from None
            settings = resume_settings(settings, state.settings, given, state.epoch)
        elif checkpoint_path is not None and checkpoint_path.exists():
            raise ValueError(
                f"--checkpoint-dir {checkpoint_dir} holds the checkpoint of an earlier run: continue it with "
                f"--resume, or start afresh in another folder (or after removing {checkpoint_path})"
            )
        settings.check()
        folder = Path(out) if out is not None else new_run_folder()
        if not resume and checkpoint_path is None and (folder / FILENAME).exists():
            raise ValueError(
                f"--out {folder} holds the saved state of an interrupted run: continue it with --resume "
                f"--checkpoint-dir {folder}, or choose another --out"
            )
        if checkpoint_dir is None or folder.resolve() != Path(checkpoint_dir).resolve():
            locks.enter_context(claim_folder(folder))
        return _train(settings, state, folder, checkpoint_dir, checkpoint_path, report, command)


def _train(settings, state, folder, checkpoint_dir, checkpoint_path, report, command) -> RunResult:
    optimizer = settings.make_optimizer() if state is None else state.optimizer
    started = time.perf_counter()
    data = load_dataset(settings.dataset, settings.data_home, settings.dtype)
    if state is None:
        rng = np.random.default_rng(settings.seed)
        model = build_classifier(
            data.X_train.shape[0],
            data.num_classes,
            settings.hidden,
            conv=settings.conv,
            activation=settings.activation,
            dropout=settings.dropout,
            init=settings.init,
            dtype=settings.dtype,
            rng=rng,
        )
        history, initial_epoch = History(), 0
    else:
        model, rng, history, initial_epoch = state.model, state.rng, state.history, state.epoch
        report(f"Resuming from {checkpoint_path} after epoch {initial_epoch}")
    model.metadata = {"dataset": data.name, "class_names": list(data.class_names)}
    report(
        f"Training on {data.name}: {data.X_train.shape[1] - round(data.X_train.shape[1] * settings.val_split)} "
        f"samples, {data.X_train.shape[0]} features, {data.num_classes} classes; {settings.epochs} epochs, batch "
        f"{settings.batch_size}, {optimizer.name} (learning rate {optimizer.learning_rate:g}), {settings.dtype}"
    )
    callbacks: list[Callback] = []
    stopper = None
    if settings.early_stopping:
        stopper = EarlyStopping(patience=settings.early_stopping)
        stopper.restore(state.early_stopping if state is not None else None)
        callbacks.append(stopper)
    dynamics = None
    if settings.dynamics:
        dynamics = Dynamics(data.X_train[:, :1000], record=state.dynamics if state is not None else None)
    checkpoint = Checkpoint(
        checkpoint_dir,
        optimizer=optimizer,
        rng=rng,
        history=history,
        settings=settings.as_dict(),
        early_stopping=stopper,
        dynamics=dynamics,
    )
    if dynamics:
        callbacks.append(dynamics)  # before the checkpoint, which keeps its record
    callbacks += [checkpoint, ProgressBar(settings.epochs)]  # an epoch's line is printed once its state is saved
    if state is not None and state.stopped_early:
        report(f"The saved run stopped early after epoch {initial_epoch}: there is nothing more to train")
        if state.early_stopping and state.early_stopping["best_weights"]:
            for parameter, best in zip(model.parameters(), state.early_stopping["best_weights"], strict=True):
                parameter.value[...] = best
    late: KeyboardInterrupt | None = None  # an interruption after the last epoch: keep the model, then stop
    if state is None or not state.stopped_early:
        try:
            model.fit(
                data.X_train,
                data.Y_train,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
                optimizer=optimizer,
                rng=rng,
                validation_split=settings.val_split,
                callbacks=callbacks,
                initial_epoch=initial_epoch,
                history=history,
            )
        except KeyboardInterrupt as interruption:  # Ctrl-C, or SIGTERM (signals.Terminated)
            if checkpoint.snapshot is None:
                raise type(interruption)("before the first epoch began: there was nothing to save yet") from None
            if checkpoint.epoch < settings.epochs and not model.stop_training:
                with signals_ignored():  # a second signal must not cut the saving short
                    target = _write_state(checkpoint, checkpoint_path or folder / FILENAME)
                raise type(interruption)(
                    f"the state after epoch {checkpoint.epoch} is in {target}: continue with "
                    f"nablanet train --resume --checkpoint-dir {target.parent}"
                ) from None
            late = interruption
    seconds = time.perf_counter() - started
    saved: list[Path] = []  # where the model went, once it is there
    notes: list[str] = []  # said once the run has ended, so that a failure later is still one line
    try:
        _save_model(model, folder / "model.npz", checkpoint_path, saved, notes)
        if late is not None:
            raise late
        result = _finish(settings, data, model, history, dynamics, folder, saved[0], seconds, report, command)
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=2)
        return result
    except KeyboardInterrupt as interruption:
        with signals_ignored():
            if not saved:  # the signal came just before the save: save now, then stop
                _save_model(model, folder / "model.npz", checkpoint_path, saved, notes)
        message = f"after training: the trained model is in {saved[0]}; the test figures and plots were not all made"
        raise type(interruption)(message) from None
    except OSError as error:
        if not saved:
            raise
        where = f"could not write {error.filename or folder} ({error.strerror or error})"
        raise OSError(f"{where}; the trained model is in {saved[0]}") from None


def _finish(settings, data, model, history, dynamics, folder, model_path, seconds, report, command) -> RunResult:
    """Test figures, plots and metrics.json of a trained (and already saved) model."""
    test = model.evaluate(data.X_test, data.Y_test)
    predictions = model.predict(data.X_test)
    report(f"Test accuracy: {test['accuracy']:.4f} (test loss {test['loss']:.6f})")
    report(f"Time: {seconds:.1f} s for loading and training")
    figures = history.as_dict()
    written = [model_path.name if model_path.parent == folder else str(model_path)]
    plots.plot_history(figures, folder / "loss.png", "loss")
    written.append("loss.png")
    if "val_accuracy" in figures:
        plots.plot_history(figures, folder / "accuracy.png", "accuracy")
        plots.plot_confusion_matrix(
            data.y_test, predictions, folder / "confusion_matrix.png", class_names=data.class_names
        )
        written += ["accuracy.png", "confusion_matrix.png"]
    plots.plot_misclassified(
        data.X_test,
        data.y_test,
        predictions,
        folder / "misclassified.png",
        class_names=data.class_names,
        rng=settings.seed,
    )
    written.append("misclassified.png")
    if dynamics:
        plots.plot_dynamics(dynamics.dynamics, folder / "dynamics.png")
        written.append("dynamics.png")
    metrics = {
        "dataset": data.name,
        "command": command,
        "settings": settings.as_dict(),
        "epochs_run": len(figures["loss"]),
        "history": figures,
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "seconds": round(seconds, 3),
        **({"dynamics": dynamics.dynamics} if dynamics else {}),
    }
    write_json(folder / "metrics.json", metrics)
    written.append("metrics.json")
    return RunResult(folder, written, model, history, test["loss"], test["accuracy"], seconds)


def load_model_file(path: Path | str) -> Sequential:
    """``nablanet.load``, with a clear error for a path that is not a file."""
    path = Path(path)
    if path.is_dir():
        inside = path / "model.npz"
        hint = f": give its model file, {inside}" if inside.is_file() else " (a model file is a .npz)"
        raise IsADirectoryError(f"{path} is a folder, not a model file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    return load(path)


def _trained_on(model: Sequential) -> str | None:
    name = model.metadata.get("dataset")
    return name if isinstance(name, str) else None


def _test_data(model: Sequential, dataset: str | None, data_home):
    """The test set a command uses: ``dataset``, else the one the model was trained on. Another data set
    than the model's own is used, with a warning: its figures say little about the model."""
    trained_on = _trained_on(model)
    name = dataset or trained_on or "mnist"
    if name not in DATASETS:
        raise ValueError(f"the model was trained on {name[:80]!r}; choose --dataset from {', '.join(DATASETS)}")
    if trained_on is not None and name != trained_on:
        warnings.warn(
            f"the model was trained on {trained_on}, not {name}: its figures on {name} are not its accuracy",
            UserWarning,
            stacklevel=2,
        )
    data = load_dataset(name, data_home, model.dtype)
    outputs = model.output_size(model.input_size)
    if model.input_size != data.X_test.shape[0] or outputs != data.num_classes:
        raise ValueError(
            f"the model maps {model.input_size} features to {outputs} classes; "
            f"{name} has {data.X_test.shape[0]} and {data.num_classes}"
        )
    return data


@dataclasses.dataclass
class Prediction:
    """What a model makes of one picture: the best class and every class's output, and whether those
    outputs are probabilities (a model ending in Softmax) or raw scores."""

    path: Path
    label: str
    outputs: list[tuple[str, float]]
    probabilities: bool
    best: int = 0  # the position of the best class in ``outputs``

    @property
    def value(self) -> float:
        return self.outputs[self.best][1]


def picture_style(model: Sequential) -> str:
    """How a picture is made to look like the images the model was trained on ("digit", "object"); a
    ``ValueError`` for a model that does not take 28×28 pictures."""
    if model.input_size != SIZE * SIZE:
        raise ValueError(f"the model expects {model.input_size} features, not {SIZE}×{SIZE} = {SIZE * SIZE} pixels")
    trained_on = _trained_on(model)
    return DATASETS[trained_on].image_style if trained_on is not None and trained_on in DATASETS else "digit"


def class_names(model: Sequential) -> list[str]:
    """The names of the model's classes, from its file's metadata, else 0, 1, 2, …"""
    outputs = model.output_size(model.input_size) or 0
    return [str(name) for name in model.metadata.get("class_names") or range(outputs)]


def predict_images(model_path, images) -> list[Prediction]:
    """``nablanet predict``: classify picture files, each made to look like the images of the data set
    the model was trained on (see :mod:`nablanet.data.images`)."""
    model = load_model_file(model_path)
    style, names = picture_style(model), class_names(model)
    probabilities = isinstance(model.layers[-1], Softmax)
    predictions = []
    for path in map(Path, images):
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
        values = model.predict_proba(load_image(path, style).astype(model.dtype))[:, 0]
        pairs = [(str(name), float(value)) for name, value in zip(names, values, strict=True)]
        best = int(values.argmax())
        predictions.append(Prediction(path, pairs[best][0], pairs, probabilities, best))
    return predictions


@dataclasses.dataclass
class Evaluation:
    """A model's figures on a test set: loss, accuracy, and accuracy and count per class."""

    dataset: str
    num_images: int
    loss: float
    accuracy: float
    per_class: list[tuple[str, float, int]]
    confusion_matrix: Path | None


def evaluate_model(model_path, *, dataset: str | None = None, data_home=None, out=None) -> Evaluation:
    """``nablanet evaluate``: test-set figures of a saved model, and its confusion matrix written to ``out``
    (default: the model's folder)."""
    model = load_model_file(model_path)
    folder = Path(out if out is not None else Path(model_path).parent)
    with claim_folder(folder):
        data = _test_data(model, dataset, data_home)
        scores = model.evaluate(data.X_test, data.Y_test)
        predictions = model.predict(data.X_test)
        per_class = []
        for label, class_name in enumerate(data.class_names):
            chosen = data.y_test == label
            per_class.append((class_name, float(np.mean(predictions[chosen] == label)), int(chosen.sum())))
        path = folder / "confusion_matrix.png"
        name = Path(model_path).resolve()
        images = data.X_test.shape[1]
        title = f"Confusion matrix: {name.parent.name}/{name.name} on the {data.name} test set ({images} images)"
        plots.plot_confusion_matrix(data.y_test, predictions, path, class_names=data.class_names, title=title)
    return Evaluation(data.name, data.X_test.shape[1], scores["loss"], scores["accuracy"], per_class, path)


def uncertain_sample(probabilities: np.ndarray, low: float = 0.4, high: float = 0.7) -> int:
    """The first sample (column) whose top probability lies in [low, high] — one the model hesitates on,
    whose softmax Jacobian is far from 0 — else the least certain one."""
    top = probabilities.max(axis=0)
    hesitant = np.flatnonzero((top >= low) & (top <= high))
    return int(hesitant[0]) if hesitant.size else int(top.argmin())


def inspect_model(
    model_path, *, out, dataset: str | None = None, data_home=None, sample: int | None = None
) -> list[Path]:
    """``nablanet inspect``: write every picture that applies to a saved model; return their paths.
    ``sample``: the test image for the Jacobian and the feature maps (default: :func:`uncertain_sample`)."""
    model = load_model_file(model_path)
    folder = Path(out)
    with claim_folder(folder):
        data = _test_data(model, dataset, data_home)
        if sample is not None and not 0 <= sample < data.X_test.shape[1]:
            raise ValueError(f"--sample must lie in [0, {data.X_test.shape[1]}), received {sample}")
        probabilities = model.predict_proba(data.X_test)
        if sample is None:
            sample = uncertain_sample(probabilities)
        names = list(data.class_names)
        written = []
        if any(isinstance(layer, Conv2D) for layer in model.layers):
            written += [folder / "filters.png", folder / "feature_maps.png"]
            plots.plot_filters(model, written[0])
            plots.plot_feature_maps(model, data.X_test[:, sample], written[1])
        else:
            written.append(folder / "weight_templates.png")
            plots.plot_weight_templates(model, written[-1], class_names=names)
        if isinstance(model.layers[-1], Softmax):
            written.append(folder / "softmax_jacobian.png")
            plain = [layer for layer in model.layers if layer.parameters()] == model.layers[:1]
            plots.plot_softmax_jacobian(
                data.X_test[:, sample],
                probabilities[:, sample],
                written[-1],
                class_names=names,
                formula=f"test image {sample}: a = "
                + ("softmax(W̃ x̃)" if plain else "softmax(z), z = the last layer's output"),
            )
        written.append(folder / "misclassified_probabilities.png")
        plots.plot_misclassified_probabilities(data.X_test, data.y_test, probabilities, written[-1], class_names=names)
    return written


def gradcheck_run(
    *,
    hidden=(),
    conv=(),
    activation: str = "relu",
    samples: int = 8,
    max_entries: int = 300,
    tolerance: float = 1e-6,
    seed: int = 0,
    loss: str = "auto",
) -> tuple[Sequential, GradcheckReport]:
    """``nablanet gradcheck``: a classifier in float64 on the first ``samples`` MNIST training images, every
    analytic gradient compared with central finite differences (at most ``max_entries`` per array).
    ``loss`` as in ``fit``: "auto" (the fused softmax + cross-entropy, what training uses), or "cce",
    the notebook's path — the Softmax layer's own Jacobian backward, then ``cce`` — which checks that
    Jacobian too.

    The biases are set to small random numbers first, and with convolutions the images get noise of
    0.01·N(0, 1): on MNIST's black background a window's value is otherwise exactly its bias, every
    time — a ReLU input on its kink, a max-pooling window of four equal values — and there a
    finite difference h to either side measures the average of two slopes, not a derivative.
    """
    data = load_dataset("mnist", dtype=np.float64)
    X, Y = data.X_train[:, :samples], data.Y_train[:, :samples]
    noise = np.random.default_rng(seed + 1)
    if conv:
        X = X + 0.01 * noise.standard_normal(X.shape)
    model = build_classifier(
        X.shape[0],
        data.num_classes,
        hidden,
        conv=conv,
        activation=activation,
        init="auto" if hidden or conv else "he_normal",
        rng=seed,
    )
    for layer in model.layers:
        if isinstance(layer, (Dense, Conv2D)):
            layer.b[...] = 0.1 * noise.standard_normal(layer.b.shape)
    return model, gradcheck(model, X, Y, loss=loss, tolerance=tolerance, max_entries=max_entries, seed=seed)


def toy_run(*, seed: int = 0, learning_rate: float = 1e-3, report: Callable[[str], None] = print) -> Dense:
    """The first course notebook: a softmax classifier on 10 random samples (5 features, 3 classes),
    trained one sample at a time with N(0, 1) weights, reporting each sample's loss and gradient."""
    rng = np.random.default_rng(seed)
    num_samples, num_features, num_labels = 10, 5, 3
    X = rng.integers(3, 10, size=(num_features, num_samples)).astype(np.float64)  # each column = one sample
    y = rng.integers(0, num_labels, size=num_samples)
    Y = one_hot(y, num_labels)
    report(f"X (features × samples):\n{X.astype(int)}\nlabels:\n{y}")
    dense = Dense(num_features, num_labels, rng=rng)
    dense.W[...] = rng.standard_normal((num_labels, num_features))  # the notebook's N(0, 1) weights
    softmax = Softmax()
    with np.printoptions(precision=2):
        for i in range(num_samples):
            x, y_i = X[:, i : i + 1], Y[:, i : i + 1]  # one sample as a (features, 1) batch
            a = softmax.forward(dense.forward(x))
            report(f"\nSample {i}: loss = {cce(y_i, a):.6f}")
            dense.backward(softmax.backward(cce_gradient(y_i, a)), learning_rate=learning_rate)
            report(f"gradient of the loss w.r.t. W̃ = [W | b]:\n{dense.weights_gradient}")
    return dense
