"""Gradient checking: analytic gradients (backward) against central finite differences.

For every parameter entry θ_k and every input entry, the numerical derivative is

    ∂J/∂θ_k ≈ (J(θ + h e_k) − J(θ − h e_k)) / 2h,

where J is the batch-mean objective: the loss, or for a lone layer J = (1/b) Σ_i r⁽ⁱ⁾ᵀ out⁽ⁱ⁾ with a
fixed random R. Parameter gradients are compared as stored by the layers (they already hold the
1/b); input gradients as backward returns them divided by b (backward passes per-sample ∇L_i).
Each comparison reports the relative error ‖a − n‖ / (‖a‖ + ‖n‖), which is scale-free and ≈ 1e-10
for a correct float64 gradient with h = 1e-6, and ≈ 1 for a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import Layer, mode, run
from .losses import Loss, resolve_loss


@dataclass(frozen=True)
class GradcheckResult:
    """One compared gradient: its name, the errors, whether it passed the tolerance, and how many of the
    array's entries were compared (all, or ``max_entries`` chosen at random)."""

    name: str
    relative_error: float
    max_abs_error: float
    passed: bool
    checked: int = 0
    size: int = 0


@dataclass(frozen=True)
class GradcheckReport:
    """All compared gradients of one check and the tolerance used."""

    results: tuple[GradcheckResult, ...]
    tolerance: float
    epsilon: float

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def table(self) -> str:
        """The report as a text table, one line per gradient (with the entries compared), then the verdict."""
        width = max(len("gradient"), *(len(result.name) for result in self.results))
        counts = [f"{result.checked} of {result.size}" for result in self.results]
        count_width = max(len("entries checked"), *map(len, counts))
        lines = [f"{'gradient':<{width}}  {'entries checked':>{count_width}}  relative error  max abs error  verdict"]
        for result, count in zip(self.results, counts, strict=True):
            lines.append(
                f"{result.name:<{width}}  {count:>{count_width}}  {result.relative_error:14.3e}  "
                f"{result.max_abs_error:13.3e}  {'pass' if result.passed else 'FAIL'}"
            )
        verdict = "all passed" if self.passed else "FAILED"
        lines.append(f"tolerance {self.tolerance:g} on the relative error, step h = {self.epsilon:g}: {verdict}")
        return "\n".join(lines)


def _compare(name, analytic, numerical, tolerance) -> GradcheckResult:
    checked = ~np.isnan(numerical)  # entries left out by max_entries are NaN
    size = numerical.size
    analytic, numerical = analytic[checked], numerical[checked]
    difference = np.linalg.norm(analytic - numerical)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numerical)
    relative = float(difference / scale) if scale > 0 else 0.0
    largest = float(np.max(np.abs(analytic - numerical)))
    return GradcheckResult(name, relative, largest, relative < tolerance, int(checked.sum()), size)


def _numerical_gradient(objective, array: np.ndarray, epsilon: float, entries=None) -> np.ndarray:
    """Central differences for every entry of ``array`` (or the flat positions ``entries``; others NaN)."""
    gradient = np.full_like(array, np.nan)
    positions = np.ndindex(array.shape) if entries is None else (np.unravel_index(e, array.shape) for e in entries)
    for index in positions:
        original = array[index]
        array[index] = original + epsilon
        plus = objective()
        array[index] = original - epsilon
        minus = objective()
        array[index] = original
        gradient[index] = (plus - minus) / (2 * epsilon)
    return gradient


