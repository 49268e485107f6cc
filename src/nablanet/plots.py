"""Plots as PNG files (matplotlib, Agg backend: no screen needed). Each function writes one figure
atomically and returns its path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from ._io import atomic_write  # noqa: E402


def save_figure(figure, path) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically (temporary file, then ``os.replace``)."""
    try:
        with atomic_write(path) as file:
            figure.savefig(file, format="png", dpi=100)
    finally:
        plt.close(figure)
    return Path(path)


def plot_history(history: dict, path, metric: str = "loss") -> Path:
    """``metric`` ("loss" or "accuracy") per epoch: training, and validation when recorded."""
    if not history.get(metric):
        raise ValueError(f"history has no {metric!r} values to plot")
    figure, axis = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history[metric]) + 1)
    axis.plot(epochs, history[metric], marker="o", label=f"training {metric}")
    if history.get(f"val_{metric}"):
        axis.plot(epochs, history[f"val_{metric}"], marker="s", label=f"validation {metric}")
    axis.set_xlabel("Epoch")
    axis.set_ylabel(metric.capitalize() + (" value" if metric == "loss" else ""))
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return save_figure(figure, path)


def plot_misclassified(X: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, path, *,
                       num_images: int = 10, class_names=None, rng=None) -> Path:
    """A grid of misclassified images (columns of X, 28×28), titled "True: t, Predicted: p"."""
    wrong = np.flatnonzero(y_true != y_pred)
    if wrong.size == 0:
        raise ValueError("there are no misclassified images to show")
    chosen = np.random.default_rng(rng).choice(wrong, size=min(num_images, wrong.size), replace=False)
    names = class_names or [str(label) for label in range(int(max(y_true.max(), y_pred.max())) + 1)]
    columns = min(5, chosen.size)
    rows = -(-chosen.size // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, chosen):
        axis.imshow(X[:, index].reshape(28, 28), cmap="gray")
        axis.set_title(f"True: {names[y_true[index]]}, Predicted: {names[y_pred[index]]}", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, path, *, class_names) -> Path:
    """Counts of (true class, predicted class) as an annotated heatmap."""
    size = len(class_names)
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    figure, axis = plt.subplots(figsize=(1.0 * size + 2, 1.0 * size + 1))
    image = axis.imshow(counts, cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if count > counts.max() / 2 else "black"
        axis.text(column, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    axis.set_xticks(range(size), class_names, rotation=45, ha="right")
    axis.set_yticks(range(size), class_names)
    axis.set_xlabel("Predicted class")
    axis.set_ylabel("True class")
    figure.colorbar(image, ax=axis)
    figure.tight_layout()
    return save_figure(figure, path)
