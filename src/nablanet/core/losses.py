"""Losses. Y and Ŷ are (classes, b) matrices, one column per sample.

Loss values are batch means L = (1/b) Σ_i L_i. Gradients are returned per sample, as the columns
∇_ŷ⁽ⁱ⁾ L_i: the 1/b of the batch mean is applied once, where Dense forms ∇_W L (the notebook's way).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _checks
from .activations import Softmax
from .layers import Layer

LOSSES = ("auto", "softmax_cce", "cce")


def guard(Yhat: np.ndarray) -> np.ndarray:
    """Ŷ with every entry below the smallest positive normal float of its dtype raised to it.

    This guards log(0) and y/0 for probabilities that do not come from :func:`~nablanet.softmax` (which
    never returns less than that) and changes nothing else: −y/ŷ stays exact for every normal ŷ, so the
    Softmax Jacobian turns it into ŷ − y, also where the logits are 800 apart. (Clipping at a larger ε,
    such as 1e-12, would flatten the loss there and make the gradient of a confidently wrong
    prediction vanish.) The floor costs −log(2.2e-308) ≈ 708 in float64 (87 in float32).
    """
    return np.maximum(Yhat, np.finfo(Yhat.dtype).tiny)


def _check_targets(Y: np.ndarray, Yhat: np.ndarray) -> None:
    _checks.matrix("Y", Y)
    _checks.matrix("Yhat", Yhat, finite=False)
    _checks.same_shape("Y", Y, "Yhat", Yhat)


def cce(Y: np.ndarray, Yhat: np.ndarray) -> float:
    r"""Categorical cross-entropy, batch mean:

    $$L = \frac{1}{b}\sum_i -\mathbf{y}^{(i)\top}\log\hat{\mathbf{y}}^{(i)}$$

    Args:
        Y: One-hot targets, (classes, b).
        Yhat: Ŷ, the predicted probabilities, (classes, b).

    >>> cce(np.array([[1.0], [0.0]]), np.array([[0.5], [0.5]]))
    0.6931471805599453
    """
    _check_targets(Y, Yhat)
    return float(-np.sum(Y * np.log(guard(Yhat))) / Y.shape[1])


def cce_gradient(Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
    r"""Per-sample gradient of the cross-entropy with respect to Ŷ, element by element:

    $$\nabla_{\hat{\mathbf{y}}^{(i)}} L_i = -\mathbf{y}^{(i)} / \hat{\mathbf{y}}^{(i)}$$

    Shape (classes, b), like Y. (The batch mean's 1/b is applied by Dense.)

    Args:
        Y: One-hot targets, (classes, b).
        Yhat: Ŷ, the predicted probabilities, (classes, b).
    """
    _check_targets(Y, Yhat)
    return -Y / guard(Yhat)


class CategoricalCrossEntropy:
    """The notebook's loss on probabilities Ŷ (the output of a Softmax layer): ``cce``, ``cce_gradient``."""

    def value(self, Y: np.ndarray, Yhat: np.ndarray) -> float:
        return cce(Y, Yhat)

    def gradient(self, Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
        return cce_gradient(Y, Yhat)

    def value_and_gradient(self, Y: np.ndarray, Yhat: np.ndarray) -> tuple[float, np.ndarray]:
        """Both at once, as the trainer needs them."""
        return cce(Y, Yhat), cce_gradient(Y, Yhat)


class SoftmaxCrossEntropy:
    r"""Softmax and cross-entropy fused, on raw scores Z (the input a final Softmax layer would get).

    The value with a stable log-softmax, and the gradient that Softmax.backward(cce_gradient) gives
    when Σ_k y_k = 1:

    $$L = \frac{1}{b}\sum_i -\mathbf{y}^{(i)\top}\log\mathrm{softmax}(\mathbf{z}^{(i)}), \qquad
    \nabla_{\mathbf{z}^{(i)}} L_i = \hat{\mathbf{y}}^{(i)} - \mathbf{y}^{(i)}$$

    Faster, and exact even where a probability underflows to 0: no −Y/Ŷ, no Jacobian.
    """

    def value(self, Y: np.ndarray, Z: np.ndarray) -> float:
        _check_targets(Y, Z)
        return self.value_and_gradient(Y, Z)[0]

    def gradient(self, Y: np.ndarray, Z: np.ndarray) -> np.ndarray:
        _check_targets(Y, Z)
        return self.value_and_gradient(Y, Z)[1]

    def value_and_gradient(self, Y: np.ndarray, Z: np.ndarray) -> tuple[float, np.ndarray]:
        """Both from one exponentiation: log ŷ = z − max z − log s and ŷ = e^(z − max z) / s.

        The trainer's hot path: no argument checks (``fit`` checked the data once).
        """
        shifted = Z - Z.max(axis=0, keepdims=True)
        exponentials = np.exp(shifted)
        sums = exponentials.sum(axis=0, keepdims=True)
        shifted -= np.log(sums)  # now log softmax(Z)
        value = float(-np.vdot(Y, shifted)) / Y.shape[1]
        exponentials /= sums  # now softmax(Z) = Ŷ
        exponentials -= Y
        return value, exponentials


Loss = CategoricalCrossEntropy | SoftmaxCrossEntropy


def resolve_loss(layers: Sequence[Layer], loss: str) -> tuple[list[Layer], Loss]:
    """Return (the layers the loss is computed after, the loss object) for a loss name.

    ``"auto"`` is ``"softmax_cce"`` (fused, on the scores before a final Softmax) when the model ends
    in Softmax, else ``"cce"``. ``"cce"`` is the notebook's path: Softmax layer, then ``cce``.
    """
    _checks.choice("loss", loss, LOSSES)
    layers = list(layers)
    ends_in_softmax = bool(layers) and isinstance(layers[-1], Softmax)
    if loss == "auto":
        loss = "softmax_cce" if ends_in_softmax else "cce"
    if loss == "softmax_cce":
        return (layers[:-1] if ends_in_softmax else layers), SoftmaxCrossEntropy()
    if not ends_in_softmax:
        raise ValueError("loss 'cce' needs probabilities: end the model with a Softmax layer")
    return layers, CategoricalCrossEntropy()
