"""The notebook's training loop: :func:`fit`, which is ``Sequential.fit``.

Each epoch: a new random permutation of the samples split into mini-batches; for each batch a
forward pass, the batch loss, a backward pass and one optimizer step. The epoch's loss is the mean
of the batch losses computed in the forward passes, before each update (what the notebook prints).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import _checks
from ..core.fusion import fuse as fused
from ..core.layers import mode, parameter_gradients, run
from ..core.losses import Loss, resolve_loss
from ..core.optimizers import OPTIMIZERS, Optimizer
from ..core.preprocessing import generate_batch_indices
from ..core.regularizers import Regularizer, resolve_regularizer
from .callbacks import ProgressBar


class TrainingDiverged(ArithmeticError):
    """The loss became NaN or inf; the message names the epoch and the batch."""


class TrainingWarning(UserWarning):
    """Training runs, but cannot be working: a learning rate that changes no weight, a loss that grows."""


def check_data(model, X: Any, Y: Any = None, loss: Loss | None = None) -> None:
    """Check X (features, N) — and targets Y (outputs, N) for ``loss`` — against ``model``; each error names
    the argument and, where it can, says what was probably meant."""
    if isinstance(X, np.ndarray) and X.ndim == 1:
        raise ValueError(
            f"X must be a (features, samples) matrix, received a vector of shape {X.shape}: {_hint(model, X)}"
        )
    if isinstance(X, np.ndarray) and X.ndim == 2 and model.input_size is not None and X.shape[0] != model.input_size:
        hint = ": data is (features, samples), did you mean X.T?" if X.shape[1] == model.input_size else ""
        raise ValueError(f"X must have {model.input_size} rows (features, samples), received shape {X.shape}{hint}")
    _checks.matrix("X", X)
    if X.shape[1] == 0:
        raise ValueError("X has no samples: it needs at least one column")
    if Y is None:
        return
    loss = loss if loss is not None else Loss()
    if isinstance(Y, np.ndarray) and Y.ndim == 1:
        raise ValueError(f"Y must be a (outputs, N) matrix, received a vector of shape {Y.shape}: {loss.vector_hint}")
    _checks.matrix("Y", Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of columns (samples), received {X.shape[1]} and {Y.shape[1]}"
        )
    shape = model.output_shape(X.shape[0])
    if shape is not None:
        loss.check_output_shape(Y, shape)
    loss.check_targets(Y)


def _hint(model, x: np.ndarray) -> str:
    """What a vector x given as X probably is: one sample (a column), or N samples of one feature (a row)."""
    if model.input_size == 1:
        return "N samples of one feature are one row, x[None, :]"
    if model.input_size in (None, x.size):
        return "one sample is one column, x[:, None]"
    return f"one sample is a column of {model.input_size} features, x[:, None]"


@dataclass
class History:
    """Per-epoch figures: ``loss`` and ``accuracy`` on the training batches, ``val_*`` on validation data.

    A loss without accuracy (a regression's ``"mse"``) leaves ``accuracy`` and ``val_accuracy`` empty."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)

    def append(self, logs: dict) -> None:
        for key, value in logs.items():
            getattr(self, key).append(value)

    def as_dict(self) -> dict[str, list[float]]:
        return {key: list(values) for key, values in vars(self).items() if values}


class _Rows:
    """Gathers mini-batches from a (features, N) matrix by reading N-major rows into one reused buffer.

    The returned (features, b) batch is a transposed view of the buffer: the math sees columns,
    memory holds each sample's features contiguously, and no array is allocated per batch.
    """

    def __init__(self, matrix: np.ndarray, batch_size: int, dtype):
        self.rows = np.ascontiguousarray(matrix.T, dtype=dtype)  # no copy if already sample-major
        self.buffer = np.empty((min(batch_size, self.rows.shape[0]), self.rows.shape[1]), dtype=dtype)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        batch = self.buffer[: indices.size]
        np.take(self.rows, indices, axis=0, out=batch, mode="clip")  # "clip": unbuffered; indices are valid
        return batch.T


@np.errstate(over="ignore", invalid="ignore", divide="ignore")  # a non-finite loss raises TrainingDiverged
def fit(
    model,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    epochs: int = 20,
    batch_size: int = 200,
    optimizer=None,
    learning_rate: float | None = None,
    loss: str | Loss = "auto",
    regularizer=None,
    rng=None,
    validation_data=None,
    validation_split: float = 0.0,
    callbacks=(),
    initial_epoch: int = 0,
    history: History | None = None,
    verbose: int | str = "auto",
    fuse: bool = False,
) -> History:
    """Train with mini-batch gradient descent; return the per-epoch :class:`History`.

    X: (features, N); Y: (outputs, N) targets — one-hot columns for a classifier. ``optimizer`` defaults to
    ``SGD(learning_rate or 0.01)``. ``loss`` is a name of :data:`~nablanet.core.losses.LOSSES` or a loss
    object: ``"auto"`` uses the fused softmax + cross-entropy when the model ends in Softmax (the fused
    sigmoid + binary cross-entropy after Sigmoid); ``"cce"`` runs the notebook's Softmax layer + ``cce``
    path; ``"mse"`` trains a regression (then there is no accuracy). ``regularizer`` (``L1(λ)``, ``L2(λ)`` of
    :mod:`nablanet.core.regularizers`) adds λ ∇R(W) to the weights' gradients before each step; the reported
    loss stays the data's. ``rng`` (seed or Generator) shuffles the
    batches. ``validation_data=(X_val, Y_val)`` or ``validation_split`` (the last fraction of the
    columns) adds ``val_loss`` and ``val_accuracy``. ``callbacks`` are :class:`~nablanet.Callback`
    objects. ``initial_epoch`` and ``history`` continue an earlier run (see
    :mod:`nablanet.files.checkpoint`). ``verbose`` (Keras's levels): 1 or "auto", a progress bar over each
    epoch's batches (a widget in Jupyter, a text bar on a terminal) and a line per epoch; 2, the line only;
    0, silence (see :class:`~nablanet.training.callbacks.ProgressBar`). The layers are in training mode
    during ``fit`` and in the mode they were in before, afterwards. ``fuse=True`` trains with the fused path
    (:mod:`nablanet.core.fusion`): each Conv2D → ReLU → MaxPool2D and Dense → ReLU of the model computed as one
    block, with the same numbers, faster where numba runs; the model itself, its saving and resuming, and
    everything outside the training batches (validation, predictions) stay the eager layers'.

    This function is ``Sequential.fit``: ``model.fit(X, Y, ...)`` calls it with the model.

    Args:
        model (Sequential): The Sequential to train (``self`` in ``model.fit``).
        X: The training inputs, (features, N) — (C·H·W, N), one flattened image per column, for images.
        Y: The targets, (outputs, N): one-hot columns for a classifier, labels 0/1 for ``"bce"``, numbers
            for ``"mse"``.
        epochs: The number of epochs in all (a positive integer), counted from the start of the first run, not
            from ``initial_epoch``.
        batch_size: Samples per mini-batch (a positive integer); the last batch of an epoch may be smaller.
        optimizer (Optimizer | str | None): An optimizer object (SGD, Adam, AdamW) or its name
            ("sgd", "adam", "adamw"); None: SGD.
        learning_rate: η for an optimizer given by name or the default SGD (0.01 if None); not with an
            optimizer object.
        loss: A loss object or a name: "auto", "cce", "softmax_cce", "mse", "bce" or "sigmoid_bce".
        regularizer (Regularizer | str | None): ``L1(rate)`` or ``L2(rate)``, a name ("l1", "l2": the default
            rate 0.001) or None (no penalty).
        rng (int | numpy.random.Generator | None): Seed or generator that shuffles the batches; None: a fresh one.
        validation_data (tuple[ndarray, ndarray] | None): (X_val, Y_val), shaped as X and Y, scored
            after every epoch; None: no validation.
        validation_split: The fraction of the columns, taken from the end, held out for validation, in
            [0, 1); not with ``validation_data``.
        callbacks (Iterable[Callback]): :class:`~nablanet.Callback` objects, called in order at every hook.
        initial_epoch: The epoch to start from (0 ≤ initial_epoch ≤ epochs), to continue an earlier run.
        history: The :class:`History` of an earlier run, to append this run's epochs to; None: a new one.
        verbose: 1 or "auto" (a progress bar and a line per epoch), 2 (the line only) or 0 (silence).
        fuse: True: train with the fused blocks of :func:`nablanet.core.fusion.fuse`; False: the eager layers.
    """
    epochs = _checks.positive_int("epochs", epochs)
    batch_size = _checks.positive_int("batch_size", batch_size)
    initial_epoch = _checks.int_in_range("initial_epoch", initial_epoch, 0, epochs, high_name="epochs")
    layers, loss_function = resolve_loss(model.layers, loss)
    if not isinstance(fuse, bool):
        raise TypeError(f"fuse must be True or False, received {fuse!r}")
    layers = fused(layers) if fuse else layers
    check_data(model, X, Y, loss_function)
    optimizer = _optimizer(optimizer, learning_rate)
    penalty = resolve_regularizer(regularizer)
    callbacks = list(callbacks or ())
    if not any(isinstance(callback, ProgressBar) for callback in callbacks):
        callbacks.append(ProgressBar(epochs, verbose=verbose))  # checks verbose; silent at 0
    X, Y, validation_data = _validation(X, Y, validation_data, validation_split)
    if not model.parameters():
        raise ValueError("the model has no trainable parameters: add a Dense layer")
    epoch = _Epoch(model, layers, loss_function, X, Y, batch_size, np.random.default_rng(rng), optimizer, callbacks)
    epoch.regularizer = penalty
    history = history if history is not None else History()
    model.stop_training = False
    for callback in callbacks:
        callback.on_train_begin(model)
    with mode(model.layers, training=True):
        for number in range(initial_epoch, epochs):
            before = [parameter.value.copy() for parameter in epoch.parameters]  # to tell a step too small to count
            logs = epoch.run(number)
            if validation_data is not None:
                scores = model.evaluate(*validation_data, loss=loss_function)  # in inference mode
                logs.update({f"val_{key}": value for key, value in scores.items()})
            history.append(logs)
            _warn_if_not_learning(history, epoch.parameters, before, number, optimizer)
            for callback in callbacks:
                callback.on_epoch_end(number, logs)
            if model.stop_training:
                break
    for callback in callbacks:
        callback.on_train_end()
    return history


def _validation(X, Y, validation_data, validation_split):
    """(X, Y, validation_data) for training: ``validation_split`` takes the last fraction of the columns."""
    validation_split = _checks.fraction("validation_split", validation_split)
    if not validation_split:
        return X, Y, validation_data
    if validation_data is not None:
        raise ValueError("give either validation_data or validation_split, not both")
    split = X.shape[1] - round(X.shape[1] * validation_split)
    if split <= 0 or split == X.shape[1]:
        raise ValueError(f"validation_split {validation_split} leaves no training or no validation samples")
    return X[:, :split], Y[:, :split], (X[:, split:], Y[:, split:])


class _Epoch:
    """One epoch of the notebook's loop over a model's training data, run by :meth:`run`."""

    regularizer: Regularizer | None = None  # adds λ ∇R(W) to the gradients before each step

    def __init__(self, model, layers, loss: Loss, X, Y, batch_size: int, rng, optimizer: Optimizer, callbacks) -> None:
        self.layers, self.loss = layers, loss
        self.parameters = model.parameters()
        dtype = model.dtype or X.dtype
        self.gather_X, self.gather_Y = _Rows(X, batch_size, dtype), _Rows(Y, batch_size, dtype)
        self.samples, self.batch_size, self.rng = X.shape[1], batch_size, rng
        self.optimizer, self.callbacks = optimizer, callbacks

    def run(self, epoch: int) -> dict[str, float]:
        """Train on every mini-batch of a new permutation once; the epoch's mean batch loss and accuracy (no
        accuracy for a loss that counts no sample right or wrong, a regression's)."""
        self.optimizer.start_epoch(epoch)
        batches = generate_batch_indices(self.samples, self.batch_size, self.rng)
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, len(batches))
        total_loss, hits = 0.0, []  # hits: each batch's number of samples predicted right
        for batch_number, indices in enumerate(batches):
            Y_batch = self.gather_Y(indices)
            output = run(self.layers, self.gather_X(indices))
            batch_loss, gradient = self.loss.value_and_gradient(Y_batch, output)
            if not np.isfinite(batch_loss):
                raise TrainingDiverged(
                    f"the loss became {batch_loss} in epoch {epoch + 1}, batch {batch_number + 1}: "
                    f"training diverged; try a lower learning rate (now {self.optimizer.learning_rate:g})"
                )
            for layer in reversed(self.layers[1:]):
                gradient = layer.backward(gradient)
            parameter_gradients(self.layers[0], gradient)  # nothing needs ∇ of the data
            if self.regularizer is not None:
                self.regularizer.add_gradient(self.parameters)
            self.optimizer.step(self.parameters)
            total_loss += batch_loss
            hits.append(self.loss.correct(Y_batch, output))  # None for a regression
            for callback in self.callbacks:
                callback.on_batch_end(batch_number, batch_loss)
        return {"loss": float(total_loss / len(batches)), **accuracy(hits, self.samples)}


