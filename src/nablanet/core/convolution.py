"""Layers for images: :class:`Conv2D`, :class:`MaxPool2D`, :class:`AvgPool2D` and :class:`Flatten`.

The notation stays the notebooks': a batch is a (features, b) matrix, and the features of one image are
its C·H·W values, channel by channel, row by row (MNIST's 784 = 1·28·28 already is). A layer for images
knows its input shape (C, H, W) — given as ``input_shape`` to the first one, passed on by
``Sequential`` to the others — and views the batch as a (b, C, H, W) array: the memory of the
matrix's transpose, read without a copy.

Sizes: a window of k×k moved by a stride s over an H×W image padded by p on every side gives
H' = ⌊(H + 2p − k) / s⌋ + 1 rows and W' = ⌊(W + 2p − k) / s⌋ + 1 columns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import _checks, kernels
from .initializers import initialize
from .layers import LAYERS, BiasTrickLayer, Layer

Shape = tuple[int, ...]


def images(X: np.ndarray, shape: Shape) -> np.ndarray:
    """The (C·H·W, b) matrix X as a (b, C, H, W) array (a view when X is sample-major, as nablanet's are)."""
    return X.T.reshape(X.shape[1], *shape)


def matrix(batch: np.ndarray) -> np.ndarray:
    """A (b, C, H, W) array as the (C·H·W, b) matrix of the notation (a view of a C-ordered array)."""
    return batch.reshape(batch.shape[0], -1).T


def _image_shape(name: str, shape: Any) -> Shape:
    if shape is None:
        raise ValueError(f"{name} needs its input_shape (C, H, W): give input_shape=… to the first layer")
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 3
        or not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape)
    ):
        raise ValueError(f"input_shape must be three positive integers (C, H, W), received: {shape!r}")
    return tuple(shape)


def _sliding_size(name: str, size: int, window: int, stride: int, padding: int) -> int:
    out = (size + 2 * padding - window) // stride + 1
    if out < 1:
        raise ValueError(f"{name}: a window of {window} does not fit in {size} pixels (padding {padding})")
    return out


