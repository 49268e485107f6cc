"""What the checker compares a learner's code with: for each exercise, the reference (nablanet's own layer or
function), the random setting it is checked on, and the mistakes learners really make — each as the result
it would give and the sentence that names it.

A mistake is recognised by its result, not by reading the learner's code: if the learner's ∇_W̃ L equals
b times the reference's, the 1/b is missing, whatever the code looks like. So each :class:`Mistake` here is a
wrong formula computed on the same numbers; the checker (:mod:`~nablanet.exercises.checker`) tries them in
order when a result is wrong.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..core import losses
from ..core.activations import ReLU, Softmax, softmax
from ..core.attention import attention_loop, causal_mask
from ..core.convolution import AvgPool2D, Conv2D, MaxPool2D
from ..core.layers import Dense, Layer
from ..core.normalization import LayerNorm
from ..core.recurrent import RNN
from ..core.registry import Registry

SHAPES = (
    "a shape mismatch: in nablanet a batch is a (features, b) matrix, one column a sample, and every product "
    "is written so that its shapes chain, as Z = W X: (units, inputs)·(inputs, b)"
)


@dataclasses.dataclass(frozen=True)
class Mistake:
    """What a known mistake gives on the setting's numbers, and its name. A mistake whose ``result`` is ``None``
    is the likely cause of any result holding NaN or inf (a log of 0, an overflow)."""

    result: np.ndarray | None
    hint: str


@dataclasses.dataclass(frozen=True)
class Case:
    """One call of a learner's function: its arguments, the right result and the known wrong ones."""

    name: str
    arguments: tuple[np.ndarray, ...]
    expected: Any
    mistakes: tuple[Mistake, ...] = ()


@dataclasses.dataclass
class Setting:
    """The random shapes and numbers one check runs on. For a layer: the arguments the learner's class is built
    with, the reference built alike (float64, its weights the ones the learner's layer is given), a batch X
    and an output gradient G for it. For a function: the arrays its cases are made from (``inputs``)."""

    description: str
    arguments: tuple = ()
    keywords: dict = dataclasses.field(default_factory=dict)
    reference: Any = None
    X: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))
    G: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))
    inputs: tuple[np.ndarray, ...] = ()  # a function's: the arrays its cases are made from


class Exercise:
    """The checks of one reference. Subclasses give ``setting`` and the mistakes of each result."""

    name = ""
    signature = "()"  # the exercise's constructor, as the learner's class must take it
    function = False  # a loss function rather than a layer class
    gradient_of: Any = None  # for a gradient function: the function it is the per-sample gradient of

    def setting(self, rng: np.random.Generator) -> Setting:
        raise NotImplementedError

    def output_mistakes(self, setting: Setting) -> list[Mistake]:
        return []

    def input_gradient_mistakes(self, setting: Setting) -> list[Mistake]:
        return []

    def parameter_mistakes(self, setting: Setting, name: str) -> list[Mistake]:
        """The mistakes every layer with weights can make in a parameter gradient (the reference's, now)."""
        exact = _parameter(setting.reference, name).gradient
        b = setting.X.shape[1]
        return [
            Mistake(b * exact, "the 1/b is missing: ∇_W L is the mean over the batch, (1/b) Σ_i, not the sum"),
            Mistake(exact / b, "divided by b twice: the 1/b of the batch mean is applied once"),
            Mistake(-exact, "the sign is wrong: the gradient points uphill, the step W − η ∇_W L goes down"),
        ]

    def updated_weights_mistakes(self, setting: Setting, weights_after: list[np.ndarray]) -> list[Mistake]:
        """The mistakes of ∇_X L in ``backward(g, η)``, given the learner's weights after its step."""
        return []

    def extra_inputs(self, setting: Setting) -> list[tuple[str, np.ndarray, str]]:
        """More inputs for ``forward``: (what they are, X, the likely cause if the output is not finite)."""
        return []

    def cases(self, setting: Setting) -> list[Case]:
        """A loss function's calls."""
        return []

    def crash_hint(self, what: str, error: Exception) -> str:
        text = str(error)
        if any(word in text for word in ("broadcast", "shape", "matmul", "aligned", "dimension")):
            return SHAPES
        return ""


