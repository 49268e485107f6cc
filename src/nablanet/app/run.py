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

import dataclasses
import inspect
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..core.activations import Softmax
from ..core.layers import Dense
from ..core.losses import cce, cce_gradient
from ..core.optimizers import OPTIMIZERS, Optimizer
from ..core.preprocessing import one_hot
from ..core.schedules import make_schedule
from ..data.datasets import DATASETS, load_dataset
from ..files.atomic import write_json
from ..files.checkpoint import FILENAME, Checkpoint, TrainingState, load_checkpoint
from ..files.serialization import load, save
from ..training.callbacks import Callback, Dynamics, EarlyStopping, ProgressBar
from ..training.loop import History
from ..training.model import Sequential, build_classifier
from . import plots


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """Everything that decides what a run computes; the defaults are the course notebook's recipe
    (the softmax classifier on MNIST, 20 epochs of SGD, batch 200, learning rate 0.01), in float32.

    ``lr=None`` means 0.01 for SGD and 0.001 for Adam and AdamW. ``schedule`` names a registered
    learning-rate schedule ("step": ÷10 every 10 epochs; "cosine": to 0 at the last epoch).
    ``dynamics=True`` records gradient and weight norms, dead units and activations per epoch.
    """

    dataset: str = "mnist"
    data_home: str | None = None
    hidden: tuple[int, ...] = ()
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
        """Refuse combinations that cannot work, naming the command-line option."""
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


class TrainingInterrupted(Exception):
    """Ctrl-C during a run: the state after the last finished epoch was written to ``checkpoint``."""

    def __init__(self, checkpoint: Path, epoch: int):
        self.checkpoint, self.epoch = checkpoint, epoch
        super().__init__(
            f"interrupted; the state after epoch {epoch} is in {checkpoint}: continue with "
            f"nablanet train --resume --checkpoint-dir {checkpoint.parent}"
        )


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


def output_folder(folder: Path | str | None, option: str = "--out") -> Path:
    """Create ``folder`` (default: a new runs/YYYYmmdd-HHMMSS) and check that files can be written there."""
    folder = Path(folder) if folder is not None else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} exists and is not a folder")
    probe = folder / ".nablanet-write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OSError(f"{option} {folder} is not writable ({error.strerror})") from None
    return folder


def resume_settings(given: TrainingSettings, saved: dict[str, Any]) -> TrainingSettings:
    """The checkpoint's settings, for ``--resume``; an option given with another value than the saved
    one is refused (an option left at its default takes the saved value)."""
    defaults, given_values = TrainingSettings().as_dict(), given.as_dict()
    values: dict[str, Any] = {}
    for field in dataclasses.fields(TrainingSettings):
        key = field.name
        if key not in saved:
            raise ValueError(f"the checkpoint lacks the setting {key!r}")
        if given_values[key] != defaults[key] and given_values[key] != saved[key]:
            option = "--" + key.replace("_", "-")
            raise ValueError(
                f"--resume continues with the checkpoint's settings; {option} {given_values[key]} differs "
                f"from the saved {saved[key]}: leave {option} out"
            )
        values[key] = tuple(saved[key]) if key == "hidden" else saved[key]
    return TrainingSettings(**values)


