"""The generic :class:`Layer` contract, the helpers every layer and model shares, and the layers with weights.

Notation (the course notebooks'): a batch is a (features, b) matrix, one column per sample.
``forward(X)`` returns the layer's output; ``backward(∇_output L)`` returns ∇_input L. The columns of
the gradients that flow backwards are the per-sample gradients ∇L_i; a layer with parameters averages
them over the batch (the 1/b of the notebook) when it forms its parameter gradients.

Every layer class is registered in ``LAYERS`` under its class name: that registry is the list of
layers a model file may name, and what :meth:`Layer.from_config` rebuilds from.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import numpy as np

from . import _checks, ops
from .initializers import initialize
from .optimizers import SGD
from .parameter import Buffer, Parameter, shapes_only, zeros
from .registry import Registry

LAYERS: Registry[type[Layer]] = Registry("layer")

Shape = tuple[int, ...]


class Layer:
    """A generic layer: ``forward(input)`` → output, ``backward(output_gradient)`` → input gradient.

    As in the notebook, the layer keeps ``input`` and ``output`` of the last forward pass: the state its
    ``backward`` reads. ``backward(output_gradient, learning_rate)`` with a learning rate also applies the
    plain SGD step W ← W − η ∇_W L to every parameter, exactly as the notebook's layers do (through
    :func:`sgd_step`); without one it only stores the gradients, for an optimizer object to apply.

    That is the whole contract a layer must honour — ``forward`` and ``backward``, and ``parameters()`` if
    it has weights. A class with those three trains in ``fit``, passes ``gradcheck`` and, once registered
    in ``LAYERS``, is saved and loaded. The rest is optional:

    * ``buffers()``: state that is not trained but saved with the model (BatchNorm's running statistics);

    * ``get_config()`` / ``from_config(config)``: the constructor's arguments as plain data, which rebuild
      the layer (its arrays travel separately) — needed only by a layer whose constructor takes arguments;
    * ``build(input_shape)``: shape inference — take the shape of one input sample from the layer before
      and return the shape of one output sample. The default says nothing (``None``): ``Sequential`` then
      knows no shapes after the layer until one that fixes its own input (a Dense layer does).

    A layer may be made of layers (a :class:`Composite`, e.g. :class:`Residual`): its forward and backward
    passes run its sub-layers', its ``parameters()`` and ``buffers()`` are theirs, and its config nests
    theirs by their registered names, checked like a model's list of layers before anything is built.

    Sequences use the same layout, features first: a batch of b sequences of T positions is (features, T, b)
    (a sample is a sequence; ``build`` receives (features, T)), and a layer with parameters still averages
    over the b samples, each sample's gradient being the sum over its positions.
    """

    training = True
    input: np.ndarray | None = None
    output: np.ndarray | None = None

    def forward(self, input: np.ndarray) -> np.ndarray:
        """The output of the layer for ``input`` (features, b); keeps what ``backward`` needs.

        Args:
            input: X, (features, b): the model's input or the output of the layer before — (C·H·W, b) for
                images, one flattened image per column.
        """
        raise NotImplementedError

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_X L from ∇_output L (the output's shape); stores the parameter gradients, and with a learning rate
        takes the SGD step.

        Args:
            output_gradient: ∇_output L, the per-sample gradients of the loss with respect to the last forward
                pass's output, of its shape.
            learning_rate: η of the plain SGD step W ← W − η ∇_W L (a positive number); None: store the
                gradients only, for an optimizer to apply.
        """
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        """The trainable parameters, in a fixed order (none for a layer without weights)."""
        return []

    def buffers(self) -> list[Buffer]:
        """The non-trainable state saved with the model, in a fixed order: BatchNorm's running statistics
        (none for most layers). Optimizers never see it."""
        return []

    def get_config(self) -> dict[str, Any]:
        """Plain-data (JSON-able) constructor arguments that rebuild this layer."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Build the layer from :meth:`get_config`'s output; a ``ValueError`` for anything else.

        Only the constructor's own arguments are accepted (never ``rng``), so a config read from an
        untrusted file can choose values but not smuggle in anything else.

        Args:
            config: The constructor's arguments by name, as :meth:`get_config` returns them.
        """
        if not isinstance(config, dict):
            raise ValueError(f"the config of a {cls.__name__} must be a dict, received {type(config).__name__}")
        allowed = set(inspect.signature(cls).parameters) - {"rng"}
        unknown = set(config) - allowed
        if unknown:
            raise ValueError(f"{cls.__name__} has no arguments {sorted(unknown)}")
        try:
            return cls(**config)
        except TypeError as error:
            raise ValueError(f"{cls.__name__}: {error}") from None

    def build(self, input_shape: Shape) -> Shape | None:
        """Take the shape of one input sample — (C, H, W) for images, (n,) for vectors — and return the shape
        of one output sample; ``None``: this layer does not say. ``Sequential`` calls it whenever it works
        out its shapes (``summary``, batch sizing, checking data), so it may run many times, always with the
        same shape: it checks the shape and remembers it, and makes nothing else (no weights).

        Args:
            input_shape: The shape of one input sample, without the batch axis: (n,) or (C, H, W).
        """
        return None

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class SameShape(Layer):
    """A layer whose output has its input's shape: the activations, Dropout."""

    def build(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)


def layer_list(layers: Iterable[Any]) -> list[Layer]:
    """``layers`` as a list, checked to hold at least one layer and nothing but layers: what a model and a
    composite are built from."""
    layers = list(layers)
    if not layers:
        raise ValueError("layers must hold at least one layer")
    for position, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"layers[{position}] must be a nablanet Layer, received {type(layer).__name__}")
    return layers


