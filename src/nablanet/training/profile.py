"""Where the time of a training step goes, layer by layer: :func:`profile_layers`.

A training step is the loop of :func:`~nablanet.training.loop.fit` for one mini-batch — gather the batch, every
layer's forward pass, the loss and its gradient, every layer's backward pass in reverse, the optimizer's
step — and this module times each of those parts on its own, for a few batches, with the bytes each layer's
passes must move at the least. It is the table of "Why frameworks are fast"
(``examples/11_why_frameworks_are_fast.ipynb``).
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time

import numpy as np

from ..core import _checks
from ..core.fusion import fuse as fused
from ..core.layers import Layer, mode, parameter_gradients
from ..core.losses import resolve_loss
from ..core.preprocessing import generate_batch_indices
from .loop import _optimizer, _Rows


@dataclasses.dataclass(frozen=True)
class LayerTime:
    """One layer of a :class:`Profile`: its name (``"2 ReLU"``: its position in the model, from 1), the median
    seconds of its forward and backward passes over a batch, and the bytes those passes must read and write at
    the least — each array they take or make once: forward, the input, the output and the parameters;
    backward, the output gradient, the input it kept, the input gradient (none for the first layer, which
    needs no gradient with respect to the data) and the parameters' gradients; nothing for a reshape (Flatten).
    Copies a pass makes inside (im2col's columns) are not counted: this is the floor, not the traffic."""

    name: str
    forward: float
    backward: float
    forward_bytes: int
    backward_bytes: int


@dataclasses.dataclass(frozen=True)
class Profile:
    """The parts of a training step, each the median over the timed batches, in seconds: the batch gather
    (``gather``), each layer (``layers``), the loss with its gradient (``loss``) and the optimizer's step
    (``optimizer``)."""

    layers: list[LayerTime]
    gather: float
    loss: float
    optimizer: float
    batch_size: int
    batches: int

    @property
    def total(self) -> float:
        """The sum of the parts: a step's time, less the loop's own few microseconds."""
        return self.gather + self.loss + self.optimizer + sum(layer.forward + layer.backward for layer in self.layers)

    def table(self) -> str:
        """The profile as a text table, in milliseconds per batch, and MB per batch for the bytes."""
        lines = [f"{'part of the step':<22}{'forward ms':>11}{'backward ms':>12}{'MB moved':>10}"]
        for layer in self.layers:
            megabytes = (layer.forward_bytes + layer.backward_bytes) / 1e6
            lines.append(f"{layer.name:<22}{layer.forward * 1e3:>11.2f}{layer.backward * 1e3:>12.2f}{megabytes:>10.1f}")
        for name, seconds in (("batch gather", self.gather), ("loss", self.loss), ("optimizer step", self.optimizer)):
            lines.append(f"{name:<22}{seconds * 1e3:>11.2f}")
        lines.append(f"{'total':<22}{self.total * 1e3:>11.2f}  (batch {self.batch_size}, median of {self.batches})")
        return "\n".join(lines)


WARM_UP = 3
"""The untimed steps :func:`profile_layers` runs first, all on its first batch."""


def profile_layers(
    model,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    optimizer="adam",
    batch_size: int = 128,
    batches: int = 10,
    fuse: bool = False,
    rng=0,
) -> Profile:
    """Time each part of ``batches`` training steps of ``model`` on batches of (X, Y), as ``fit`` runs them
    (training mode, the default loss), and return the median of each part. With ``fuse=True`` the steps run the
    fused blocks of ``fit(..., fuse=True)`` (:func:`nablanet.core.fusion.fuse`): a ``Conv2D → ReLU → MaxPool2D``
    is then one part, ``ConvReLUPool``.

    The model itself is left as it was: a copy of it trains. :data:`WARM_UP` steps on the first batch before the
    timed ones, untimed, compile what numba compiles, allocate what the layers keep and let the memory allocator
    settle (a process's first steps are slower: its large arrays land on fresh pages), so that the figures are
    those of a running epoch.

    Args:
        model (Sequential): The model to time.
        X: The inputs, (features, N), as for ``fit``.
        Y: The targets, (outputs, N), as for ``fit``.
        optimizer (Optimizer | str): An optimizer object or name, as for ``fit``; the copy's own steps.
        batch_size: Samples per batch (a positive integer, at most N).
        batches: The number of timed batches (a positive integer, at most N // batch_size − 1: one more batch
            is the untimed steps').
        fuse: True: time the fused blocks that ``fit(..., fuse=True)`` trains; False: the eager layers.
        rng (int | numpy.random.Generator | None): Seed or generator that picks the batches.

    >>> import nablanet as nn
    >>> model = nn.Sequential([nn.Dense(4, 3, rng=0), nn.ReLU(), nn.Dense(3, 2, rng=0), nn.Softmax()])
    >>> X, Y = np.ones((4, 20)), np.eye(2)[:, [0, 1] * 10]
    >>> profile = profile_layers(model, X, Y, batch_size=5, batches=3)
    >>> [layer.name for layer in profile.layers], profile.layers[1].forward_bytes  # 2 arrays of 3 × 5 float64
    (['1 Dense', '2 ReLU', '3 Dense'], 240)
    """
    batch_size = _checks.positive_int("batch_size", batch_size)
    batches = _checks.positive_int("batches", batches)
    if X.shape[1] < batch_size * (batches + 1):
        raise ValueError(
            f"profile_layers needs batches + 1 batches of {batch_size} samples ({batch_size * (batches + 1)}, the "
            f"first for the untimed steps), X has {X.shape[1]}: give fewer batches or a smaller batch_size"
        )
    if not isinstance(fuse, bool):
        raise TypeError(f"fuse must be True or False, received {fuse!r}")
    model = copy.deepcopy(model)
    layers, loss = resolve_loss(model.layers, "auto")
    layers = fused(layers) if fuse else layers
    parameters = model.parameters()
    step = _optimizer(optimizer, None)
    dtype = model.dtype or X.dtype
    gather_X, gather_Y = _Rows(X, batch_size, dtype), _Rows(Y, batch_size, dtype)
    steps = generate_batch_indices(X.shape[1], batch_size, np.random.default_rng(rng))[: batches + 1]
    parts: dict[str, list[float]] = {}

    def timed(part: str, work, *arguments):
        start = time.perf_counter()
        result = work(*arguments)
        parts.setdefault(part, []).append(time.perf_counter() - start)
        return result

    def train_step(indices: np.ndarray) -> None:
        X_batch, Y_batch = timed("gather", lambda: (gather_X(indices), gather_Y(indices)))
        output = X_batch
        for number, layer in enumerate(layers):
            output = timed(f"forward {number}", layer.forward, output)
        gradient = timed("loss", lambda: loss.value_and_gradient(Y_batch, output)[1])
        for number in range(len(layers) - 1, 0, -1):
            gradient = timed(f"backward {number}", layers[number].backward, gradient)
        timed("backward 0", parameter_gradients, layers[0], gradient)  # nothing needs ∇ of the data
        timed("optimizer", step.step, parameters)

    with mode(model.layers, training=True):
        for _ in range(WARM_UP):
            train_step(steps[0])
        parts.clear()  # the untimed steps
        for indices in steps[1:]:
            train_step(indices)
    median = {part: statistics.median(seconds) for part, seconds in parts.items()}
    return Profile(
        layers=[
            LayerTime(
                f"{number + 1} {type(layer).__name__}",
                median[f"forward {number}"],
                median[f"backward {number}"],
                *_bytes_moved(layer, first=number == 0),
            )
            for number, layer in enumerate(layers)
        ],
        gather=median["gather"],
        loss=median["loss"],
        optimizer=median["optimizer"],
        batch_size=batch_size,
        batches=batches,
    )


def _bytes_moved(layer: Layer, *, first: bool) -> tuple[int, int]:
    """(forward, backward) bytes a layer's passes read and write at the least, from the input and output its
    last forward pass kept (0 for one it did not keep, as a learner's own layer may not); nothing for a layer
    whose output is a view of its input (Flatten: a reshape, backward too)."""
    arrays = (layer.input, layer.output)
    if all(isinstance(array, np.ndarray) for array in arrays) and np.may_share_memory(*arrays):
        return 0, 0
    kept_input, kept_output = (
        array.nbytes if isinstance(array, np.ndarray) else 0 for array in (layer.input, layer.output)
    )
    parameters = sum(parameter.value.nbytes for parameter in layer.parameters())
    forward = kept_input + kept_output + parameters
    backward = kept_output + kept_input + (0 if first else kept_input) + parameters
    return forward, backward
