r"""The fused path: runs of eager layers computed with fewer passes over memory, for ``fit(..., fuse=True)``.

The eager layers stay the reference and the default: each reads as its formula, and each makes one pass (or
several) over its input and output. Between two layers the arrays leave the caches — the first convolution's
output of a batch of 128 MNIST images is 11 MB — so a CNN's batch spends much of its time moving the same
numbers to and from memory. :func:`fuse` replaces the known runs of layers by a block that computes the same
function in one pass where the eager layers make several:

* ``Conv2D → ReLU → MaxPool2D`` (method "im2col", pooling windows side by side) by :class:`ConvReLUPool`:
  the convolution's bias, its layout copy, ReLU and the pooling in one pass forward, and one backward;
* ``Dense → ReLU`` by :class:`DenseReLU`: the bias and ReLU in one pass after the product.

A block holds the eager layer objects themselves and their parameters (the same
:class:`~nablanet.core.parameter.Parameter` objects), so an optimizer, a checkpoint or a saved model sees no
difference: ``model.layers`` is never changed, only the list the training loop runs. The arithmetic is the
eager layers' own, in the same order (the same matrix products, the same sums), with one saving: a
:class:`ConvReLUPool` computes only the outputs of the convolution that a pooling window reads. Where that is
every output (p divides H' and W': the Keras convnet's first block, 26 × 26 in windows of 2), the block gives
bit-identical outputs and gradients — up to the sign of a pooled zero, as the compiled max-pooling already
allows (see :mod:`nablanet.core.kernels`). Where pooling leaves the last rows or columns out (its second block,
11 × 11: a sixth of that convolution's work), the products have fewer columns, ∇W̃ adds the same products
without the zeros of the outputs left out, and BLAS may group those sums otherwise: the numbers equal the
eager layers' to float32 rounding (1e-5 of the largest entry). ``tests/test_fusion.py`` checks both. A block
runs where the compiled kernels run (numba installed, ``NABLANET_KERNELS`` not ``0``, float32 or float64
weights); elsewhere :func:`fuse` leaves the layers as they are, and a block whose kernel fails runs its eager
layers instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _checks, ops
from .activations import ReLU
from .convolution import Conv2D, MaxPool2D
from .layers import Dense, Layer, last_pass, parameter_gradients, run, sgd_step
from .parameter import Parameter


def fuse(layers: Sequence[Layer]) -> list[Layer]:
    """The layers with each ``Conv2D → ReLU → MaxPool2D`` and ``Dense → ReLU`` replaced by its fused block (only
    nablanet's own classes, not subclasses; only a Conv2D of method "im2col" and a MaxPool2D whose stride is its
    pool size; only where the kernels run for the weights' dtype); every other layer as it is.

    Args:
        layers: The layers the training loop runs, first to last.

    >>> from nablanet import build_classifier
    >>> [type(layer).__name__ for layer in fuse(build_classifier(784, 10, [32], conv=[4], rng=0).layers)]
    ['ConvReLUPool', 'Flatten', 'DenseReLU', 'Dense', 'Softmax']
    """
    fused: list[Layer] = []
    position = 0
    while position < len(layers):
        match list(layers[position : position + 3]):
            case [Conv2D() as conv, ReLU() as relu, MaxPool2D() as pool] if _exact(
                conv, relu, pool
            ) and ConvReLUPool.fits(conv, relu, pool):
                fused.append(ConvReLUPool(conv, relu, pool))
                position += 3
            case [Dense() as dense, ReLU() as relu, *_] if _exact(dense, relu) and ops.fusable(dense.weights):
                fused.append(DenseReLU(dense, relu))
                position += 2
            case _:
                fused.append(layers[position])
                position += 1
    return fused


def _exact(*layers: Layer) -> bool:
    """Whether the layers are of nablanet's own classes, not of subclasses (a learner's, which may compute
    something else)."""
    return all(type(layer) in (Conv2D, ReLU, MaxPool2D, Dense) for layer in layers)


class _Block(Layer):
    """A run of eager layers, ``parts``, computed together; it trains the first part's parameters (the same objects)."""

    def __init__(self, *layers: Layer) -> None:
        self.parts = list(layers)
        self._eager = False  # whether the last forward pass ran the eager layers (a kernel that failed)

    def parameters(self) -> list[Parameter]:
        return self.parts[0].parameters()

    def _eager_forward(self, input: np.ndarray) -> np.ndarray:
        self._eager = True
        self.input, self.output = input, run(self.parts, input)
        return self.output

    def _eager_backward(self, output_gradient: np.ndarray, *, input_gradient: bool) -> np.ndarray | None:
        """The eager layers' backward pass (without ∇ of the data if ``input_gradient`` is False)."""
        for layer in reversed(self.parts[1:]):
            output_gradient = layer.backward(output_gradient)
        if not input_gradient:
            parameter_gradients(self.parts[0], output_gradient)
            return None
        return self.parts[0].backward(output_gradient)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.parts))})"