# -- what every layer's backward pass and every model run share
def last_pass(layer: Layer, output_gradient: Any) -> tuple[np.ndarray, np.ndarray]:
    """(input, output) of the layer's last forward pass — the state its backward pass reads — once
    ``output_gradient`` is checked to be a gradient of that output: an array of its shape."""
    name = type(layer).__name__
    if layer.input is None or layer.output is None:
        raise RuntimeError(f"{name}.backward needs a forward pass first")
    _checks.gradient(f"{name}.backward", output_gradient, layer.output.shape)
    return layer.input, layer.output


def sgd_step(layer: Layer, learning_rate: float | None) -> None:
    """The notebook's ``backward(g, learning_rate)``: one plain SGD step W ← W − η ∇_W L on the layer's
    parameters, given a learning rate (none without)."""
    if learning_rate is not None:
        SGD(learning_rate).step(layer.parameters())


def parameter_gradients(layer: Layer, output_gradient: np.ndarray) -> None:
    """Store the layer's parameter gradients: what the first layer of a network needs, since nothing uses
    the gradient with respect to the data. A layer with a ``_parameter_gradients`` method (Dense, Conv2D)
    skips the work of ∇_X L there; any other runs its whole backward pass."""
    only_parameters = getattr(layer, "_parameter_gradients", None)
    if only_parameters is None:
        layer.backward(output_gradient)
    else:
        only_parameters(output_gradient)


def outputs(layers: Iterable[Layer], X: np.ndarray, *, inference: bool = False) -> Iterator[np.ndarray]:
    """Each layer's output in turn, for the batch X (features, b): the one forward pass every model run uses.

    With ``inference=True`` every layer runs in inference mode (no dropout) on a shallow copy of itself,
    which shares its weights: what the forward pass keeps for ``backward`` goes to the copy, so the layer's
    own state — a training step's cache, its mode — is left as it was. Predictions, evaluations and
    pictures can therefore run beside training, or beside each other in several threads, on one model.
    (A layer's forward must therefore assign what it keeps, ``self.input = …``, not write it into an object
    it shares with its copies, such as a dict it updates in place.)
    """
    for layer in layers:
        if inference:
            layer = copy.copy(layer)
            layer.training = False
        X = layer.forward(X)
        yield X


