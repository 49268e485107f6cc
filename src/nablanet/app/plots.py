"""Pictures of training and of what a network learned, as matplotlib figures.

Every function returns a :class:`matplotlib.figure.Figure` (which a notebook shows inline) and, given a
``path``, also writes it there as a PNG, atomically. The figures are made without pyplot, so nothing
here selects a backend or keeps figures alive: importing nablanet changes nothing in a notebook's
plotting, and a script or server needs no display.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..core.activations import softmax_jacobian
from ..core.convolution import AvgPool2D, Conv2D, MaxPool2D
from ..core.layers import Dense, outputs
from ..files.atomic import atomic_write
from ..training.callbacks import jupyter_kernel


def save_figure(figure: Figure, path) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically (temporary file, then ``os.replace``).

    Args:
        figure: The matplotlib Figure to write.
        path (str | Path): The PNG file to write; its folder must exist.
    """
    with atomic_write(path) as file:
        figure.savefig(file, format="png", dpi=100)
    return Path(path)


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG data, cropped to what it draws (what a notebook displays).

    Args:
        figure: The matplotlib Figure to draw.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _teach_ipython_to_show_figures() -> None:
    """In a Jupyter kernel, show a returned Figure as a PNG even where pyplot (which registers this itself) was
    never imported: the backend stays the user's, only the display of a Figure object is added."""
    shell = jupyter_kernel()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    if Figure not in formatter.type_printers:
        formatter.for_type(Figure, png_bytes)


def _finish(figure: Figure, path) -> Figure:
    if path is not None:
        save_figure(figure, path)
    _teach_ipython_to_show_figures()
    return figure


def _epoch_axis(axis, epochs: int) -> None:
    """An x axis of whole epochs 1 … ``epochs`` (one epoch included), labelled."""
    if epochs <= 20:
        axis.set_xticks(range(1, epochs + 1))
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlim(0.5, epochs + 0.5)
    axis.set_xlabel("Epoch")


def describe_sample(true: str, predicted: str, probability: float) -> str:
    """What a picture's title says of one sample: "true 5, predicted 3 (p(3) = 0.62)", ``probability`` being
    the model's for the predicted class.

    Args:
        true: The name of the sample's true class.
        predicted: The name of the class the model predicts.
        probability: The model's probability for the predicted class, in [0, 1].
    """
    return f"true {true}, predicted {predicted} (p({predicted}) = {probability:.2f})"


def _title(history: dict, metric: str) -> str:
    """The panel's title. A history with accuracy is a classifier's, trained with a cross-entropy (every
    loss of :data:`~nablanet.core.losses.LOSSES` that counts right answers is one); one without may be a
    regression's mean squared error, so its loss is not named."""
    if metric == "loss":
        return "Loss (cross-entropy) per epoch" if history.get("accuracy") else "Loss per epoch"
    return f"{metric.capitalize()} per epoch"


def _draw_metric(axis, history: dict, metric: str) -> None:
    """``metric`` per epoch on ``axis``: training, and validation when recorded; whole-number epoch ticks."""
    if not history.get(metric):
        raise ValueError(f"history has no {metric!r} values to plot")
    epochs = np.arange(1, len(history[metric]) + 1)
    few = epochs.size <= 40  # a marker per epoch while they can be told apart
    validation = bool(history.get(f"val_{metric}"))
    # beside a validation curve, why the training curve can lie above it in the first epochs
    training = f"training {metric}" + ("\n(mean over the epoch's batches, as the weights moved)" if validation else "")
    axis.plot(epochs, history[metric], marker="o" if few else None, label=training)
    if validation:
        label = f"validation {metric}\n(after the epoch)"
        axis.plot(epochs, history[f"val_{metric}"], marker="s" if few else None, label=label)
    _epoch_axis(axis, epochs.size)
    axis.set_ylabel(metric.capitalize())
    axis.set_title(_title(history, metric))
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small" if validation else None)  # the note makes a longer legend


