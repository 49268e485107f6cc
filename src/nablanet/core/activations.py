"""Activation layers. Each acts column by column on a (features, b) batch and has no parameters.

For an element-wise activation a = f(z):  forward A = f(Z),  backward ∇_Z L = ∇_A L ⊙ f′(Z).
Softmax is not element-wise: its backward multiplies each column by that sample's Jacobian.

The element-wise ones are registered in ``ACTIVATIONS`` under the names the command line uses for
hidden layers; every one is a layer, registered in ``LAYERS`` as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _checks, ops
from .layers import LAYERS, Layer, SameShape, last_pass
from .registry import Registry

ACTIVATIONS: Registry[type[Layer]] = Registry("activation")


class Elementwise(SameShape):
    """Base of the element-wise activations: subclasses give ``function`` and ``derivative`` (ReLU gives its
    whole ``backward`` instead: the product with its mask, in one pass)."""

    def function(self, input: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def derivative(self, input: np.ndarray, output: np.ndarray) -> np.ndarray:
        """f′(Z), given Z and A = f(Z) (whichever is cheaper to use)."""
        raise NotImplementedError

    def forward(self, input: np.ndarray) -> np.ndarray:
        self.input = _checks.activations("input", input, finite=False)  # (features, b) or (features, T, b)
        self.output = self.function(input)
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, output = last_pass(self, output_gradient)
        return output_gradient * self.derivative(input, output)


@ACTIVATIONS.register("relu")
@LAYERS.register()
class ReLU(Elementwise):
    r"""Rectified linear unit, element by element; (features, b) in and out.

    $$a = \max(0, z), \qquad \nabla_z L = \nabla_a L \odot \mathbb{1}[z > 0]$$
    """

    def function(self, input):
        return np.maximum(input, 0)

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        input, _ = last_pass(self, output_gradient)
        return ops.relu_backward(output_gradient, input)  # ∇_A L ⊙ 𝟙[Z > 0]


@ACTIVATIONS.register("leaky_relu")
@LAYERS.register()
class LeakyReLU(Elementwise):
    r"""Leaky ReLU with slope α for negative inputs, element by element.

    $$a = \begin{cases} z & z > 0 \\ \alpha z & z \le 0 \end{cases}, \qquad
    \nabla_z L = \nabla_a L \odot \begin{cases} 1 & z > 0 \\ \alpha & z \le 0 \end{cases}$$

    Args:
        alpha: α, the slope for negative inputs, in [0, 1).
    """

    def __init__(self, alpha: float = 0.01):
        self.alpha = _checks.fraction("alpha", alpha)

    def function(self, input):
        return np.where(input > 0, input, self.alpha * input)

    def derivative(self, input, output):
        return np.where(input > 0, 1.0, self.alpha).astype(input.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


@ACTIVATIONS.register("sigmoid")
@LAYERS.register()
class Sigmoid(Elementwise):
    r"""Logistic sigmoid, element by element, computed without overflow for large |z|.

    $$a = \sigma(z) = \frac{1}{1 + e^{-z}} = \frac{e^{\min(z, 0)}}{1 + e^{-|z|}}, \qquad
    \nabla_z L = \nabla_a L \odot a\,(1 - a)$$
    """

    def function(self, input):
        return sigmoid(input)

    def derivative(self, input, output):
        return output * (1.0 - output)


@ACTIVATIONS.register("tanh")
@LAYERS.register()
class Tanh(Elementwise):
    r"""Hyperbolic tangent, element by element.

    $$a = \tanh(z), \qquad \nabla_z L = \nabla_a L \odot (1 - a^2)$$
    """

    def function(self, input):
        return np.tanh(input)

    def derivative(self, input, output):
        return 1.0 - output * output


def sigmoid(scores: np.ndarray) -> np.ndarray:
    r"""The logistic sigmoid, element by element, without overflow for large |z|:

    $$\sigma(z) = \frac{1}{1 + e^{-z}} = \frac{e^{\min(z, 0)}}{1 + e^{-|z|}}$$

    >>> sigmoid(np.array([[0.0], [-1000.0], [1000.0]])).ravel().tolist()
    [0.5, 0.0, 1.0]
    """
    exp_minus_abs = np.exp(-np.abs(scores))
    return np.where(scores >= 0, 1.0, exp_minus_abs) / (1.0 + exp_minus_abs)


def softmax(scores: np.ndarray) -> np.ndarray:
    r"""Column-wise softmax, max-shifted:

    $$a_k = \frac{e^{z_k - \max_j z_j}}{\sum_j e^{z_j - \max_j z_j}} = \frac{e^{z_k}}{\sum_j e^{z_j}}$$

    Shifting by the column maximum changes nothing mathematically and keeps e^(·) ≤ 1, so logits
    of 1000 do not overflow. ``scores``: (classes, b) → probabilities (classes, b).

    No probability is below the smallest normal float of the dtype, ε = 2.2e-308 (float64) or 1.2e-38
    (float32): where e^(z_k − max z) underflows — a logit gap above ~708 in float64, ~87 in float32 —
    a_k is ε instead of 0 or a subnormal number. That changes the sum of a column by at most k·ε, and
    it keeps the notebook's backward pass exact: the cross-entropy gradient −y/a stays finite, and the
    Jacobian still turns it into a − y, so a confidently wrong prediction still learns.

    Args:
        scores: Z, (classes, b), the scores of each sample in a column.

    >>> softmax(np.array([[1000.0], [1000.0]]))
    array([[0.5],
           [0.5]])
    >>> softmax(np.array([[0.0], [-1000.0]]))[1, 0] == np.finfo(np.float64).tiny
    np.True_
    """
    shifted = scores - scores.max(axis=0, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=0, keepdims=True)
    np.maximum(shifted, np.finfo(shifted.dtype).tiny, out=shifted)
    return shifted


def softmax_jacobian(a: np.ndarray) -> np.ndarray:
    r"""∇_z a for one sample: the (k, k) symmetric matrix

    $$\nabla_{\mathbf{z}}\mathbf{a} = \mathrm{diag}(\mathbf{a}) - \mathbf{a}\mathbf{a}^\top, \qquad
    \frac{\partial a_j}{\partial z_k} = a_j(\delta_{jk} - a_k)$$

    Args:
        a: The probabilities of one sample, (k,).
    """
    return np.diag(a) - np.outer(a, a)


@LAYERS.register()
class Softmax(SameShape):
    r"""Softmax activation over axis 0 (each column is one sample's class scores); Z, A: (classes, b).

    Forward, column by column and max-shifted (see :func:`softmax`); backward, for every column i with
    g⁽ⁱ⁾ = ∇_a⁽ⁱ⁾ L_i:

    $$\mathbf{A} = \mathrm{softmax}(\mathbf{Z}), \qquad
    \nabla_{\mathbf{z}^{(i)}} L_i = \nabla_{\mathbf{z}^{(i)}}\mathbf{a}^{(i)}\;\mathbf{g}^{(i)}
    = \big(\mathrm{diag}(\mathbf{a}^{(i)}) - \mathbf{a}^{(i)}\mathbf{a}^{(i)\top}\big)\,\mathbf{g}^{(i)}$$

    ``method`` chooses how the backward product is computed; all three give the same numbers:

    * ``"loop"`` — the notebook's way: build each sample's Jacobian and multiply, one column at a time.
    * ``"einsum"`` — the notebook's vectorised form: a (b, k, k) stack of Jacobians contracted by einsum.
    * ``"vectorized"`` (default) — the same product without building any Jacobian:
      (diag(a) − a aᵀ) g = a ⊙ g − a (aᵀ g) = a ⊙ (g − Σ_k a_k g_k).

    Args:
        method: "vectorized", "einsum" or "loop", how the backward product is computed.
    """

    METHODS = ("vectorized", "einsum", "loop")

    def __init__(self, method: str = "vectorized"):
        self.method = _checks.choice("method", method, self.METHODS)

    def forward(self, input: np.ndarray) -> np.ndarray:
        self.input = _checks.matrix("input", input, finite=False)
        self.output = softmax(input)
        return self.output

    def backward(self, output_gradient: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        _, a = last_pass(self, output_gradient)
        if self.method == "loop":
            input_gradient = np.empty_like(output_gradient)
            for i in range(a.shape[1]):
                input_gradient[:, i] = softmax_jacobian(a[:, i]) @ output_gradient[:, i]
            return input_gradient
        if self.method == "einsum":
            identity = np.eye(a.shape[0], dtype=a.dtype)
            jacobians = a.T[:, :, None] * (identity - a.T[:, None, :])  # (b, k, k): a_j (δ_jk − a_k)
            return np.einsum("ijk,ki->ji", jacobians, output_gradient)
        weighted_sum = np.einsum("kb,kb->b", a, output_gradient)
        return a * (output_gradient - weighted_sum)

    def get_config(self) -> dict[str, Any]:
        return {"method": self.method}
