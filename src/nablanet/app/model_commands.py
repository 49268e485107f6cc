"""The commands that use a model rather than train one: evaluate, predict, inspect, gradcheck and toy, as
library functions that a notebook can call too.

:func:`evaluate_model`, :func:`predict_images` and :func:`inspect_model` read a model file written by
``nablanet train`` (through :func:`load_model_file`, whose errors say what the path is instead);
:func:`gradcheck_run` and :func:`toy_run` build their own small model. The command line
(:mod:`nablanet.app.commands`) parses the options, calls them and prints; a training run is in
:mod:`nablanet.app.run`. In a notebook::

    from nablanet.app.model_commands import evaluate_model
    evaluation = evaluate_model("runs/mlp/model.npz")
    evaluation.accuracy
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..core.activations import Softmax
from ..core.convolution import Conv2D
from ..core.gradcheck import GradcheckReport, gradcheck
from ..core.layers import Dense
from ..core.losses import cce, cce_gradient
from ..core.preprocessing import one_hot
from ..data.datasets import DATASETS, Dataset, load_dataset
from ..data.images import SIZE, load_image
from ..files.folders import claim_folder
from ..files.serialization import load
from ..training.model import Sequential, build_classifier
from . import plots
from .language import TEXT_MODELS


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


def _test_data(model: Sequential, dataset: str | None, data_home: Path | str | None) -> Dataset:
    """The test set a command uses: ``dataset``, else the one the model was trained on. Another data set
    than the model's own is used, with a warning: its figures say little about the model."""
    if model.metadata.get("model") in TEXT_MODELS:
        raise ValueError("the model is a character model, which has no test images: make it write with nablanet sample")
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
    if model.input_size is None:
        raise ValueError("the model's layers do not say how many features it takes: it cannot be given pictures")
    if model.input_size != SIZE * SIZE:
        raise ValueError(f"the model expects {model.input_size} features, not {SIZE}×{SIZE} = {SIZE * SIZE} pixels")
    trained_on = _trained_on(model)
    return DATASETS[trained_on].image_style if trained_on is not None and trained_on in DATASETS else "digit"


def class_names(model: Sequential) -> list[str]:
    """The names of the model's classes, from its file's metadata, else 0, 1, 2, …"""
    outputs = model.output_size(model.input_size) or 0
    return [str(name) for name in model.metadata.get("class_names") or range(outputs)]


def predict_images(model_path: Path | str, images: Iterable[Path | str]) -> list[Prediction]:
    """``nablanet predict``: classify picture files, each made to look like the images of the data set
    the model was trained on (see :mod:`nablanet.data.images`)."""
    model = load_model_file(model_path)
    style, names = picture_style(model), class_names(model)
    probabilities = isinstance(model.layers[-1], Softmax)
    predictions = []
    for path in map(Path, images):
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
        with np.errstate(all="ignore"):  # an overflow is said once, below
            values = model.predict_proba(load_image(path, style).astype(model.dtype))[:, 0]
        if not np.isfinite(values).all():
            raise ValueError(f"{path}: the model's outputs are not finite numbers (NaN or inf): its weights overflow")
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


def evaluate_model(
    model_path: Path | str,
    *,
    dataset: str | None = None,
    data_home: Path | str | None = None,
    out: Path | str | None = None,
) -> Evaluation:
    """``nablanet evaluate``: test-set figures of a saved model, and its confusion matrix written to ``out``
    (default: the model's folder)."""
    model = load_model_file(model_path)
    folder = Path(out if out is not None else Path(model_path).parent)
    with claim_folder(folder):
        data = _test_data(model, dataset, data_home)
        with np.errstate(all="ignore"):  # an overflow is said once, below
            scores = model.evaluate(data.X_test, data.Y_test)
            predictions = model.predict(data.X_test)
        if not np.isfinite(scores["loss"]):
            raise ValueError(
                f"the model's outputs on the {data.name} test set are not finite numbers (NaN or inf): its weights "
                f"overflow"
            )
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
    model_path: Path | str,
    *,
    out: Path | str,
    dataset: str | None = None,
    data_home: Path | str | None = None,
    sample: int | None = None,
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
        predicted = int(probabilities[:, sample].argmax())
        described = plots.describe_sample(
            names[data.y_test[sample]], names[predicted], probabilities[predicted, sample]
        )
        image = f"test image #{sample} of {data.X_test.shape[1]}\n{described}"  # "#8", never a bare 8 beside a 5
        written = []
        if any(isinstance(layer, Conv2D) for layer in model.layers):
            written += [folder / "filters.png", folder / "feature_maps.png"]
            plots.plot_filters(model, written[0])
            plots.plot_feature_maps(model, data.X_test[:, sample], written[1], sample=image)
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
                formula="a = " + ("softmax(W̃ x̃)" if plain else "softmax(z), z = the last layer's output"),
                sample=image,
            )
        written.append(folder / "misclassified_probabilities.png")
        plots.plot_misclassified_probabilities(data.X_test, data.y_test, probabilities, written[-1], class_names=names)
    return written


def gradcheck_run(
    *,
    hidden: Iterable[int] = (),
    conv: Iterable[int] = (),
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
    losses = []
    with np.printoptions(precision=2):
        for i in range(num_samples):
            x, y_i = X[:, i : i + 1], Y[:, i : i + 1]  # one sample as a (features, 1) batch
            a = softmax.forward(dense.forward(x))
            losses.append(cce(y_i, a))
            report(f"\nSample {i}: loss = {losses[-1]:.6f}")
            dense.backward(softmax.backward(cce_gradient(y_i, a)), learning_rate=learning_rate)
            report(f"gradient of the loss w.r.t. W̃ = [W | b]:\n{dense.weights_gradient}")
    correct = int(np.sum(softmax.forward(dense.forward(X)).argmax(axis=0) == y))
    report(
        f"\nDone: {num_samples} steps of batch size 1, learning rate {learning_rate:g}; "
        f"mean loss {np.mean(losses):.4f} (a uniform guess costs log {num_labels} = {np.log(num_labels):.4f}); "
        f"{correct} of {num_samples} samples right after the pass"
    )
    return dense