def accuracy(hits: list[int | None], samples: int) -> dict[str, float]:
    """``{"accuracy": share of the samples predicted right}`` from each batch's count (``Loss.correct``); ``{}``
    where the loss counts none (a regression)."""
    counts = [hit for hit in hits if hit is not None]
    return {"accuracy": sum(counts) / samples} if len(counts) == len(hits) else {}


def _optimizer(optimizer, learning_rate):
    """An optimizer object from ``fit``'s arguments: an object as it is, a registered name ("adam") with
    its defaults (or ``learning_rate``), or by default SGD with ``learning_rate`` (0.01)."""
    if optimizer is None or isinstance(optimizer, str):
        cls = OPTIMIZERS.lookup(optimizer or "sgd", argument="optimizer")
        return cls() if learning_rate is None else cls(learning_rate)
    if learning_rate is not None:
        raise ValueError("give either an optimizer object or learning_rate, not both")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be a nablanet optimizer or one of {sorted(OPTIMIZERS)}, "
            f"received {type(optimizer).__name__}"
        )
    return optimizer


def _warn_if_not_learning(history: History, parameters, before, epoch: int, optimizer) -> None:
    if all(np.array_equal(old, parameter.value) for old, parameter in zip(before, parameters, strict=True)):
        if not any(np.any(parameter.gradient) for parameter in parameters):
            why = (
                "every gradient the layers hand out is 0: a layer that puts its gradient in a new array "
                "(self.gradient = …) instead of writing into the one parameters() gave (self.gradient[...] = …), "
                "or units that are all dead"
            )
        else:
            dtype = parameters[0].value.dtype
            why = f"the learning rate {optimizer.learning_rate:g} is too small for {dtype} arithmetic"
        warnings.warn(f"epoch {epoch + 1} changed no weight at all: {why}", TrainingWarning, stacklevel=3)
    first, last = history.loss[0], history.loss[-1]
    if len(history.loss) > 1 and last > 2 * first and history.loss[-2] <= 2 * first:
        warnings.warn(
            f"the loss grew from {first:.4g} in the first epoch to {last:.4g} in epoch {epoch + 1}: the learning "
            f"rate {optimizer.learning_rate:g} may be too large",
            TrainingWarning,
            stacklevel=3,
        )
