"""Learning-rate schedules: callables mapping a 0-based epoch number to a learning rate."""

from __future__ import annotations

import math

from . import _checks


class Constant:
    """η(epoch) = η₀."""

    def __init__(self, learning_rate: float):
        self.learning_rate = _checks.positive_float("learning_rate", learning_rate)

    def __call__(self, epoch: int) -> float:
        return self.learning_rate

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate}


class StepDecay:
    """η(epoch) = η₀ · factor^⌊epoch / every⌋ — multiply by ``factor`` every ``every`` epochs.

    >>> [StepDecay(1.0, factor=0.5, every=2)(epoch) for epoch in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, learning_rate: float, *, factor: float = 0.1, every: int = 10):
        self.learning_rate = _checks.positive_float("learning_rate", learning_rate)
        self.factor = _checks.positive_float("factor", factor)
        self.every = _checks.positive_int("every", every)

    def __call__(self, epoch: int) -> float:
        return self.learning_rate * self.factor ** (epoch // self.every)

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate, "factor": self.factor, "every": self.every}


class CosineDecay:
    """η(epoch) = η_min + ½ (η₀ − η_min)(1 + cos(π · epoch / epochs)), reaching η_min at ``epochs``.

    >>> [round(CosineDecay(1.0, epochs=4)(epoch), 3) for epoch in range(5)]
    [1.0, 0.854, 0.5, 0.146, 0.0]
    """

    def __init__(self, learning_rate: float, *, epochs: int, minimum: float = 0.0):
        self.learning_rate = _checks.positive_float("learning_rate", learning_rate)
        self.epochs = _checks.positive_int("epochs", epochs)
        if not 0 <= minimum <= self.learning_rate:
            raise ValueError(f"minimum must lie in [0, learning_rate], received: {minimum!r}")
        self.minimum = float(minimum)

    def __call__(self, epoch: int) -> float:
        progress = min(epoch, self.epochs) / self.epochs
        return self.minimum + 0.5 * (self.learning_rate - self.minimum) * (1 + math.cos(math.pi * progress))

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate, "epochs": self.epochs, "minimum": self.minimum}


SCHEDULES = {"constant": Constant, "step": StepDecay, "cosine": CosineDecay}