def _parameter(layer: Layer, name: str):
    return next(parameter for parameter in layer.parameters() if parameter.name == name)


def _sizes(rng: np.random.Generator, count: int, low: int = 2, high: int = 7) -> list[int]:
    """``count`` different sizes in [low, high), none equal to the batch of 7: a transposed product fails."""
    return [int(size) for size in rng.choice(np.arange(low, high), size=count, replace=False)]


BATCH = 7  # odd, and unlike every size above: an axis mixed up shows as a shape error or a wrong value


EXERCISES: Registry[Exercise] = Registry("exercise")


class DenseExercise(Exercise):
    name = "Dense"
    signature = "(input_size, output_size)"

    def setting(self, rng):
        inputs, units = _sizes(rng, 2, 3, 7)
        reference = Dense(inputs, units, rng=rng, dtype=np.float64)
        reference.weights = rng.standard_normal(reference.weights.shape)  # a bias that is not 0
        X, G = rng.standard_normal((inputs, BATCH)), rng.standard_normal((units, BATCH))
        description = f"Dense({inputs}, {units}), a batch of {BATCH} and one of 1, float64"
        return Setting(description, (inputs, units), {}, reference, X, G)

    def output_mistakes(self, setting):
        W, b, X = setting.reference.W, setting.reference.b, setting.X
        return [
            Mistake(W @ X, "the bias is missing: Z = W X + b 1ᵀ (the bias trick: W̃ X̃, with a row of ones under X)"),
            Mistake(
                (W @ X + b[:, None]).T,
                "transposed: a batch is a (features, b) matrix, one column a sample, so Z = W X + b 1ᵀ is (units, b)",
            ),
        ]

    def input_gradient_mistakes(self, setting):
        W, weights, G = setting.reference.W, setting.reference.weights, setting.G
        return [
            Mistake(weights.T @ G, "the bias column does not flow back: ∇_X L = Wᵀ ∇_Z L, W being W̃ without b"),
            Mistake(W.T @ G / G.shape[1], "∇_X L is per sample: no 1/b here (the batch mean's 1/b is in ∇_W L)"),
            Mistake((W.T @ G).T, "transposed: ∇_X L = Wᵀ ∇_Z L has the shape of X, (inputs, b)"),
        ]

    def parameter_mistakes(self, setting, name):
        exact, G, X = setting.reference.weights_gradient, setting.G, setting.X
        b = X.shape[1]
        with_ones = np.vstack([X, np.ones((1, b))])
        no_bias = exact.copy()
        no_bias[:, -1] = 0
        summed_bias = exact.copy()
        summed_bias[:, -1] = G.sum(axis=1)
        return [
            *super().parameter_mistakes(setting, name),
            Mistake(
                G[:, -1:] @ with_ones[:, -1:].T,
                "only the last sample counts: ∇_Z L X̃ᵀ sums over every column of the batch (then 1/b)",
            ),
            Mistake(
                G[:, :1] @ with_ones[:, :1].T,
                "only the first sample counts: ∇_Z L X̃ᵀ sums over every column of the batch (then 1/b)",
            ),
            Mistake(no_bias, "the bias column's gradient is missing: ∇_b L = (1/b) ∇_Z L 1, the mean over the batch"),
            Mistake(summed_bias, "the bias gradient lacks the 1/b: ∇_b L = (1/b) ∇_Z L 1, like the weights'"),
            Mistake((with_ones @ G.T) / b, "transposed: ∇_W̃ L = (1/b) ∇_Z L X̃ᵀ has W̃'s shape, (units, inputs + 1)"),
        ]

    def updated_weights_mistakes(self, setting, weights_after):
        W_after = weights_after[0][:, :-1]
        return [
            Mistake(
                W_after.T @ setting.G,
                "∇_X L was computed with W after the update: compute it first, then take the step (the notebook's "
                "order)",
            )
        ]

    def crash_hint(self, what, error):
        text, b = str(error), str(BATCH)
        if "broadcast" in text and f"({b},)" in text:
            return (
                f"a gradient of {b} entries (one a sample) where there should be one a unit: the bias gradient "
                "averages ∇_Z L over the batch, axis=1 (each row is a unit)"
            )
        return super().crash_hint(what, error)