def plot_history(history: dict, path=None, metric: str = "loss") -> Figure:
    """``metric`` ("loss" or "accuracy") per epoch: training, and validation when recorded.

    Args:
        history: Per-epoch figures by name, ``History.as_dict()``: "loss" and "accuracy", and "val_loss" and
            "val_accuracy" when validation was recorded.
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        metric: "loss" or "accuracy".
    """
    figure = Figure(figsize=(6, 4))
    _draw_metric(figure.subplots(), history, metric)
    figure.tight_layout()
    return _finish(figure, path)


def plot_text_loss(history: dict, path=None, *, vocabulary_size: int) -> Figure:
    """A character model's loss per epoch, in nats per character: training, validation, and the loss of a
    uniform guess over the V characters, log V, for scale.

    Args:
        history: Per-epoch figures by name, ``History.as_dict()``: "loss", and "val_loss" when recorded.
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        vocabulary_size: V, the number of characters.
    """
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    axis.axhline(np.log(vocabulary_size), color="grey", linestyle="--", label=f"uniform guess, log {vocabulary_size}")
    _draw_metric(axis, history, "loss")
    axis.set_ylabel("Cross-entropy (nats per character)")
    axis.set_title("Loss per epoch: the next character's cross-entropy")
    axis.legend(fontsize="small", loc="upper right")  # the curves fall: their start is at the upper left
    figure.tight_layout()
    return _finish(figure, path)