class _ImageLayer(Layer):
    """Shape bookkeeping shared by the layers for images."""

    input_shape: Shape | None = None

    def build(self, input_shape: Shape) -> None:
        """Take the input shape (C, H, W) that the layer before gives (``Sequential`` calls this)."""
        shape = _image_shape(type(self).__name__, tuple(input_shape))
        if self.input_shape is not None and self.input_shape != shape:
            raise ValueError(f"{type(self).__name__} expects input of shape {self.input_shape}, received {shape}")
        self.output_shape(shape)  # raises if the windows do not fit
        self.input_shape = shape

    @property
    def input_size(self) -> int | None:
        return math.prod(self.input_shape) if self.input_shape is not None else None

    def output_size(self, input_size: int) -> int:
        if self.input_shape is None or input_size != self.input_size:
            raise ValueError(f"{type(self).__name__} expects {self.input_size} input features, received {input_size}")
        return math.prod(self.output_shape(self.input_shape))

    def _input_images(self, input: np.ndarray) -> np.ndarray:
        shape = _image_shape(type(self).__name__, self.input_shape)
        _checks.matrix("input", input, rows=math.prod(shape), finite=False)
        return images(input, shape)


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

    >>> layer = Conv2D(1, 4, 3, input_shape=(1, 6, 6), rng=0)
    >>> layer.forward(np.ones((36, 2))).shape, layer.output_shape((1, 6, 6))
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
        super().__init__()
        self.in_channels = _checks.positive_int("in_channels", in_channels)
        self.out_channels = _checks.positive_int("out_channels", out_channels)
        self.kernel_size = _checks.positive_int("kernel_size", kernel_size)
        self.stride = _checks.positive_int("stride", stride)
        if padding == "same":
            if self.kernel_size % 2 == 0:
                raise ValueError(f"padding 'same' needs an odd kernel_size, received {kernel_size}")
            self.padding_value = (self.kernel_size - 1) // 2
        elif isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
            self.padding_value = padding
        else:
            raise ValueError(f"padding must be an integer ≥ 0 or 'same', received: {padding!r}")
        self.padding = padding
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, received: {method!r}")
        self.method, self.init = method, init
        if input_shape is not None:
            self.build(tuple(input_shape))
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
        return self.weights[:, :-1].reshape(self.out_channels, self.in_channels, k, k)

    # -- shapes
    def build(self, input_shape: Shape) -> None:
        shape = _image_shape("Conv2D", tuple(input_shape))
        if shape[0] != self.in_channels:
            raise ValueError(f"Conv2D expects {self.in_channels} input channels, received shape {shape}")
        super().build(shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        channels, height, width = _image_shape("Conv2D", tuple(input_shape))
        if channels != self.in_channels:
            raise ValueError(f"Conv2D expects {self.in_channels} input channels, received shape {tuple(input_shape)}")
        k, s, p = self.kernel_size, self.stride, self.padding_value
        return self.out_channels, _sliding_size("Conv2D", height, k, s, p), _sliding_size("Conv2D", width, k, s, p)

    def work_size(self) -> int:
        """C·k·k·H'·W': one sample's share of X_col."""
        if self.input_shape is None:
            return 0
        return self.in_channels * self.kernel_size**2 * math.prod(self.output_shape(self.input_shape)[1:])

    # -- forward and backward
    def _padded(self, x: np.ndarray) -> np.ndarray:
        p = self.padding_value
        return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x

    def forward(self, input: np.ndarray) -> np.ndarray:
        x = self._input_images(input)
        columns = None
        if self.method == "loop":
            output = self._forward_loop(x)
        else:
            columns, output = self._forward_im2col(x)
        # the state the backward pass reads, set together once the forward pass has succeeded
        self.input, self._columns, self.output = input, columns, matrix(output)
        return self.output

    def _forward_im2col(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X_col, Z as (b, F, H', W')) for the images x (b, C, H, W)."""
        k, s = self.kernel_size, self.stride
        batch = x.shape[0]
        _, out_h, out_w = self.output_shape(x.shape[1:])
        padded = self._padded(x)
        # X_col: (C·k·k, b·H'·W'), one column per window, in the order (c, u, v) of W_col's columns
        if kernels.enabled(padded):  # the copy below, as one loop (nablanet.core.kernels)
            columns = np.empty((self.in_channels, k, k, batch, out_h, out_w), dtype=x.dtype)
            kernels.window_loop(k, s, add_back=False)(np.ascontiguousarray(padded), columns)
        else:
            windows = sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (b, C, H', W', k, k)
            columns = np.ascontiguousarray(windows.transpose(1, 4, 5, 0, 2, 3))
        columns = columns.reshape(-1, batch * out_h * out_w)
        z = self.weights[:, :-1] @ columns  # W_col X_col: (F, b·H'·W')
        z += self.b[:, None]
        return columns, np.ascontiguousarray(z.reshape(self.out_channels, batch, out_h, out_w).transpose(1, 0, 2, 3))

    def _forward_loop(self, x: np.ndarray) -> np.ndarray:
        """Z as (b, F, H', W'), one output value at a time, as the formula reads."""
        k, s = self.kernel_size, self.stride
        padded = self._padded(x)
        _, out_h, out_w = self.output_shape(x.shape[1:])
        Z = np.empty((x.shape[0], self.out_channels, out_h, out_w), dtype=self.weights.dtype)
        W, b = self.W, self.b
        for n in range(x.shape[0]):
            for f in range(self.out_channels):
                for i in range(out_h):
                    for j in range(out_w):
                        window = padded[n, :, s * i : s * i + k, s * j : s * j + k]  # X[c, s·i + u, s·j + v]
                        Z[n, f, i, j] = np.sum(W[f] * window) + b[f]
        return Z

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, _ = self._last_forward()
        if self.method == "loop":
            input_gradient = self._backward_loop(input, output_gradient)
        else:
            delta = self._parameter_gradients(output_gradient)
            input_gradient = self._col2im(self.weights[:, :-1].T @ delta, input.shape[1])  # ∇X = col2im(W_colᵀ ∇Z)
        self._sgd_step(learning_rate)
        return input_gradient

    def backward_parameters(self, output_gradient: np.ndarray) -> None:
        if self.method == "loop":
            self.backward(output_gradient)
        else:
            self._parameter_gradients(output_gradient)

    def _parameter_gradients(self, output_gradient: np.ndarray) -> np.ndarray:
        """∇W̃ from ∇Z; returns ∇Z as ∇Z_col (F, b·H'·W'), for ∇X."""
        _, output = self._last_forward()
        _checks.same_shape("output_gradient", output_gradient, "the layer's output", output)
        if self._columns is None:
            raise RuntimeError("Conv2D.backward needs a forward pass first")
        batch = output_gradient.shape[1]
        shape = self.output_shape(self.input_shape or ())
        delta = np.ascontiguousarray(images(output_gradient, shape).transpose(1, 0, 2, 3)).reshape(shape[0], -1)
        gradient = self.weights_gradient
        np.matmul(delta, self._columns.T, out=gradient[:, :-1])  # ∇Z_col X_colᵀ
        np.sum(delta, axis=1, out=gradient[:, -1])  # ∇Z_col 1
        gradient *= 1.0 / batch
        return delta

    def _col2im(self, columns: np.ndarray, batch: int) -> np.ndarray:
        """Add every column of (C·k·k, b·H'·W') back onto the window of the input it was taken from."""
        k, s, p = self.kernel_size, self.stride, self.padding_value
        channels, height, width = self.input_shape  # type: ignore[misc]
        _, out_h, out_w = self.output_shape((channels, height, width))
        padded = np.zeros((batch, channels, height + 2 * p, width + 2 * p), dtype=columns.dtype)
        columns = columns.reshape(channels, k, k, batch, out_h, out_w)
        if kernels.enabled(columns):  # the loop below, position by position (nablanet.core.kernels)
            kernels.window_loop(k, s, add_back=True)(padded, np.ascontiguousarray(columns))
        else:
            for u in range(k):
                for v in range(k):
                    padded[:, :, u : u + s * out_h : s, v : v + s * out_w : s] += columns[:, u, v].transpose(1, 0, 2, 3)
        return matrix(np.ascontiguousarray(padded[:, :, p : p + height, p : p + width]))

    def _backward_loop(self, input: np.ndarray, output_gradient: np.ndarray) -> np.ndarray:
        k, s, p = self.kernel_size, self.stride, self.padding_value
        x = self._padded(images(input, self.input_shape))  # type: ignore[arg-type]
        shape = self.output_shape(self.input_shape)  # type: ignore[arg-type]
        dZ = images(output_gradient, shape)
        dW, db = np.zeros_like(self.W), np.zeros_like(self.b)
        dx = np.zeros_like(x)
        W = self.W
        for n in range(x.shape[0]):
            for f in range(shape[0]):
                for i in range(shape[1]):
                    for j in range(shape[2]):
                        g = dZ[n, f, i, j]
                        dW[f] += g * x[n, :, s * i : s * i + k, s * j : s * j + k]
                        db[f] += g
                        dx[n, :, s * i : s * i + k, s * j : s * j + k] += g * W[f]
        batch = x.shape[0]
        self.weights_gradient[:, :-1] = dW.reshape(shape[0], -1) / batch
        self.weights_gradient[:, -1] = db / batch
        height, width = self.input_shape[1:]  # type: ignore[index]
        return matrix(np.ascontiguousarray(dx[:, :, p : p + height, p : p + width]))

    # -- description
    @classmethod
    def parameter_specs(cls, config: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """W̃: (out_channels, in_channels · kernel_size² + 1), in the config's dtype."""
        rows = _checks.positive_int("out_channels", config.get("out_channels"))
        fan_in = _checks.positive_int("in_channels", config.get("in_channels"))
        fan_in *= _checks.positive_int("kernel_size", config.get("kernel_size")) ** 2
        return {"weights": ((rows, fan_in + 1), _checks.float_dtype("dtype", config.get("dtype", "float64")))}

    def get_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
            "init": self.init,
            "method": self.method,
            "dtype": self.weights.dtype.name,
        }