def run(layers: Iterable[Layer], X: np.ndarray, *, inference: bool = False) -> np.ndarray:
    """The output of the last layer for X (see :func:`outputs`)."""
    output = X
    for output in outputs(layers, X, inference=inference):  # noqa: B007 - the last one is the result
        pass
    return output


def parameter_specs(
    layer_class: type[Layer], config: dict[str, Any], *, buffers: bool = False
) -> dict[str, tuple[Shape, np.dtype]]:
    """The parameter arrays a layer built from ``config`` has, name → (shape, dtype) — with ``buffers=True``
    its buffers too, after them —, worked out without allocating them: the layer is built by its own
    constructor inside :func:`~nablanet.core.parameter.shapes_only`, so the shapes are the constructor's, never
    restated. (Arrays a constructor makes with :func:`~nablanet.core.initializers.initialize` or
    :func:`~nablanet.core.parameter.zeros` cost nothing there; others, a learner's ``np.random`` weights,
    are made in full.)"""
    with shapes_only():
        layer = layer_class.from_config(config)
    arrays: list[Parameter | Buffer] = [*layer.parameters(), *(layer.buffers() if buffers else [])]
    return {array.name: (array.value.shape, array.value.dtype) for array in arrays}


@contextlib.contextmanager
def mode(layers: Iterable[Layer], *, training: bool) -> Iterator[None]:
    """Put ``layers`` in training (``True``) or inference (``False``) mode inside a ``with`` block, and
    back in the modes each had before when it ends (also on an error).

    >>> dropout = Dropout(0.5)
    >>> with mode([dropout], training=False):
    ...     dropout.training
    False
    >>> dropout.training
    True
    """
    layers = list(layers)
    saved = [layer.training for layer in layers]
    for layer in layers:
        layer.training = training
    try:
        yield
    finally:
        for layer, was in zip(layers, saved, strict=True):
            layer.training = was


# -- layers made of layers
MAX_DEPTH = 8  # composites inside composites, as a layer config may nest them
MAX_NESTED_LAYERS = 1_000  # the layers one composite's config may describe, at every depth together


def layer_configs(layers: Iterable[Layer]) -> list[dict[str, Any]]:
    """``[{"type": registered name, "config": layer.get_config()}, …]``: a list of layers as plain data, as a
    model file and a composite's config hold it; a ``TypeError`` names a layer that is not registered."""
    configs = []
    for position, layer in enumerate(layers):
        name = type(layer).__name__
        if LAYERS.get(name) is not type(layer):
            raise TypeError(f"layer {position} ({name}) is not a registered nablanet layer: it cannot be saved")
        configs.append({"type": name, "config": layer.get_config()})
    return configs


def layer_entries(entries: Any) -> list[tuple[type[Layer], dict[str, Any]]]:
    """(registered class, its config) for each entry of a list of layers as :func:`layer_configs` writes it,
    checked before anything is built: a non-empty list of ``{"type", "config"}`` dicts naming registered
    layers, whose nested lists (a composite's ``"layers"``) go at most ``MAX_DEPTH`` deep and describe at most
    ``MAX_NESTED_LAYERS`` layers in all. Anything else is a ``ValueError`` that says where."""
    _count_nested(entries, depth=1)
    checked = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ValueError(f"layer {position} is not of the form {{'type': name, 'config': {{...}}}}")
        if entry["type"] not in LAYERS:
            raise ValueError(f"layer {position} has unknown type {entry['type'][:80]!r} (known: {', '.join(LAYERS)})")
        config = entry.get("config", {})
        if not isinstance(config, dict):
            raise ValueError(f"layer {position}: its config must be a dict")
        checked.append((LAYERS[entry["type"]], config))
    return checked


def _count_nested(entries: Any, depth: int) -> int:
    """How many layers ``entries`` describes at every depth; a ``ValueError`` past the bounds (plain data only
    is read: nothing is built)."""
    if not isinstance(entries, list) or not entries:
        raise ValueError("the config has no list of layers")
    if depth > MAX_DEPTH:
        raise ValueError(f"the layers nest more than {MAX_DEPTH} deep: a config may not")
    count = len(entries)
    for entry in entries:
        config = entry.get("config") if isinstance(entry, dict) else None
        if isinstance(config, dict) and isinstance(config.get("layers"), list):
            count += _count_nested(config["layers"], depth + 1)
        if count > MAX_NESTED_LAYERS:
            raise ValueError(f"the config describes more than {MAX_NESTED_LAYERS} nested layers: a config may not")
    return count


