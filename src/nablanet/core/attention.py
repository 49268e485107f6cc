r"""Attention: scaled dot-product attention, multi-head self-attention, learned positional embeddings and the
pre-norm transformer block.

The sequence layout (the notebooks' features-first notation): one sequence is a (d, T) matrix whose columns
are its T positions, a batch of b sequences is (d, T, b). For one sequence, with the queries, keys and values
as columns, Q, K (d_k, T) and V (d_v, T), attention is

$$\mathbf{A} = \mathrm{softmax}\Big(\frac{\mathbf{Q}^\top\mathbf{K}}{\sqrt{d_k}} + \mathbf{M}\Big), \qquad
\mathbf{O} = \mathbf{V}\mathbf{A}^\top$$

with the softmax over each row of the (T, T) scores — over the keys j of query i — and M the causal mask
(0 where j ≤ i, −∞ where j > i: a position sees only itself and the positions before it). Row i of A holds the
weights query i gives to every key; column i of O is the weighted mean of the value columns.

Two implementations stand side by side, tested equal to 1e-12: :func:`attention_loop` and
:func:`attention_loop_backward` read as the formulas, one sequence at a time, in the features-first layout;
:func:`attention` and :func:`attention_backward` compute every sequence and head at once with batched matrix
products over (…, T, d_k) arrays — the layout in which each product reads contiguous rows — which is what
:class:`MultiHeadSelfAttention` runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _checks
from .activations import ReLU, softmax
from .layers import LAYERS, Composite, Dense, Layer, Residual, Shape, last_pass, sgd_step
from .normalization import LayerNorm
from .parameter import Parameter, zeros


# -- scaled dot-product attention, as the math (one sequence at a time) and batched
def causal_mask(steps: int, dtype=np.float64) -> np.ndarray:
    """M, (T, T): 0 where key j ≤ query i, −∞ where j > i (the future), for T = ``steps``.

    Args:
        steps: T, the positions of the sequence.
        dtype (numpy.float32 | numpy.float64): Of M.

    >>> causal_mask(3)
    array([[  0., -inf, -inf],
           [  0.,   0., -inf],
           [  0.,   0.,   0.]])
    """
    return np.triu(np.full((steps, steps), -np.inf, dtype), k=1)


def attention_loop(Q: np.ndarray, K: np.ndarray, V: np.ndarray, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    r"""Scaled dot-product attention, one sequence at a time, as the formula (the reference).

    For each sequence n, S = QᵀK/√d_k + M (T, T), A = softmax over each row of S, O = V Aᵀ.

    Args:
        Q: The queries, (d_k, T, N): N sequences (or sequences × heads) of T columns.
        K: The keys, (d_k, T, N).
        V: The values, (d_v, T, N).
        causal: Add the causal mask M (query i sees keys j ≤ i only).

    Returns:
        O (d_v, T, N) and the attention weights A (T, T, N), A[i, j, n] the weight of key j for query i.
    """
    d_k, steps, count = Q.shape
    mask = causal_mask(steps, Q.dtype) if causal else np.zeros((steps, steps), Q.dtype)
    output = np.empty((V.shape[0], steps, count), V.dtype)
    A = np.empty((steps, steps, count), Q.dtype)
    for n in range(count):
        scores = Q[:, :, n].T @ K[:, :, n] / math.sqrt(d_k) + mask  # S = QᵀK/√d_k + M
        A[:, :, n] = softmax(scores, axis=1)  # over the keys of each query
        output[:, :, n] = V[:, :, n] @ A[:, :, n].T  # O = V Aᵀ
    return output, A


def attention_loop_backward(
    G: np.ndarray, Q: np.ndarray, K: np.ndarray, V: np.ndarray, A: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The gradients of :func:`attention_loop`, one sequence at a time, as the formulas (the reference).

    With G = ∇_O L (d_v, T), the softmax's Jacobian applied row by row, and the mask a constant:

    $$\nabla_{\mathbf{V}} L = \mathbf{G}\mathbf{A}, \quad \nabla_{\mathbf{A}} L = \mathbf{G}^\top\mathbf{V}, \quad
    \nabla_{\mathbf{S}} L = \mathbf{A} \odot \big(\nabla_{\mathbf{A}} L
    - (\nabla_{\mathbf{A}} L \odot \mathbf{A})\,\mathbf{1}\mathbf{1}^\top\big), \quad
    \nabla_{\mathbf{Q}} L = \frac{\mathbf{K}\,(\nabla_{\mathbf{S}} L)^\top}{\sqrt{d_k}}, \quad
    \nabla_{\mathbf{K}} L = \frac{\mathbf{Q}\,\nabla_{\mathbf{S}} L}{\sqrt{d_k}}$$

    Args:
        G: ∇_O L, (d_v, T, N).
        Q: The queries of the forward pass, (d_k, T, N).
        K: The keys, (d_k, T, N).
        V: The values, (d_v, T, N).
        A: The attention weights of the forward pass, (T, T, N).

    Returns:
        ∇_Q L, ∇_K L, ∇_V L, of the shapes of Q, K and V.
    """
    scale = 1.0 / math.sqrt(Q.shape[0])
    dQ, dK, dV = np.empty_like(Q), np.empty_like(K), np.empty_like(V)
    for n in range(Q.shape[2]):
        weights = A[:, :, n]
        dV[:, :, n] = G[:, :, n] @ weights  # ∇_V L = G A
        dA = G[:, :, n].T @ V[:, :, n]  # ∇_A L = Gᵀ V
        dS = weights * (dA - np.sum(dA * weights, axis=1, keepdims=True))  # each row through the softmax
        dQ[:, :, n] = scale * K[:, :, n] @ dS.T  # ∇_Q L = K (∇_S L)ᵀ / √d_k
        dK[:, :, n] = scale * Q[:, :, n] @ dS  # ∇_K L = Q ∇_S L / √d_k
    return dQ, dK, dV


def attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`attention_loop` for every sequence at once, in the row layout: position t of a sequence is row t.

    With Q_r = Qᵀ, the same formulas read S = Q_r K_rᵀ/√d_k + M, A = softmax over the rows' keys, O_r = A V_r
    (= (V Aᵀ)ᵀ): batched matrix products over the leading axes.

    Args:
        Q: The queries, (…, T, d_k) — e.g. (b, h, T, d_k): b sequences, h heads.
        K: The keys, (…, T, d_k).
        V: The values, (…, T, d_v).
        causal: Add the causal mask.

    Returns:
        O (…, T, d_v) and A (…, T, T).
    """
    scores = Q @ np.swapaxes(K, -1, -2)  # (…, T, T)
    scores *= 1.0 / math.sqrt(Q.shape[-1])
    if causal:
        scores += causal_mask(Q.shape[-2], scores.dtype)
    A = softmax(scores, axis=-1)
    return A @ V, A


def attention_backward(
    G: np.ndarray, Q: np.ndarray, K: np.ndarray, V: np.ndarray, A: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`attention_loop_backward` for every sequence at once, in the row layout of :func:`attention`.

    Args:
        G: ∇_O L, (…, T, d_v).
        Q: The queries of the forward pass, (…, T, d_k).
        K: The keys, (…, T, d_k).
        V: The values, (…, T, d_v).
        A: The attention weights of the forward pass, (…, T, T).

    Returns:
        ∇_Q L, ∇_K L, ∇_V L, of the shapes of Q, K and V.
    """
    dV = np.swapaxes(A, -1, -2) @ G  # (G A)ᵀ = Aᵀ G_r
    dS = G @ np.swapaxes(V, -1, -2)  # ∇_A L = Gᵀ V, row by row
    dS -= np.sum(dS * A, axis=-1, keepdims=True)
    dS *= A  # ∇_S L = A ⊙ (∇_A L − row sums of ∇_A L ⊙ A)
    dS *= 1.0 / math.sqrt(Q.shape[-1])
    return dS @ K, np.swapaxes(dS, -1, -2) @ Q, dV


