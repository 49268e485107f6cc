"""Layers for images: :class:`Conv2D`, :class:`MaxPool2D`, :class:`AvgPool2D` and :class:`Flatten`.

The notation stays the notebooks': a batch is a (features, b) matrix, and the features of one image are
its C·H·W values, channel by channel, row by row (MNIST's 784 = 1·28·28 already is). A layer for images
knows its input shape (C, H, W) — given as ``input_shape`` to the first one, passed on by
``Sequential`` to the others through ``build`` — and views the batch as a (b, C, H, W) array: the memory
of the matrix's transpose, read without a copy (:func:`~nablanet.core.ops.images`).

Sizes: a window of k×k moved by a stride s over an H×W image padded by p on every side gives
H' = ⌊(H + 2p − k) / s⌋ + 1 rows and W' = ⌊(W + 2p − k) / s⌋ + 1 columns.

The array work — im2col and col2im, the pooling passes — is in :mod:`nablanet.core.ops`, which also
chooses its compiled loops; the layers here read as their formulas.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _checks, ops
from .initializers import initialize
from .layers import LAYERS, BiasTrickLayer, Layer, Shape, last_pass, sgd_step


def _fitting(name: str, size: int, window: int, stride: int, padding: int) -> int:
    """How many windows fit in ``size`` pixels (see :func:`~nablanet.core.ops.sliding_size`); an error if none."""
    out = ops.sliding_size(size, window, stride, padding)
    if out < 1:
        raise ValueError(f"{name}: a window of {window} does not fit in {size} pixels (padding {padding})")
    return out


class _ImageLayer(Layer):
    """Shape bookkeeping shared by the layers for images: ``input_shape`` (C, H, W), learnt in ``build``."""

    input_shape: Shape | None = None

    def build(self, input_shape: Shape) -> Shape:
        """Take the input shape (C, H, W) that the layer before gives and return the output's."""
        shape = _checks.image_shape(type(self).__name__, input_shape)
        if self.input_shape is not None and self.input_shape != shape:
            raise ValueError(f"{type(self).__name__} expects input of shape {self.input_shape}, received {shape}")
        output_shape = self._output_shape(shape)  # raises if the windows do not fit
        self.input_shape = shape
        return output_shape

    def _output_shape(self, input_shape: tuple[int, int, int]) -> Shape:
        raise NotImplementedError

    def _shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image; an error that says how to give it if the layer has none yet."""
        return _checks.image_shape(type(self).__name__, self.input_shape)

    def _images(self, input: np.ndarray) -> np.ndarray:
        """The (C·H·W, b) batch, checked, as (b, C, H, W) images."""
        shape = self._shape()
        _checks.matrix("input", input, rows=math.prod(shape), finite=False)
        return ops.images(input, shape)

    def _config(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape) if self.input_shape is not None else None}


@LAYERS.register()
class Conv2D(_ImageLayer, BiasTrickLayer):
    r"""2-D convolution (a cross-correlation, as in every deep-learning library), with the bias trick.

    Forward, for every sample; X: (C·H·W, b) → Z: (F·H'·W', b), W: (F, C, k, k), b: (F,):

    $$Z_{f,i,j} = \sum_c \sum_u \sum_v W_{f,c,u,v}\, X_{c,\,s i + u,\,s j + v} + b_f$$

    im2col lays every k×k×C window of every sample out as a column, X_col: (C·k·k, b·H'·W'). With W_col,
    W as (F, C·k·k), the convolution is the Dense layer's product again, and W̃ = [W_col | b] (F, C·k·k + 1)
    is the one parameter array, as for Dense:

    $$\mathbf{Z}_{\mathrm{col}} = \mathbf{W}_{\mathrm{col}}\mathbf{X}_{\mathrm{col}} + \mathbf{b}\mathbf{1}^\top$$

    Backward: ∇W_col is (F, C·k·k), ∇b is (F,), ∇X is (C·H·W, b); col2im adds each column of
    W_colᵀ ∇Z_col back onto the k×k×C window it came from (windows overlap, so they add up):

    $$\nabla_{\mathbf{W}_{\mathrm{col}}} L
    = \frac{1}{b}\,\nabla_{\mathbf{Z}_{\mathrm{col}}} L\;\mathbf{X}_{\mathrm{col}}^\top, \qquad
    \nabla_{\mathbf{b}} L = \frac{1}{b}\,\nabla_{\mathbf{Z}_{\mathrm{col}}} L\;\mathbf{1}, \qquad
    \nabla_{\mathbf{X}} L
    = \mathrm{col2im}\big(\mathbf{W}_{\mathrm{col}}^\top \nabla_{\mathbf{Z}_{\mathrm{col}}} L\big)$$

    ``padding`` is a number of zero rows and columns on every side, or ``"same"`` ((k − 1)/2 for an odd
    k: H' = H at stride 1). ``method="loop"`` computes the formulas above with nested loops, one output
    value at a time (the reference a learner can read line by line); ``"im2col"`` (the default) with
    one matrix product per batch. He initialisation (fan-in C·k·k) by default.

    Args:
        in_channels: C, the channels of the input images.
        out_channels: F, the filters, so the channels of the output.
        kernel_size: k, the side of the square k×k windows.
        stride: s, the step between two windows.
        padding: Zero rows and columns on every side, or "same".
        input_shape (tuple[int, int, int] | None): (C, H, W) of one image, if this is the first layer.
        init: How W is drawn, as for Dense.
        method: "im2col" (one matrix product) or "loop" (the formula, value by value).
        rng (int | numpy.random.Generator | None): Seed or generator of the initial weights.
        dtype (numpy.float32 | numpy.float64): Of W̃, and so of the outputs and gradients.

    >>> layer = Conv2D(1, 4, 3, input_shape=(1, 6, 6), rng=0)
    >>> layer.forward(np.ones((36, 2))).shape, layer.build((1, 6, 6))
    ((64, 2), (4, 4, 4))
    """

    METHODS = ("im2col", "loop")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int | str = 0,
        input_shape=None,
        init: str = "he_normal",
        method: str = "im2col",
        rng=None,
        dtype=np.float64,
    ):
        self.in_channels = _checks.positive_int("in_channels", in_channels)
        self.out_channels = _checks.positive_int("out_channels", out_channels)
        self.kernel_size = _checks.positive_int("kernel_size", kernel_size)
        self.stride = _checks.positive_int("stride", stride)
        if padding == "same" and self.kernel_size % 2 == 0:
            raise ValueError(f"padding 'same' needs an odd kernel_size, received {kernel_size}")
        if padding == "same":
            self.padding_value = (self.kernel_size - 1) // 2
        else:
            self.padding_value = _checks.non_negative_int("padding (or 'same')", padding)
        self.padding = padding
        self.method = _checks.choice("method", method, self.METHODS)
        self.init = init
        if input_shape is not None:
            self.build(input_shape)
        fan_in = self.in_channels * self.kernel_size**2
        weights = initialize(
            init, fan_in, self.out_channels, np.random.default_rng(rng), _checks.float_dtype("dtype", dtype)
        )
        self._create_weights(weights)
        self._columns: np.ndarray | None = None

    # -- the parameters, as on the board: W̃ = [W_col | b] (F, C·k·k + 1), and these views of it
    @property
    def W(self) -> np.ndarray:
        """The filters W, (F, C, k, k): a view of W̃."""
        k = self.kernel_size
        return self.W_col.reshape(self.out_channels, self.in_channels, k, k)

    @property
    def W_col(self) -> np.ndarray:
        """W_col, (F, C·k·k): the filters as rows, a view of W̃ without its bias column."""
        return self.weights[:, :-1]

    # -- forward and backward
    def forward(self, input: np.ndarray) -> np.ndarray:
        x = ops.pad(self._images(input), self.padding_value)  # (b, C, H + 2p, W + 2p)
        batch, (filters, out_h, out_w) = x.shape[0], self._output_shape(self._shape())
        columns = None
        if self.method == "loop":
            Z = ops.conv2d_loops(x, self.W, self.b, self.stride)
        else:
            columns = ops.im2col(x, self.kernel_size, self.stride)  # X_col: (C·k·k, b·H'·W')
            Z_col = self.W_col @ columns  # W_col X_col: (F, b·H'·W')
            Z_col += self.b[:, None]  # + b 1ᵀ
            Z = Z_col.reshape(filters, batch, out_h, out_w).transpose(1, 0, 2, 3)
        # the state the backward pass reads, set together once the forward pass has succeeded
        self.input, self._columns, self.output = input, columns, ops.matrix(np.ascontiguousarray(Z))
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, _ = last_pass(self, output_gradient)
        shape = (input.shape[1], *self._shape())
        if self.method == "loop":
            input_gradient = self._backward_loops(output_gradient)
        else:
            delta = self._weight_gradients(output_gradient)  # ∇Z_col, with ∇W̃ stored
            input_gradient = self._input_gradient(delta, shape)
        sgd_step(self, learning_rate)
        return input_gradient

    def _parameter_gradients(self, output_gradient: np.ndarray) -> None:
        """∇W̃ alone, without ∇X: what the first layer of a network needs."""
        if self.method == "loop":
            self._backward_loops(output_gradient)
        else:
            self._weight_gradients(output_gradient)

    def _weight_gradients(self, output_gradient: np.ndarray) -> np.ndarray:
        """∇W̃ = (1/b) [∇Z_col X_colᵀ | ∇Z_col 1] into ``weights_gradient``; returns ∇Z_col (F, b·H'·W')."""
        last_pass(self, output_gradient)
        if self._columns is None:  # X_col, kept by a forward pass of method "im2col"
            raise RuntimeError("Conv2D.backward needs a forward pass with method 'im2col' first")
        shape = self._output_shape(self._shape())
        delta = np.ascontiguousarray(ops.images(output_gradient, shape).transpose(1, 0, 2, 3)).reshape(shape[0], -1)
        self._store_gradients(delta, self._columns, output_gradient.shape[1])
        return delta

    def _store_gradients(self, delta: np.ndarray, columns: np.ndarray, batch: int) -> None:
        """∇W̃ = (1/b) [∇Z_col X_colᵀ | ∇Z_col 1] into ``weights_gradient``, from ∇Z_col (F, b·H'·W') and X_col."""
        gradient = self.weights_gradient
        np.matmul(delta, columns.T, out=gradient[:, :-1])  # ∇Z_col X_colᵀ
        np.sum(delta, axis=1, out=gradient[:, -1])  # ∇Z_col 1
        gradient *= 1.0 / batch

    def _input_gradient(
        self, delta: np.ndarray, shape: tuple[int, ...], windows: tuple[int, int] | None = None
    ) -> np.ndarray:
        """∇X = col2im(W_colᵀ ∇Z_col) as the (C·H·W, b) matrix, for input images of ``shape`` (b, C, H, W); ∇Z_col
        of the first ``windows`` (H'', W'') of each image's grid only, if given (see
        :func:`nablanet.core.ops.col2im`)."""
        dx = ops.col2im(self.W_col, delta, shape, self.kernel_size, self.stride, self.padding_value, windows)
        return ops.matrix(np.ascontiguousarray(dx))

    def _backward_loops(self, output_gradient: np.ndarray) -> np.ndarray:
        """The backward pass of ``method="loop"``: ∇W̃ stored, ∇X returned, one output value at a time."""
        input, _ = last_pass(self, output_gradient)
        p, (_, height, width) = self.padding_value, self._shape()
        x = ops.pad(ops.images(input, self._shape()), p)
        dZ = ops.images(output_gradient, self._output_shape(self._shape()))
        dW, db, dx = ops.conv2d_loops_backward(x, dZ, self.W, self.stride)
        batch = x.shape[0]
        self.weights_gradient[:, :-1] = dW.reshape(self.out_channels, -1) / batch
        self.weights_gradient[:, -1] = db / batch
        return ops.matrix(np.ascontiguousarray(dx[:, :, p : p + height, p : p + width]))

    # -- shapes and description
    def build(self, input_shape: Shape) -> Shape:
        shape = _checks.image_shape("Conv2D", input_shape)
        if shape[0] != self.in_channels:
            raise ValueError(f"Conv2D expects {self.in_channels} input channels, received shape {shape}")
        return super().build(shape)

    def _output_shape(self, input_shape: tuple[int, int, int]) -> Shape:
        _, height, width = input_shape
        k, s, p = self.kernel_size, self.stride, self.padding_value
        return self.out_channels, _fitting("Conv2D", height, k, s, p), _fitting("Conv2D", width, k, s, p)

    def get_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            **self._config(),
            "init": self.init,
            "method": self.method,
            "dtype": self.weights.dtype.name,
        }


class _Pool2D(_ImageLayer):
    """Pooling over p×p windows moved by a stride s (default p), channel by channel; no parameters."""

    def __init__(self, pool_size: int = 2, stride: int | None = None, *, input_shape=None):
        self.pool_size = _checks.positive_int("pool_size", pool_size)
        self.stride = self.pool_size if stride is None else _checks.positive_int("stride", stride)
        if input_shape is not None:
            self.build(input_shape)

    def _output_shape(self, input_shape: tuple[int, int, int]) -> Shape:
        channels, height, width = input_shape
        name, p, s = type(self).__name__, self.pool_size, self.stride
        return channels, _fitting(name, height, p, s, 0), _fitting(name, width, p, s, 0)

    def get_config(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "stride": self.stride, **self._config()}


@LAYERS.register()
class MaxPool2D(_Pool2D):
    r"""Max-pooling: the largest value of each p×p window; (C·H·W, b) → (C·H'·W', b).

    $$A_{c,i,j} = \max_{u, v < p} X_{c,\,s i + u,\,s j + v}, \qquad
    \frac{\partial L}{\partial X_{c,\,s i + u,\,s j + v}} \mathrel{+}= \begin{cases}
    \partial L / \partial A_{c,i,j} & (u, v) \text{ the window's arg-max} \\ 0 & \text{otherwise} \end{cases}$$

    The gradient goes back to the one input that won. Ties go to the first maximum in reading
    order (row by row), as ``np.argmax`` would pick it: one winner per window, never a split. A window
    holding NaN pools to NaN and sends its gradient to its last position. The winner's position u·p + v
    is kept in one byte: p is at most 16.

    Args:
        pool_size: p, the side of the square p×p windows (at most 16).
        stride: s, the step between two windows; None: p (windows side by side).
        input_shape (tuple[int, int, int] | None): (C, H, W) of one image, if this is the first layer.

    >>> pool = MaxPool2D(2, input_shape=(1, 2, 2))
    >>> pool.forward(np.array([[1.0], [4.0], [4.0], [2.0]])).ravel(), pool.backward(np.ones((1, 1))).ravel()
    (array([4.]), array([0., 1., 0., 0.]))
    """

    MAX_POOL_SIZE = 16

    def __init__(self, pool_size: int = 2, stride: int | None = None, *, input_shape=None):
        super().__init__(pool_size, stride, input_shape=input_shape)
        if self.pool_size > self.MAX_POOL_SIZE:
            raise ValueError(f"pool_size must be at most {self.MAX_POOL_SIZE}, received: {pool_size}")

    def forward(self, input: np.ndarray) -> np.ndarray:
        best, winner = ops.max_pool(self._images(input), self.pool_size, self.stride)  # A, and each arg-max
        # the state the backward pass reads, set together once the forward pass has succeeded
        self.input, self._winner, self.output = input, winner, ops.matrix(best)
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, _ = last_pass(self, output_gradient)
        gradient = ops.images(output_gradient, self._output_shape(self._shape()))
        shape = (input.shape[1], *self._shape())
        return ops.matrix(ops.max_pool_backward(gradient, self._winner, shape, self.pool_size, self.stride))


@LAYERS.register()
class AvgPool2D(_Pool2D):
    r"""Average pooling: the mean of each p×p window; (C·H·W, b) → (C·H'·W', b).

    $$A_{c,i,j} = \frac{1}{p^2}\sum_{u, v < p} X_{c,\,s i + u,\,s j + v}, \qquad
    \frac{\partial L}{\partial X_{c,\,s i + u,\,s j + v}}
    \mathrel{+}= \frac{1}{p^2}\,\frac{\partial L}{\partial A_{c,i,j}}
    \quad \text{for every } (u, v) \text{ of the window}$$

    Args:
        pool_size: p, the side of the square p×p windows.
        stride: s, the step between two windows; None: p (windows side by side).
        input_shape (tuple[int, int, int] | None): (C, H, W) of one image, if this is the first layer.
    """

    def forward(self, input: np.ndarray) -> np.ndarray:
        views = ops.window_views(self._images(input), self.pool_size, self.stride)
        total = next(views).copy()
        for view in views:
            total += view
        total *= 1.0 / self.pool_size**2
        self.input, self.output = input, ops.matrix(total)
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, _ = last_pass(self, output_gradient)
        shape = self._output_shape(self._shape())
        share = ops.images(output_gradient, shape) * (1.0 / self.pool_size**2)
        dx = np.zeros((input.shape[1], *self._shape()), dtype=share.dtype)
        for view in ops.window_views(dx, self.pool_size, self.stride):
            view += share
        return ops.matrix(dx)


@LAYERS.register()
class Flatten(_ImageLayer):
    """(C, H, W) → C·H·W features. In the (features, b) notation the matrix already is flat, so this is
    bookkeeping only: forward and backward return their input, and the shape becomes (C·H·W,).

    forward:  A = X,   backward: ∇_X L = ∇_A L

    Args:
        input_shape (tuple[int, int, int] | None): (C, H, W) of one image, if this is the first layer.
    """

    def __init__(self, *, input_shape=None):
        if input_shape is not None:
            self.build(input_shape)

    def _output_shape(self, input_shape: tuple[int, int, int]) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, input: np.ndarray) -> np.ndarray:
        self._images(input)  # checks the batch
        self.input = self.output = input
        return input

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        last_pass(self, output_gradient)
        return output_gradient

    def get_config(self) -> dict[str, Any]:
        return self._config()