class Composite(Layer):
    """A layer made of layers (``layers``, in order): its forward and backward passes run theirs.

    The sub-layers belong to it: their parameters are its ``parameters()`` and their buffers its ``buffers()``,
    in the sub-layers' order, each renamed ``"{position}.{name}"`` (the weights of sub-layer 1 are
    ``"1.weights"``), so that a model file names every array once; switching its mode switches theirs; a
    shallow copy of it — what an inference pass runs on — copies them too, so that the copy's passes leave
    theirs alone. By default the forward pass is the chain of the sub-layers, X → f_n(… f_1(X)), and the
    backward pass runs it in reverse.

    Args:
        layers (Iterable[Layer]): The sub-layers, first to last; at least one, each a layer of no other
            composite.
    """

    def __init__(self, layers):
        layers = layer_list(layers)
        for position, layer in enumerate(layers):
            if getattr(layer, "_owned", False):
                raise ValueError(f"layers[{position}] belongs to another composite already: give each its own")
            layer._owned = True
            arrays: list[Parameter | Buffer] = [*layer.parameters(), *layer.buffers()]
            for array in arrays:
                array.name = f"{position}.{array.name}"
        self.layers: list[Layer] = layers
        self._training = True
        self.shapes: list[Shape | None] | None = None  # each sub-layer's output shape, once built

    @property
    def training(self) -> bool:
        """Training or inference mode: the composite's and every sub-layer's (setting it sets theirs)."""
        return self._training

    @training.setter
    def training(self, value: bool) -> None:
        self._training = value
        for layer in self.layers:
            layer.training = value

    def __copy__(self) -> Composite:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.layers = [copy.copy(layer) for layer in self.layers]
        return clone

    def parameters(self) -> list[Parameter]:
        return [parameter for layer in self.layers for parameter in layer.parameters()]

    def buffers(self) -> list[Buffer]:
        return [buffer for layer in self.layers for buffer in layer.buffers()]

    def forward(self, input: np.ndarray) -> np.ndarray:
        """f_n(… f_1(X)): the sub-layers one after the other, X (features, b) or (features, T, b).

        Args:
            input: X, the batch: (features, b), or (features, T, b) for sequences.
        """
        self.input = input
        self.output = run(self.layers, input)
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """The sub-layers' backward passes in reverse order: ∇_X L from ∇_output L (the output's shape).

        Args:
            output_gradient: ∇_output L, of the last forward pass's output's shape.
            learning_rate: η of the plain SGD step every sub-layer takes; None: store the gradients only.
        """
        last_pass(self, output_gradient)
        return self._backward_chain(output_gradient, learning_rate)

    def _backward_chain(self, output_gradient: np.ndarray, learning_rate: float | None) -> np.ndarray:
        for layer in reversed(self.layers):
            output_gradient = layer.backward(output_gradient, learning_rate)
        return output_gradient

    def build(self, input_shape: Shape) -> Shape | None:
        """The sub-layers' ``build`` one after the other; each one's output shape is kept in ``shapes``.

        Args:
            input_shape: The shape of one input sample, without the batch axis.
        """
        shapes: list[Shape | None] = []
        shape: Shape | None = tuple(input_shape)
        for position, layer in enumerate(self.layers):
            try:
                shape = layer.build(shape) if shape is not None else None
            except ValueError as error:
                raise ValueError(f"sub-layer {position} ({type(layer).__name__}): {error}") from None
            shapes.append(shape)
        self.shapes = [tuple(input_shape), *shapes]
        return shape