class _Pool2D(_ImageLayer):
    """Pooling over p×p windows moved by a stride s (default p), channel by channel; no parameters."""

    def __init__(self, pool_size: int = 2, stride: int | None = None, *, input_shape=None):
        super().__init__()
        self.pool_size = _checks.positive_int("pool_size", pool_size)
        self.stride = self.pool_size if stride is None else _checks.positive_int("stride", stride)
        if input_shape is not None:
            self.build(tuple(input_shape))

    def output_shape(self, input_shape: Shape) -> Shape:
        channels, height, width = _image_shape(type(self).__name__, tuple(input_shape))
        name, p, s = type(self).__name__, self.pool_size, self.stride
        return channels, _sliding_size(name, height, p, s, 0), _sliding_size(name, width, p, s, 0)

    def _views(self, x: np.ndarray):
        """The p² strided views x[:, :, s·i + u, s·j + v] (each (b, C, H', W')), in row-major order of (u, v)."""
        _, out_h, out_w = self.output_shape(x.shape[1:])
        s = self.stride
        for u in range(self.pool_size):
            for v in range(self.pool_size):
                yield u, v, x[:, :, u : u + s * out_h : s, v : v + s * out_w : s]

    def get_config(self) -> dict[str, Any]:
        return {
            "pool_size": self.pool_size,
            "stride": self.stride,
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
        }


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
        x = self._input_images(input)
        if kernels.enabled(x):  # the lines below in one pass over x (nablanet.core.kernels)
            best = np.empty((x.shape[0], *self.output_shape(x.shape[1:])), dtype=x.dtype)
            winner = np.empty(best.shape, dtype=np.uint8)
            kernels.max_pool_loops(self.pool_size, self.stride)[0](np.ascontiguousarray(x), best, winner)
        else:
            views = [view for _, _, view in self._views(x)]
            best = views[0].copy()
            for view in views[1:]:
                np.maximum(best, view, out=best)
            # the winner of each window: the first (u, v), in reading order, that holds the maximum — the number
            # of views before it that do not, counted without a masked copy (which costs 5× more)
            winner = np.zeros(best.shape, dtype=np.uint8)
            not_yet = np.ones(best.shape, dtype=bool)
            for view in views[:-1]:
                not_yet &= np.not_equal(view, best)
                winner += not_yet.view(np.uint8)
        # the state the backward pass reads, set together once the forward pass has succeeded
        self.input, self._winner, self.output = input, winner, matrix(best)
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, output = self._last_forward()
        _checks.same_shape("output_gradient", output_gradient, "the layer's output", output)
        shape = self.output_shape(self.input_shape)  # type: ignore[arg-type]
        gradient = images(output_gradient, shape)
        dx = np.zeros((input.shape[1], *self.input_shape), dtype=output_gradient.dtype)  # type: ignore[misc]
        if kernels.enabled(gradient):  # the loop below in one pass (nablanet.core.kernels)
            kernels.max_pool_loops(self.pool_size, self.stride)[1](np.ascontiguousarray(gradient), self._winner, dx)
        else:
            overlapping = self.stride < self.pool_size
            for number, (_, _, view) in enumerate(self._views(dx)):
                if overlapping:  # an input in several windows collects the gradient of each it won
                    view += gradient * (self._winner == number)
                else:
                    np.multiply(gradient, self._winner == number, out=view)
        return matrix(dx)


