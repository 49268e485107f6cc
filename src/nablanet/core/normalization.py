r"""Normalisation layers: :class:`LayerNorm` and :class:`BatchNorm`.

Both standardise groups of values and then scale and shift them with learnt γ and β, one pair per feature
(or channel):

$$\hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma\,\hat{x} + \beta$$

They differ only in the values μ and σ² are taken over: LayerNorm over the features of each sample (each
column), BatchNorm over the batch (each row; for images, each channel over its H·W pixels and the batch).
One function, :func:`standardize`, computes x̂ for both, and one, :func:`standardize_backward`, takes the
gradient back through it when μ and σ² are the statistics of the values themselves:

$$\nabla_{x} L = \frac{1}{\sqrt{\sigma^2 + \epsilon}}\Big(g - \overline{g} - \hat{x}\,\overline{g\,\hat{x}}\Big),
\qquad g = \gamma\,\nabla_{y} L$$

(a bar is the mean over the group). Its loop reference, :func:`standardize_backward_loop`, walks the chain
rule of Ioffe & Szegedy (2015) through σ² and μ one group at a time, and the two are tested equal.

Inside, both layers view their input as a (features, S, columns) array (a view, no copy): S = H·W pixels of
a channel for BatchNorm on images, 1 otherwise; the columns are the b samples (T·b positions for a batch of
sequences).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _checks
from .layers import LAYERS, Layer, Shape, last_pass, sgd_step
from .parameter import Buffer, Parameter, full, zeros

Axes = tuple[int, ...]
NO_DECAY = (slice(0, 0),)  # weight decay pulls γ towards 0, not towards 1: it touches neither γ nor β


def statistics(X: np.ndarray, axes: Axes) -> tuple[np.ndarray, np.ndarray]:
    """μ and σ² of X over ``axes`` (kept, of size 1, so that they broadcast): the mean and the biased variance
    (1/N) Σ (x − μ)², N the number of values averaged.

    Args:
        X: The values, any shape.
        axes: The axes to average over.
    """
    mean = X.mean(axis=axes, keepdims=True)
    variance = X.var(axis=axes, keepdims=True)
    return mean, variance


def standardize(X: np.ndarray, mean: np.ndarray, variance: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    r"""x̂ = (x − μ) / √(σ² + ε), and 1 / √(σ² + ε) for the backward pass: the formula LayerNorm and BatchNorm
    (with batch or running statistics) share.

    $$\hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}$$

    Args:
        X: The values.
        mean: μ, broadcastable to X.
        variance: σ², broadcastable to X.
        epsilon: ε > 0, which keeps the division finite for a constant group.
    """
    inverse_std = 1.0 / np.sqrt(variance + epsilon)
    return (X - mean) * inverse_std, inverse_std


def standardize_backward(
    normalized_gradient: np.ndarray, normalized: np.ndarray, inverse_std: np.ndarray, axes: Axes
) -> np.ndarray:
    r"""∇_x L from g = ∇_x̂ L, when μ and σ² of :func:`standardize` are the statistics of x itself over
    ``axes`` (every x moves μ and σ², which move every x̂ of its group):

    $$\nabla_{x} L = \frac{1}{\sqrt{\sigma^2 + \epsilon}}\Big(g - \overline{g} - \hat{x}\,\overline{g\,\hat{x}}\Big)$$

    Args:
        normalized_gradient: g = ∇_x̂ L, the shape of x.
        normalized: x̂, from :func:`standardize`.
        inverse_std: 1 / √(σ² + ε), from :func:`standardize`.
        axes: The axes μ and σ² were taken over.
    """
    g = normalized_gradient
    mean_g = g.mean(axis=axes, keepdims=True)
    mean_g_normalized = (g * normalized).mean(axis=axes, keepdims=True)
    return inverse_std * (g - mean_g - normalized * mean_g_normalized)


def standardize_backward_loop(normalized_gradient: np.ndarray, X: np.ndarray, axes: Axes, epsilon: float) -> np.ndarray:
    r"""The reference of :func:`standardize_backward`: the chain rule step by step, one group of N values at a
    time (Ioffe & Szegedy's algorithm), with g = ∇_x̂ L:

    $$\frac{\partial L}{\partial \sigma^2} = -\frac{1}{2}\sum_k g_k (x_k - \mu)\,(\sigma^2 + \epsilon)^{-3/2},
    \qquad \frac{\partial L}{\partial \mu} = -\sum_k \frac{g_k}{\sqrt{\sigma^2 + \epsilon}}
    + \frac{\partial L}{\partial \sigma^2}\,\frac{-2}{N}\sum_k (x_k - \mu)$$

    $$\frac{\partial L}{\partial x_k} = \frac{g_k}{\sqrt{\sigma^2 + \epsilon}}
    + \frac{\partial L}{\partial \sigma^2}\,\frac{2 (x_k - \mu)}{N} + \frac{\partial L}{\partial \mu}\,\frac{1}{N}$$

    Args:
        normalized_gradient: g = ∇_x̂ L, the shape of X.
        X: The values that were standardised.
        axes: The axes μ and σ² were taken over.
        epsilon: ε of :func:`standardize`.
    """
    kept = [axis for axis in range(X.ndim) if axis not in axes]
    order = [*kept, *axes]  # each group's values last, then one group per row
    size = math.prod(X.shape[axis] for axis in axes)
    values = np.transpose(X, order).reshape(-1, size)
    gradients = np.transpose(normalized_gradient, order).reshape(-1, size)
    result = np.empty_like(values)
    for row, (x, g) in enumerate(zip(values, gradients, strict=True)):
        mean = np.sum(x) / size
        variance = np.sum((x - mean) ** 2) / size
        d_variance = np.sum(g * (x - mean)) * -0.5 * (variance + epsilon) ** -1.5
        d_mean = -np.sum(g) / np.sqrt(variance + epsilon) + d_variance * -2.0 * np.sum(x - mean) / size
        result[row] = g / np.sqrt(variance + epsilon) + d_variance * 2.0 * (x - mean) / size + d_mean / size
    transposed_shape = [X.shape[axis] for axis in order]
    return np.transpose(result.reshape(transposed_shape), np.argsort(order))


class _Normalization(Layer):
    """What LayerNorm and BatchNorm share: γ and β (one per feature), y = γ x̂ + β, its gradients, and the
    (features, S, columns) view of the input.

    A subclass says, in ``_statistics(view)``, which μ and σ² standardise the view and whether they are the
    view's own (then the backward pass goes through them), and, in ``_axes``, the axes they are taken over.
    """

    METHODS = ("vectorized", "loop")
    _axes: Axes

    def __init__(self, features: int, epsilon: float, method: str, dtype) -> None:
        self.features = _checks.positive_int("features", features)
        self.epsilon = _checks.positive_float("epsilon", epsilon)
        self.method = _checks.choice("method", method, self.METHODS)
        dtype = _checks.float_dtype("dtype", dtype)
        shape = (self.features,)
        self._parameters = [
            Parameter("gamma", full(shape, 1, dtype), zeros(shape, dtype), NO_DECAY),
            Parameter("beta", zeros(shape, dtype), zeros(shape, dtype), NO_DECAY),
        ]

    @property
    def gamma(self) -> np.ndarray:
        """γ, (features,): the scale, 1 at first."""
        return self._parameters[0].value

    @property
    def beta(self) -> np.ndarray:
        """β, (features,): the shift, 0 at first."""
        return self._parameters[1].value

    def parameters(self) -> list[Parameter]:
        return self._parameters

    def _view(self, array: np.ndarray) -> np.ndarray:
        """The (features, S, columns) view of an input, output or gradient."""
        raise NotImplementedError

    def _statistics(self, view: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """(μ, σ², whether they are the view's own statistics)."""
        raise NotImplementedError

    def forward(self, input: np.ndarray) -> np.ndarray:
        view = self._view(input)
        mean, variance, self._own_statistics = self._statistics(view)
        self._normalized, self._inverse_std = standardize(view, mean, variance, self.epsilon)
        self.input = input
        self.output = (self.gamma[:, None, None] * self._normalized + self.beta[:, None, None]).reshape(input.shape)
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, _ = last_pass(self, output_gradient)
        gradient = self._view(output_gradient)
        samples = input.shape[-1]  # b: the columns of a matrix, the sequences of (d, T, b) — as every layer's 1/b
        gamma_gradient, beta_gradient = (parameter.gradient for parameter in self._parameters)
        gamma_gradient[...] = np.sum(gradient * self._normalized, axis=(1, 2)) / samples  # (1/b) Σ ∇_y L ⊙ x̂
        beta_gradient[...] = np.sum(gradient, axis=(1, 2)) / samples  # (1/b) Σ ∇_y L
        normalized_gradient = self.gamma[:, None, None] * gradient  # ∇_x̂ L = γ ∇_y L
        if not self._own_statistics:  # running statistics are constants: x̂ is an affine function of x
            input_gradient = self._inverse_std * normalized_gradient
        elif self.method == "loop":
            input_gradient = standardize_backward_loop(normalized_gradient, self._view(input), self._axes, self.epsilon)
        else:
            input_gradient = standardize_backward(normalized_gradient, self._normalized, self._inverse_std, self._axes)
        sgd_step(self, learning_rate)
        return input_gradient.reshape(input.shape)

    def get_config(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "epsilon": self.epsilon,
            "method": self.method,
            "dtype": self.gamma.dtype.name,
        }


@LAYERS.register()
class LayerNorm(_Normalization):
    r"""Layer normalisation: each sample's (each position's) feature vector standardised, then scaled and shifted.

    Forward, for every column x of X (d, b) — or every position of a (d, T, b) batch of sequences — with μ and
    σ² the mean and variance of its d features:

    $$\hat{\mathbf{x}} = \frac{\mathbf{x} - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
    \mathbf{y} = \boldsymbol{\gamma} \odot \hat{\mathbf{x}} + \boldsymbol{\beta}$$

    Backward, g = γ ⊙ ∇_y L and bars the means over the d features of the column (its own μ and σ² move with
    x); the parameter gradients are means over the b samples (a sequence's gradient is the sum over its T
    positions, as in every layer):

    $$\nabla_{\mathbf{x}} L = \frac{1}{\sqrt{\sigma^2 + \epsilon}}\Big(\mathbf{g} - \overline{g}
    - \hat{\mathbf{x}}\,\overline{g\,\hat{x}}\Big), \qquad
    \nabla_{\boldsymbol{\gamma}} L = \frac{1}{b}\sum_i \nabla_{\mathbf{y}^{(i)}} L_i \odot \hat{\mathbf{x}}^{(i)},
    \qquad \nabla_{\boldsymbol{\beta}} L = \frac{1}{b}\sum_i \nabla_{\mathbf{y}^{(i)}} L_i$$

    Training and inference compute the same thing: nothing depends on the rest of the batch. γ starts at 1,
    β at 0; weight decay touches neither.

    Args:
        features: d, the rows of X.
        epsilon: ε > 0 added to σ².
        method: How ∇_x L is computed: "vectorized" (the formula above) or "loop" (the chain rule through σ²
            and μ, column by column: the reference).
        dtype (numpy.float32 | numpy.float64): Of γ and β.

    >>> layer = LayerNorm(3)
    >>> Y = layer.forward(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 3.0]]))
    >>> np.round(Y, 3)
    array([[-1.225, -0.707],
           [ 0.   , -0.707],
           [ 1.225,  1.414]])
    >>> layer.forward(np.ones((3, 5, 2))).shape
    (3, 5, 2)
    """

    _axes = (0,)

    def __init__(self, features: int, *, epsilon: float = 1e-5, method: str = "vectorized", dtype=np.float64):
        super().__init__(features, epsilon, method, dtype)

    def forward(self, input: np.ndarray) -> np.ndarray:
        """Y = γ ⊙ X̂ + β, every column standardised over its features: X (d, b) or (d, T, b) → Y, the same shape.

        Args:
            input: X, (d, b), or (d, T, b) for b sequences of T positions.
        """
        _checks.features_first("input", input, rows=self.features, finite=False)
        return super().forward(input)

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_Y L (the shape of X) → ∇_X L; ∇_γ L and ∇_β L go to the parameters' gradients.

        Args:
            output_gradient: ∇_Y L, the per-sample (per-position) gradients, the shape of the output.
            learning_rate: η of the plain SGD step on γ and β (a positive number); None: store the gradients
                only, for an optimizer to apply.
        """
        return super().backward(output_gradient, learning_rate)

    def build(self, input_shape: Shape) -> Shape:
        """The input shape, unchanged: (d,) or (d, T).

        Args:
            input_shape: The shape of one sample: (d,), or (d, T) for a sequence of T positions.
        """
        shape = tuple(input_shape)
        if not shape or shape[0] != self.features:
            raise ValueError(f"LayerNorm expects {self.features} features (axis 0), received shape {shape}")
        return shape

    def _view(self, array: np.ndarray) -> np.ndarray:
        return array.reshape(self.features, 1, -1)  # (d, 1, columns)

    def _statistics(self, view: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        return (*statistics(view, self._axes), True)


@LAYERS.register()
class BatchNorm(_Normalization):
    r"""Batch normalisation: each feature standardised over the batch (each channel over the batch and its
    pixels, for images), then scaled and shifted.

    Forward in training, for feature (or channel) j with μ_j and σ²_j the mean and (biased) variance of its N
    values in the batch — N = b for a Dense output (n, b), N = b·H·W for images (C·H·W, b):

    $$\hat{x}_{j} = \frac{x_{j} - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}}, \qquad y_{j} = \gamma_j\,\hat{x}_{j} + \beta_j$$

    and the running statistics follow the batches, with momentum m:

    $$\mu^{\mathrm{run}}_j \leftarrow m\,\mu^{\mathrm{run}}_j + (1 - m)\,\mu_j, \qquad
    \sigma^{2,\mathrm{run}}_j \leftarrow m\,\sigma^{2,\mathrm{run}}_j + (1 - m)\,\sigma^2_j$$

    In inference (``layer.training`` False: ``predict``, ``evaluate``, a loaded model) μ^run and σ²^run take
    the place of μ and σ², so a sample's output no longer depends on the rest of its batch.

    Backward in training, g = γ_j ∇_y L and bars the means over the N values of feature j (every value moves
    μ_j and σ²_j); the parameter gradients are sums over the N values divided by the b samples:

    $$\nabla_{x_j} L = \frac{1}{\sqrt{\sigma_j^2 + \epsilon}}
    \Big(g - \overline{g} - \hat{x}_j\,\overline{g\,\hat{x}_j}\Big), \qquad
    \nabla_{\gamma_j} L = \frac{1}{b}\sum \nabla_{y_j} L \odot \hat{x}_j, \qquad
    \nabla_{\beta_j} L = \frac{1}{b}\sum \nabla_{y_j} L$$

    In inference μ^run and σ²^run are constants and ∇_x L = g / √(σ²^run + ε). γ starts at 1 and β at 0
    (weight decay touches neither), μ^run at 0 and σ²^run at 1; μ^run and σ²^run are buffers, saved and loaded
    with the model and its checkpoints, never trained.

    Args:
        features: n, the rows of a Dense output (n, b) — or C, the channels of (C·H·W, b) images.
        input_shape (tuple[int, ...] | None): The shape of one input sample — (n,), or (C, H, W) for images —
            if this is the first layer; after another layer, ``Sequential`` gives it.
        momentum: m in [0, 1), how much of the running statistics each batch keeps.
        epsilon: ε > 0 added to σ².
        method: How ∇_x L is computed in training: "vectorized" (the formula above) or "loop" (the chain rule
            through σ² and μ, feature by feature: the reference).
        dtype (numpy.float32 | numpy.float64): Of γ, β and the running statistics.

    >>> layer = BatchNorm(2)
    >>> np.round(layer.forward(np.array([[1.0, 3.0], [0.0, 10.0]])), 3)
    array([[-1.,  1.],
           [-1.,  1.]])
    >>> layer.running_mean, layer.running_variance  # 0.9 · (0, 1) + 0.1 · (μ, σ²) of each row
    (array([0.2, 0.5]), array([1. , 3.4]))
    >>> BatchNorm(4, input_shape=(4, 5, 5)).forward(np.ones((100, 3))).shape
    (100, 3)
    """

    def __init__(
        self,
        features: int,
        *,
        input_shape=None,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        method: str = "vectorized",
        dtype=np.float64,
    ):
        super().__init__(features, epsilon, method, dtype)
        self.momentum = _checks.fraction("momentum", momentum)
        shape = (self.features,)
        self._buffers = [
            Buffer("running_mean", zeros(shape, self.gamma.dtype)),
            Buffer("running_variance", full(shape, 1, self.gamma.dtype)),
        ]
        self._shape: Shape | None = None  # the input shape given or built with, which later builds must match
        if input_shape is not None:
            if isinstance(input_shape, (list, tuple)) and len(input_shape) == 1:
                self.build((_checks.positive_int("input_shape", input_shape[0]),))
            else:
                self.build(_checks.image_shape("BatchNorm", input_shape))

    @property
    def input_shape(self) -> Shape:
        """The shape of one input sample: as given or built with, else (features,)."""
        return self._shape if self._shape is not None else (self.features,)

    @property
    def running_mean(self) -> np.ndarray:
        """μ^run, (features,): what inference standardises with."""
        return self._buffers[0].value

    @property
    def running_variance(self) -> np.ndarray:
        """σ²^run, (features,): what inference standardises with."""
        return self._buffers[1].value

    def buffers(self) -> list[Buffer]:
        return self._buffers

    def forward(self, input: np.ndarray) -> np.ndarray:
        """Y = γ X̂ + β with the batch's statistics (training; the running ones follow) or the running ones
        (inference): X (n, b) or (C·H·W, b) → Y, the same shape.

        Args:
            input: X, (n, b), or (C·H·W, b): b flattened images.
        """
        _checks.matrix("input", input, rows=self.features * self._pixels(), finite=False)
        return super().forward(input)

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_Y L (the shape of X) → ∇_X L; ∇_γ L and ∇_β L go to the parameters' gradients.

        Args:
            output_gradient: ∇_Y L, the per-sample gradients, the shape of the output.
            learning_rate: η of the plain SGD step on γ and β (a positive number); None: store the gradients
                only, for an optimizer to apply.
        """
        return super().backward(output_gradient, learning_rate)

    def build(self, input_shape: Shape) -> Shape:
        """The input shape, unchanged: (n,) with n = features, or (C, H, W) with C = features.

        Args:
            input_shape: The shape of one input sample: (n,) — or any shape of n values, taken as flat —, or
                (C, H, W) images with C = features, normalised per channel.
        """
        shape = tuple(input_shape)
        if not (len(shape) == 3 and shape[0] == self.features) and math.prod(shape) != self.features:
            raise ValueError(
                f"BatchNorm({self.features}) takes {self.features} features or (C, H, W) images with "
                f"C = {self.features}, received shape {shape}"
            )
        if self._shape is not None and self._shape != shape:
            raise ValueError(f"BatchNorm expects input of shape {self._shape}, received {shape}")
        self._shape = shape
        return shape

    def get_config(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "input_shape": list(self._shape) if self._shape is not None else None,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "method": self.method,
            "dtype": self.gamma.dtype.name,
        }

    def _pixels(self) -> int:
        """S, the values of one feature in one sample: H·W for images normalised per channel, else 1."""
        shape = self.input_shape
        return shape[1] * shape[2] if len(shape) == 3 and shape[0] == self.features else 1

    def _view(self, array: np.ndarray) -> np.ndarray:
        return array.reshape(self.features, self._pixels(), -1)  # (features, S, b)

    def _statistics(self, view: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        if not self.training:
            return self.running_mean[:, None, None], self.running_variance[:, None, None], False
        mean, variance = statistics(view, self._axes)
        for buffer, batch in zip(self._buffers, (mean, variance), strict=True):  # assigned, never written in place
            moved = self.momentum * buffer.value + (1 - self.momentum) * batch.reshape(-1)
            buffer.value = moved.astype(buffer.value.dtype, copy=False)  # the layer's dtype, whatever the data's
        return mean, variance, True

    _axes = (1, 2)