@LAYERS.register()
class Residual(Composite):
    r"""A residual block: the input plus what its sub-layers make of it, X + f(X).

    Forward, with f = f_n ∘ … ∘ f_1 the chain of the sub-layers, and backward (the identity path adds the
    output gradient to what flows back through f):

    $$\mathbf{Y} = \mathbf{X} + f(\mathbf{X}), \qquad
    \nabla_{\mathbf{X}} L = \nabla_{\mathbf{Y}} L + \left(\frac{\partial f}{\partial \mathbf{X}}\right)^{\!\top}
    \nabla_{\mathbf{Y}} L$$

    Shapes: f must keep the shape: (features, b) or (features, T, b) in and out. The config nests the
    sub-layers' configs (``{"layers": [{"type": name, "config": {...}}, …]}``), as a model's does.

    Args:
        layers (Iterable[Layer]): The sub-layers of f, first to last.

    >>> block = Residual([Dense(3, 3, rng=0)])
    >>> X = np.ones((3, 2))
    >>> bool(np.allclose(block.forward(X), X + block.layers[0].W @ X + block.layers[0].b[:, None]))
    True
    >>> [parameter.name for parameter in block.parameters()]
    ['0.weights']
    """

    def forward(self, input: np.ndarray) -> np.ndarray:
        """Y = X + f(X), X (features, b) or (features, T, b).

        Args:
            input: X, the batch: (features, b), or (features, T, b) for sequences.
        """
        self.input = input
        self.output = input + run(self.layers, input)
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_X L = ∇_Y L + (∂f/∂X)ᵀ ∇_Y L (the input's shape).

        Args:
            output_gradient: ∇_Y L, of the input's shape.
            learning_rate: η of the plain SGD step every sub-layer takes; None: store the gradients only.
        """
        last_pass(self, output_gradient)
        return output_gradient + self._backward_chain(output_gradient, learning_rate)

    def build(self, input_shape: Shape) -> Shape:
        shape = super().build(input_shape)
        if shape is not None and tuple(shape) != tuple(input_shape):
            raise ValueError(f"Residual needs f(X) of X's shape {tuple(input_shape)}, its layers make {shape}")
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {"layers": layer_configs(self.layers)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        if not isinstance(config, dict) or set(config) != {"layers"}:
            raise ValueError("the config of a Residual must be {'layers': [...]}")
        layers = []
        for position, (layer_class, layer_config) in enumerate(layer_entries(config["layers"])):
            try:
                layers.append(layer_class.from_config(layer_config))
            except ValueError as error:
                raise ValueError(f"sub-layer {position}: {error}") from None
        return cls(layers)


class BiasTrickLayer(Layer):
    """A layer whose one parameter is W̃ = [W | b]: the weights in the first columns and the bias in the
    last (the notebooks' bias trick). Weight decay never touches the bias column."""

    def _create_weights(self, weights: np.ndarray, order: Literal["C", "F"] = "C") -> None:
        """Make W̃ = ``weights`` (laid out in memory in ``order``) the layer's parameter, with a zero gradient."""
        gradient = zeros(weights.shape, weights.dtype, order)
        self._parameters = [Parameter("weights", weights, gradient, (slice(None), slice(None, -1)), order)]

    @property
    def weights(self) -> np.ndarray:
        """W̃ = [W | b]. Assigning to it copies into the same array (finite numbers only)."""
        return self._parameters[0].value

    @weights.setter
    def weights(self, value) -> None:
        value = np.asarray(value)
        if value.shape != self.weights.shape:
            raise ValueError(f"weights must have shape {self.weights.shape}, received {value.shape}")
        if value.dtype.kind not in "fiu" or not _checks.all_finite(value):
            raise ValueError("weights must be finite numbers (no NaN or inf)")
        self.weights[...] = value

    @property
    def b(self) -> np.ndarray:
        """b: a view of W̃'s last column."""
        return self.weights[:, -1]

    @property
    def weights_gradient(self) -> np.ndarray:
        """∇_W̃ L from the last backward pass, the shape of W̃."""
        return self._parameters[0].gradient

    def parameters(self) -> list[Parameter]:
        return self._parameters


@LAYERS.register()
class Dense(BiasTrickLayer):
    r"""Fully connected layer with the bias trick: W̃ = [W | b] of shape (output_size, input_size + 1).

    Forward, with X̃ = [X; 1ᵀ] (a row of ones appended), X: (input_size, b) → Z: (output_size, b):

    $$\mathbf{Z} = \tilde{\mathbf{W}}\tilde{\mathbf{X}} = \mathbf{W}\mathbf{X} + \mathbf{b}\mathbf{1}^\top$$

    Backward: ∇_W̃ L is (output_size, input_size + 1), ∇_X L is (input_size, b), with W without the bias column:

    $$\nabla_{\tilde{\mathbf{W}}} L = \frac{1}{b}\,\nabla_{\mathbf{Z}} L\,\tilde{\mathbf{X}}^\top
    = \frac{1}{b}\sum_i \nabla_{\mathbf{z}^{(i)}} L_i\,\tilde{\mathbf{x}}^{(i)\top}, \qquad
    \nabla_{\mathbf{X}} L = \mathbf{W}^\top \nabla_{\mathbf{Z}} L$$

    W̃ is one array, as on the board; ``W`` and ``b`` are views into it (writing to them writes W̃).
    The ones row is never materialised: W X + b 1ᵀ is the same product without a copy of X.
    W̃ lies in memory column by column (Fortran order), so that W and b are each one contiguous block: the
    layout in which OpenBLAS runs the products W X and ∇_Z L Xᵀ fastest (an epoch of 784-256-128-10, Adam, batch
    128, float32: about 3.5 % faster than with W̃ row by row; the numbers are the same to rounding).

    On sequences the layer applies to every position: X (input_size, T, b) is read as the
    (input_size, T·b) matrix of its positions (a view), Z is (output_size, T, b), and ∇_W̃ L still averages
    over the b samples (each sample's gradient is the sum over its positions).

    Args:
        input_size: Features per sample, the rows of X.
        output_size: Units, the rows of Z.
        init: How W is drawn: "notebook" (N(0, 0.01²), b = 0.01, as in the notebooks), "he_normal",
            "he_uniform", "glorot_normal" or "glorot_uniform" (b = 0).
        rng (int | numpy.random.Generator | None): Seed or generator of the initial weights.
        dtype (numpy.float32 | numpy.float64): Of W̃, and so of the outputs and gradients.

    >>> layer = Dense(3, 2, rng=0)
    >>> layer.forward(np.ones((3, 5))).shape
    (2, 5)
    >>> layer.W.shape, layer.b.shape, layer.weights.shape
    ((2, 3), (2,), (2, 4))
    """

    def __init__(self, input_size: int, output_size: int, *, init: str = "notebook", rng=None, dtype=np.float64):
        self.input_size = _checks.positive_int("input_size", input_size)
        self.units = _checks.positive_int("output_size", output_size)
        self.init = init
        dtype = _checks.float_dtype("dtype", dtype)
        weights = initialize(init, self.input_size, self.units, np.random.default_rng(rng), dtype, order="F")
        self._create_weights(weights, order="F")

    @property
    def W(self) -> np.ndarray:
        """W, (output_size, input_size): a view of W̃ without its bias column."""
        return self.weights[:, :-1]

    def forward(self, input: np.ndarray) -> np.ndarray:
        """Z = W X + b 1ᵀ: input X (input_size, b) → Z (output_size, b); a batch of sequences (input_size, T, b)
        → (output_size, T, b), every position alike (W X over the (input_size, T·b) view).

        Args:
            input: The batch X, (input_size, b), or a batch of sequences (input_size, T, b).
        """
        self.input = _checks.features_first("input", input, rows=self.input_size, finite=False)
        Z = ops.affine(self.W, ops.columns(input), self.b)  # Z = W X + b 1ᵀ
        self.output = Z.reshape(self.units, *input.shape[1:])
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_Z L (output_size, b) → ∇_X L = Wᵀ ∇_Z L (input_size, b); ∇_W̃ L goes to ``weights_gradient``.
        On sequences, (output_size, T, b) → (input_size, T, b).

        Args:
            output_gradient: ∇_Z L, (output_size, b) or (output_size, T, b): the per-sample gradients, one column
                per sample (per position of each sample).
            learning_rate: η of the plain SGD step W̃ ← W̃ − η ∇_W̃ L (a positive number); None: store the
                gradient only, for an optimizer to apply.
        """
        self._parameter_gradients(output_gradient)  # ∇_W̃ L = (1/b) ∇_Z L X̃ᵀ
        input_gradient = ops.product(self.W.T, ops.columns(output_gradient))  # ∇_X L = Wᵀ ∇_Z L, W before the update
        sgd_step(self, learning_rate)
        return input_gradient.reshape(self.input_size, *output_gradient.shape[1:])

    def _parameter_gradients(self, output_gradient: np.ndarray) -> None:
        """∇_W̃ L = (1/b) ∇_Z L X̃ᵀ into ``weights_gradient``: [(1/b) ∇_Z L Xᵀ | (1/b) ∇_Z L 1]. For sequences
        the products run over the T·b columns of the (features, T·b) views, and b is still the number of
        sequences (the last axis)."""
        input, _ = last_pass(self, output_gradient)
        batch_size = input.shape[-1]
        input = ops.columns(input)
        mean_gradient = ops.columns(output_gradient) * (1.0 / batch_size)  # (units, T·b): smaller than W̃
        gradient = self.weights_gradient
        np.matmul(mean_gradient, input.T, out=gradient[:, :-1])
        np.matmul(mean_gradient, np.ones(input.shape[1], mean_gradient.dtype), out=gradient[:, -1])

    def build(self, input_shape: Shape) -> Shape:
        """(output_size,) — an image (C, H, W) of C·H·W = input_size values is taken as flat, as Flatten does;
        a sequence (input_size, T) gives (output_size, T).

        Args:
            input_shape: The shape of one input sample: (input_size,), a sequence (input_size, T), or any shape
                of input_size values.
        """
        if len(input_shape) == 2 and input_shape[0] == self.input_size:
            return (self.units, input_shape[1])
        size = math.prod(input_shape)
        if size != self.input_size:
            raise ValueError(f"Dense expects {self.input_size} input features, received {size}")
        return (self.units,)

    def get_config(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "output_size": self.units,
            "init": self.init,
            "dtype": self.weights.dtype.name,
        }


@LAYERS.register()
class Dropout(SameShape):
    r"""Inverted dropout: zero each activation with probability p while training, scale the rest.

    Training (in inference A = X, and the backward pass is the identity):

    $$M_{ij} \sim \mathrm{Bernoulli}(1 - p), \qquad \mathbf{A} = \frac{\mathbf{X} \odot \mathbf{M}}{1 - p}, \qquad
    \nabla_{\mathbf{X}} L = \frac{\nabla_{\mathbf{A}} L \odot \mathbf{M}}{1 - p}$$

    Shapes: (features, b) in and out. The mask comes from a seedable ``numpy.random.Generator``.

    Args:
        rate: p, the probability that an activation is zeroed, in [0, 1).
        rng (int | numpy.random.Generator | None): Seed or generator of the masks.
    """

    def __init__(self, rate: float, *, rng=None):
        self.rate = _checks.fraction("rate", rate)
        self.rng = np.random.default_rng(rng)
        self._scaled_mask: np.ndarray | None = None

    def forward(self, input: np.ndarray) -> np.ndarray:
        self.input = _checks.features_first("input", input, finite=False)
        if not self.training or self.rate == 0.0:
            self._scaled_mask = None
            self.output = input
            return input
        keep = 1.0 - self.rate
        self._scaled_mask = (self.rng.random(input.shape) < keep).astype(input.dtype)
        self._scaled_mask *= 1.0 / keep
        self.output = input * self._scaled_mask
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        last_pass(self, output_gradient)
        if self._scaled_mask is None:
            return output_gradient
        return output_gradient * self._scaled_mask

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}