def gradcheck(
    target,
    X: np.ndarray,
    Y: np.ndarray | None = None,
    *,
    loss: str | Loss = "auto",
    epsilon: float = 1e-6,
    tolerance: float = 1e-6,
    seed: int = 0,
    max_entries: int | None = None,
    training: bool = False,
) -> GradcheckReport:
    """Check the backward pass of a layer, a Sequential model, or a loss against finite differences.

    * a layer: ``gradcheck(layer, X)`` — objective (1/b) Σ_i r⁽ⁱ⁾ᵀ layer(x⁽ⁱ⁾), R random (seeded);
    * a model: ``gradcheck(model, X, Y)`` — objective the training loss (``loss`` as in ``fit``);
    * a loss:  ``gradcheck(loss, Yhat_or_scores, Y)`` — objective ``loss.value(Y, ·)``.

    Everything is done in float64 (parameters must be float64); the layers run in inference mode (no
    dropout) unless ``training=True`` — how BatchNorm's backward pass through its batch statistics is
    checked —, and every layer is left in the mode it was in. X may also be a (features, T, b) batch of
    sequences: its b sequences are the samples of the mean (each the sum over its T positions), as in
    ``fit``.

    The samples are the last axis of X: the columns of a (features, b) matrix, the sequences of a
    (features, T, b) batch or of (T, b) token ids. A first layer that reads token ids (``discrete_input``,
    an Embedding) has no input gradient to compare: only its parameters are checked.
    ``max_entries`` checks at most that many randomly chosen entries of each array (seeded by
    ``seed``): two forward passes per entry add up on a large network.
    Returns a :class:`GradcheckReport` with one result per parameter and one for the input.

    Args:
        target: A layer, a Sequential model, or a loss object.
        X: The input, (features, b); for a loss, Ŷ (or the scores Z of SoftmaxCrossEntropy).
        Y: The one-hot targets (classes, b), for a model or a loss.
        loss: For a model, as in `fit`: "auto" or "cce".
        epsilon: h, the step of the central differences (f(x + h) − f(x − h)) / 2h.
        tolerance: The largest relative error that passes.
        seed: Seeds the random R of a layer's objective and the choice of entries.
        max_entries: At most this many entries of each array are checked; None: all.
        training: Run the layers in training mode (for layers whose training pass is deterministic).

    >>> from nablanet import Dense
    >>> gradcheck(Dense(3, 2, rng=0), np.random.default_rng(1).normal(size=(3, 4))).passed
    True
    """
    X = np.array(X, dtype=np.float64)  # a copy: the check perturbs it
    batch_size = X.shape[-1]  # the samples: the last axis of (features, b) and (features, T, b)
    if hasattr(target, "value") and hasattr(target, "gradient"):  # a loss
        if Y is None:
            raise ValueError("checking a loss needs Y")
        analytic_input = target.gradient(Y, X) / batch_size
        numerical_input = _numerical_gradient(lambda: target.value(Y, X), X, epsilon)
        return GradcheckReport((_compare("input", analytic_input, numerical_input, tolerance),), tolerance, epsilon)

    layers = [target] if isinstance(target, Layer) else list(target.layers)  # a layer (a composite too), or a model
    with mode(layers, training=training):
        return _check_layers(layers, X, Y, loss, epsilon, tolerance, seed, max_entries)


def _check_layers(layers, X, Y, loss, epsilon, tolerance, seed, max_entries) -> GradcheckReport:
    batch_size = X.shape[-1]
    if Y is None:
        projection = np.random.default_rng(seed).standard_normal(run(layers, X).shape)
        objective_layers = layers

        def objective():
            return float(np.sum(projection * run(objective_layers, X)) / batch_size)

        output_gradient = projection
    else:
        objective_layers, loss_function = resolve_loss(layers, loss)

        def objective():
            return loss_function.value(Y, run(objective_layers, X))

        output_gradient = loss_function.gradient(Y, run(objective_layers, X))
    parameters = [
        (f"layer {position} {type(layer).__name__}.{parameter.name}", parameter)
        for position, layer in enumerate(objective_layers)
        for parameter in layer.parameters()
    ]
    for name, parameter in parameters:
        if parameter.value.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 parameters, {name} is {parameter.value.dtype}")
    run(objective_layers, X)
    gradient = output_gradient
    for layer in reversed(objective_layers):
        gradient = layer.backward(gradient)
    analytic = [parameter.gradient.copy() for _, parameter in parameters]
    sampler = np.random.default_rng(seed)

    def numerical(array):
        entries = None
        if max_entries is not None and array.size > max_entries:
            entries = sampler.choice(array.size, size=max_entries, replace=False)
        return _numerical_gradient(objective, array, epsilon, entries)

    results = [
        _compare(name, stored, numerical(parameter.value), tolerance)
        for (name, parameter), stored in zip(parameters, analytic, strict=True)
    ]
    if not getattr(layers[0], "discrete_input", False):  # token ids are labels: no derivative to compare
        results.append(_compare("input", gradient / batch_size, numerical(X), tolerance))
    return GradcheckReport(tuple(results), tolerance, epsilon)