def _sequences(input: np.ndarray, features: int) -> np.ndarray:
    """``input`` checked as a batch of sequences (d, T, b) of ``features`` rows, as a sequence layer reads it."""
    X = _checks.features_first("input", input, rows=features, finite=False)
    if X.ndim != 3:
        raise ValueError(f"input must be a batch of sequences (d, T, b), received shape {X.shape}")
    return X


def _sequence_shape(name: str, shape: Shape, features: int) -> tuple[int, int]:
    """(d, T) of one input sample of a sequence layer, checked: ``features`` rows and T ≥ 1 positions."""
    if len(shape) != 2 or shape[0] != features or shape[1] < 1:
        raise ValueError(f"{name} expects sequences of shape ({features}, T), received {tuple(shape)}")
    return shape[0], shape[1]


@LAYERS.register()
class MultiHeadSelfAttention(Composite):
    r"""Multi-head self-attention: h heads of scaled dot-product attention over one sequence, recombined.

    Forward, for one sequence X (d, T) and d_k = d / h; W_q, W_k, W_v, W_o are (d, d), with biases (the
    bias trick of :class:`~nablanet.Dense`, left out below):

    $$\mathbf{Q} = \mathbf{W}_q\mathbf{X},\ \mathbf{K} = \mathbf{W}_k\mathbf{X},\ \mathbf{V} = \mathbf{W}_v\mathbf{X},
    \qquad \mathbf{O}_j = \mathbf{V}_j\,\mathrm{softmax}\Big(\frac{\mathbf{Q}_j^\top\mathbf{K}_j}{\sqrt{d_k}}
    + \mathbf{M}\Big)^{\!\top}, \qquad \mathbf{Y} = \mathbf{W}_o \begin{bmatrix}\mathbf{O}_1\\ \vdots\\
    \mathbf{O}_h\end{bmatrix}$$

    where Q_j is rows j·d_k … (j+1)·d_k − 1 of Q (head j), and M the causal mask. Backward: through W_o (a
    Dense layer), through each head's attention (:func:`attention_loop_backward`'s formulas), then through
    the projections: ∇_X L = W_qᵀ ∇_Q L + W_kᵀ ∇_K L + W_vᵀ ∇_V L.

    W_q, W_k and W_v are stacked as one (3d, d) Dense layer (one product instead of three); ``W_q``, ``W_k``,
    ``W_v`` and ``W_o`` are views of the weights. ``attention_maps`` holds the weights of the last forward
    pass, for pictures.

    Shapes: X (d, T, b) → Y (d, T, b).

    Args:
        d_model: d, the features of every position.
        heads: h, the number of heads; it divides d_model.
        causal: Mask the future (a position attends to itself and the positions before it).
        init: How the projections are drawn (see :class:`~nablanet.Dense`).
        rng (int | numpy.random.Generator | None): Seed or generator of the initial weights.
        dtype (numpy.float32 | numpy.float64): Of the weights.

    >>> layer = MultiHeadSelfAttention(8, 2, rng=0)
    >>> layer.forward(np.ones((8, 5, 3))).shape
    (8, 5, 3)
    >>> layer.attention_maps.shape  # (h, T queries, T keys, b)
    (2, 5, 5, 3)
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        *,
        causal: bool = True,
        init: str = "glorot_uniform",
        rng=None,
        dtype=np.float64,
    ):
        d_model = _checks.positive_int("d_model", d_model)
        self.heads = _checks.positive_int("heads", heads)
        if d_model % self.heads:
            raise ValueError(f"heads must divide d_model = {d_model}, received: {heads!r}")
        self.causal = _checks.one_of("causal", causal, (True, False))
        rng = np.random.default_rng(rng)
        super().__init__(
            [
                Dense(d_model, 3 * d_model, init=init, rng=rng, dtype=dtype),
                Dense(d_model, d_model, init=init, rng=rng, dtype=dtype),
            ]
        )
        self.d_model, self.init = d_model, init
        self._cache: tuple[np.ndarray, ...] | None = None

    @property
    def projections(self) -> Layer:
        """The Dense layer of [W_q; W_k; W_v], (3d, d + 1) with the biases."""
        return self.layers[0]

    @property
    def W_q(self) -> np.ndarray:
        """W_q, (d, d): a view of the stacked projection."""
        return self.layers[0].W[: self.d_model]  # type: ignore[attr-defined]

    @property
    def W_k(self) -> np.ndarray:
        """W_k, (d, d): a view of the stacked projection."""
        return self.layers[0].W[self.d_model : 2 * self.d_model]  # type: ignore[attr-defined]

    @property
    def W_v(self) -> np.ndarray:
        """W_v, (d, d): a view of the stacked projection."""
        return self.layers[0].W[2 * self.d_model :]  # type: ignore[attr-defined]

    @property
    def W_o(self) -> np.ndarray:
        """W_o, (d, d): the output projection's weights."""
        return self.layers[1].W  # type: ignore[attr-defined]

    @property
    def attention_maps(self) -> np.ndarray | None:
        """The attention weights of the last forward pass, (h, T, T, b): [j, i, k, n] is the weight head j of
        sequence n gives key k when it answers query i (each row sums to 1). None before a forward pass."""
        return None if self._cache is None else self._cache[3].transpose(1, 2, 3, 0)

    def forward(self, input: np.ndarray) -> np.ndarray:
        """Y (d, T, b) for X (d, T, b).

        Args:
            input: X, a batch of sequences (d, T, b).
        """
        X = _sequences(input, self.d_model)
        _, steps, batch = X.shape
        heads, d_k = self.heads, self.d_model // self.heads
        Z = self.layers[0].forward(X)  # [Q; K; V], (3d, T, b)
        rows = Z.transpose(2, 1, 0).reshape(batch, steps, 3, heads, d_k)  # (b, T, 3, h, d_k)
        # each (b, h, T, d_k): the rows of every head, copied together (matmul runs 1.4x faster on contiguous stacks)
        Q, K, V = np.ascontiguousarray(rows.transpose(2, 0, 3, 1, 4))
        heads_output, A = attention(Q, K, V, self.causal)  # (b, h, T, d_k), (b, h, T, T)
        self._cache = (Q, K, V, A)
        heads_stacked = np.ascontiguousarray(heads_output.transpose(2, 0, 1, 3)).reshape(steps, batch, self.d_model)
        self.input = X
        self.output = self.layers[1].forward(heads_stacked.transpose(2, 0, 1))  # W_o [O_1; …; O_h]
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_X L (d, T, b) from ∇_Y L (d, T, b); the weights' gradients go to the projections.

        Args:
            output_gradient: ∇_Y L, (d, T, b).
            learning_rate: η of the plain SGD step of every weight; None: store the gradients only.
        """
        last_pass(self, output_gradient)
        assert self._cache is not None
        Q, K, V, A = self._cache
        _, steps, batch = output_gradient.shape
        heads, d_k = self.heads, self.d_model // self.heads
        stacked_gradient = self.layers[1].backward(output_gradient, learning_rate)  # (d, T, b)
        heads_gradient = stacked_gradient.reshape(heads, d_k, steps, batch).transpose(3, 0, 2, 1)  # (b, h, T, d_k)
        dO = np.ascontiguousarray(heads_gradient)
        gradients = attention_backward(dO, Q, K, V, A)
        dZ = np.empty((steps, batch, 3, heads, d_k), output_gradient.dtype)
        for part, gradient in enumerate(gradients):
            dZ[:, :, part] = gradient.transpose(2, 0, 1, 3)
        return self.layers[0].backward(dZ.reshape(steps, batch, 3 * self.d_model).transpose(2, 0, 1), learning_rate)

    def build(self, input_shape: Shape) -> Shape:
        """(d, T) for sequences (d, T).

        Args:
            input_shape: (d_model, T), one sequence.
        """
        _sequence_shape("MultiHeadSelfAttention", input_shape, self.d_model)
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            "d_model": self.d_model,
            "heads": self.heads,
            "causal": self.causal,
            "init": self.init,
            "dtype": self.W_o.dtype.name,
        }


@LAYERS.register()
class PositionalEmbedding(Layer):
    r"""Learned positional embeddings, added to a sequence: one trained vector p_t per position t.

    Forward and backward, for X (d, T, b) with T ≤ the context length, P (d, context) and P_T its first T
    columns:

    $$\mathbf{Y}^{(i)} = \mathbf{X}^{(i)} + \mathbf{P}_{T}, \qquad
    \nabla_{\mathbf{X}} L = \nabla_{\mathbf{Y}} L, \qquad
    \nabla_{\mathbf{P}_T} L = \frac{1}{b}\sum_i \nabla_{\mathbf{Y}^{(i)}} L_i$$

    (the columns of P past T get no gradient). P starts as N(0, 1), as an Embedding's table.

    Args:
        context: The longest sequence, in positions (a positive integer): the columns of P.
        d_model: d, the features of every position.
        rng (int | numpy.random.Generator | None): Seed or generator of the initial P.
        dtype (numpy.float32 | numpy.float64): Of P.

    >>> layer = PositionalEmbedding(4, 3, rng=0)
    >>> Y = layer.forward(np.zeros((3, 2, 5)))  # T = 2 positions, b = 5 sequences
    >>> bool(np.array_equal(Y[:, :, 0], layer.P[:, :2]))
    True
    """

    def __init__(self, context: int, d_model: int, *, rng=None, dtype=np.float64):
        self.context = _checks.positive_int("context", context)
        self.d_model = _checks.positive_int("d_model", d_model)
        dtype = _checks.float_dtype("dtype", dtype)
        table = zeros((self.d_model, self.context), dtype)
        if table.flags.writeable:  # not inside shapes_only()
            table[...] = np.random.default_rng(rng).standard_normal(table.shape)
        self._parameters = [Parameter("positions", table, zeros(table.shape, dtype))]

    @property
    def P(self) -> np.ndarray:
        """P, (d, context): column t is the vector added at position t."""
        return self._parameters[0].value

    def parameters(self) -> list[Parameter]:
        return self._parameters

    def forward(self, input: np.ndarray) -> np.ndarray:
        """Y = X + P_T at every sequence, X (d, T, b) with T ≤ context.

        Args:
            input: X, a batch of sequences (d, T, b).
        """
        X = _sequences(input, self.d_model)
        self._check_length(X.shape[1])
        self.input = X
        self.output = X + self.P[:, : X.shape[1], None]
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """∇_X L = ∇_Y L; ∇_P L, the mean over the b sequences of their gradients, goes to P's gradient.

        Args:
            output_gradient: ∇_Y L, (d, T, b).
            learning_rate: η of the plain SGD step P ← P − η ∇_P L; None: store the gradient only.
        """
        input, _ = last_pass(self, output_gradient)
        gradient = self._parameters[0].gradient
        steps = input.shape[1]
        gradient[:, steps:] = 0.0
        np.mean(output_gradient, axis=2, out=gradient[:, :steps])
        sgd_step(self, learning_rate)
        return output_gradient

    def _check_length(self, steps: int) -> None:
        if steps > self.context:
            raise ValueError(
                f"sequences of {steps} positions are longer than the context of {self.context}: "
                f"cut them to at most {self.context}"
            )

    def build(self, input_shape: Shape) -> Shape:
        """(d, T) for sequences (d, T), T ≤ context.

        Args:
            input_shape: (d_model, T), one sequence.
        """
        _, steps = _sequence_shape("PositionalEmbedding", input_shape, self.d_model)
        self._check_length(steps)
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {"context": self.context, "d_model": self.d_model, "dtype": self.P.dtype.name}


@LAYERS.register()
class TransformerBlock(Composite):
    r"""A pre-norm transformer block: self-attention, then a per-position MLP, each in a residual branch.

    Forward, X (d, T, b) → Y (d, T, b), with LN :class:`~nablanet.LayerNorm` over the features of every
    position and MLP(x) = W_2 ReLU(W_1 x + b_1) + b_2 (W_1 (hidden, d), W_2 (d, hidden)) at every position:

    $$\mathbf{H} = \mathbf{X} + \mathrm{MHA}(\mathrm{LN}_1(\mathbf{X})), \qquad
    \mathbf{Y} = \mathbf{H} + \mathrm{MLP}(\mathrm{LN}_2(\mathbf{H}))$$

    Backward: through the two :class:`~nablanet.core.layers.Residual` branches in reverse, each adding its
    identity path: ∇_H L = ∇_Y L + (∂ MLP∘LN_2/∂H)ᵀ ∇_Y L, then ∇_X L = ∇_H L + (∂ MHA∘LN_1/∂X)ᵀ ∇_H L.

    It is a composite of two Residual layers: ``[LN_1, MHA]`` and ``[LN_2, Dense, ReLU, Dense]``;
    ``attention`` is its MultiHeadSelfAttention (whose ``attention_maps`` the pictures read).

    Args:
        d_model: d, the features of every position.
        heads: h, the attention heads; it divides d_model.
        hidden: The MLP's hidden units (default 4·d_model).
        causal: Mask the future in the attention.
        init: How the attention's and the MLP's weights are drawn (see :class:`~nablanet.Dense`).
        rng (int | numpy.random.Generator | None): Seed or generator of the initial weights.
        dtype (numpy.float32 | numpy.float64): Of the weights.

    >>> block = TransformerBlock(8, 2, rng=0)
    >>> block.forward(np.ones((8, 5, 3))).shape
    (8, 5, 3)
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        *,
        hidden: int | None = None,
        causal: bool = True,
        init: str = "glorot_uniform",
        rng=None,
        dtype=np.float64,
    ):
        d_model = _checks.positive_int("d_model", d_model)
        hidden = _checks.positive_int("hidden", 4 * d_model if hidden is None else hidden)
        rng = np.random.default_rng(rng)
        attention = MultiHeadSelfAttention(d_model, heads, causal=causal, init=init, rng=rng, dtype=dtype)
        mlp = [
            Dense(d_model, hidden, init=init, rng=rng, dtype=dtype),
            ReLU(),
            Dense(hidden, d_model, init=init, rng=rng, dtype=dtype),
        ]
        super().__init__(
            [
                Residual([LayerNorm(d_model, dtype=dtype), attention]),
                Residual([LayerNorm(d_model, dtype=dtype), *mlp]),
            ]
        )
        self.d_model, self.hidden, self.init = d_model, hidden, init

    @property
    def attention(self) -> MultiHeadSelfAttention:
        """The block's MultiHeadSelfAttention layer."""
        return self.layers[0].layers[1]  # type: ignore[attr-defined]

    def build(self, input_shape: Shape) -> Shape:
        """(d, T) for sequences (d, T).

        Args:
            input_shape: (d_model, T), one sequence.
        """
        _sequence_shape("TransformerBlock", input_shape, self.d_model)
        super().build(input_shape)
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        attention = self.attention
        return {
            "d_model": self.d_model,
            "heads": attention.heads,
            "hidden": self.hidden,
            "causal": attention.causal,
            "init": self.init,
            "dtype": attention.W_o.dtype.name,
        }
