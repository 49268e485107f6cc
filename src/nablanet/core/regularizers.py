r"""Weight penalties: L1 and L2 regularisation of the weights (never of a bias), registered in ``REGULARIZERS``.

Training with a regularizer of rate λ minimises L + λ R(W) over every weight w of the model's layers:

* ``"l1"``: R(W) = Σ |w|, whose gradient λ sign(w) pulls every weight towards 0 by the same step, however
  small the weight — the weights the loss hardly needs end up near 0 (an almost sparse network; a gradient step
  seldom lands on 0 exactly, so they hover around it rather than become 0);
* ``"l2"``: R(W) = ½ Σ w², whose gradient λ w pulls each weight in proportion to its size — it keeps every
  weight small (weight decay, as TensorFlow Playground's L2).

A regularizer only adds λ ∇R to the weights' stored gradients, after the backward pass and before the
optimizer's step (:meth:`Regularizer.add_gradient`, which :func:`~nablanet.training.loop.fit` calls); the loss
that ``fit`` reports stays the data's loss L, so that runs of different λ are compared on the same figure.
The entries it touches are each parameter's ``decay_index`` (for a Dense layer, W̃ without its bias column).

>>> import numpy as np
>>> W = np.array([[1.0, -2.0], [0.0, 0.5]])
>>> round(L1(0.1).penalty(W), 6), round(L2(0.1).penalty(W), 6)
(0.35, 0.2625)
>>> L1(0.1).gradient(W).tolist(), L2(0.1).gradient(W).tolist()
([[0.1, -0.1], [0.0, 0.1]], [[0.1, -0.2], [0.0, 0.05]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _checks
from .parameter import Parameter
from .registry import Registry

REGULARIZERS: Registry[type[Regularizer]] = Registry("regularizer")


class Regularizer:
    """Base class: a penalty λ R(W) on weights and its gradient λ ∇R(W).

    Args:
        rate: λ, a number ≥ 0 (0: no penalty at all).
    """

    def __init__(self, rate: float = 0.001):
        self.rate = _checks.non_negative_float("rate", rate)

    @property
    def name(self) -> str:
        """The registry name of this regularizer ("l1", "l2")."""
        return REGULARIZERS.name_of(type(self))

    def penalty(self, W: np.ndarray) -> float:
        """λ R(W), a number."""
        raise NotImplementedError

    def gradient(self, W: np.ndarray) -> np.ndarray:
        """λ ∇R(W), of W's shape."""
        raise NotImplementedError

    def add_gradient(self, parameters: Sequence[Parameter]) -> None:
        """∇L + λ ∇R(W) on each parameter's weights (its ``decay_index``), in place on the stored gradient."""
        if self.rate:
            for parameter in parameters:
                index = parameter.decay_index
                parameter.gradient[index] += self.gradient(parameter.value[index])

    def total_penalty(self, parameters: Sequence[Parameter]) -> float:
        """λ R summed over the weights of ``parameters``: the term the regularizer adds to the objective."""
        return float(sum(self.penalty(parameter.value[parameter.decay_index]) for parameter in parameters))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.rate:g})"


@REGULARIZERS.register("l1")
class L1(Regularizer):
    r"""L1: the penalty and its (sub)gradient, with sign(0) = 0:

    $$\lambda R(\mathbf{W}) = \lambda \sum_{ij} |w_{ij}|, \qquad \lambda \nabla R = \lambda\,\mathrm{sign}(\mathbf{W})$$
    """

    def penalty(self, W: np.ndarray) -> float:
        return self.rate * float(np.abs(W).sum())

    def gradient(self, W: np.ndarray) -> np.ndarray:
        return self.rate * np.sign(W)


@REGULARIZERS.register("l2")
class L2(Regularizer):
    r"""L2: the penalty and its gradient:

    $$\lambda R(\mathbf{W}) = \frac{\lambda}{2} \sum_{ij} w_{ij}^2, \qquad \lambda \nabla R = \lambda \mathbf{W}$$
    """

    def penalty(self, W: np.ndarray) -> float:
        return 0.5 * self.rate * float(np.square(W).sum())

    def gradient(self, W: np.ndarray) -> np.ndarray:
        return self.rate * W


def resolve_regularizer(value) -> Regularizer | None:
    """A regularizer from ``fit``'s argument: None or "none" (no penalty), a registered name ("l1", "l2") at its
    default rate, or a :class:`Regularizer` object as it is."""
    if value is None or value == "none":
        return None
    if isinstance(value, str):
        return REGULARIZERS.lookup(value, argument="regularizer")()
    if not isinstance(value, Regularizer):
        raise TypeError(
            f"regularizer must be a nablanet regularizer (L1(rate), L2(rate)), one of {sorted(REGULARIZERS)} or "
            f"None, received {type(value).__name__}"
        )
    return value
