"""The generic :class:`Layer` contract and the layers with weights.

Notation (the course notebooks'): a batch is a (features, b) matrix, one column per sample.
``forward(X)`` returns the layer's output; ``backward(∇_output L)`` returns ∇_input L. The columns of
the gradients that flow backwards are the per-sample gradients ∇L_i; a layer with parameters averages
them over the batch (the 1/b of the notebook) when it forms its parameter gradients.

Every layer class is registered in ``LAYERS`` under its class name: that registry is the list of
layers a model file may name, and what :meth:`Layer.from_config` rebuilds from.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from . import _checks
from .initializers import initialize
from .optimizers import SGD
from .parameter import Parameter
from .registry import Registry

LAYERS: Registry[type[Layer]] = Registry("layer")


class Layer:
    """A generic layer: ``forward(input)`` → output, ``backward(output_gradient)`` → input gradient.

    As in the notebook, the layer keeps ``input`` and ``output`` of the last forward pass.
    ``backward(output_gradient, learning_rate)`` with a learning rate also applies the plain SGD
    step W ← W − η ∇_W L to every parameter, exactly as the notebook's layers do (through the same
    :class:`~nablanet.SGD` an optimizer-driven training uses); without one it only stores the
    gradients, for an optimizer object to apply.

    A layer describes itself as plain data: ``get_config()`` gives the constructor arguments and
    ``Layer.from_config(config)`` builds the layer again (its arrays travel separately).
    """

    training = True

    def __init__(self) -> None:
        self.input: np.ndarray | None = None
        self.output: np.ndarray | None = None

    def forward(self, input: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        raise NotImplementedError

    def backward_parameters(self, output_gradient: np.ndarray) -> None:
        """Store the parameter gradients only: what the first layer of a network needs, since nothing
        uses the gradient with respect to the data. Layers may override it to skip that work."""
        self.backward(output_gradient)

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

    @classmethod
    def parameter_specs(cls, config: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """The parameter arrays a layer built from ``config`` will have, name → (shape, dtype), worked out
        without building it (and so without allocating them). None for a layer without parameters."""
        return {}

    def output_size(self, input_size: int) -> int:
        """Number of output features for ``input_size`` input features."""
        return input_size

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one sample's output, (C, H, W) for images or (n,), for one of ``input_shape``."""
        return input_shape

    def work_size(self) -> int:
        """Numbers per sample in the largest work array the layer makes besides its output (0 for most)."""
        return 0

    def build(self, input_shape: tuple[int, ...]) -> None:
        """Learn the input shape from the layer before (``Sequential`` calls this); most layers need not."""

    def _last_forward(self) -> tuple[np.ndarray, np.ndarray]:
        """(input, output) of the last forward pass, which ``backward`` needs; an error if there was none."""
        if self.input is None or self.output is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward pass first")
        return self.input, self.output

    def _sgd_step(self, learning_rate: float | None) -> None:
        """The notebook's ``backward(g, learning_rate)``: one plain SGD step on this layer's parameters."""
        if learning_rate is not None:
            SGD(learning_rate).step(self.parameters())

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


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
        self._parameters = [Parameter("weights", weights, np.zeros_like(weights), (slice(None), slice(None, -1)))]

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

    >>> layer = Dense(3, 2, rng=0)
    >>> layer.forward(np.ones((3, 5))).shape
    (2, 5)
    >>> layer.W.shape, layer.b.shape, layer.weights.shape
    ((2, 3), (2,), (2, 4))
    """

    def __init__(self, input_size: int, output_size: int, *, init: str = "notebook", rng=None, dtype=np.float64):
        super().__init__()
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
        self.input = _checks.matrix("input", input, rows=self.input_size, finite=False)
        # Z = W X, evaluated as (Xᵀ Wᵀ)ᵀ: the same product, but its result is stored sample-major like
        # the data, the layout in which OpenBLAS runs these narrow products about twice as fast
        output = (input.T @ self.W.T).T
        output.T[...] += np.ascontiguousarray(self.b)  # + b 1ᵀ, row by row in memory
        self.output = output
        return output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input_gradient = (output_gradient.T @ self.W).T  # Wᵀ ∇_Z L, with W before the update
        self.backward_parameters(output_gradient)
        self._sgd_step(learning_rate)
        return input_gradient

    def backward_parameters(self, output_gradient: np.ndarray) -> None:
        """∇_W̃ L = (1/b) ∇_Z L X̃ᵀ into ``weights_gradient``: [(1/b) ∇_Z L Xᵀ | (1/b) ∇_Z L 1]."""
        input, output = self._last_forward()
        _checks.same_shape("output_gradient", output_gradient, "the layer's output", output)
        batch_size = input.shape[1]
        mean_gradient = output_gradient * (1.0 / batch_size)  # (units, b): smaller than W̃
        gradient = self.weights_gradient
        np.matmul(mean_gradient, input.T, out=gradient[:, :-1])
        np.matmul(mean_gradient, np.ones(batch_size, mean_gradient.dtype), out=gradient[:, -1])

    def get_config(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "output_size": self.units,
            "init": self.init,
            "dtype": self.weights.dtype.name,
        }

    @classmethod
    def parameter_specs(cls, config: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """W̃: (output_size, input_size + 1), in the config's dtype."""
        rows = _checks.positive_int("output_size", config.get("output_size"))
        columns = _checks.positive_int("input_size", config.get("input_size")) + 1
        return {"weights": ((rows, columns), _checks.float_dtype("dtype", config.get("dtype", "float64")))}

    def output_size(self, input_size: int) -> int:
        if input_size != self.input_size:
            raise ValueError(f"Dense expects {self.input_size} input features, received {input_size}")
        return self.units

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(output_size,) — an image (C, H, W) of C·H·W = input_size values is taken as flat, as Flatten does."""
        return (self.output_size(math.prod(input_shape)),)


@LAYERS.register()
class Dropout(Layer):
    r"""Inverted dropout: zero each activation with probability p while training, scale the rest.

    Training (in inference A = X, and the backward pass is the identity):

    $$M_{ij} \sim \mathrm{Bernoulli}(1 - p), \qquad \mathbf{A} = \frac{\mathbf{X} \odot \mathbf{M}}{1 - p}, \qquad
    \nabla_{\mathbf{X}} L = \frac{\nabla_{\mathbf{A}} L \odot \mathbf{M}}{1 - p}$$

    Shapes: (features, b) in and out. The mask comes from a seedable ``numpy.random.Generator``.
    """

    def __init__(self, rate: float, *, rng=None):
        super().__init__()
        self.rate = _checks.fraction("rate", rate)
        self.rng = np.random.default_rng(rng)
        self._scaled_mask: np.ndarray | None = None

    def forward(self, input: np.ndarray) -> np.ndarray:
        self.input = _checks.matrix("input", input, finite=False)
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
        if self._scaled_mask is None:
            return output_gradient
        return output_gradient * self._scaled_mask

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}
