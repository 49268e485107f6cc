"""``Sequential``: layers applied one after the other, trained by the notebook's loop."""

from __future__ import annotations

import numpy as np

from . import _checks, training
from .layers import Layer


class Sequential:
    """A stack of layers: forward runs them in order, backward in reverse.

    >>> from nablanet import Dense, ReLU, Softmax
    >>> model = Sequential([Dense(784, 32, init="he_normal", rng=0), ReLU(), Dense(32, 10, rng=0), Softmax()])
    >>> model.predict_proba(np.zeros((784, 3))).shape
    (10, 3)
    """

    def __init__(self, layers):
        layers = list(layers)
        if not layers:
            raise ValueError("layers must hold at least one layer")
        for position, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{position}] must be a nablanet Layer, received {type(layer).__name__}")
        self.layers = layers
        self.stop_training = False
        self.metadata: dict = {}  # JSON-able facts saved with the model, e.g. the data set and class names

    @property
    def dtype(self):
        """The dtype of the parameters (None for a model without any)."""
        parameters = self.parameters()
        return parameters[0].value.dtype if parameters else None

    @property
    def input_size(self) -> int | None:
        """Number of input features, from the first layer that fixes it."""
        return next((layer.input_size for layer in self.layers if hasattr(layer, "input_size")), None)

    def parameters(self):
        """Every layer's trainable parameters, first layer first."""
        return [parameter for layer in self.layers for parameter in layer.parameters()]

    def train(self, mode: bool = True) -> None:
        """Switch layers such as Dropout between training (``True``) and inference (``False``)."""
        for layer in self.layers:
            layer.training = mode

    def output_size(self, input_size: int) -> int:
        """Number of output features for ``input_size`` inputs; raises if two layers do not fit."""
        size = input_size
        for position, layer in enumerate(self.layers):
            try:
                size = layer.output_size(size)
            except ValueError as error:
                raise ValueError(f"layer {position} ({type(layer).__name__}): {error}") from None
        return size

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Apply every layer to X (features, b) and return the last output."""
        for layer in self.layers:
            X = layer.forward(X)
        return X

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """Back-propagate ∇_output L through every layer; with a learning rate, also take SGD steps."""
        for layer in reversed(self.layers):
            output_gradient = layer.backward(output_gradient, learning_rate)
        return output_gradient

    def predict_proba(self, X: np.ndarray, batch_size: int = 10_000) -> np.ndarray:
        """The model's output for X (features, N), in inference mode: (classes, N) probabilities."""
        _checks.matrix("X", X, rows=self.input_size)
        self.train(False)
        chunks = [self.forward(X[:, start:start + batch_size]) for start in range(0, X.shape[1], batch_size)]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class of every column of X: argmax over axis 0 of the output."""
        return self.predict_proba(X).argmax(axis=0)

    def evaluate(self, X: np.ndarray, Y: np.ndarray, *, loss: str = "auto", batch_size: int = 10_000) -> dict:
        """Mean loss and accuracy on X (features, N) with one-hot Y (classes, N), in inference mode."""
        _checks.matrix("X", X, rows=self.input_size)
        _checks.matrix("Y", Y)
        if X.shape[1] != Y.shape[1]:
            raise ValueError(f"X and Y must have the same number of columns, received {X.shape[1]} and {Y.shape[1]}")
        layers, loss_function = training.resolve_loss(self.layers, loss)
        self.train(False)
        total, correct = 0.0, 0
        for start in range(0, X.shape[1], batch_size):
            output = X[:, start:start + batch_size]
            for layer in layers:
                output = layer.forward(output)
            Y_chunk = Y[:, start:start + batch_size]
            total += loss_function.value(Y_chunk, output) * Y_chunk.shape[1]
            correct += np.count_nonzero(output.argmax(axis=0) == Y_chunk.argmax(axis=0))
        return {"loss": float(total / X.shape[1]), "accuracy": float(correct / X.shape[1])}

    def fit(self, X, Y, *, epochs: int = 20, batch_size: int = 200, optimizer=None, learning_rate=None,
            loss: str = "auto", rng=None, validation_data=None, validation_split: float = 0.0,
            callbacks=(), initial_epoch: int = 0, history: training.History | None = None) -> training.History:
        """Train with mini-batch gradient descent; return the per-epoch :class:`History`.

        X: (features, N); Y: one-hot (classes, N). ``optimizer`` defaults to ``SGD(learning_rate or 0.01)``.
        ``loss="auto"`` uses the fused softmax + cross-entropy when the model ends in Softmax; ``"cce"``
        runs the notebook's Softmax layer + ``cce`` path. ``rng`` (seed or Generator) shuffles the
        batches. ``validation_data=(X_val, Y_val)`` or ``validation_split`` (the last fraction of the
        columns) adds ``val_loss`` and ``val_accuracy``. ``initial_epoch`` and ``history`` continue an
        earlier run (see :mod:`nablanet.checkpoint`).
        """
        return training.fit(self, X, Y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                            learning_rate=learning_rate, loss=loss, rng=rng, validation_data=validation_data,
                            validation_split=validation_split, callbacks=callbacks, initial_epoch=initial_epoch,
                            history=history)

    def save(self, path):
        """Save the layers and weights to one ``.npz`` file (atomically); ``nablanet.load(path)`` reads it."""
        from .serialization import save

        return save(self, path)

    def summary(self) -> str:
        """A table of the layers, their output shapes and parameter counts."""
        size = self.input_size
        rows = [("Layer", "Output shape", "Parameters")]
        for layer in self.layers:
            size = layer.output_size(size) if size is not None else None
            count = sum(parameter.value.size for parameter in layer.parameters())
            rows.append((type(layer).__name__, f"({size}, batch)", f"{count:,}"))
        total = sum(parameter.value.size for parameter in self.parameters())
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        line = "-" * (sum(widths) + 4)
        text = [line] + [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
        text.insert(2, line)
        text += [line, f"Total parameters: {total:,}"]
        return "\n".join(text)

    def __repr__(self) -> str:
        return "Sequential([" + ", ".join(map(repr, self.layers)) + "])"


def build_classifier(input_size: int, num_classes: int, hidden=(), *, activation: str = "relu",
                     dropout: float = 0.0, init: str = "auto", dtype=np.float64, rng=None) -> Sequential:
    """Dense layers of sizes ``hidden`` with ``activation`` (and Dropout), then Dense + Softmax.

    With no hidden layer this is the notebook's softmax classifier ("0-layer network"). ``init="auto"``
    picks the notebook's initialiser for it, He for ReLU-family hidden layers and Glorot otherwise.
    """
    from .activations import ACTIVATIONS, Softmax
    from .layers import Dense, Dropout

    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, received: {activation!r}")
    rng = np.random.default_rng(rng)
    hidden = [_checks.positive_int("hidden layer size", size) for size in hidden]
    if init == "auto":
        hidden_init = "he_normal" if "relu" in activation else "glorot_uniform"
        output_init = "glorot_uniform" if hidden else "notebook"
    else:
        hidden_init = output_init = init
    layers, size = [], input_size
    for units in hidden:
        layers += [Dense(size, units, init=hidden_init, rng=rng, dtype=dtype), ACTIVATIONS[activation]()]
        if dropout:
            layers.append(Dropout(dropout, rng=int(rng.integers(2**63))))  # its own stream
        size = units
    layers += [Dense(size, num_classes, init=output_init, rng=rng, dtype=dtype), Softmax()]
    return Sequential(layers)