class ReLUExercise(Exercise):
    name = "ReLU"

    def setting(self, rng):
        k = _sizes(rng, 1)[0]
        X, G = rng.standard_normal((k, BATCH)), rng.standard_normal((k, BATCH))
        return Setting(f"ReLU on ({k}, {BATCH}) and ({k}, 1), float64", (), {}, ReLU(), X, G)

    def output_mistakes(self, setting):
        X = setting.X
        return [Mistake(np.minimum(X, 0), "max(0, z) keeps the positive part: np.maximum(z, 0)")]

    def input_gradient_mistakes(self, setting):
        X, G = setting.X, setting.G
        return [
            Mistake(
                G * (X < 0),
                "the mask is on the wrong side: ∇_Z L = ∇_A L ⊙ 𝟙[z > 0], the gradient flows where z was positive",
            ),
            Mistake(G * np.maximum(X, 0), "multiplied by max(0, z), the output: the derivative is 𝟙[z > 0], 1 or 0"),
            Mistake(np.maximum(G, 0), "ReLU applied to the gradient: the mask depends on z, ∇_A L ⊙ 𝟙[z > 0]"),
            Mistake(G, "the gradient passes unmasked: ∇_Z L = ∇_A L ⊙ 𝟙[z > 0]"),
        ]


def _softmax_rows(Z: np.ndarray) -> np.ndarray:
    exponentials = np.exp(Z - Z.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


class SoftmaxExercise(Exercise):
    name = "Softmax"

    def setting(self, rng):
        k = _sizes(rng, 1, 3, 7)[0]
        X, G = 3 * rng.standard_normal((k, BATCH)), rng.standard_normal((k, BATCH))
        return Setting(f"Softmax on ({k}, {BATCH}) and ({k}, 1), float64", (), {}, Softmax(), X, G)

    def output_mistakes(self, setting):
        X = setting.X
        whole = np.exp(X - X.max()) / np.exp(X - X.max()).sum()
        return [
            Mistake(_softmax_rows(X), "normalised over the wrong axis: each column (a sample) sums to 1: axis=0"),
            Mistake(whole, "normalised over the whole batch: each column (a sample) separately, axis=0"),
        ]

    def extra_inputs(self, setting):
        # column i shifted by 1000·(i + 1): the same probabilities; exp(1000) is inf, and a shift by the batch's
        # one max sends the other columns to exp(−1000) = 0, then 0/0
        large = setting.X + 1000.0 * np.arange(1, setting.X.shape[1] + 1)
        return [
            (
                "forward on scores of 1000 and more",
                large,
                "exp(1000) overflows to inf (and a shift by the batch's max underflows the other columns to 0/0): "
                "subtract each column's own max before exp (softmax is unchanged by a shift)",
            )
        ]

    def input_gradient_mistakes(self, setting):
        a, G = setting.reference.forward(setting.X), setting.G
        dot = np.sum(a * G, axis=0, keepdims=True)  # aᵀg, column by column
        first = a[:, :1]
        jacobian = np.diag(first[:, 0]) - first @ first.T
        return [
            Mistake(-(a * G - a * dot), "the Jacobian's sign is wrong: ∂a_j/∂z_k = a_j(δ_jk − a_k)"),
            Mistake(-a * dot, "the diagonal term is missing: ∇_z a = diag(a) − a aᵀ"),
            Mistake(a * G, "the −a aᵀ term is missing: ∇_z a = diag(a) − a aᵀ"),
            Mistake(
                a * (1 - a) * G,
                "only the Jacobian's diagonal a_j(1 − a_j): every a_j depends on every z_k, so −a_j a_k counts too",
            ),
            Mistake(
                jacobian @ G,
                "the first sample's Jacobian for every column: each sample has its own, diag(a⁽ⁱ⁾) − a⁽ⁱ⁾a⁽ⁱ⁾ᵀ",
            ),
        ]


class MaxPool2DExercise(Exercise):
    name = "MaxPool2D"
    signature = "(pool_size, *, input_shape)"

    def setting(self, rng):
        channels, height, width = _sizes(rng, 1, 2, 4)[0], 4, 6
        shape = (channels, height, width)
        reference = MaxPool2D(2, input_shape=shape)
        X = rng.standard_normal((channels * height * width, BATCH))
        G = rng.standard_normal((channels * (height // 2) * (width // 2), BATCH))
        description = f"MaxPool2D(2) on {shape} images, a batch of {BATCH} and one of 1, float64"
        return Setting(description, (2,), {"input_shape": shape}, reference, X, G)

    def _average(self, setting):
        return AvgPool2D(2, **setting.keywords)

    def output_mistakes(self, setting):
        return [Mistake(self._average(setting).forward(setting.X), "averaged: max-pooling keeps each window's largest")]

    def input_gradient_mistakes(self, setting):
        average = self._average(setting)
        average.forward(setting.X)
        spread = average.backward(setting.G)
        return [
            Mistake(
                4 * spread,
                "every element of the window got the gradient: only the window's maximum (its winner) does, the "
                "others get 0",
            ),
            Mistake(spread, "spread over the window as average pooling does: only the window's maximum gets it"),
        ]


class Conv2DExercise(Exercise):
    name = "Conv2D"
    signature = "(in_channels, out_channels, kernel_size, *, input_shape)"

    def setting(self, rng):
        channels, filters = _sizes(rng, 2, 2, 4)
        shape = (channels, 5, 6)
        reference = Conv2D(channels, filters, 3, input_shape=shape, rng=rng, dtype=np.float64)
        reference.weights = rng.standard_normal(reference.weights.shape)
        X = rng.standard_normal((channels * 5 * 6, BATCH))
        G = rng.standard_normal((filters * 3 * 4, BATCH))
        description = f"Conv2D({channels}, {filters}, 3) on {shape} images, a batch of {BATCH} and one of 1, float64"
        return Setting(description, (channels, filters, 3), {"input_shape": shape}, reference, X, G)

    def _flipped(self, setting) -> Conv2D:
        """The reference with every kernel rotated by 180°: what the textbook's convolution computes."""
        flipped = Conv2D(*setting.arguments, **setting.keywords, dtype=np.float64)
        filters = setting.arguments[1]
        W = setting.reference.W[:, :, ::-1, ::-1].reshape(filters, -1)
        flipped.weights = np.hstack([W, setting.reference.b[:, None]])
        return flipped

    def output_mistakes(self, setting):
        reference = setting.reference
        no_bias = reference.forward(setting.X) - np.repeat(reference.b, 12)[:, None]
        return [
            Mistake(
                self._flipped(setting).forward(setting.X),
                "the kernel is flipped (the textbook's convolution): nablanet's Conv2D, as PyTorch's, is the "
                "cross-correlation Z[f, i, j] = Σ W[f, c, u, v] X[c, i + u, j + v] + b_f",
            ),
            Mistake(no_bias, "the bias is missing: each filter's b_f is added at every position"),
        ]

    def input_gradient_mistakes(self, setting):
        flipped = self._flipped(setting)
        flipped.forward(setting.X)
        return [
            Mistake(
                flipped.backward(setting.G),
                "∇_X L with the kernel flipped: each window's gradient Wᵀ ∇_Z goes back onto the very window it "
                "came from (col2im), with W as the forward pass used it",
            )
        ]


class LayerNormExercise(Exercise):
    name = "LayerNorm"
    signature = "(features)"

    def setting(self, rng):
        features = _sizes(rng, 1, 3, 7)[0]
        reference = LayerNorm(features)
        reference.gamma[...] = rng.uniform(0.5, 2.0, features)  # γ and β that are not 1 and 0
        reference.beta[...] = rng.standard_normal(features)
        X = rng.normal(1.0, 2.0, (features, BATCH))
        G = rng.standard_normal((features, BATCH))
        return Setting(
            f"LayerNorm({features}), a batch of {BATCH} and one of 1, float64", (features,), {}, reference, X, G
        )

    @staticmethod
    def _standardized(setting: Setting, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """(x̂, 1/√(σ² + ε)) of the setting's X, with μ and σ² taken over ``axis``."""
        X = setting.X
        inverse_std = 1 / np.sqrt(X.var(axis=axis, keepdims=True) + setting.reference.epsilon)
        return (X - X.mean(axis=axis, keepdims=True)) * inverse_std, inverse_std

    def output_mistakes(self, setting):
        gamma, beta = setting.reference.gamma[:, None], setting.reference.beta[:, None]
        over_features, _ = self._standardized(setting, 0)
        over_batch, _ = self._standardized(setting, 1)
        return [
            Mistake(
                gamma * over_batch + beta,
                "standardised over the batch (axis=1), as BatchNorm does: LayerNorm standardises each column (a "
                "sample) over its features, axis=0",
            ),
            Mistake(over_features, "γ and β are missing: y = γ ⊙ x̂ + β, after the standardisation"),
        ]

    def input_gradient_mistakes(self, setting):
        gamma, G = setting.reference.gamma[:, None], setting.G
        normalized, inverse_std = self._standardized(setting, 0)
        g = gamma * G

        def mean(array):
            return array.mean(axis=0, keepdims=True)

        return [
            Mistake(
                inverse_std * g,
                "the terms of μ and σ² are missing: every x of a column moves its μ and σ², so ∇_x L = "
                "(g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)) / √(σ² + ε), g = γ ⊙ ∇_y L",
            ),
            Mistake(
                inverse_std * (g - mean(g)), "the σ² term is missing: − x̂ ⊙ mean(g ⊙ x̂), the means over the features"
            ),
            Mistake(
                inverse_std * (g - normalized * mean(g * normalized)),
                "the μ term is missing: − mean(g), over the features",
            ),
            Mistake(
                inverse_std * (G - mean(G) - normalized * mean(G * normalized)),
                "γ is missing: the gradient reaches x̂ through y = γ ⊙ x̂ + β, so g = γ ⊙ ∇_y L",
            ),
        ]

    def parameter_mistakes(self, setting, name):
        mistakes = super().parameter_mistakes(setting, name)
        if name == "gamma":
            b = setting.X.shape[1]
            mistakes.append(
                Mistake(setting.G.sum(axis=1) / b, "∇_γ L = (1/b) Σ_i ∇_y L ⊙ x̂: the x̂ is missing (that is ∇_β L)")
            )
        return mistakes


def _one_hot(rng: np.random.Generator, classes: int, batch: int) -> np.ndarray:
    Y = np.zeros((classes, batch))
    Y[rng.integers(0, classes, batch), np.arange(batch)] = 1.0
    return Y


class _CrossEntropy(Exercise):
    function = True

    def setting(self, rng):
        k = _sizes(rng, 1, 3, 7)[0]
        Y = _one_hot(rng, k, BATCH)
        Yhat = Softmax().forward(2 * rng.standard_normal((k, BATCH)))
        return Setting(f"Y and Ŷ of {k} classes, a batch of {BATCH}, float64", inputs=(Y, Yhat))

    @staticmethod
    def zero_elsewhere(setting: Setting) -> np.ndarray:
        """Ŷ with an exact 0 for a class that is not the label (a confident prediction, underflowed)."""
        Y, Yhat = setting.inputs
        Yhat = Yhat.copy()
        wrong = np.argmax(Y == 0, axis=0)  # the first class that is not the label, per column
        Yhat[wrong, np.arange(Yhat.shape[1])] = 0.0
        return Yhat / Yhat.sum(axis=0, keepdims=True)

    @staticmethod
    def zero_at_label(setting: Setting) -> np.ndarray:
        """Ŷ with an exact 0 at the first sample's label (a confidently wrong prediction)."""
        Y, Yhat = setting.inputs
        Yhat = Yhat.copy()
        Yhat[np.argmax(Y[:, 0]), 0] = 0.0
        return Yhat / Yhat.sum(axis=0, keepdims=True)


class CCEExercise(_CrossEntropy):
    name = "cce"

    def cases(self, setting):
        Y, Yhat = setting.inputs
        b, k = Y.shape[1], Y.shape[0]
        log_sum = float(-np.sum(Y * np.log(Yhat)))
        zero_elsewhere, zero_at_label = self.zero_elsewhere(setting), self.zero_at_label(setting)
        return [
            Case(
                "the batch's mean loss",
                (Y, Yhat),
                losses.cce(Y, Yhat),
                (
                    Mistake(np.asarray(log_sum), "the 1/b is missing: L = (1/b) Σ_i −y⁽ⁱ⁾ᵀ log ŷ⁽ⁱ⁾, a mean"),
                    Mistake(np.asarray(log_sum / (b * k)), "divided by every entry: the mean is over the b samples"),
                    Mistake(np.asarray(-log_sum / b), "the minus sign is missing: −log ŷ > 0, the loss is positive"),
                    Mistake(-np.sum(Y * np.log(Yhat), axis=0), "one loss a sample: L is their mean, one number"),
                ),
            ),
            Case(
                "a probability of exactly 0 for a class that is not the label",
                (Y, zero_elsewhere),
                losses.cce(Y, zero_elsewhere),
                (
                    Mistake(
                        None,
                        "0 · log 0 gave NaN: guard ŷ from 0 before the log, np.maximum(ŷ, np.finfo(ŷ.dtype).tiny)",
                    ),
                ),
            ),
            Case(
                "a probability of exactly 0 for the label",
                (Y, zero_at_label),
                losses.cce(Y, zero_at_label),
                (
                    Mistake(None, "log 0 = −inf: guard ŷ from 0 before the log, np.maximum(ŷ, np.finfo(ŷ.dtype).tiny)"),
                    *(
                        Mistake(
                            np.asarray(losses.cce(Y, np.maximum(zero_at_label, epsilon))),
                            f"guarded with ε = {epsilon:g}: log ε caps the loss of a confident mistake and "
                            "flattens its gradient; guard with the smallest positive float, np.finfo(ŷ.dtype).tiny",
                        )
                        for epsilon in (1e-7, 1e-8, 1e-10, 1e-12, 1e-15)
                    ),
                ),
            ),
        ]


class CCEGradientExercise(_CrossEntropy):
    name = "cce_gradient"
    gradient_of = staticmethod(losses.cce)

    def cases(self, setting):
        Y, Yhat = setting.inputs
        zero_elsewhere = self.zero_elsewhere(setting)
        return [
            Case(
                "∇_Ŷ L, column by column",
                (Y, Yhat),
                losses.cce_gradient(Y, Yhat),
                (
                    Mistake(Y / Yhat, "the sign is wrong: ∇_ŷ L = −y / ŷ"),
                    Mistake(
                        -Y / Yhat / Y.shape[1],
                        "∇_ŷ L is per sample: the batch mean's 1/b is applied once, where Dense forms ∇_W L",
                    ),
                    Mistake(
                        Yhat - Y,
                        "that is ∇_z L, Softmax and the loss together: this function is ∇_ŷ L = −y / ŷ, which "
                        "Softmax's backward turns into ŷ − y",
                    ),
                    Mistake(-1 / Yhat, "multiply by y: only the label's entry has a gradient, −y / ŷ"),
                    Mistake(-Y * np.log(Yhat), "that is the loss's terms: the gradient of −y log ŷ is −y / ŷ"),
                ),
            ),
            Case(
                "a probability of exactly 0 for a class that is not the label",
                (Y, zero_elsewhere),
                losses.cce_gradient(Y, zero_elsewhere),
                (Mistake(None, "0 / 0 gave NaN: guard ŷ from 0, np.maximum(ŷ, np.finfo(ŷ.dtype).tiny)"),),
            ),
        ]


class ToyGradientExercise(Exercise):
    """The first notebook's one-sample gradient of the softmax classifier: ∇_W L = (ŷ − y) x̃ᵀ."""

    name = "softmax_classifier_gradient"
    function = True

    def setting(self, rng):
        classes, features = 3, 5
        W = rng.standard_normal((classes, features + 1)) / 4
        x = np.vstack([rng.integers(3, 10, size=(features, 1)), [[1.0]]])  # the bias feature last
        y = _one_hot(rng, classes, 1)
        description = f"W {W.shape}, one sample x̃ ({features + 1}, 1) and its one-hot y ({classes}, 1), float64"
        return Setting(description, inputs=(W, x.astype(np.float64), y))

    def cases(self, setting):
        W, x, y = setting.inputs
        shifted = W + 1000 / x.sum()  # z = W x̃ + 1000: the same probabilities, exp(z) = inf
        return [self._case("∇_W L for one sample", W, x, y), self._case("∇_W L, scores near 1000", shifted, x, y)]

    @staticmethod
    def _case(name, W, x, y):
        z = W @ x
        y_hat = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        return Case(
            name,
            (W, x, y),
            (y_hat - y) @ x.T,
            (
                Mistake((y - y_hat) @ x.T, "the sign is wrong: ∇_z L = ŷ − y, so ∇_W L = (ŷ − y) x̃ᵀ"),
                Mistake((z - y) @ x.T, "the scores z in place of the probabilities ŷ = softmax(z): ∇_z L = ŷ − y"),
                Mistake(x @ (y_hat - y).T, "transposed: ∇_W L = (ŷ − y) x̃ᵀ has W's shape, (classes, features + 1)"),
                Mistake(y_hat @ x.T, "the −y is missing: ∇_z L = ŷ − y (the label's own class gets ŷ_y − 1)"),
                Mistake(None, "exp of large scores overflows to inf: subtract max z before exp (softmax is unchanged)"),
            ),
        )


class AttentionExercise(Exercise):
    """Causal scaled dot-product attention for one sequence: O = V softmax(QᵀK/√d_k + M)ᵀ, the softmax over the
    keys of each query (the rows of the (T, T) scores)."""

    name = "scaled_dot_product_attention"
    function = True

    def setting(self, rng):
        d_k, d_v, steps = _sizes(rng, 3, 2, 7)
        Q, K = rng.standard_normal((2, d_k, steps))
        V = rng.standard_normal((d_v, steps))
        description = f"one sequence of T = {steps}: Q, K ({d_k}, {steps}) and V ({d_v}, {steps}), float64"
        return Setting(description, inputs=(Q, K, V))

    def cases(self, setting):
        Q, K, V = setting.inputs
        loud = 3000 * Q  # scores in the thousands: exp overflows unless each row is shifted by its max
        return [self._case("O = V Aᵀ for one sequence", Q, K, V), self._case("O, scores in the thousands", loud, K, V)]

    @staticmethod
    def _case(name, Q, K, V):
        def output(scores, axis=1):
            return V @ softmax(scores, axis=axis).T

        d_k, steps = Q.shape
        mask = causal_mask(steps)
        scores = Q.T @ K / np.sqrt(d_k)
        expected, _ = attention_loop(Q[:, :, None], K[:, :, None], V[:, :, None], causal=True)
        return Case(
            name,
            (Q, K, V),
            expected[:, :, 0],
            (
                Mistake(output(Q.T @ K + mask), "the √d_k is missing: the scores are QᵀK / √d_k"),
                Mistake(output(scores + mask, axis=0), "softmax over the wrong axis: each query's row of A sums to 1"),
                Mistake(output(scores), "the causal mask is not applied: query i may not see keys j > i (add −∞)"),
                Mistake(output(scores + mask.T), "the mask hides the past: −∞ goes above the diagonal, where j > i"),
                Mistake(
                    V @ softmax(scores + mask, axis=1),
                    "A is not transposed: column i of O is Σ_j A_ij v_j, so O = V Aᵀ",
                ),
                Mistake(None, "exp of large scores overflows to inf: subtract each row's max before exp"),
            ),
        )


def _rnn_passes(weights, X, G, *, carry=True, previous_derivative=False, pair_with_current=False, feedback=True):
    """The RNN's forward and backward passes, step by step, as a learner writes them — or with one of the
    mistakes the flags name: (H, ∇_X L, ∇_W̃ L) for W̃ = [W_x | W_h | b], X (n, T, b) and G = ∇_H L (h, T, b)."""
    n, steps, batch = X.shape
    W_x, W_h, b = weights[:, :n], weights[:, n:-1], weights[:, -1:]
    H = np.zeros((len(weights), steps + 1, batch))  # H[:, 0] is h_0 = 0; step t is at t + 1
    for t in range(steps):
        H[:, t + 1] = np.tanh(W_x @ X[:, t] + (W_h @ H[:, t] if feedback else 0) + b)
    dX, dW, c = np.zeros_like(X), np.zeros_like(weights), np.zeros((len(weights), batch))
    for t in reversed(range(steps)):
        h = H[:, t] if previous_derivative else H[:, t + 1]
        delta = (G[:, t] + (c if carry else 0)) * (1 - h**2)
        paired = H[:, t + 1] if pair_with_current else H[:, t]
        dW += np.hstack([delta @ X[:, t].T, delta @ paired.T, delta.sum(axis=1, keepdims=True)])
        dX[:, t] = W_x.T @ delta
        c = W_h.T @ delta
    return H[:, 1:], dX, dW / batch


class RNNExercise(Exercise):
    """A vanilla RNN's step and its backpropagation through time: h_t = tanh(W_x x_t + W_h hₜ₋₁ + b)."""

    name = "RNN"
    signature = "(input_size, hidden_size)"

    def setting(self, rng):
        inputs, hidden = _sizes(rng, 2, 2, 6)
        steps = int(rng.integers(3, 6))
        reference = RNN(inputs, hidden, method="loop", rng=rng)
        reference.weights = rng.standard_normal(reference.weights.shape) / 2  # a bias that is not 0
        X, G = rng.standard_normal((inputs, steps, BATCH)), rng.standard_normal((hidden, steps, BATCH))
        description = f"RNN({inputs}, {hidden}) on a batch of {BATCH} sequences of {steps} steps and one of 1, float64"
        return Setting(description, (inputs, hidden), {}, reference, X, G)

    def _mistakes(self, setting, part: int) -> list[Mistake]:
        """The known mistakes, as the part (0: H, 1: ∇_X L, 2: ∇_W̃ L) each would give."""
        weights, X, G = setting.reference.weights, setting.X, setting.G
        variants = [
            (
                {"feedback": False},
                "hₜ₋₁ is not fed back: z_t = W_x x_t + W_h hₜ₋₁ + b, each step reads the state of the one before",
            ),
            (
                {"carry": False},
                "the gradient does not flow back through hₜ₋₁: δ_t = (∇_(h_t) L + W_hᵀ δ_(t+1)) ⊙ (1 − h_t²), "
                "the carry from step t + 1 is added before the tanh derivative",
            ),
            (
                {"previous_derivative": True},
                "the tanh derivative at the wrong step: 1 − h_t², with h_t the output of step t (not hₜ₋₁)",
            ),
            (
                {"pair_with_current": True},
                "∇_(W_h) L pairs δ_t with the state step t read, hₜ₋₁: (1/b) Σ_t δ_t hₜ₋₁ᵀ (not h_t)",
            ),
        ]
        return [Mistake(_rnn_passes(weights, X, G, **flags)[part], hint) for flags, hint in variants]

    def output_mistakes(self, setting):
        return self._mistakes(setting, 0)[:1]

    def input_gradient_mistakes(self, setting):
        return self._mistakes(setting, 1)[1:]

    def parameter_mistakes(self, setting, name):
        exact = setting.reference.weights_gradient
        b = setting.X.shape[-1]
        return [
            *self._mistakes(setting, 2)[1:],
            Mistake(b * exact, "the 1/b is missing: ∇_W̃ L is the mean over the b sequences, (1/b) Σ_i"),
            Mistake(-exact, "the sign is wrong: the gradient points uphill, the step W − η ∇_W L goes down"),
        ]


for _exercise in (
    ToyGradientExercise(),
    DenseExercise(),
    ReLUExercise(),
    SoftmaxExercise(),
    MaxPool2DExercise(),
    Conv2DExercise(),
    LayerNormExercise(),
    CCEExercise(),
    CCEGradientExercise(),
    AttentionExercise(),
    RNNExercise(),
):
    EXERCISES.register(_exercise.name)(_exercise)
