r"""Optimizers: objects that own their state and update a list of :class:`~nablanet.Parameter` s.

Every optimizer keeps one state entry per parameter (momentum, Adam moments), in the order of
``model.parameters()``, and is registered in ``OPTIMIZERS`` under the name the command line uses.
``weight_decay`` λ adds L2 decay to the weights — never to a bias column — as the gradient term λ·W
(SGD, Adam) or, for AdamW, as the decoupled step W ← W − η λ W.

``clip_norm`` c clips the gradients by their global norm before every step (the recurrent networks' guard
against exploding gradients): with g the gradients of all the parameters as one vector,

$$\lVert g \rVert = \sqrt{\textstyle\sum_{p} \lVert \nabla_p L \rVert^2}, \qquad
g \leftarrow g \cdot \min\!\Big(1, \frac{c}{\lVert g \rVert}\Big)$$

— the direction is kept, the length is at most c. The norm before clipping is kept in ``gradient_norm``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _checks, ops
from .parameter import Parameter
from .registry import Registry
from .schedules import Constant

OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")


def _flush_subnormals(array: np.ndarray) -> None:
    """Set entries below the smallest normal float to 0, in place.

    Adam's moments decay geometrically where gradients vanish and pass through the subnormal range,
    where CPU arithmetic is many times slower; NumPy cannot switch on flush-to-zero, so the optimizer
    does it every ``FLUSH_EVERY`` steps. The change to any result is below 1e-38 (float32).
    """
    array[np.abs(array) < np.finfo(array.dtype).tiny] = 0


def clip_by_global_norm(parameters: Sequence[Parameter], clip_norm: float) -> float:
    """Scale every stored gradient by min(1, c / ‖g‖), in place, with ‖g‖ the norm of all of them together;
    return ‖g‖ (before the scaling).

    Args:
        parameters: The parameters whose ``gradient`` arrays are clipped together.
        clip_norm: c, the largest global norm left (a positive number).
    """
    norm = math.sqrt(sum(ops.squared_norm(parameter.gradient) for parameter in parameters))
    if norm > clip_norm:
        scale = clip_norm / norm  # a Python float: float32 gradients stay float32
        for parameter in parameters:
            parameter.gradient *= scale
    return norm


class Optimizer:
    """Base class: ``step(parameters)`` applies one update from each parameter's stored gradient.

    ``learning_rate`` is a number or a schedule (``epoch → rate``); the trainer calls
    ``start_epoch(epoch)`` so that a schedule takes effect.
    """

    def __init__(self, learning_rate=0.01, weight_decay: float = 0.0, clip_norm: float | None = None):
        self.schedule = learning_rate if callable(learning_rate) else Constant(learning_rate)
        self.learning_rate = float(self.schedule(0))
        self.weight_decay = _checks.non_negative_float("weight_decay", weight_decay)
        self.clip_norm = None if clip_norm is None else _checks.positive_float("clip_norm", clip_norm)
        self.gradient_norm: float | None = None  # ‖g‖ of the last step, before clipping (with clip_norm only)
        self.state: list[dict[str, np.ndarray]] = []
        self.iterations = 0
        self._scratch: list[np.ndarray] = []  # one work array per parameter: no allocation per step
        self._owners: list[int] | None = None  # which parameters the state belongs to

    def start_epoch(self, epoch: int) -> None:
        self.learning_rate = float(self.schedule(epoch))  # a Python float: float32 arithmetic stays float32

    @property
    def name(self) -> str:
        """The registry name of this optimizer ("sgd", "adam", …)."""
        return OPTIMIZERS.name_of(type(self))

    def step(self, parameters: Sequence[Parameter]) -> None:
        """Apply one update to ``parameters`` (always the same ones: one optimizer per model)."""
        owners = [id(parameter) for parameter in parameters]
        if self._owners is None:
            self._owners = owners
        elif owners != self._owners:
            raise ValueError(
                f"this {self.name} optimizer holds the state of another model's {len(self._owners)} parameters, "
                f"received {len(parameters)} others: use one optimizer per model"
            )
        if not self.state:
            self.state = [self.initial_state(parameter.value) for parameter in parameters]
        if len(self._scratch) != len(parameters):
            self._scratch = [np.empty_like(parameter.value) for parameter in parameters]
        self.iterations += 1
        if self.clip_norm is not None:
            self.gradient_norm = clip_by_global_norm(parameters, self.clip_norm)
        for parameter, state, scratch in zip(parameters, self.state, self._scratch, strict=True):
            self.update(parameter, state, scratch)

    def initial_state(self, value: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def update(self, parameter, state, scratch) -> None:
        """Update ``parameter.value`` in place; ``scratch`` is a work array of the same shape."""
        raise NotImplementedError

    def _l2_gradient(self, parameter) -> np.ndarray:
        """∇_W L + λ W on the decayed entries (in place on the stored gradient)."""
        if self.weight_decay:
            index = parameter.decay_index
            parameter.gradient[index] += self.weight_decay * parameter.value[index]
        return parameter.gradient

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments other than the learning rate (see ``schedule`` for that)."""
        return {"weight_decay": self.weight_decay, "clip_norm": self.clip_norm}


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum μ; g = ∇_W L (+ λ W for weight decay).

    $$\text{plain: } W \leftarrow W - \eta g, \qquad
    \text{momentum: } v \leftarrow \mu v - \eta g,\; W \leftarrow W + v, \qquad
    \text{Nesterov: } v \leftarrow \mu v - \eta g,\; W \leftarrow W + \mu v - \eta g$$

    Args:
        learning_rate (float | Schedule): η, or a schedule giving η for each epoch (StepDecay, CosineDecay).
        momentum: μ, in [0, 1); 0 is plain SGD.
        nesterov: Nesterov's momentum (needs a momentum > 0).
        weight_decay: λ, L2 weight decay added to the gradient (the bias column is not decayed).
        clip_norm: c, the largest global norm of the gradients (see the module); None: no clipping.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
    ):
        super().__init__(learning_rate, weight_decay, clip_norm)
        self.momentum = _checks.fraction("momentum", momentum)
        if nesterov and not self.momentum:
            raise ValueError("nesterov=True needs a momentum > 0")
        self.nesterov = bool(nesterov)

    def initial_state(self, value):
        return {"velocity": np.zeros_like(value)} if self.momentum else {}

    def update(self, parameter, state, scratch):
        step = np.multiply(self._l2_gradient(parameter), -self.learning_rate, out=scratch)  # −η g
        if not self.momentum:
            parameter.value += step
            return
        velocity = state["velocity"]
        velocity *= self.momentum
        velocity += step
        if self.nesterov:
            step += self.momentum * velocity
            parameter.value += step
        else:
            parameter.value += velocity

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015). With t the step number and g = ∇_W L (+ λ W for L2 decay):

    $$m \leftarrow \beta_1 m + (1 - \beta_1) g, \qquad v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \qquad
    W \leftarrow W - \eta\,\frac{\hat m}{\sqrt{\hat v} + \epsilon}, \quad
    \hat m = \frac{m}{1 - \beta_1^t},\; \hat v = \frac{v}{1 - \beta_2^t}$$

    Args:
        learning_rate (float | Schedule): η, or a schedule giving η for each epoch (StepDecay, CosineDecay).
        beta1: β₁, the decay of the running mean m of the gradients.
        beta2: β₂, the decay of the running mean v of their squares.
        epsilon: ε, added to √v̂ so that the step stays finite.
        weight_decay: λ, L2 weight decay added to the gradient (the bias column is not decayed).
        clip_norm: c, the largest global norm of the gradients (see the module); None: no clipping.
    """

    decoupled = False
    FLUSH_EVERY = 50

    def __init__(
        self,
        learning_rate=0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
    ):
        super().__init__(learning_rate, weight_decay, clip_norm)
        self.beta1 = _checks.fraction("beta1", beta1)
        self.beta2 = _checks.fraction("beta2", beta2)
        self.epsilon = _checks.positive_float("epsilon", epsilon)

    def initial_state(self, value):
        return {"m": np.zeros_like(value), "v": np.zeros_like(value)}

    def update(self, parameter, state, scratch):
        if self.decoupled:
            gradient = parameter.gradient
            index = parameter.decay_index
            parameter.value[index] *= 1.0 - self.learning_rate * self.weight_decay
        else:
            gradient = self._l2_gradient(parameter)
        m, v = state["m"], state["v"]
        t = self.iterations
        # η m̂/(√v̂ + ε) = η √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m/(√v + ε √(1 − β₂ᵗ)): one scalar for both corrections.
        # The scalars are Python floats: a NumPy float64 scalar would make each float32 pass compute in float64
        # and cast back (NEP 50), three times slower
        correction = math.sqrt(1 - self.beta2**t)
        step = -self.learning_rate * correction / (1 - self.beta1**t)
        epsilon_hat = self.epsilon * correction
        ops.adam_update(
            parameter.value,
            gradient,
            m,
            v,
            scratch,
            beta1=self.beta1,
            beta2=self.beta2,
            step=step,
            epsilon_hat=epsilon_hat,
        )
        if t % self.FLUSH_EVERY == 0:
            _flush_subnormals(m)
            _flush_subnormals(v)

    def get_config(self):
        return {**super().get_config(), "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon}


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019):

    W ← W − η λ W (weights only, not the bias), then the Adam step with g = ∇_W L.

    Args:
        learning_rate (float | Schedule): η, or a schedule giving η for each epoch (StepDecay, CosineDecay).
        beta1: β₁, the decay of the running mean m of the gradients.
        beta2: β₂, the decay of the running mean v of their squares.
        epsilon: ε, added to √v̂ so that the step stays finite.
        weight_decay: λ, the decoupled weight decay (weights only, not the bias).
        clip_norm: c, the largest global norm of the gradients (see the module); None: no clipping.
    """

    decoupled = True

    def __init__(
        self,
        learning_rate=0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.01,
        clip_norm: float | None = None,
    ):
        super().__init__(learning_rate, beta1, beta2, epsilon, weight_decay, clip_norm)