def plot_attention(weights: np.ndarray, text: str, path=None, *, title: str = "the last block") -> Figure:
    """Attention maps, one per head: row t is what position t (the character read) attends to, each row a
    probability distribution over the positions up to t (causal: nothing to the right of the diagonal), on an
    absolute 0–1 colour scale shared by the heads.

    Args:
        weights: The attention probabilities, (heads, T, T): entry (h, t, s) is head h's weight of position s
            for position t.
        text: The T characters read (a newline is shown as ⏎).
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        title: Which block the maps come from, for the figure's title.
    """
    heads, length, _ = weights.shape
    labels = [character if character != "\n" else "⏎" for character in text]
    columns = min(heads, 4)
    rows = -(-heads // columns)
    figure = Figure(figsize=(2.9 * columns + 1.2, 2.9 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for head, axis in enumerate(axes.flat):
        if head >= heads:
            axis.axis("off")
            continue
        image = axis.imshow(weights[head], cmap="viridis", vmin=0, vmax=1)
        axis.set_xticks(range(length), labels, fontsize=8)
        axis.set_yticks(range(length), labels, fontsize=8)
        axis.set_xlabel("character attended to (key)")
        if head % columns == 0:
            axis.set_ylabel("character reading (query)")
        axis.set_title(f"head {head + 1}")
    shown = text.replace("\n", "⏎")
    figure.suptitle(f"Attention of {title} while reading {shown!r}: row t, what position t looks at")
    figure.colorbar(image, ax=axes, label="attention weight (each row sums to 1)", shrink=0.9)
    return _finish(figure, path)


def plot_training(history: dict, path=None) -> Figure:
    """Loss and accuracy per epoch side by side (what :class:`~nablanet.app.live.LivePlot` redraws); the loss
    alone for a history without accuracy (a regression's).

    Args:
        history: Per-epoch figures by name, ``History.as_dict()``: "loss" and "accuracy", and "val_loss" and
            "val_accuracy" when validation was recorded.
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
    """
    metrics = ["loss", "accuracy"] if history.get("accuracy") else ["loss"]
    figure = Figure(figsize=(5.5 * len(metrics), 4))
    for axis, metric in zip(figure.subplots(1, len(metrics), squeeze=False).flat, metrics, strict=True):
        _draw_metric(axis, history, metric)
    figure.tight_layout()
    return _finish(figure, path)


def plot_misclassified(
    X: np.ndarray,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    path=None,
    *,
    num_images: int = 10,
    class_names=None,
    rng=None,
) -> Figure:
    """A grid of misclassified images (columns of X, 28×28), chosen at random, each titled with its true class,
    the predicted class and the model's probability for it; ``probabilities`` is (classes, samples), the
    model's output (the prediction is its largest entry).

    Args:
        X: The images, (784, N): one 28×28 image per column.
        y_true: The true class of each column, (N,) integers.
        probabilities: The model's output for X, (classes, N): ``model.predict_proba(X)``.
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        num_images: At most this many images are shown (a positive integer).
        class_names (Sequence[str] | None): A name per class, in class order; None: the class numbers.
        rng (int | numpy.random.Generator | None): Seed or generator that picks the images; None: a fresh one.
    """
    if np.ndim(probabilities) != 2:
        raise ValueError(
            f"probabilities must be (classes, samples), the model's predict_proba(X); received shape "
            f"{np.shape(probabilities)}"
        )
    y_pred = probabilities.argmax(axis=0)
    wrong = np.flatnonzero(y_true != y_pred)
    if wrong.size == 0:
        raise ValueError("there are no misclassified images to show")
    chosen = np.random.default_rng(rng).choice(wrong, size=min(num_images, wrong.size), replace=False)
    names = class_names or [str(label) for label in range(probabilities.shape[0])]
    columns = min(5, chosen.size)
    rows = -(-chosen.size // columns)
    figure = Figure(figsize=(3.2 * columns, 3.4 * rows + 0.4))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, chosen, strict=False):  # more panels than images
        axis.imshow(X[:, index].reshape(28, 28), cmap="gray")
        predicted = y_pred[index]
        title = describe_sample(names[y_true[index]], names[predicted], probabilities[predicted, index])
        axis.set_title(title, fontsize=9)
    figure.suptitle(f"{chosen.size} of the {wrong.size} misclassified images, chosen at random")
    figure.tight_layout()
    return _finish(figure, path)


def plot_confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, path=None, *, class_names, title: str = "Confusion matrix"
) -> Figure:
    """Counts of (true class, predicted class), each in its cell; ``title`` names the model and the data set
    (``nablanet evaluate`` gives both).

    The diagonal (correct) and the off-diagonal (errors) are coloured on two scales, each with its colour
    bar: on one scale the diagonal's thousands would leave every error cell as pale as an empty one.

    Args:
        y_true: The true class of each sample, (N,) integers in [0, classes).
        y_pred: The predicted class of each sample, (N,) integers in [0, classes).
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        class_names (Sequence[str]): A name per class, in class order: their number is the matrix's size.
        title: The picture's title.
    """
    size = len(class_names)
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    diagonal = np.eye(size, dtype=bool)
    figure = Figure(figsize=(1.0 * size + 3.4, 1.0 * size + 1), layout="constrained")
    axis = figure.subplots()
    scales = {}
    for name, cells, cmap in (("correct", diagonal, "Blues"), ("errors", ~diagonal, "Reds")):
        top = max(int(counts[cells].max()), 1)
        scales[name] = top
        image = axis.imshow(np.ma.masked_where(~cells, counts), cmap=cmap, vmin=0, vmax=top)
        label = "correct (diagonal): images" if name == "correct" else "errors (off the diagonal): images"
        figure.colorbar(image, ax=axis, label=label, shrink=0.8, pad=0.02)
    for (row, column), count in np.ndenumerate(counts):
        top = scales["correct" if row == column else "errors"]
        colour = "white" if count > top / 2 else "black"
        axis.text(column, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    axis.set_xticks(range(size), [str(name).replace(" ", "\n") for name in class_names], fontsize=8)
    axis.set_yticks(range(size), class_names, fontsize=8)
    axis.set_xlabel("Predicted class")
    axis.set_ylabel("True class")
    axis.set_title(title)
    return _finish(figure, path)


def _symmetric_limit(values: np.ndarray) -> float:
    return float(np.abs(values).max()) or 1.0


def plot_weight_templates(model, path=None, *, class_names=None, num_units: int = 16) -> Figure:
    """What the first Dense layer looks for, one 28×28 image per row of W (bias column dropped).

    For a softmax classifier (one Dense layer) these are the 10 class templates, titled by class;
    for a deeper network, the ``num_units`` first-layer units with the largest weight norms. The colour
    map diverges around 0: red pixels raise the score, blue ones lower it.

    Args:
        model (Sequential): A Sequential whose first Dense layer has 784 = 28×28 inputs.
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        class_names (Sequence[str] | None): A name per class, for the titles of a softmax
            classifier's templates; None: the class numbers.
        num_units: How many units a deeper network shows (a positive integer).
    """
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    if not dense or dense[0].input_size != 784:
        raise ValueError("weight templates need a first Dense layer with 784 = 28×28 inputs")
    weights = dense[0].W
    if len(dense) == 1:
        rows = np.arange(weights.shape[0])
        names = class_names or [str(row) for row in rows]
        titles = [f"class {name}" for name in names]
    else:
        norms = np.linalg.norm(weights, axis=1)
        rows = np.argsort(norms)[::-1][:num_units]
        titles = [f"unit {row} (‖w‖ = {norms[row]:.2f})" for row in rows]
    shown = f"{rows.size} of {weights.shape[0]} units, largest ‖w‖ first"
    columns = 5 if rows.size <= 10 else 8
    grid_rows = -(-rows.size // columns)
    figure = Figure(figsize=(2.4 * columns, 2.6 * grid_rows + 0.6))
    axes = figure.subplots(grid_rows, columns, squeeze=False)
    limit = _symmetric_limit(weights[rows])
    for axis in axes.flat:
        axis.axis("off")
    for axis, row, title in zip(axes.flat, rows, titles, strict=False):
        image = axis.imshow(weights[row].reshape(28, 28), cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.6, label="weight")
    figure.suptitle(
        f"Weight templates of the first layer: {shown}"
        if len(dense) > 1
        else "Weight templates: one row of W per class"
    )
    return _finish(figure, path)


def plot_filters(model, path=None, *, max_filters: int = 64) -> Figure:
    """The first Conv2D layer's filters W[f, c] as k×k images (up to ``max_filters``; for a filter of several
    input channels, channel 0), on one diverging colour scale: red weights raise the response, blue lower it.

    Args:
        model (Sequential): A Sequential with a Conv2D layer.
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        max_filters: At most this many filters are shown (a positive integer).
    """
    convolutions = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    if not convolutions:
        raise ValueError("filters need a Conv2D layer")
    filters = convolutions[0].W[:max_filters, 0]
    columns = min(8, len(filters))
    rows = -(-len(filters) // columns)
    figure = Figure(figsize=(1.5 * columns + 1.2, 1.6 * rows + 0.8))
    axes = figure.subplots(rows, columns, squeeze=False)
    limit = _symmetric_limit(filters)
    for axis in axes.flat:
        axis.axis("off")
    for number, (axis, kernel) in enumerate(zip(axes.flat, filters, strict=False)):
        image = axis.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(f"filter {number}", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.7, label="weight")
    k = convolutions[0].kernel_size
    figure.suptitle(f"The {len(convolutions[0].b)} filters of the first Conv2D ({k}×{k}, channel 0)")
    return _finish(figure, path)


MAX_MAP_ROWS = 12  # rows of feature maps in one picture: the input and the first 11 layers shown


def plot_feature_maps(model, image: np.ndarray, path=None, *, max_maps: int = 8, sample: str = "one image") -> Figure:
    """One image through the model: a row for the image and for the output of every Conv2D, of the activation
    after it, and of every pooling layer — the first ``MAX_MAP_ROWS`` of them — showing its first ``max_maps``
    channels (feature maps): what each filter found where. Each row says how many of the layer's maps it shows
    and has one colour scale, with its colour bar; ``sample`` says what the image is ("test image: true 7, …").

    Args:
        model (Sequential): A Sequential with Conv2D or pooling layers, whose ``input_shape`` is fixed.
        image: One image, of the model's input shape (C, H, W) or flat, (C·H·W,) or (C·H·W, 1).
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        max_maps: At most this many channels are shown per layer (a positive integer).
        sample: What the image is, for the title.
    """

    def shown(position: int, layer, shape) -> bool:
        after_convolution = position and isinstance(model.layers[position - 1], Conv2D)
        return isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D)) or bool(
            shape is not None and len(shape) == 3 and after_convolution
        )

    shapes = model.shapes()
    rows = [
        position
        for position, (layer, shape) in enumerate(zip(model.layers, shapes, strict=True))
        if shown(position, layer, shape)
    ]
    if not rows:
        raise ValueError("feature maps need Conv2D or pooling layers")
    steps = [("input", image.reshape(-1, 1), model.input_shape)]
    passes = outputs(
        model.layers[: rows[: MAX_MAP_ROWS - 1][-1] + 1],
        image.reshape(-1, 1).astype(model.dtype or np.float64),
        inference=True,
    )
    for position, output in enumerate(passes):  # only as far as the last row shown
        if position in rows[: MAX_MAP_ROWS - 1]:
            steps.append((f"{position} {type(model.layers[position]).__name__}", output, shapes[position]))
    columns = max_maps
    figure = Figure(figsize=(1.6 * columns + 2.2, 1.7 * len(steps) + 0.4), layout="constrained")
    axes = figure.subplots(len(steps), columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for row, (name, values, shape) in enumerate(steps):
        maps = values[:, 0].reshape(shape)
        count = min(columns, shape[0])
        low, high = float(maps[:count].min()), float(maps[:count].max())
        for channel in range(count):
            picture = axes[row, channel].imshow(
                maps[channel], cmap="gray" if row == 0 else "viridis", vmin=low, vmax=high
            )
            label = f"{name}: {count} of {shape[0]} maps\nch {channel}" if channel == 0 else f"\nch {channel}"
            axes[row, channel].set_title(label, fontsize=7, loc="left" if channel == 0 else "center")
        figure.colorbar(picture, ax=axes[row, :], shrink=0.9, pad=0.01, label="pixel" if row == 0 else "value")
    which = "every convolution, its activation and every pooling layer"
    if len(rows) > MAX_MAP_ROWS - 1:
        which = f"the first {MAX_MAP_ROWS - 1} of its {len(rows)} convolution, activation and pooling layers"
    figure.suptitle(
        f"Feature maps of {sample}\nthe input, then {which}; at most {max_maps} maps of each, one colour scale a row"
    )
    return _finish(figure, path)


def _entry(value: float) -> str:
    """A Jacobian entry in a 10×10 heatmap's cell: three decimals, or its order of magnitude when smaller."""
    if value == 0 or abs(value) >= 0.0005:
        return f"{value:.3f}"
    return f"{value:.0e}"


def plot_softmax_jacobian(
    image: np.ndarray,
    probabilities: np.ndarray,
    path=None,
    *,
    class_names=None,
    formula: str = "a = softmax(z), z: the last layer's scores",
    sample: str = "the sample x",
) -> Figure:
    """One sample: its image, its probabilities a, and the softmax Jacobian diag(a) − a aᵀ, annotated.

    A sample the model is sure of (a ≈ one-hot) has a Jacobian of ≈ 0 everywhere — softmax saturates —
    so pick one it hesitates on (:func:`nablanet.app.model_commands.uncertain_sample`). ``formula`` titles the
    probabilities: ``"a = softmax(W̃ x̃)"`` for the softmax classifier; ``sample`` titles the image, with its
    true class (:func:`describe_sample`).

    Args:
        image: The sample, 784 values (a 28×28 image), flat or not.
        probabilities: Its probabilities a, (classes,): the model's output for it.
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        class_names (Sequence[str] | None): A name per class, in class order; None: the class numbers.
        formula: The title of the probabilities' bar chart.
        sample: The title of the image.
    """
    jacobian = softmax_jacobian(probabilities)
    size = probabilities.size
    names = class_names or [str(k) for k in range(size)]
    figure = Figure(figsize=(18, 6))
    left, middle, right = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.2, 2]})
    left.imshow(image.reshape(28, 28), cmap="gray")
    left.set_title(sample)
    left.axis("off")
    middle.barh(range(size), probabilities, color="tab:blue")
    middle.set_yticks(range(size), names)
    middle.invert_yaxis()
    middle.set_xlim(0, 1)
    middle.set_title(formula)
    middle.set_xlabel("probability")
    limit = _symmetric_limit(jacobian)
    heatmap = right.imshow(jacobian, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (row, column), value in np.ndenumerate(jacobian):
        colour = "white" if abs(value) > 0.6 * limit else "black"
        right.text(column, row, _entry(value), ha="center", va="center", fontsize=7, color=colour)
    right.set_xticks(range(size), names)
    right.set_yticks(range(size), names)
    right.set_xlabel("k (the score z_k moved)")
    right.set_ylabel("j (the probability a_j that moves)")
    right.set_title("∇_z a = diag(a) − a aᵀ   (entry j, k: ∂a_j/∂z_k)")
    figure.colorbar(heatmap, ax=right, label="∂a_j/∂z_k")
    figure.tight_layout()
    return _finish(figure, path)


def plot_misclassified_probabilities(
    X: np.ndarray,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    path=None,
    *,
    num_images: int = 8,
    class_names=None,
    rng=None,
) -> Figure:
    """Misclassified images, each beside a bar chart of its top-3 probabilities (true class in green).

    Args:
        X: The images, (784, N): one 28×28 image per column.
        y_true: The true class of each column, (N,) integers.
        probabilities: The model's output for X, (classes, N): ``model.predict_proba(X)``.
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
        num_images: At most this many images are shown (a positive integer).
        class_names (Sequence[str] | None): A name per class, in class order; None: the class numbers.
        rng (int | numpy.random.Generator | None): Seed or generator that picks the images; None: a fresh one.
    """
    y_pred = probabilities.argmax(axis=0)
    wrong = np.flatnonzero(y_true != y_pred)
    if wrong.size == 0:
        raise ValueError("there are no misclassified images to show")
    chosen = np.sort(np.random.default_rng(rng).choice(wrong, size=min(num_images, wrong.size), replace=False))
    names = class_names or [str(k) for k in range(probabilities.shape[0])]
    pairs_per_row = 2
    rows = -(-chosen.size // pairs_per_row)
    figure = Figure(figsize=(13, 2.6 * rows))
    axes = figure.subplots(
        rows, 2 * pairs_per_row, squeeze=False, gridspec_kw={"width_ratios": [1, 1.6] * pairs_per_row}
    )
    for axis in axes.flat:
        axis.axis("off")
    for slot, index in enumerate(chosen):
        image_axis, bar_axis = axes[slot // pairs_per_row, 2 * (slot % pairs_per_row) : 2 * (slot % pairs_per_row) + 2]
        image_axis.imshow(X[:, index].reshape(28, 28), cmap="gray")
        predicted = names[y_pred[index]]
        image_axis.set_title(
            describe_sample(names[y_true[index]], predicted, probabilities[y_pred[index], index]), fontsize=9
        )
        top = np.argsort(probabilities[:, index])[::-1][:3]  # fewer with fewer classes
        colours = [
            "tab:green" if label == y_true[index] else "tab:red" if label == y_pred[index] else "tab:gray"
            for label in top
        ]
        bar_axis.axis("on")
        bar_axis.barh(range(top.size), probabilities[top, index], color=colours)
        bar_axis.set_yticks(range(top.size), [f"{names[label]}: {probabilities[label, index]:.2f}" for label in top])
        bar_axis.invert_yaxis()
        bar_axis.set_xlim(0, 1)
        bar_axis.tick_params(labelsize=8)
        if y_true[index] not in top:
            true = y_true[index]
            bar_axis.set_title(
                f"true class {names[true]} not in the top 3 (p({names[true]}) = {probabilities[true, index]:.2g})",
                fontsize=8,
                color="tab:green",
            )
    figure.suptitle(
        f"{chosen.size} of the {wrong.size} misclassified test images, chosen at random, and their top-3 "
        "probabilities (green: the true class)"
    )
    figure.tight_layout()
    return _finish(figure, path)


def _layer_label(key: str) -> str:
    """A :class:`~nablanet.training.callbacks.Dynamics` key, "2 Dense", as "Dense (layer 2)"."""
    position, _, name = key.partition(" ")
    return f"{name} (layer {position})" if position.isdigit() and name else key


def _draw_gradient_by_layer(axis, norms: dict) -> None:
    """The mean ‖∇_W̃ L‖ of each layer (x: the layer, input side first), one line per epoch shown: the
    vanishing-gradient lesson, a gradient shrinking from the output back to the input."""
    layers = list(norms)
    epochs = len(norms[layers[0]])
    shown = sorted({0, epochs - 1, *np.linspace(0, epochs - 1, min(epochs, 5)).round().astype(int).tolist()})
    colours = _epoch_colours(len(shown))
    for colour, epoch in zip(colours, shown, strict=True):
        values = [norms[layer][epoch] for layer in layers]
        axis.plot(range(len(layers)), values, marker="o", color=colour, label=f"epoch {epoch + 1}")
    axis.set_xticks(range(len(layers)), [_layer_label(layer).replace(" (", "\n(") for layer in layers], fontsize=8)
    axis.set_xlabel("layer (input side → output side)")
    axis.set_yscale("log")
    axis.set_ylabel("‖∇_W̃ L‖ (mean over the epoch's batches)")
    axis.set_title("gradient norm against layer")
    if len(shown) < epochs:
        axis.set_title(f"gradient norm against layer ({len(shown)} of {epochs} epochs)")


def _epoch_colours(count: int) -> list:
    """``count`` colours from dark to light along viridis: earlier epochs darker."""
    return [colormaps["viridis"](value) for value in np.linspace(0.0, 0.85, count)]


_CAN_DIE = ("ReLU",)  # activations whose units can output exactly 0 for every input ("dead")


def plot_dynamics(dynamics: dict, path=None) -> Figure:
    """Training dynamics recorded by :class:`~nablanet.training.callbacks.Dynamics`: the gradient norm against
    the layer, per-epoch gradient and weight norms per layer, the fraction of dead units of the ReLU layers
    (a sigmoid or tanh unit is never exactly 0: no panel) and the last epoch's activation histograms.

    Args:
        dynamics: The ``dynamics`` of a Dynamics callback: per-layer lists by figure ("gradient_norm",
            "weight_norm", and "dead_fraction" and "activation_histogram" when recorded).
        path (str | Path | None): Where to write the figure as a PNG; None: write nothing.
    """
    layers = list(dynamics["gradient_norm"])
    hidden = list(dynamics.get("activation_histogram", {}))
    mortal = [layer for layer in dynamics.get("dead_fraction", {}) if layer.partition(" ")[2] in _CAN_DIE]
    label = _layer_label
    columns = 3 + bool(mortal) + bool(hidden)
    figure = Figure(figsize=(5.5 * columns, 4.4))
    axes = list(figure.subplots(1, columns, squeeze=False)[0])
    by_layer, gradient_axis, weight_axis = axes[:3]
    _draw_gradient_by_layer(by_layer, dynamics["gradient_norm"])
    epochs = np.arange(1, len(dynamics["gradient_norm"][layers[0]]) + 1)
    for layer in layers:
        gradient_axis.plot(epochs, dynamics["gradient_norm"][layer], marker="o", label=label(layer))
        weight_axis.plot(epochs, dynamics["weight_norm"][layer], marker="o", label=label(layer))
    gradient_axis.set_yscale("log")
    gradient_axis.set_title("mean ‖∇_W̃ L‖ per epoch")
    gradient_axis.set_ylabel("‖∇_W̃ L‖ (mean over the batches)")
    weight_axis.set_title("‖W̃‖ at the end of each epoch")
    weight_axis.set_ylabel("‖W̃‖")
    for axis in (gradient_axis, weight_axis):
        _epoch_axis(axis, epochs.size)
    rest = axes[3:]
    if mortal:
        dead_axis = rest.pop(0)
        for layer in mortal:
            dead_axis.plot(epochs, dynamics["dead_fraction"][layer], marker="o", label=label(layer))
        dead_axis.set_title("fraction of dead ReLUs (0 on every probe sample)")
        _epoch_axis(dead_axis, epochs.size)
        dead_axis.set_ylabel("fraction of the layer's units")
        dead_axis.set_ylim(0, 1)
    if hidden:
        histogram_axis = rest.pop(0)
        for layer in hidden:
            counts, edges = (np.asarray(part) for part in dynamics["activation_histogram"][layer])
            histogram_axis.stairs(counts, edges, label=label(layer), fill=False)
        histogram_axis.set_title("activations of the hidden layers (last epoch)")
        histogram_axis.set_xlabel("activation value")
        histogram_axis.set_ylabel("count (probe samples × units)")
        histogram_axis.set_yscale("log")
    for axis in axes:
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return _finish(figure, path)
