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
from typing import Any

import numpy as np

from . import _checks, ops
from .initializers import initialize
from .optimizers import SGD
from .parameter import Parameter, shapes_only, zeros
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

    * ``get_config()`` / ``from_config(config)``: the constructor's arguments as plain data, which rebuild
      the layer (its arrays travel separately) — needed only by a layer whose constructor takes arguments;
    * ``build(input_shape)``: shape inference — take the shape of one input sample from the layer before
      and return the shape of one output sample. The default says nothing (``None``): ``Sequential`` then
      knows no shapes after the layer until one that fixes its own input (a Dense layer does).
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


def parameter_specs(layer_class: type[Layer], config: dict[str, Any]) -> dict[str, tuple[Shape, np.dtype]]:
    """The parameter arrays a layer built from ``config`` has, name → (shape, dtype), worked out without
    allocating them: the layer is built by its own constructor inside
    :func:`~nablanet.core.parameter.shapes_only`, so the shapes are the constructor's, never restated. (Arrays
    a constructor makes with :func:`~nablanet.core.initializers.initialize` or
    :func:`~nablanet.core.parameter.zeros` cost nothing there; others, a learner's ``np.random`` weights,
    are made in full.)"""
    with shapes_only():
        layer = layer_class.from_config(config)
    return {parameter.name: (parameter.value.shape, parameter.value.dtype) for parameter in layer.parameters()}


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


class BiasTrickLayer(Layer):
    """A layer whose one parameter is W̃ = [W | b]: the weights in the first columns and the bias in the
    last (the notebooks' bias trick). Weight decay never touches the bias column."""

    def _create_weights(self, weights: np.ndarray) -> None:
        gradient = zeros(weights.shape, weights.dtype)
        self._parameters = [Parameter("weights", weights, gradient, (slice(None), slice(None, -1)))]

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
        weights = initialize(init, self.input_size, self.units, np.random.default_rng(rng), dtype)
        self._create_weights(weights)

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
        self.input = _checks.activations("input", input, rows=self.input_size, finite=False)
        Z = ops.affine(self.W, ops.columns(input), self.b)  # Z = W X + b 1ᵀ
        self.output = Z.reshape(self.units, *input.shape[1:])
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_Z L (output_size, b) → ∇_X L = Wᵀ ∇_Z L (input_size, b); ∇_W̃ L goes to ``weights_gradient``.

        Args:
            output_gradient: ∇_Z L, (output_size, b): the per-sample gradients, one column per sample.
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
        self.input = _checks.activations("input", input, finite=False)  # (features, b) or (features, T, b)
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
