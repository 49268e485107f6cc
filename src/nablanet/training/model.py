"""``Sequential``: layers applied one after the other, trained by the notebook's loop."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core import _checks
from ..core.activations import ACTIVATIONS, Softmax
from ..core.convolution import Conv2D, Flatten, MaxPool2D
from ..core.layers import (
    Dense,
    Dropout,
    Layer,
    SameShape,
    layer_configs,
    layer_entries,
    layer_list,
    parameter_specs,
    run,
)
from ..core.losses import Loss, resolve_loss
from ..core.normalization import BatchNorm
from ..core.parameter import Buffer, Parameter
from ..core.recurrent import Embedding  # noqa: F401 — registers the sequence layers in LAYERS
from .budget import Cost, cost
from .loop import accuracy, check_data, fit

ArraySpec = tuple[tuple[int, ...], np.dtype]  # what an array must be: (shape, dtype)


class Sequential:
    """A stack of layers: forward runs them in order, backward in reverse.

    ``fit`` trains it (see :func:`nablanet.training.loop.fit`), ``evaluate``/``predict``/
    ``predict_proba`` use it; each leaves every layer in the training or inference mode it found.
    ``get_config()``/``from_config()`` and ``get_weights()``/``set_weights()`` describe it as plain
    data and arrays, which is all that :func:`nablanet.save` writes.

    Args:
        layers (Iterable[Layer]): The layers, first to last; at least one.

    >>> from nablanet import Dense, ReLU, Softmax
    >>> model = Sequential([Dense(784, 32, init="he_normal", rng=0), ReLU(), Dense(32, 10, rng=0), Softmax()])
    >>> model.predict_proba(np.zeros((784, 3))).shape
    (10, 3)
    """

    fit = fit

    def __init__(self, layers):
        self.layers: list[Layer] = layer_list(layers)
        self.shapes()  # each layer learns its input shape from the one before: images need (C, H, W)
        self.stop_training = False
        self.metadata: dict[str, Any] = {}  # JSON-able facts saved with the model: the data set, class names

    @property
    def dtype(self):
        """The dtype of the parameters (None for a model without any)."""
        parameters = self.parameters()
        return parameters[0].value.dtype if parameters else None

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of one input sample: (C, H, W) for a model that starts with an image layer, else (n,); None
        if no layer fixes it, or where a layer before the first that fixes it changes the shape without saying how
        (a learner's own layer: then a later layer's input says nothing of the model's). An image layer before
        the first layer that fixes it is a ``ValueError`` that says to give that layer ``input_shape``."""
        for position, layer in enumerate(self.layers):
            shape = _declared_shape(layer)
            if shape is not None:
                return shape
            if getattr(layer, "input_shape", ()) is None:  # an image layer that was not told its input's shape
                name = type(layer).__name__
                raise ValueError(
                    f"layer {position} ({name}) needs the shape of its input images: give the first {name} "
                    f"input_shape=(C, H, W), e.g. input_shape=(1, 28, 28) for MNIST"
                )
            if not isinstance(layer, SameShape):
                return None
        return None

    @property
    def input_size(self) -> int | None:
        """Number of input features, from the first layer that fixes it."""
        shape = self.input_shape
        return math.prod(shape) if shape is not None else None

    def shapes(self, input_shape: tuple[int, ...] | None = None) -> list[tuple[int, ...] | None]:
        """The shape of one sample after each layer, as each layer's ``build`` says it.

        ``input_shape`` is the shape of one input sample; by default the count starts at the first layer that
        fixes its own input (a Dense layer, an image layer given ``input_shape``). After a layer whose ``build``
        says nothing (``None``, a learner's layer without one) shapes are unknown until the next layer that
        fixes its own; an image layer there, which cannot work without its input's shape, is an error that
        says which ``build`` to write. A ``ValueError`` names the layer whose input does not fit.

        Args:
            input_shape: The shape of one input sample, without the batch axis: (n,) or (C, H, W); None: from
                the first layer that fixes it.
        """
        shape, silent = input_shape, None
        result: list[tuple[int, ...] | None] = []
        for position, layer in enumerate(self.layers):
            shape = shape if shape is not None else _declared_shape(layer)
            if shape is None and silent is not None and getattr(layer, "input_shape", ()) is None:
                raise ValueError(
                    f"layer {position} ({type(layer).__name__}) needs the shape of its input, which {silent} does "
                    f"not say: give it a build(input_shape) that returns the shape of its output"
                )
            if shape is not None:
                try:
                    shape = layer.build(shape)
                except ValueError as error:
                    raise ValueError(f"layer {position} ({type(layer).__name__}): {error}") from None
                silent = f"layer {position} ({type(layer).__name__})" if shape is None else None
            result.append(shape)
        return result

    def parameters(self) -> list[Parameter]:
        """Every layer's trainable parameters, first layer first."""
        return [parameter for layer in self.layers for parameter in layer.parameters()]

    def train(self, training: bool = True) -> None:
        """Switch layers such as Dropout between training (``True``) and inference (``False``).

        Args:
            training: True for training mode (Dropout drops), False for inference mode.
        """
        for layer in self.layers:
            layer.training = training

    def output_size(self, input_size: int | None) -> int | None:
        """Number of output features for ``input_size`` inputs; raises if two layers do not fit.

        Args:
            input_size: Features per input sample (the rows of X); None gives None.
        """
        last = self.output_shape(input_size)
        return math.prod(last) if last is not None else None

    def output_shape(self, input_size: int | None) -> tuple[int, ...] | None:
        """The shape of one output sample for ``input_size`` input rows — (V, T) for a character model given
        (T, N) windows of token ids; None if a layer does not say; raises if two layers do not fit.

        Args:
            input_size: Rows of X (features per input sample, or positions T of token ids); None gives None.
        """
        if input_size is None:
            return None
        shape = self.input_shape
        shape = shape if shape is not None and math.prod(shape) == input_size else (input_size,)
        return self.shapes(shape)[-1]

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Apply every layer to X (features, b) and return the last output; each layer keeps what its
        backward pass needs (see :meth:`predict_proba` for a run that keeps nothing).

        Args:
            X: The batch, (features, b) — (C·H·W, b), one flattened image per column, for images.
        """
        return run(self.layers, X)

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """Back-propagate ∇_output L through every layer; with a learning rate, also take SGD steps.

        Args:
            output_gradient: ∇_output L, the per-sample gradients with respect to the last forward pass's
                output, of its shape (outputs, b).
            learning_rate: η of the plain SGD step each layer takes (a positive number); None: store the
                gradients only, for an optimizer to apply.
        """
        for layer in reversed(self.layers):
            output_gradient = layer.backward(output_gradient, learning_rate)
        return output_gradient

    def cost(self, input_size: int | None = None) -> Cost:
        """What one sample's forward pass costs — operations, the numbers kept (the one memory estimate, which
        batch sizing and the loading of model files use), Python steps and passes — worked out from the
        layers' shapes alone (see :mod:`nablanet.training.budget`). ``input_size`` is for a model whose
        first layer does not fix it.

        Args:
            input_size: Features per input sample, for a model whose first layer does not fix it (a positive
                integer); None: from the first layer.
        """
        first = self.input_shape or ((input_size,) if input_size else None)  # Dropout first: the next's
        if first is None:
            raise ValueError("no layer fixes the input's size: start with Dense or give input_shape")
        return cost(self.layers, self.shapes(first), first)

    def inference_batch_size(self, budget: int = 64 * 2**20, *, input_size: int | None = None) -> int:
        """How many samples to push through at once in inference: as many as keep what they make
        (``cost().values``) within ``budget`` bytes; between 1 and 10,000.

        Args:
            budget: Bytes the samples in flight may take (a positive integer; 64 MiB by default).
            input_size: Features per input sample, for a model whose first layer does not fix it.
        """
        itemsize = np.dtype(self.dtype or np.float64).itemsize
        values = self.cost(input_size).values
        return int(min(10_000, max(1, budget // (values * itemsize))))

    def predict_proba(self, X: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """The model's output for X (features, N), in inference mode: (classes, N) probabilities.
        ``batch_size`` samples go through at once (default: :meth:`inference_batch_size`). The layers keep
        nothing of it (see :func:`~nablanet.core.layers.outputs`): several threads may predict with one model
        at once, and beside its training.

        Args:
            X: The input, (features, N) — (C·H·W, N), one flattened image per column, for images.
            batch_size: Samples that go through at once (a positive integer; default:
                :meth:`inference_batch_size`).
        """
        check_data(self, X)
        batch_size = _checks.positive_int(
            "batch_size", self.inference_batch_size(input_size=X.shape[0]) if batch_size is None else batch_size
        )
        chunks = [
            run(self.layers, X[:, start : start + batch_size], inference=True)
            for start in range(0, X.shape[1], batch_size)
        ]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class of every column of X: argmax over axis 0 of the output, (N,).

        Args:
            X: The input, (features, N).
        """
        return self.predict_proba(X).argmax(axis=0)

    def evaluate(
        self, X: np.ndarray, Y: np.ndarray, *, loss: str | Loss = "auto", batch_size: int | None = None
    ) -> dict[str, float]:
        """Mean loss and accuracy on X (features, N) with targets Y (outputs, N) — one-hot columns for a
        classifier — in inference mode. A loss without accuracy (``"mse"``) gives ``{"loss": …}`` alone.

        Args:
            X: The input, (features, N).
            Y: The targets, (outputs, N): one-hot columns for a classifier.
            loss: As in `fit`: a registered name, "auto", or a loss object.
            batch_size: Samples that go through at once (default: `inference_batch_size`).
        """
        layers, loss_function = resolve_loss(self.layers, loss)
        check_data(self, X, Y, loss_function)
        batch_size = _checks.positive_int(
            "batch_size", self.inference_batch_size(input_size=X.shape[0]) if batch_size is None else batch_size
        )
        total, hits = 0.0, []
        for start in range(0, X.shape[1], batch_size):
            output = run(layers, X[:, start : start + batch_size], inference=True)
            Y_chunk = Y[:, start : start + batch_size]
            total += loss_function.value(Y_chunk, output) * Y_chunk.shape[1]
            hits.append(loss_function.correct(Y_chunk, output))
        return {"loss": float(total / X.shape[1]), **accuracy(hits, X.shape[1])}

    def get_config(self) -> dict[str, Any]:
        """The model as plain (JSON-able) data: each layer's registered name and config, and the metadata."""
        return {"layers": layer_configs(self.layers), "metadata": self.metadata}

    @staticmethod
    def _layer_entries(config: Any) -> list[tuple[type[Layer], dict[str, Any]]]:
        """(registered class, its config) for each layer of a model config; a ``ValueError`` saying where
        anything is malformed (see :func:`~nablanet.core.layers.layer_entries`)."""
        return layer_entries(config.get("layers") if isinstance(config, dict) else None)

    @classmethod
    def parameter_specs(cls, config: dict[str, Any], *, buffers: bool = False) -> dict[str, ArraySpec]:
        """The parameter arrays a model config needs — with ``buffers=True`` all the arrays :meth:`get_weights`
        gives, buffers included —, named as it names them, with their shapes and dtypes: worked out from the
        config alone, so that a file can be checked before anything is built.

        Args:
            config: A model config, as :meth:`get_config` returns it: ``{"layers": [{"type", "config"}, …]}``.
            buffers: Also the layers' buffers (their running statistics), after each layer's parameters.
        """
        specs = {}
        for position, (layer_class, layer_config) in enumerate(cls._layer_entries(config)):
            try:
                for name, spec in parameter_specs(layer_class, layer_config, buffers=buffers).items():
                    specs[f"layer{position}.{name}"] = spec
            except (ValueError, TypeError) as error:
                raise ValueError(f"layer {position}: {error}") from None
        return specs

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Build a model from :meth:`get_config`'s output. Only registered layers are built (never a name
        imported from the config); anything malformed is a ``ValueError`` that says where.

        Args:
            config: A model config, as :meth:`get_config` returns it: ``{"layers": [{"type", "config"}, …]}``
                and optionally ``"metadata"``.
        """
        layers = []
        for position, (layer_class, layer_config) in enumerate(cls._layer_entries(config)):
            try:
                layers.append(layer_class.from_config(layer_config))
            except ValueError as error:
                raise ValueError(f"layer {position}: {error}") from None
        model = cls(layers)
        try:
            outputs = model.output_size(model.input_size)
        except ValueError as error:
            raise ValueError(f"the layers do not fit together: {error}") from None
        model.metadata = _checked_metadata(config.get("metadata", {}), outputs)
        return model

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every parameter and buffer array by name, ``layer{position}.{name}`` (the arrays themselves, not
        copies): all that a model file holds besides its config."""
        return {name: array.value for name, array in self._arrays().items()}

    def _arrays(self) -> dict[str, Parameter | Buffer]:
        """Every layer's parameters, then its buffers, by the names :meth:`get_weights` gives them."""
        arrays: dict[str, Parameter | Buffer] = {}
        for position, layer in enumerate(self.layers):
            arrays.update({f"layer{position}.{array.name}": array for array in layer.parameters()})
            arrays.update({f"layer{position}.{array.name}": array for array in layer.buffers()})
        return arrays

    def set_weights(self, arrays: dict[str, np.ndarray], *, adopt: bool = False) -> None:
        """Copy ``arrays`` (as :meth:`get_weights` names them) into the parameters and buffers. Every name must
        be present and no other; shapes and dtypes must match and every number must be finite.

        ``adopt=True`` makes the arrays themselves the parameters (copied only if not writable or not laid out
        in memory as the parameter is, its ``order``), with zero gradients, instead of copying them: how a model
        file is read into a model built inside :func:`~nablanet.core.parameter.shapes_only`, with no second copy
        of its weights in memory (a file written before Dense kept W̃ column by column holds it row by row: that
        one is copied, once, as it is read).
        A buffer is replaced by assignment either way (by a copy, or the array itself with ``adopt``).

        Args:
            arrays: The arrays by name, ``layer{position}.{parameter or buffer name}``, as :meth:`get_weights`
                returns them.
            adopt: True: make the arrays themselves the parameters; False: copy them into the existing ones.
        """
        if not isinstance(arrays, dict) or not all(isinstance(value, np.ndarray) for value in arrays.values()):
            raise ValueError("set_weights needs a dict of NumPy arrays, named as get_weights names them")
        named = self._arrays()
        for name, holder in named.items():
            if name not in arrays:
                raise ValueError(f"the array {name!r} is missing")
            array, value = arrays[name], holder.value
            if array.shape != value.shape or array.dtype != value.dtype:
                raise ValueError(
                    f"array {name!r} has shape {array.shape} and dtype {array.dtype}, "
                    f"the model needs {value.shape} and {value.dtype}"
                )
            if not _checks.all_finite(array):
                raise ValueError(f"array {name!r} contains NaN or inf")
        extra = set(arrays) - set(named)
        if extra:
            raise ValueError(f"arrays {sorted(extra)} belong to no layer")
        for name, holder in named.items():
            if isinstance(holder, Buffer):
                holder.value = np.require(arrays[name], requirements=["C", "W"]) if adopt else arrays[name].copy()
            elif adopt:
                holder.value = np.require(arrays[name], requirements=[holder.order, "W"])
                holder.gradient = np.zeros(holder.value.shape, holder.value.dtype, holder.order)  # no memory until used
            else:
                holder.value[...] = arrays[name]

    def summary(self, input_shape: tuple[int, ...] | None = None) -> str:
        """A table of the layers, the shape of one sample after each — (C, H, W) for images, (n,) for
        vectors, of which a batch holds b as the columns of a matrix; (features, T) for sequences — and the
        parameter counts (a composite layer's: all of its sub-layers').

        Args:
            input_shape: The shape of one input sample, for a model whose first layer does not fix it: (T,) for
                the token ids of a character model; None: from the first layer that fixes it.
        """
        self.input_shape  # noqa: B018 — an image layer that cannot know its input's shape is an error that says why
        shapes = self.shapes(input_shape)
        rows = [("Layer", "Output shape", "Parameters")]
        for layer, shape in zip(self.layers, shapes, strict=True):
            count = sum(parameter.value.size for parameter in layer.parameters())
            shown = "?" if shape is None else "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")
            rows.append((type(layer).__name__, shown, f"{count:,}"))
        total = sum(parameter.value.size for parameter in self.parameters())
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        line = "-" * (sum(widths) + 4)
        text = [line] + [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
        text.insert(2, line)
        text += [line, f"Total parameters: {total:,}"]
        return "\n".join(text)

    def __repr__(self) -> str:
        return "Sequential([" + ", ".join(map(repr, self.layers)) + "])"


def _declared_shape(layer: Layer) -> tuple[int, ...] | None:
    """The input shape a layer fixes by itself: (C, H, W) given to an image layer, (n,) of a Dense layer."""
    shape = getattr(layer, "input_shape", None)
    if shape is not None:
        return tuple(shape)
    size = getattr(layer, "input_size", None)
    return (size,) if isinstance(size, int) else None


def _checked_metadata(metadata: Any, outputs: int | None) -> dict[str, Any]:
    """Metadata from a file, checked: a JSON object of short printable strings, numbers and lists of them,
    and ``class_names``, if there, one printable name per output."""

    def text(value: Any, where: str, limit: int) -> str:
        if not isinstance(value, str) or len(value) > limit or not value.isprintable():
            raise ValueError(f"metadata {where} must be printable text of at most {limit} characters")
        return value

    if not isinstance(metadata, dict) or len(metadata) > 100:
        raise ValueError("metadata must be a JSON object of at most 100 entries")
    for key, value in metadata.items():
        text(key, "keys", 100)
        values = value if isinstance(value, list) else [value]
        if len(values) > 10_000:
            raise ValueError(f"metadata {key[:40]!r} has more than 10,000 entries")
        for item in values:
            if isinstance(item, str):
                text(item, f"{key!r}", 1000)
            elif not (item is None or isinstance(item, (bool, int, float))):
                raise ValueError(f"metadata {key!r} must hold text, numbers or lists of them")
    if not isinstance(metadata.get("dataset", ""), str):
        raise ValueError("metadata 'dataset' must be the name of a data set")
    names = metadata.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
            raise ValueError("metadata 'class_names' must be a list of names")
        if len(set(names)) != len(names):
            raise ValueError("metadata 'class_names' must name every class differently")
        if outputs is not None and len(names) != outputs:
            raise ValueError(f"metadata 'class_names' names {len(names)} classes, the model has {outputs} outputs")
    return metadata


def build_classifier(
    input_size: int,
    num_classes: int,
    hidden=(),
    *,
    conv=(),
    input_shape=None,
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
    init: str = "auto",
    dtype=np.float64,
    rng=None,
) -> Sequential:
    """A classifier: for each entry F of ``conv`` a 3×3 Conv2D of F filters, ``activation`` and a 2×2
    MaxPool2D (then Flatten); Dense layers of sizes ``hidden`` with ``activation``; Dense + Softmax.
    ``dropout`` follows the flattened convolutional features and every hidden layer. ``batch_norm`` puts a
    BatchNorm between every Conv2D or hidden Dense layer and its activation (per channel after a Conv2D).

    With neither, this is the notebook's softmax classifier ("0-layer network"). ``init="auto"`` picks
    the notebook's initialiser for it, He for convolutions and ReLU-family hidden layers, Glorot
    otherwise. ``input_shape`` (C, H, W) is what the convolutions see; by default a square grey image
    of ``input_size`` pixels (784 → (1, 28, 28)).

    Args:
        input_size: Features per sample, the rows of X (784 for MNIST).
        num_classes: Classes, the rows of the Softmax output.
        hidden (Sequence[int]): Sizes of the hidden Dense layers, first to last (positive integers); empty: none.
        conv (Sequence[int]): Filters of each 3×3 Conv2D block, first to last (positive integers); empty: none.
        input_shape (tuple[int, int, int] | None): (C, H, W) of one image, for the convolutions; None: a
            square grey image of ``input_size`` pixels.
        activation: The hidden layers' activation: "relu", "leaky_relu", "sigmoid" or "tanh".
        dropout: Dropout rate p after the convolutional features and each hidden layer, in [0, 1); 0: none.
        batch_norm: True: BatchNorm before the activation of each convolution and hidden layer.
        init: How the weights are drawn: "auto" (see above), or one initialiser for every layer: "notebook",
            "he_normal", "he_uniform", "glorot_normal" or "glorot_uniform".
        dtype (numpy.float32 | numpy.float64): Of the weights, and so of the outputs and gradients.
        rng (int | numpy.random.Generator | None): Seed or generator of the initial weights and the dropout masks.

    >>> build_classifier(784, 10, [32], rng=0)
    Sequential([Dense(input_size=784, output_size=32, init='he_normal', dtype='float64'), ReLU(), \
Dense(input_size=32, output_size=10, init='glorot_uniform', dtype='float64'), Softmax(method='vectorized')])
    >>> [type(layer).__name__ for layer in build_classifier(784, 10, conv=[4], rng=0).layers]
    ['Conv2D', 'ReLU', 'MaxPool2D', 'Flatten', 'Dense', 'Softmax']
    >>> [type(layer).__name__ for layer in build_classifier(784, 10, [32], conv=[4], batch_norm=True, rng=0).layers]
    ['Conv2D', 'BatchNorm', 'ReLU', 'MaxPool2D', 'Flatten', 'Dense', 'BatchNorm', 'ReLU', 'Dense', 'Softmax']
    """
    activation_layer = ACTIVATIONS.lookup(activation, argument="activation")
    rng = np.random.default_rng(rng)
    hidden = [_checks.positive_int("hidden layer size", size) for size in hidden]
    conv = [_checks.positive_int("number of convolution filters", filters) for filters in conv]
    if init == "auto":
        hidden_init = "he_normal" if "relu" in activation else "glorot_uniform"
        output_init = "glorot_uniform" if hidden or conv else "notebook"
    else:
        hidden_init = output_init = init

    def drop() -> list[Layer]:
        return [Dropout(dropout, rng=int(rng.integers(2**63)))] if dropout else []  # each its own stream

    def normalize(features: int) -> list[Layer]:
        return [BatchNorm(features, dtype=dtype)] if batch_norm else []

    layers: list[Layer] = []
    size = input_size
    if conv:
        if input_shape is None:
            side = math.isqrt(input_size)
            if side * side != input_size:
                raise ValueError(f"give input_shape (C, H, W): {input_size} inputs are no square grey image")
            input_shape = (1, side, side)
        shape = tuple(input_shape)
        for filters in conv:
            convolution = Conv2D(
                shape[0],
                filters,
                3,
                input_shape=shape,
                init="he_normal" if init == "auto" else init,
                rng=rng,
                dtype=dtype,
            )
            pool = MaxPool2D(2)
            layers += [convolution, *normalize(filters), activation_layer(), pool]
            shape = pool.build(convolution.build(shape))
        layers += [Flatten(), *drop()]
        size = math.prod(shape)
    for units in hidden:
        dense = Dense(size, units, init=hidden_init, rng=rng, dtype=dtype)
        layers += [dense, *normalize(units), activation_layer(), *drop()]
        size = units
    layers += [Dense(size, num_classes, init=output_init, rng=rng, dtype=dtype), Softmax()]
    return Sequential(layers)
