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

from . import _checks
from .layers import LAYERS, Layer, last_pass, sgd_step
from .parameter import Parameter, zeros

Shape = tuple[int, ...]


def time_major(X: np.ndarray) -> np.ndarray:
    """The (T, b, features) array of a (features, T, b) batch of sequences: a view (no copy) of nablanet's own
    outputs, which lie in memory that way; a copy, made contiguous, of any other array."""
    return np.ascontiguousarray(X.transpose(1, 2, 0))


def features_first(array: np.ndarray) -> np.ndarray:
    """The (features, T, b) view of a (T, b, features) array: the public layout of a time-major one."""
    return array.transpose(2, 0, 1)


@LAYERS.register()
class Embedding(Layer):
    r"""A table of learned vectors, one per token: token ids (T, b) → their vectors (d, T, b).

    The table E is (V, d): row v is the vector of token v. With e_v the one-hot column of token v, the vector
    at position t of sequence i is x_{t,i} = Eᵀ e_{Y_{t,i}} — the product the notebooks would write, computed
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
        """∇_E L = (1/b) Σ_{t,i} e_{Y_{t,i}} ∇_{x_{t,i}} L_iᵀ: each position's gradient added into its token's row."""
        input, _ = last_pass(self, output_gradient)
        assert self._ids is not None  # set with input by forward
        gradient = self.table_gradient
        gradient[...] = 0.0
        rows = time_major(output_gradient).reshape(-1, self.dimension)  # (T·b, d), position by position
        np.add.at(gradient, self._ids.reshape(-1), rows)
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