def train_run(
    settings: TrainingSettings = TrainingSettings(),
    *,
    out: Path | str | None = None,
    checkpoint_dir: Path | str | None = None,
    resume: bool = False,
    report: Callable[[str], None] = print,
    command: str = "",
) -> RunResult:
    """Run a whole training as ``nablanet train`` does, and write its files to ``out``.

    ``checkpoint_dir`` writes ``checkpoint.npz`` there after every epoch; ``resume=True`` continues the
    run saved there, with its settings (see :func:`resume_settings`). ``report`` receives each line of
    progress. Ctrl-C writes the last finished epoch's state and raises :class:`TrainingInterrupted`.
    """
    state: TrainingState | None = None
    checkpoint_path = Path(checkpoint_dir) / FILENAME if checkpoint_dir is not None else None
    if resume:
        if checkpoint_path is None:
            raise ValueError("--resume needs --checkpoint-dir, the folder of the run to continue")
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume: {checkpoint_path} does not exist")
        state = load_checkpoint(checkpoint_path)
        settings = resume_settings(settings, state.settings)
    settings.check()
    optimizer = settings.make_optimizer() if state is None else state.optimizer
    folder = output_folder(out)
    if checkpoint_dir is not None:
        output_folder(checkpoint_dir, "--checkpoint-dir")
    started = time.perf_counter()
    data = load_dataset(settings.dataset, settings.data_home, settings.dtype)
    if state is None:
        rng = np.random.default_rng(settings.seed)
        model = build_classifier(
            data.X_train.shape[0],
            data.num_classes,
            settings.hidden,
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
        f"Training on {data.name}: {data.X_train.shape[1]} samples, {data.X_train.shape[0]} features, "
        f"{data.num_classes} classes; {settings.epochs} epochs, batch {settings.batch_size}, {optimizer.name} "
        f"(learning rate {optimizer.learning_rate:g}), {settings.dtype}"
    )
    callbacks: list[Callback] = []
    stopper = None
    if settings.early_stopping:
        stopper = EarlyStopping(patience=settings.early_stopping)
        stopper.restore(state.early_stopping if state is not None else None)
        callbacks.append(stopper)
    checkpoint = Checkpoint(
        checkpoint_dir,
        optimizer=optimizer,
        rng=rng,
        history=history,
        settings=settings.as_dict(),
        early_stopping=stopper,
    )
    callbacks += [checkpoint, ProgressBar(settings.epochs)]  # an epoch's line is printed once its state is saved
    dynamics = Dynamics(data.X_train[:, :1000]) if settings.dynamics else None
    if dynamics:
        callbacks.append(dynamics)
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
    except KeyboardInterrupt:
        target = checkpoint_path or folder / FILENAME
        checkpoint.write(target)
        raise TrainingInterrupted(target, checkpoint.epoch) from None
    seconds = time.perf_counter() - started
    test = model.evaluate(data.X_test, data.Y_test)
    predictions = model.predict(data.X_test)
    report(f"Test accuracy: {test['accuracy']:.4f} (test loss {test['loss']:.6f})")
    report(f"Time: {seconds:.1f} s for loading and training")
    figures = history.as_dict()
    save(model, folder / "model.npz")
    plots.plot_history(figures, folder / "loss.png", "loss")
    written = ["model.npz", "loss.png"]
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
        "command": command or " ".join(sys.argv[1:]),
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
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    return load(path)


def _test_data(model: Sequential, dataset: str | None, data_home):
    """The test set a command uses: ``dataset``, else the one the model was trained on."""
    name = dataset or model.metadata.get("dataset", "mnist")
    if name not in DATASETS:
        raise ValueError(f"the model was trained on {name!r}; choose --dataset from {', '.join(DATASETS)}")
    data = load_dataset(name, data_home, model.dtype)
    outputs = model.output_size(model.input_size)
    if model.input_size != data.X_test.shape[0] or outputs != data.num_classes:
        raise ValueError(
            f"the model maps {model.input_size} features to {outputs} classes; "
            f"{name} has {data.X_test.shape[0]} and {data.num_classes}"
        )
    return data


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
    data = _test_data(model, dataset, data_home)
    scores = model.evaluate(data.X_test, data.Y_test)
    predictions = model.predict(data.X_test)
    per_class = []
    for label, class_name in enumerate(data.class_names):
        chosen = data.y_test == label
        per_class.append((class_name, float(np.mean(predictions[chosen] == label)), int(chosen.sum())))
    folder = output_folder(out if out is not None else Path(model_path).parent)
    path = folder / "confusion_matrix.png"
    plots.plot_confusion_matrix(data.y_test, predictions, path, class_names=data.class_names)
    return Evaluation(data.name, data.X_test.shape[1], scores["loss"], scores["accuracy"], per_class, path)


def inspect_model(model_path, *, out, dataset: str | None = None, data_home=None, sample: int = 0) -> list[Path]:
    """``nablanet inspect``: write every picture that applies to a saved model; return their paths."""
    model = load_model_file(model_path)
    folder = output_folder(out)
    data = _test_data(model, dataset, data_home)
    if not 0 <= sample < data.X_test.shape[1]:
        raise ValueError(f"--sample must lie in [0, {data.X_test.shape[1]}), received {sample}")
    names = list(data.class_names)
    written = [folder / "weight_templates.png"]
    plots.plot_weight_templates(model, written[-1], class_names=names)
    probabilities = model.predict_proba(data.X_test)
    if isinstance(model.layers[-1], Softmax):
        written.append(folder / "softmax_jacobian.png")
        plots.plot_softmax_jacobian(data.X_test[:, sample], probabilities[:, sample], written[-1], class_names=names)
    written.append(folder / "misclassified_probabilities.png")
    plots.plot_misclassified_probabilities(data.X_test, data.y_test, probabilities, written[-1], class_names=names)
    return written


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