class ConvReLUPool(_Block):
    r"""Conv2D → ReLU → MaxPool2D with p×p windows side by side, as one block: the same function and gradients.

    The block computes the H''×W'' outputs of the convolution that a pooling window reads, H'' = p⌊H'/p⌋ and
    W'' = p⌊W'/p⌋ (the first rows and columns), and not the others, which pooling leaves out: the Keras
    convnet's second convolution has 11×11 outputs in 5×5 windows of 2, so its block computes 10×10 of them.

    Forward: the convolution's product Z_col = W_col X_col (F, b·H''·W''), as Conv2D computes it (im2col, one
    matrix product); then one pass over Z_col does the bias, ReLU, the pooling and the layout copy to the
    sample-major output A (F·H'/p·W'/p, b) — pooling before ReLU, which is the same function since ReLU is
    monotone, and which leaves ReLU to a quarter of the values:

    $$A_{f,i,j} = \max\Big(0,\; \max_{u, v < p}
    \big(\mathbf{Z}_{\mathrm{col}} + \mathbf{b}\mathbf{1}^\top\big)_{f,\,p i + u,\,p j + v}\Big)$$

    Backward: one pass from ∇A to ∇Z_col (F, b·H''·W''): each window's gradient goes to its winner (the first
    maximum, as MaxPool2D picks it) if ReLU lets it through there (the winner's z > 0, so A > 0 — the forward
    pass keeps that bit beside the winner's position), and nowhere else; then Conv2D's
    ∇W̃ = (1/b)[∇Z_col X_colᵀ | ∇Z_col 1] and ∇X = col2im(W_colᵀ ∇Z_col) — the eager layers' sums less the
    outputs left out, whose gradient is 0:

    $$\nabla_{\mathbf{Z}} L_{f,\,p i + u,\,p j + v} = \nabla_{\mathbf{A}} L_{f,i,j}\;
    \mathbb{1}[Z_{f,\,p i + u,\,p j + v} > 0]\;\mathbb{1}\big[(u, v) = \operatorname{winner}_{f,i,j}\big]$$

    That removes four passes over the convolution's output forward (the bias, the copy from (F, b·H'·W') to
    sample-major, ReLU, the pooling) and four backward (the zeros of the pooling's gradient, its routing,
    ReLU's mask, the copy back to (F, b·H'·W')), and leaves out of the three products the outputs no window
    reads.
    X_col, Z_col and ∇Z_col are kept and reused from batch to batch of one size (the next batch's forward pass
    overwrites them): no fresh 10 MB arrays, no page faults.

    Args:
        conv (Conv2D): The convolution, of method "im2col".
        relu (ReLU): Its activation.
        pool (MaxPool2D): The pooling, its stride its pool size.
    """

    def __init__(self, conv: Conv2D, relu: ReLU, pool: MaxPool2D) -> None:
        if not self.fits(conv, relu, pool):
            raise ValueError("ConvReLUPool fuses a Conv2D of method 'im2col' and a MaxPool2D of stride = pool_size")
        super().__init__(conv, relu, pool)
        self.conv, self.pool = conv, pool
        self._buffers: dict[str, np.ndarray] = {}

    @staticmethod
    def fits(conv: Conv2D, relu: ReLU, pool: MaxPool2D) -> bool:
        """Whether the three layers can be fused: Conv2D of method "im2col", MaxPool2D windows side by side and at
        most 11 × 11 (the winner's position and ReLU's mask share a byte), and the kernels on for the weights' dtype."""
        side_by_side = pool.stride == pool.pool_size <= 11
        return conv.method == "im2col" and side_by_side and ops.fusable(conv.weights)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The block's work array ``name``, made anew only when the shape or dtype changes (the last batch)."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buffer

    def forward(self, input: np.ndarray) -> np.ndarray:
        conv, p = self.conv, self.pool.pool_size
        x = ops.pad(conv._images(input), conv.padding_value)  # (b, C, H + 2p, W + 2p)
        batch, dtype = x.shape[0], conv.weights.dtype
        filters, windows = conv.out_channels, self._windows()
        rows, width = conv.W_col.shape[1], batch * windows[0] * windows[1]
        columns = ops.im2col(
            x, conv.kernel_size, conv.stride, out=self._buffer("columns", (rows, width), x.dtype), windows=windows
        )
        z = np.matmul(conv.W_col, columns, out=self._buffer("z", (filters, width), dtype))  # W_col X_col
        shape = (batch, filters, windows[0] // p, windows[1] // p)
        best, winner = np.empty(shape, dtype=dtype), np.empty(shape, dtype=np.uint8)
        bias = np.ascontiguousarray(conv.b)
        if not ops.conv_relu_pool(z.reshape(filters, batch, *windows), bias, p, best, winner):
            return self._eager_forward(input)
        # the state the backward pass reads, set together once the forward pass has succeeded
        self._eager, self._columns, self._winner = False, columns, winner
        self.input, self.output = input, ops.matrix(best)
        return self.output

    def skips(self) -> bool:
        """Whether pooling leaves some outputs of the convolution out (p does not divide H' or W'), which this
        block does not compute: then its numbers equal the eager layers' to float32 rounding, not bit for bit."""
        return self._windows() != self.conv._output_shape(self.conv._shape())[1:]

    def _windows(self) -> tuple[int, int]:
        """(H'', W''): the rows and columns of the convolution's output that a pooling window covers, p·⌊H'/p⌋
        and p·⌊W'/p⌋ — the first ones; the others, if any, are what the block does not compute."""
        _, out_h, out_w = self.conv._output_shape(self.conv._shape())
        p = self.pool.pool_size
        return p * (out_h // p), p * (out_w // p)

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, _ = last_pass(self, output_gradient)
        if self._eager:
            input_gradient = self._eager_backward(output_gradient, input_gradient=True)
        else:
            shape = (input.shape[1], *self.conv._shape())
            input_gradient = self.conv._input_gradient(self._delta(output_gradient), shape, self._windows())
        sgd_step(self, learning_rate)
        return input_gradient  # type: ignore[return-value]

    def _parameter_gradients(self, output_gradient: np.ndarray) -> None:
        """∇W̃ alone, without ∇X: what the first block of a network needs."""
        last_pass(self, output_gradient)
        if self._eager:
            self._eager_backward(output_gradient, input_gradient=False)
        else:
            self._delta(output_gradient)

    def _delta(self, output_gradient: np.ndarray) -> np.ndarray:
        """∇Z_col (F, b·H''·W'') from ∇A, by the fused backward loop, with the convolution's ∇W̃ stored."""
        conv, p, batch = self.conv, self.pool.pool_size, output_gradient.shape[1]
        filters, windows = conv.out_channels, self._windows()
        gradient = np.ascontiguousarray(ops.images(output_gradient, (filters, windows[0] // p, windows[1] // p)))
        delta = self._buffer("delta", (filters, batch, *windows), gradient.dtype)
        if not ops.conv_relu_pool_backward(gradient, self._winner, p, delta):
            raise RuntimeError("the fused backward loop failed after its forward loop ran")  # kernels never half-fail
        delta = delta.reshape(filters, -1)
        conv._store_gradients(delta, self._columns, batch)
        return delta


class DenseReLU(_Block):
    r"""Dense → ReLU as one block: the same function and gradients, one pass fewer forward.

    Forward: the Dense layer's product W X (sample-major, as Dense computes it), then one pass that adds the
    bias and applies ReLU in place — where Dense adds the bias in one pass and ReLU makes a new array in another:

    $$\mathbf{A} = \max\big(0,\; \mathbf{W}\mathbf{X} + \mathbf{b}\mathbf{1}^\top\big)$$

    Backward: ∇Z = ∇A ⊙ 𝟙[A > 0] (A > 0 exactly where Z > 0, so Z need not be kept), then Dense's backward.

    Args:
        dense (Dense): The fully connected layer.
        relu (ReLU): Its activation.
    """

    def __init__(self, dense: Dense, relu: ReLU) -> None:
        super().__init__(dense, relu)
        self.dense = dense

    def forward(self, input: np.ndarray) -> np.ndarray:
        dense = self.dense
        _checks.matrix("input", input, rows=dense.input_size, finite=False)
        A = ops.product(dense.W, input)  # W X, sample-major: A.T is its (b, units) memory
        if not ops.bias_relu(A.T, np.ascontiguousarray(dense.b)):
            return self._eager_forward(input)
        self._eager = False
        dense.input, dense.output = input, A  # what Dense's backward reads: X, and the shape of its output
        self.input, self.output = input, A
        return A

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        _, A = last_pass(self, output_gradient)
        if self._eager:
            input_gradient = self._eager_backward(output_gradient, input_gradient=True)
            sgd_step(self, learning_rate)
            return input_gradient  # type: ignore[return-value]
        return self.dense.backward(ops.relu_backward(output_gradient, A), learning_rate)  # ∇Z = ∇A ⊙ 𝟙[A > 0]

    def _parameter_gradients(self, output_gradient: np.ndarray) -> None:
        _, A = last_pass(self, output_gradient)
        if self._eager:
            self._eager_backward(output_gradient, input_gradient=False)
        else:
            self.dense._parameter_gradients(ops.relu_backward(output_gradient, A))
