"""Layers for sequences: the token Embedding, the vanilla RNN and the LSTM.

The sequence layout (the notebooks' features-first notation): one sequence is a (features, T) matrix whose
columns are its T positions, and a batch of b sequences is a (features, T, b) array, so that ``X[:, t, :]``
is the (features, b) batch at time t — the matrix an RNN step reads. Token ids are a (T, b) array, one
column per sequence, stored in the model's float dtype (whole numbers). A sample is a sequence: the
gradients that flow backwards are per sequence, and a layer with parameters averages over the b sequences
(the 1/b of the notebook), summing over the T positions of each.

Inside, the layers keep their arrays time-major and sample-major, (T, b, features) in memory, so that the
product of a time step reads contiguous rows; what they hand out is the (features, T, b) view of that
memory (``array.transpose(2, 0, 1)``), which a following Dense layer reads as its (features, T·b) matrix
without a copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _checks, ops
from .activations import sigmoid as stable_sigmoid
from .initializers import initialize
from .layers import LAYERS, BiasTrickLayer, Layer, last_pass, sgd_step
from .parameter import Parameter, zeros

Shape = tuple[int, ...]


def time_major(X: np.ndarray, *, copy: bool = False) -> np.ndarray:
    """The (T, b, features) array of a (features, T, b) batch of sequences: a view (no copy) of nablanet's own
    outputs, which lie in memory that way; a contiguous copy of any other array, or with ``copy=True``."""
    transposed = X.transpose(1, 2, 0)
    return np.array(transposed, order="C") if copy else np.ascontiguousarray(transposed)


def features_first(array: np.ndarray) -> np.ndarray:
    """The (features, T, b) view of a (T, b, features) array: the public layout of a time-major one."""
    return array.transpose(2, 0, 1)


@LAYERS.register()
class Embedding(Layer):
    r"""A table of learned vectors, one per token: token ids (T, b) → their vectors (d, T, b).

    The table E is (V, d): row v is the vector of token v. With e_v the one-hot column of token v, the vector
    at position t of sequence i is x_(t,i) = Eᵀ e_y, y = Y[t, i] — the product the notebooks would write, computed
    as a row lookup. Backward, each position's gradient is added into the row of its token (a scatter-add:
    a token that appears twice receives both), averaged over the b sequences:

    $$\mathbf{x}_{t,i} = \mathbf{E}^\top \mathbf{e}_{Y_{t,i}}, \qquad
    \nabla_{\mathbf{E}} L = \frac{1}{b}\sum_{i=1}^{b}\sum_{t=1}^{T}
    \mathbf{e}_{Y_{t,i}}\,\big(\nabla_{\mathbf{x}_{t,i}} L_i\big)^\top$$

    The ids are labels, not numbers to move: ``backward`` returns zeros of their shape, and
    :func:`~nablanet.core.gradcheck.gradcheck` checks the table alone (``discrete_input``). Ids are checked to
    be whole numbers in [0, V). The table is drawn from N(0, 1), as PyTorch's ``nn.Embedding``; weight decay
    applies to all of it.

    Args:
        vocabulary_size: V, the number of tokens.
        dimension: d, the length of each token's vector.
        rng (int | numpy.random.Generator | None): Seed or generator of the initial table.
        dtype (numpy.float32 | numpy.float64): Of the table, and so of the outputs and gradients.

    >>> layer = Embedding(5, 3, rng=0)
    >>> ids = np.array([[0.0, 4.0], [1.0, 0.0]])  # T = 2 positions, b = 2 sequences
    >>> layer.forward(ids).shape
    (3, 2, 2)
    >>> bool(np.array_equal(layer.forward(ids)[:, 0, 1], layer.table[4]))
    True
    """

    discrete_input = True

    def __init__(self, vocabulary_size: int, dimension: int, *, rng=None, dtype=np.float64):
        self.vocabulary_size = _checks.positive_int("vocabulary_size", vocabulary_size)
        self.dimension = _checks.positive_int("dimension", dimension)
        dtype = _checks.float_dtype("dtype", dtype)
        table = zeros((self.vocabulary_size, self.dimension), dtype)
        if table.flags.writeable:  # not inside shapes_only(): draw the values
            table[...] = np.random.default_rng(rng).standard_normal(table.shape)
        self._parameters = [Parameter("table", table, zeros(table.shape, dtype))]
        self._ids: np.ndarray | None = None

    @property
    def table(self) -> np.ndarray:
        """E, (V, d): row v is the vector of token v."""
        return self._parameters[0].value

    @property
    def table_gradient(self) -> np.ndarray:
        """∇_E L from the last backward pass, (V, d)."""
        return self._parameters[0].gradient

    def parameters(self) -> list[Parameter]:
        return self._parameters

    def forward(self, input: np.ndarray) -> np.ndarray:
        """The vectors (d, T, b) of the token ids ``input`` (T, b).

        Args:
            input: Token ids, (T, b): whole numbers in [0, V), one column per sequence.
        """
        ids = _checks.token_ids("input", input, self.vocabulary_size)
        self.input, self._ids = input, ids
        self.output = features_first(self.table[ids])  # rows E[id] in (T, b, d) memory
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_x L (d, T, b) → ∇_E L into ``table_gradient``; returns zeros (T, b) for the ids.

        Args:
            output_gradient: ∇_x L, (d, T, b): the per-sequence gradients of the vectors.
            learning_rate: η of the plain SGD step E ← E − η ∇_E L (a positive number); None: store the
                gradient only, for an optimizer to apply.
        """
        self._parameter_gradients(output_gradient)
        sgd_step(self, learning_rate)
        return np.zeros_like(self.input)

    def _parameter_gradients(self, output_gradient: np.ndarray) -> None:
        """∇_E L = (1/b) Σ over t, i of e_y (∇_x L_i)ᵀ at (t, i), y = Y[t, i]: each position's gradient added
        into its token's row."""
        input, _ = last_pass(self, output_gradient)
        assert self._ids is not None  # set with input by forward
        gradient = self.table_gradient
        gradient[...] = 0.0
        rows = time_major(output_gradient).reshape(-1, self.dimension)  # (T·b, d), position by position
        ops.scatter_add(gradient, self._ids.reshape(-1), rows)  # np.add.at(gradient, ids, rows)
        gradient *= 1.0 / input.shape[-1]

    def build(self, input_shape: Shape) -> Shape:
        """(d, T) for ids of T positions.

        Args:
            input_shape: (T,), the positions of one sequence of token ids.
        """
        if len(input_shape) != 1:
            raise ValueError(f"Embedding reads token ids, one sequence of shape (T,), received {input_shape}")
        return (self.dimension, input_shape[0])

    def get_config(self) -> dict[str, Any]:
        return {"vocabulary_size": self.vocabulary_size, "dimension": self.dimension, "dtype": self.table.dtype.name}


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """σ(z) = 1 / (1 + e^(−z)) computed as ½ (1 + tanh(z / 2)): the same function, one pass of ``tanh`` that
    cannot overflow, written into ``out`` if given."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


class Recurrent(BiasTrickLayer):
    """What the RNN and the LSTM share: one parameter W̃ = [W_x | W_h | b] of shape (G·h, n + h + 1) — G
    blocks of h rows, one per gate (G = 1 for the RNN) — read at every step as z_t = W_x x_t + W_h hₜ₋₁ + b
    (the bias trick with the input [x_t; hₜ₋₁; 1]); the state starts at 0 for every batch. ``method``
    chooses between the vectorised passes and the loop reference (the formulas, step by step, in the public
    layout): both give the same numbers to rounding."""

    GATES = 1
    METHODS = ("vectorized", "loop")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        init: str = "glorot_uniform",
        method: str = "vectorized",
        rng=None,
        dtype=np.float64,
    ):
        self.input_features = _checks.positive_int("input_size", input_size)
        self.units = _checks.positive_int("hidden_size", hidden_size)
        self.init = init
        self.method = _checks.choice("method", method, self.METHODS)
        dtype = _checks.float_dtype("dtype", dtype)
        n, h = self.input_features, self.units
        self._create_weights(initialize(init, n + h, self.GATES * h, np.random.default_rng(rng), dtype))
        self._cache: dict[str, np.ndarray] = {}

    @property
    def W_x(self) -> np.ndarray:
        """W_x, (G·h, n): a view of W̃, the weights of the input."""
        return self.weights[:, : self.input_features]

    @property
    def W_h(self) -> np.ndarray:
        """W_h, (G·h, h): a view of W̃, the weights of the previous hidden state."""
        return self.weights[:, self.input_features : -1]

    def forward(self, input: np.ndarray) -> np.ndarray:
        """The hidden states H (h, T, b) of the sequences ``input`` (n, T, b).

        Args:
            input: X, (n, T, b): b sequences of T positions of n features.
        """
        _checks.features_first("input", input, rows=self.input_features, finite=False)
        if input.ndim != 3:
            raise ValueError(f"input must be a batch of sequences (features, T, batch), received shape {input.shape}")
        output, cache = self._forward_loop(input) if self.method == "loop" else self._forward(time_major(input))
        self.input, self.output, self._cache = input, output, cache  # set together once the pass has succeeded
        return output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_H L (h, T, b) → ∇_X L (n, T, b), by backpropagation through time; ∇_W̃ L goes to ``weights_gradient``.

        Args:
            output_gradient: ∇_H L, (h, T, b): the per-sequence gradients of every hidden state.
            learning_rate: η of the plain SGD step W̃ ← W̃ − η ∇_W̃ L (a positive number); None: store the
                gradient only, for an optimizer to apply.
        """
        last_pass(self, output_gradient)
        if self.method == "loop":
            input_gradient = self._backward_loop(output_gradient)
        else:
            delta = self._deltas(time_major(output_gradient, copy=True))  # (T, b, G·h): ∇z_t L at every step
            self._weight_gradients(delta)
            steps, batch, rows = delta.shape
            input_gradient = features_first((delta.reshape(-1, rows) @ self.W_x).reshape(steps, batch, -1))
        sgd_step(self, learning_rate)
        return input_gradient

    def _parameter_gradients(self, output_gradient: np.ndarray) -> None:
        """∇_W̃ L alone, without ∇_X L: what the first layer of a network needs."""
        last_pass(self, output_gradient)
        if self.method == "loop":
            self._backward_loop(output_gradient)
        else:
            self._weight_gradients(self._deltas(time_major(output_gradient, copy=True)))

    def _weight_gradients(self, delta: np.ndarray) -> None:
        """∇_W̃ L = (1/b) Σ_t δ_t [x_t; hₜ₋₁; 1]ᵀ, as three products over all T·b positions at once
        (h_0 = 0 adds nothing, so W_h's product runs over t ≥ 2)."""
        X, H = self._cache["X"], self._cache["H"]
        _, batch, rows = delta.shape
        n = self.input_features
        gradient, scale = self.weights_gradient, 1.0 / batch
        flat = delta.reshape(-1, rows)
        np.matmul(flat.T, X.reshape(-1, n), out=gradient[:, :n])
        np.matmul(delta[1:].reshape(-1, rows).T, H[:-1].reshape(-1, self.units), out=gradient[:, n:-1])
        np.sum(flat, axis=0, out=gradient[:, -1])
        gradient *= scale

    def _store_gradients(self, grad_W_x, grad_W_h, grad_b, batch: int) -> None:
        """The loop reference's sums into ``weights_gradient``, divided by b."""
        gradient = self.weights_gradient
        n = self.input_features
        gradient[:, :n], gradient[:, n:-1], gradient[:, -1] = grad_W_x / batch, grad_W_h / batch, grad_b / batch

    def build(self, input_shape: Shape) -> Shape:
        """(h, T) for sequences (n, T).

        Args:
            input_shape: (n, T), one sequence of T positions of n features.
        """
        if len(input_shape) != 2 or input_shape[0] != self.input_features:
            raise ValueError(
                f"{type(self).__name__} expects sequences ({self.input_features}, T), received {input_shape}"
            )
        return (self.units, input_shape[1])

    def get_config(self) -> dict[str, Any]:
        return {
            "input_size": self.input_features,
            "hidden_size": self.units,
            "init": self.init,
            "method": self.method,
            "dtype": self.weights.dtype.name,
        }

    # the passes each layer writes
    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    def _deltas(self, gradient: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _forward_loop(self, input: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    def _backward_loop(self, output_gradient: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@LAYERS.register()
class RNN(Recurrent):
    r"""The vanilla recurrent layer (Elman): a tanh unit that reads x_t and its own previous state.

    Forward, for t = 1 … T with h_0 = 0; X: (n, T, b) → H: (h, T, b), the hidden states of every step:

    $$\mathbf{z}_t = \mathbf{W}_x \mathbf{x}_t + \mathbf{W}_h \mathbf{h}_{t-1} + \mathbf{b}\mathbf{1}^\top, \qquad
    \mathbf{h}_t = \tanh(\mathbf{z}_t)$$

    Backward (backpropagation through time), for t = T … 1, with g_t = ∇_(h_t) L the gradient of H at step t
    and the carry c_(T+1) = 0 — what h_t gave to step t + 1 comes back through W_h:

    $$\boldsymbol{\delta}_t = \big(\mathbf{g}_t + \mathbf{c}_{t+1}\big) \odot \big(1 - \mathbf{h}_t^{2}\big), \qquad
    \mathbf{c}_t = \mathbf{W}_h^\top \boldsymbol{\delta}_t, \qquad
    \nabla_{\mathbf{x}_t} L = \mathbf{W}_x^\top \boldsymbol{\delta}_t$$

    $$\nabla_{\mathbf{W}_x} L = \frac{1}{b}\sum_t \boldsymbol{\delta}_t \mathbf{x}_t^\top, \qquad
    \nabla_{\mathbf{W}_h} L = \frac{1}{b}\sum_t \boldsymbol{\delta}_t \mathbf{h}_{t-1}^\top, \qquad
    \nabla_{\mathbf{b}} L = \frac{1}{b}\sum_t \boldsymbol{\delta}_t \mathbf{1}$$

    W̃ = [W_x | W_h | b] is one array of shape (h, n + h + 1) (``weights``; ``W_x``, ``W_h``, ``b`` are views).
    ``method="vectorized"`` computes the input products W_x x_t of all steps in one product before the loop,
    and the three parameter gradients in one product each after it; only the recurrence runs step by step.
    ``method="loop"`` is the reference: every formula above at every step.

    Args:
        input_size: n, the features of each position.
        hidden_size: h, the units of the state.
        init: How W̃ is drawn, as for Dense (fan-in n + h): "glorot_uniform" by default, for tanh.
        method: "vectorized" or "loop" (the reference).
        rng (int | numpy.random.Generator | None): Seed or generator of the initial weights.
        dtype (numpy.float32 | numpy.float64): Of W̃, and so of the outputs and gradients.

    >>> layer = RNN(3, 4, rng=0)
    >>> layer.forward(np.ones((3, 5, 2))).shape  # n = 3 features, T = 5 steps, b = 2 sequences
    (4, 5, 2)
    >>> layer.weights.shape, layer.W_x.shape, layer.W_h.shape
    ((4, 8), (4, 3), (4, 4))
    """

    def _forward(self, X):
        steps, batch, n = X.shape
        H = (X.reshape(-1, n) @ self.W_x.T).reshape(steps, batch, self.units)  # W_x x_t of every step at once
        H += self.b
        W_h_T = np.ascontiguousarray(self.W_h.T)  # a contiguous copy: each step's product reads it as it is
        for t in range(steps):
            if t:
                H[t] += H[t - 1] @ W_h_T  # z_t = W_x x_t + b + W_h h_{t−1}
            np.tanh(H[t], out=H[t])  # h_t = tanh(z_t)
        return features_first(H), {"X": X, "H": H}

    def _deltas(self, gradient):
        H, W_h = self._cache["H"], np.ascontiguousarray(self.W_h)
        delta = gradient  # a copy of ∇_H L, time-major: δ_t is written over g_t
        for t in reversed(range(len(delta))):
            if t + 1 < len(delta):
                delta[t] += delta[t + 1] @ W_h  # g_t + c_{t+1}, with c_{t+1} = W_hᵀ δ_{t+1} (row-wise)
            delta[t] *= 1.0 - H[t] * H[t]  # δ_t = (g_t + c_{t+1}) ⊙ (1 − h_t²)
        return delta

    def _forward_loop(self, input):
        _, steps, batch = input.shape
        H = np.empty((self.units, steps, batch), self.weights.dtype)
        h = np.zeros((self.units, batch), self.weights.dtype)
        for t in range(steps):
            h = np.tanh(self.W_x @ input[:, t, :] + self.W_h @ h + self.b[:, None])
            H[:, t, :] = h
        return H, {}

    def _backward_loop(self, output_gradient):
        input, H = self.input, self.output
        assert input is not None and H is not None
        _, steps, batch = input.shape
        grad_W_x, grad_W_h, grad_b = np.zeros_like(self.W_x), np.zeros_like(self.W_h), np.zeros_like(self.b)
        input_gradient = np.empty_like(input, dtype=self.weights.dtype)
        carry = np.zeros((self.units, batch), self.weights.dtype)  # c_{T+1} = 0
        for t in reversed(range(steps)):
            h, h_before = H[:, t, :], H[:, t - 1, :] if t else np.zeros_like(carry)
            delta = (output_gradient[:, t, :] + carry) * (1.0 - h**2)
            grad_W_x += delta @ input[:, t, :].T
            grad_W_h += delta @ h_before.T
            grad_b += delta.sum(axis=1)
            input_gradient[:, t, :] = self.W_x.T @ delta
            carry = self.W_h.T @ delta
        self._store_gradients(grad_W_x, grad_W_h, grad_b, batch)
        return input_gradient


@LAYERS.register()
class LSTM(Recurrent):
    r"""Long short-term memory (Hochreiter & Schmidhuber, 1997): a cell state c_t that gates let through.

    Forward, for t = 1 … T with h_0 = c_0 = 0; X: (n, T, b) → H: (h, T, b). The four gates — input i,
    forget f, output o and the candidate g — are the four blocks of h rows of one product z_t:

    $$\mathbf{z}_t = \mathbf{W}_x \mathbf{x}_t + \mathbf{W}_h \mathbf{h}_{t-1} + \mathbf{b}\mathbf{1}^\top
    = \begin{bmatrix}\mathbf{z}^i_t \\ \mathbf{z}^f_t \\ \mathbf{z}^o_t \\ \mathbf{z}^g_t\end{bmatrix}, \qquad
    \mathbf{i}_t = \sigma(\mathbf{z}^i_t),\; \mathbf{f}_t = \sigma(\mathbf{z}^f_t),\;
    \mathbf{o}_t = \sigma(\mathbf{z}^o_t),\; \mathbf{g}_t = \tanh(\mathbf{z}^g_t)$$

    $$\mathbf{c}_t = \mathbf{f}_t \odot \mathbf{c}_{t-1} + \mathbf{i}_t \odot \mathbf{g}_t, \qquad
    \mathbf{h}_t = \mathbf{o}_t \odot \tanh(\mathbf{c}_t)$$

    Backward (through time), for t = T … 1, with g'_t = ∇_(h_t) L from H's gradient and the carries of
    step t + 1 (both 0 at T + 1): ∂h_t = g'_t + W_hᵀ δ_(t+1) and ∂c_(t+1) ⊙ f_(t+1); then

    $$\partial\mathbf{c}_t = \partial\mathbf{c}_{t+1} \odot \mathbf{f}_{t+1}
    + \partial\mathbf{h}_t \odot \mathbf{o}_t \odot \big(1 - \tanh^2 \mathbf{c}_t\big)$$

    $$\boldsymbol{\delta}_t = \begin{bmatrix}
    \partial\mathbf{c}_t \odot \mathbf{g}_t \odot \mathbf{i}_t(1 - \mathbf{i}_t) \\
    \partial\mathbf{c}_t \odot \mathbf{c}_{t-1} \odot \mathbf{f}_t(1 - \mathbf{f}_t) \\
    \partial\mathbf{h}_t \odot \tanh \mathbf{c}_t \odot \mathbf{o}_t(1 - \mathbf{o}_t) \\
    \partial\mathbf{c}_t \odot \mathbf{i}_t \odot (1 - \mathbf{g}_t^2)
    \end{bmatrix} = \nabla_{\mathbf{z}_t} L, \qquad
    \nabla_{\mathbf{x}_t} L = \mathbf{W}_x^\top \boldsymbol{\delta}_t$$

    and the parameter gradients are the RNN's: (1/b) Σ_t δ_t x_tᵀ, (1/b) Σ_t δ_t hₜ₋₁ᵀ, (1/b) Σ_t δ_t 1.

    W̃ = [W_x | W_h | b] is (4h, n + h + 1), its rows the gates in the order i, f, o, g (PyTorch's is i, f, g, o).
    ``method="vectorized"`` computes the input products of all steps in one product, the four gates of a
    step in one product, and the parameter gradients in one product each after the loop (where numba's kernels
    run, the element-wise work of each backward step, after W_hᵀ δ_(t+1), is one compiled loop with the NumPy
    code's arithmetic in its order: bit-identical, ``tests/test_kernels.py``); ``method="loop"`` is the
    reference: each gate with its own block of W̃, each formula at each step.

    Args:
        input_size: n, the features of each position.
        hidden_size: h, the units of the state (and of the cell).
        init: How W̃ is drawn, as for Dense (fan-in n + h): "glorot_uniform" by default.
        method: "vectorized" or "loop" (the reference).
        rng (int | numpy.random.Generator | None): Seed or generator of the initial weights.
        dtype (numpy.float32 | numpy.float64): Of W̃, and so of the outputs and gradients.

    >>> layer = LSTM(3, 4, rng=0)
    >>> layer.forward(np.ones((3, 5, 2))).shape  # n = 3 features, T = 5 steps, b = 2 sequences
    (4, 5, 2)
    >>> layer.weights.shape  # 4 gates of h = 4 rows; n + h + 1 = 8 columns
    (16, 8)
    """

    GATES = 4

    def _forward(self, X):
        steps, batch, n = X.shape
        h = self.units
        A = (X.reshape(-1, n) @ self.W_x.T).reshape(steps, batch, 4 * h)  # W_x x_t of every step at once
        A += self.b
        C = np.empty((steps, batch, h), A.dtype)  # c_t
        tanh_C = np.empty_like(C)
        H = np.empty_like(C)
        W_h_T = np.ascontiguousarray(self.W_h.T)  # a contiguous copy: each step's product reads it as it is
        compiled = ops.fusable(A)  # ops.lstm_gates: the same numbers in fewer passes
        for t in range(steps):
            a = A[t]
            if t:
                a += H[t - 1] @ W_h_T  # z_t: the four gates in one product
            i, f, o, g = a[:, :h], a[:, h : 2 * h], a[:, 2 * h : 3 * h], a[:, 3 * h :]
            if compiled:  # sigmoid's z/2, one tanh pass over the four gates, then σ and c_t in one loop
                a[:, : 3 * h] *= 0.5
                np.tanh(a, out=a)
                compiled = ops.lstm_gates(a, C[t - 1], C[t], t == 0)
                if not compiled:  # the loop could not run: the rest of sigmoid, σ = ½(tanh(z/2) + 1), in NumPy
                    a[:, : 3 * h] += 1.0
                    a[:, : 3 * h] *= 0.5
            else:
                sigmoid(a[:, : 3 * h], out=a[:, : 3 * h])  # i, f, o
                np.tanh(g, out=g)
            if not compiled:
                np.multiply(i, g, out=C[t])
                if t:
                    C[t] += f * C[t - 1]  # c_t = f ⊙ c_{t−1} + i ⊙ g
            np.tanh(C[t], out=tanh_C[t])
            np.multiply(o, tanh_C[t], out=H[t])  # h_t = o ⊙ tanh c_t
        return features_first(H), {"X": X, "H": H, "A": A, "C": C, "tanh_C": tanh_C}

    def _deltas(self, gradient):
        A, C, tanh_C = self._cache["A"], self._cache["C"], self._cache["tanh_C"]
        h, W_h = self.units, np.ascontiguousarray(self.W_h)
        steps, batch, _ = gradient.shape
        delta = np.empty_like(A)  # δ_t = ∇z_t L, the four blocks
        dc = np.zeros((batch, h), A.dtype)  # ∂c_{t+1} ⊙ f_{t+1}: the cell's carry
        compiled = ops.fusable(A) and gradient.dtype == A.dtype  # ops.lstm_backward_step: one loop, same numbers
        for t in reversed(range(steps)):
            a, d = A[t], delta[t]
            i, f, o, g = a[:, :h], a[:, h : 2 * h], a[:, 2 * h : 3 * h], a[:, 3 * h :]
            dh = gradient[t]  # (a copy of ∇_H L: written over)
            if t + 1 < steps:
                dh += delta[t + 1] @ W_h  # ∂h_t = g'_t + W_hᵀ δ_{t+1}
            if compiled and ops.lstm_backward_step(a, dh, dc, tanh_C[t], C[t - 1], d, t == 0):
                continue
            compiled = False  # the kernel could not run: NumPy from here on
            dc += dh * o * (1.0 - tanh_C[t] * tanh_C[t])  # ∂c_t
            np.multiply(dh, tanh_C[t], out=d[:, 2 * h : 3 * h])
            d[:, 2 * h : 3 * h] *= o * (1.0 - o)  # δ^o
            np.multiply(dc, g, out=d[:, :h])
            d[:, :h] *= i * (1.0 - i)  # δ^i
            np.multiply(dc, i, out=d[:, 3 * h :])
            d[:, 3 * h :] *= 1.0 - g * g  # δ^g
            if t:
                np.multiply(dc, C[t - 1], out=d[:, h : 2 * h])
                d[:, h : 2 * h] *= f * (1.0 - f)  # δ^f
            else:
                d[:, h : 2 * h] = 0.0  # c_0 = 0
            dc *= f  # the carry to step t − 1
        return delta

    def _gates(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(W_x, W_h, b) of one gate: rows block·h … (block + 1)·h of W̃ (0: i, 1: f, 2: o, 3: g)."""
        rows = slice(block * self.units, (block + 1) * self.units)
        return self.W_x[rows], self.W_h[rows], self.b[rows, None]

    def _forward_loop(self, input):
        _, steps, batch = input.shape
        dtype, size = self.weights.dtype, self.units
        states = {name: np.empty((size, steps, batch), dtype) for name in ("i", "f", "o", "g", "c", "h")}
        h, c = np.zeros((size, batch), dtype), np.zeros((size, batch), dtype)
        for t in range(steps):
            x = input[:, t, :]
            z = [W_x @ x + W_h @ h + b for W_x, W_h, b in map(self._gates, range(4))]  # each gate alone
            i, f, o, g = stable_sigmoid(z[0]), stable_sigmoid(z[1]), stable_sigmoid(z[2]), np.tanh(z[3])
            c = f * c + i * g
            h = o * np.tanh(c)
            for name, value in zip(("i", "f", "o", "g", "c", "h"), (i, f, o, g, c, h), strict=True):
                states[name][:, t, :] = value
        return states["h"], states

    def _backward_loop(self, output_gradient):
        input, states = self.input, self._cache
        assert input is not None
        _, steps, batch = input.shape
        size = self.units
        grad_W_x, grad_W_h, grad_b = np.zeros_like(self.W_x), np.zeros_like(self.W_h), np.zeros_like(self.b)
        input_gradient = np.zeros(input.shape, self.weights.dtype)
        carry_h, carry_c = np.zeros((size, batch), input_gradient.dtype), np.zeros((size, batch), input_gradient.dtype)
        for t in reversed(range(steps)):
            i, f, o, g, c = (states[name][:, t, :] for name in ("i", "f", "o", "g", "c"))
            c_before = states["c"][:, t - 1, :] if t else np.zeros_like(c)
            h_before = states["h"][:, t - 1, :] if t else np.zeros_like(c)
            dh = output_gradient[:, t, :] + carry_h
            dc = carry_c + dh * o * (1.0 - np.tanh(c) ** 2)
            deltas = (
                dc * g * i * (1.0 - i),
                dc * c_before * f * (1.0 - f),
                dh * np.tanh(c) * o * (1.0 - o),
                dc * i * (1.0 - g**2),
            )
            carry_h = np.zeros_like(carry_h)
            for block, delta in enumerate(deltas):
                W_x, W_h, _ = self._gates(block)
                rows = slice(block * size, (block + 1) * size)
                grad_W_x[rows] += delta @ input[:, t, :].T
                grad_W_h[rows] += delta @ h_before.T
                grad_b[rows] += delta.sum(axis=1)
                input_gradient[:, t, :] += W_x.T @ delta
                carry_h += W_h.T @ delta
            carry_c = dc * f
        self._store_gradients(grad_W_x, grad_W_h, grad_b, batch)
        return input_gradient