@LAYERS.register()
class AvgPool2D(_Pool2D):
    r"""Average pooling: the mean of each p×p window; (C·H·W, b) → (C·H'·W', b).

    $$A_{c,i,j} = \frac{1}{p^2}\sum_{u, v < p} X_{c,\,s i + u,\,s j + v}, \qquad
    \frac{\partial L}{\partial X_{c,\,s i + u,\,s j + v}}
    \mathrel{+}= \frac{1}{p^2}\,\frac{\partial L}{\partial A_{c,i,j}}
    \quad \text{for every } (u, v) \text{ of the window}$$
    """

    def forward(self, input: np.ndarray) -> np.ndarray:
        x = self._input_images(input)
        self.input = input
        views = self._views(x)
        total = next(views)[2].copy()
        for _, _, view in views:
            total += view
        total *= 1.0 / self.pool_size**2
        self.output = matrix(total)
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, output = self._last_forward()
        _checks.same_shape("output_gradient", output_gradient, "the layer's output", output)
        share = images(output_gradient, self.output_shape(self.input_shape)) * (1.0 / self.pool_size**2)  # type: ignore[arg-type]
        dx = np.zeros((input.shape[1], *self.input_shape), dtype=output_gradient.dtype)  # type: ignore[misc]
        for _, _, view in self._views(dx):
            view += share
        return matrix(dx)


@LAYERS.register()
class Flatten(_ImageLayer):
    """(C, H, W) → C·H·W features. In the (features, b) notation the matrix already is flat, so this is
    bookkeeping only: forward and backward return their input, and the shape becomes (C·H·W,).

    forward:  A = X,   backward: ∇_X L = ∇_A L
    """

    def __init__(self, *, input_shape=None):
        super().__init__()
        if input_shape is not None:
            self.build(tuple(input_shape))

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(_image_shape("Flatten", tuple(input_shape))),)

    def forward(self, input: np.ndarray) -> np.ndarray:
        self.input = self.output = input
        return input

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        return output_gradient

    def get_config(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape) if self.input_shape is not None else None}
