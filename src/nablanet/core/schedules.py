"""Learning-rate schedules: callables mapping a 0-based epoch number to a learning rate.

Each is registered in ``SCHEDULES``; ``make_schedule(name, learning_rate, epochs)`` builds the one a
training run names, with that schedule's defaults for a run of ``epochs`` epochs.
"""

from __future__ import annotations

import math
from typing import Any

from . import _checks
from .registry import Registry


class Schedule:
    """Base class: ``schedule(epoch)`` is the learning rate of that epoch (counted from 0)."""

    learning_rate: float

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this schedule."""
        raise NotImplementedError

    @classmethod
    def for_epochs(cls, learning_rate: float, epochs: int) -> Schedule:
        """The schedule with its defaults, for a training run of ``epochs`` epochs.

        Args:
            learning_rate: η₀, the rate of the first epoch (a positive number).
            epochs: The training run's epochs (a positive integer).
        """
        return cls(learning_rate)  # type: ignore[call-arg]


SCHEDULES: Registry[type[Schedule]] = Registry("schedule")


def make_schedule(name: str, learning_rate: float, epochs: int) -> Schedule:
    """The schedule registered as ``name``, for a run of ``epochs`` epochs starting at ``learning_rate``.

    >>> make_schedule("cosine", 0.1, epochs=10)(10)
    0.0
    """
    return SCHEDULES.lookup(name, argument="schedule").for_epochs(learning_rate, epochs)


@SCHEDULES.register("constant")
class Constant(Schedule):
    """η(epoch) = η₀."""

    def __init__(self, learning_rate: float):
        self.learning_rate = _checks.positive_float("learning_rate", learning_rate)

    def __call__(self, epoch: int) -> float:
        return self.learning_rate

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate}


@SCHEDULES.register("step")
class StepDecay(Schedule):
    """η(epoch) = η₀ · factor^⌊epoch / every⌋ — multiply by ``factor`` every ``every`` epochs.

    Args:
        learning_rate: η₀, the rate of the first epochs.
        factor: What η is multiplied by every `every` epochs.
        every: The epochs between two steps.

    >>> [StepDecay(1.0, factor=0.5, every=2)(epoch) for epoch in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, learning_rate: float, *, factor: float = 0.1, every: int = 10):
        self.learning_rate = _checks.positive_float("learning_rate", learning_rate)
        self.factor = _checks.positive_float("factor", factor)
        self.every = _checks.positive_int("every", every)

    def __call__(self, epoch: int) -> float:
        return self.learning_rate * self.factor ** (epoch // self.every)

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "factor": self.factor, "every": self.every}


@SCHEDULES.register("cosine")
class CosineDecay(Schedule):
    """η(epoch) = η_min + ½ (η₀ − η_min)(1 + cos(π · epoch / epochs)), reaching η_min at ``epochs``.

    Args:
        learning_rate: η₀, the rate of epoch 0.
        epochs: The epoch at which η reaches η_min.
        minimum: η_min, the last rate.

    >>> [round(CosineDecay(1.0, epochs=4)(epoch), 3) for epoch in range(5)]
    [1.0, 0.854, 0.5, 0.146, 0.0]
    """

    def __init__(self, learning_rate: float, *, epochs: int, minimum: float = 0.0):
        self.learning_rate = _checks.positive_float("learning_rate", learning_rate)
        self.epochs = _checks.positive_int("epochs", epochs)
        if not 0 <= minimum <= self.learning_rate:
            raise ValueError(f"minimum must lie in [0, learning_rate], received: {minimum!r}")
        self.minimum = float(minimum)

    @classmethod
    def for_epochs(cls, learning_rate: float, epochs: int) -> CosineDecay:
        """Decay to 0 at the last epoch.

        Args:
            learning_rate: η₀, the rate of the first epoch (a positive number).
            epochs: The training run's epochs (a positive integer): η reaches 0 there.
        """
        return cls(learning_rate, epochs=epochs)

    def __call__(self, epoch: int) -> float:
        progress = min(epoch, self.epochs) / self.epochs
        return self.minimum + 0.5 * (self.learning_rate - self.minimum) * (1 + math.cos(math.pi * progress))

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "epochs": self.epochs, "minimum": self.minimum}
