"""Losses. Y and Ŷ are (outputs, b) matrices, one column per sample.

Loss values are batch means L = (1/b) Σ_i L_i. Gradients are returned per sample, as the columns
∇_ŷ⁽ⁱ⁾ L_i: the 1/b of the batch mean is applied once, where Dense forms ∇_W L (the notebook's way).

A loss is an object of a subclass of :class:`Loss`, with three methods — ``value(Y, Ŷ)`` (the batch mean, a
float), ``gradient(Y, Ŷ)`` (the per-sample gradients, shaped like Ŷ) and ``value_and_gradient(Y, Ŷ)`` (both,
as the trainer needs them) — and ``fit(loss=...)`` takes such an object or the name its class is registered
under in :data:`LOSSES`:

* for classes (one-hot Y): ``"cce"`` on a final Softmax's probabilities, ``"softmax_cce"`` fused with it;
* for labels 0/1 (one per output row): ``"bce"`` on a final Sigmoid's probabilities, ``"sigmoid_bce"`` fused;
* for numbers (a regression): ``"mse"``, the mean squared error of a model that ends in a Dense layer;
* for sequences of token ids (a character model): ``"sequence"``, softmax cross-entropy at every position,
  from a final Dense layer's logits (V, T, b) and the next-token ids (T, b).

``"auto"`` picks the fused loss for a model that ends in Softmax or Sigmoid. Besides the three methods,
:class:`Loss` says what a loss may say: the last layer it needs or does itself, how it counts a sample as
predicted right (accuracy; a regression has none), and what its targets must be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import _checks
from .activations import Sigmoid, Softmax, sigmoid
from .layers import LAYERS, Layer
from .registry import Registry


def guard(Yhat: np.ndarray) -> np.ndarray:
    """Ŷ (or 1 − Ŷ) with every entry below the smallest positive normal float of its dtype raised to it.

    This guards log(0) and y/0 for probabilities that do not come from :func:`~nablanet.softmax` (which
    never returns less than that) and changes nothing else: −y/ŷ stays exact for every normal ŷ, so the
    Softmax Jacobian turns it into ŷ − y, also where the logits are 800 apart. (Clipping at a larger ε,
    such as 1e-12, would flatten the loss there and make the gradient of a confidently wrong
    prediction vanish.) The floor costs −log(2.2e-308) ≈ 708 in float64 (87 in float32).
    """
    return np.maximum(Yhat, np.finfo(Yhat.dtype).tiny)


def _check_arguments(Y: np.ndarray, Yhat: np.ndarray) -> None:
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
    _check_arguments(Y, Yhat)
    return float(-np.sum(Y * np.log(guard(Yhat))) / Y.shape[1])


def cce_gradient(Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
    r"""Per-sample gradient of the cross-entropy with respect to Ŷ, element by element:

    $$\nabla_{\hat{\mathbf{y}}^{(i)}} L_i = -\mathbf{y}^{(i)} / \hat{\mathbf{y}}^{(i)}$$

    Shape (classes, b), like Y. (The batch mean's 1/b is applied by Dense.)

    Args:
        Y: One-hot targets, (classes, b).
        Yhat: Ŷ, the predicted probabilities, (classes, b).
    """
    _check_arguments(Y, Yhat)
    return -Y / guard(Yhat)


LOSSES: Registry[type[Loss]] = Registry("loss")


class Loss:
    """Base of the losses: a subclass gives ``value_and_gradient`` (unchecked: the trainer's hot path), and
    ``value`` and ``gradient`` check their arguments and take their part of it.

    Besides the three methods, a loss says: ``needs``, the layer the model must end in (the loss reads its
    output: probabilities); ``fuses``, the layer whose work the loss does itself on that layer's input (the
    scores), so that training leaves out a final layer of that kind; :meth:`correct`, how many samples it
    counts as predicted right (the accuracy); :meth:`check_targets`, what its targets Y must hold; and
    ``vector_hint``, what to do with targets given as a vector.
    """

    needs: type[Layer] | None = None
    fuses: type[Layer] | None = None
    vector_hint = "the N targets of a single output are one row, y[None, :]"

    def value(self, Y: np.ndarray, Yhat: np.ndarray) -> float:
        """The batch mean L.

        Args:
            Y: The targets, (outputs, b): one column per sample.
            Yhat: Ŷ, the model's outputs, (outputs, b), the shape of Y.
        """
        _check_arguments(Y, Yhat)
        return self.value_and_gradient(Y, Yhat)[0]

    def gradient(self, Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
        """The per-sample gradients ∇_ŷ⁽ⁱ⁾ L_i, shaped like Ŷ.

        Args:
            Y: The targets, (outputs, b): one column per sample.
            Yhat: Ŷ, the model's outputs, (outputs, b), the shape of Y.
        """
        _check_arguments(Y, Yhat)
        return self.value_and_gradient(Y, Yhat)[1]

    def value_and_gradient(self, Y: np.ndarray, Yhat: np.ndarray) -> tuple[float, np.ndarray]:
        """Both at once, as the trainer needs them; no argument checks (``fit`` checked the data once).

        Args:
            Y: The targets, (outputs, b): one column per sample.
            Yhat: Ŷ, the model's outputs, (outputs, b), the shape of Y.
        """
        raise NotImplementedError(f"{type(self).__name__} must give value_and_gradient(Y, Yhat)")

    def correct(self, Y: np.ndarray, output: np.ndarray) -> int | None:
        """How many samples (columns) ``output`` predicts right; None where right and wrong mean nothing (a
        regression): then ``fit`` and ``evaluate`` report no accuracy.

        Args:
            Y: The targets, (outputs, b).
            output: The model's output for the batch, (outputs, b): probabilities, or the scores of a fused
                loss.
        """
        return None

    def check_targets(self, Y: np.ndarray) -> None:
        """A ``ValueError`` unless the (outputs, N) matrix Y can be this loss's targets (any finite numbers).

        Args:
            Y: The targets of the whole data set, (outputs, N).
        """

    def check_output_shape(self, Y: np.ndarray, shape: tuple[int, ...]) -> None:
        """A ``ValueError`` unless targets Y fit a model whose output sample has ``shape``: here, one row of Y
        per output number.

        Args:
            Y: The targets of the whole data set, (outputs, N).
            shape: The shape of one output sample of the model, as ``Sequential.shapes`` says it.
        """
        outputs = math.prod(shape)
        if Y.shape[0] != outputs:
            raise ValueError(f"Y has {Y.shape[0]} rows, the model has {outputs} outputs")


class _Classes(Loss):
    """A loss on one-hot (or probability) columns Y, one class per sample; accuracy compares argmaxes."""

    vector_hint = "integer labels become one-hot columns with nablanet.one_hot(y, num_classes)"

    def correct(self, Y: np.ndarray, output: np.ndarray) -> int:
        return int(np.count_nonzero(output.argmax(axis=0) == Y.argmax(axis=0)))

    def check_targets(self, Y: np.ndarray) -> None:
        if Y.min() < 0 or Y.max() > 1 or not np.allclose(Y.sum(axis=0), 1.0, atol=1e-4):
            raise ValueError(
                "Y must hold one-hot or probability columns (entries in [0, 1], each column summing to "
                "1): integer labels become one-hot with nablanet.one_hot(y, num_classes)"
            )


class _Labels(Loss):
    """A loss on labels 0/1, one per output row (one row: a yes/no question; k rows: k labels at once). A
    sample counts as right when every output lies on the side of ``threshold`` that its label says."""

    threshold = 0.5
    vector_hint = "the N labels of a single output are one row, y[None, :]"

    def correct(self, Y: np.ndarray, output: np.ndarray) -> int:
        return int(np.count_nonzero(np.all((output >= self.threshold) == (Y >= 0.5), axis=0)))

    def check_targets(self, Y: np.ndarray) -> None:
        if Y.min() < 0 or Y.max() > 1:
            raise ValueError(
                f"Y must hold labels 0 or 1 (or probabilities in [0, 1]), one row per output, received entries "
                f"from {Y.min():g} to {Y.max():g}"
            )


@LOSSES.register("cce")
class CategoricalCrossEntropy(_Classes):
    """The notebook's loss on probabilities Ŷ (the output of a Softmax layer): ``cce``, ``cce_gradient``."""

    needs = Softmax

    def value(self, Y: np.ndarray, Yhat: np.ndarray) -> float:
        return cce(Y, Yhat)

    def gradient(self, Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
        return cce_gradient(Y, Yhat)

    def value_and_gradient(self, Y: np.ndarray, Yhat: np.ndarray) -> tuple[float, np.ndarray]:
        """Both at once, as the trainer needs them.

        Args:
            Y: One-hot targets, (classes, b).
            Yhat: Ŷ, the predicted probabilities, (classes, b).
        """
        return cce(Y, Yhat), cce_gradient(Y, Yhat)


@LOSSES.register("softmax_cce")
class SoftmaxCrossEntropy(_Classes):
    r"""Softmax and cross-entropy fused, on raw scores Z (the input a final Softmax layer would get).

    The value with a stable log-softmax, and the gradient that Softmax.backward(cce_gradient) gives
    when Σ_k y_k = 1:

    $$L = \frac{1}{b}\sum_i -\mathbf{y}^{(i)\top}\log\mathrm{softmax}(\mathbf{z}^{(i)}), \qquad
    \nabla_{\mathbf{z}^{(i)}} L_i = \hat{\mathbf{y}}^{(i)} - \mathbf{y}^{(i)}$$

    Faster, and exact even where a probability underflows to 0: no −Y/Ŷ, no Jacobian.
    """

    fuses = Softmax

    def value_and_gradient(self, Y: np.ndarray, Z: np.ndarray) -> tuple[float, np.ndarray]:
        """Both from one exponentiation: log ŷ = z − max z − log s and ŷ = e^(z − max z) / s.

        The trainer's hot path: no argument checks (``fit`` checked the data once).

        Args:
            Y: One-hot (or probability) targets, (classes, b).
            Z: The raw scores, (classes, b): the input a final Softmax layer would get.
        """
        shifted = Z - Z.max(axis=0, keepdims=True)
        exponentials = np.exp(shifted)
        sums = exponentials.sum(axis=0, keepdims=True)
        shifted -= np.log(sums)  # now log softmax(Z)
        value = float(-np.vdot(Y, shifted)) / Y.shape[1]
        exponentials /= sums  # now softmax(Z) = Ŷ
        exponentials -= Y
        return value, exponentials


@LOSSES.register("mse")
class MeanSquaredError(Loss):
    r"""Mean squared error, for a regression: the mean of (ŷ − y)² over the b samples and k outputs.

    $$L = \frac{1}{b}\sum_i \frac{1}{k}\big\lVert\hat{\mathbf{y}}^{(i)} - \mathbf{y}^{(i)}\big\rVert^2, \qquad
    \nabla_{\hat{\mathbf{y}}^{(i)}} L_i = \frac{2}{k}\big(\hat{\mathbf{y}}^{(i)} - \mathbf{y}^{(i)}\big)$$

    Y and Ŷ: (k, b), any real numbers. L is ``np.mean((Yhat - Y) ** 2)``. The model ends in a Dense layer:
    an activation after it (Softmax, Sigmoid, Tanh) would squeeze ŷ into a range that y need not lie in.
    A regression has no accuracy: ``fit`` and ``evaluate`` report the loss alone.

    >>> MeanSquaredError().value(np.array([[1.0, 2.0]]), np.array([[1.5, 2.0]]))
    0.125
    """

    def value_and_gradient(self, Y: np.ndarray, Yhat: np.ndarray) -> tuple[float, np.ndarray]:
        """Both from one difference Ŷ − Y; no argument checks (the trainer's hot path).

        Args:
            Y: The targets, (k, b): any real numbers.
            Yhat: Ŷ, the model's outputs, (k, b).
        """
        difference = Yhat - Y
        value = float(np.vdot(difference, difference)) / difference.size
        difference *= 2.0 / Y.shape[0]  # now the gradients (2/k)(ŷ − y)
        return value, difference


@LOSSES.register("bce")
class BinaryCrossEntropy(_Labels):
    r"""Binary cross-entropy on probabilities Ŷ (the output of a final Sigmoid layer), with labels Y of 0 or 1
    — one row per output: (1, b) for a yes/no question, (k, b) for k labels at once — summed over the rows:

    $$L = \frac{1}{b}\sum_i \sum_j -\Big[y^{(i)}_j \log\hat{y}^{(i)}_j + \big(1 - y^{(i)}_j\big)
    \log\big(1 - \hat{y}^{(i)}_j\big)\Big], \qquad
    \nabla_{\hat{y}^{(i)}_j} L_i = -\frac{y^{(i)}_j}{\hat{y}^{(i)}_j} + \frac{1 - y^{(i)}_j}{1 - \hat{y}^{(i)}_j}$$

    ŷ and 1 − ŷ are raised to the smallest normal float by :func:`guard`, so a probability of 0 or 1 gives a
    large finite loss, not log 0. The Sigmoid's backward multiplies the gradient by ŷ(1 − ŷ), which leaves
    ŷ − y — until 1 − ŷ rounds to 0 (a score z above ~37 in float64, ~17 in float32) and the gradient of a
    confidently wrong sample is lost: ``"sigmoid_bce"``, on the scores, is exact there.

    >>> round(BinaryCrossEntropy().value(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])), 6)
    0.693147
    """

    needs = Sigmoid

    def value_and_gradient(self, Y: np.ndarray, Yhat: np.ndarray) -> tuple[float, np.ndarray]:
        """Both at once; no argument checks (the trainer's hot path).

        Args:
            Y: Labels 0 or 1 (or probabilities in [0, 1]), (k, b): one row per output.
            Yhat: Ŷ, the predicted probabilities, (k, b), in [0, 1].
        """
        yes, no = guard(Yhat), guard(1.0 - Yhat)  # ŷ and 1 − ŷ
        value = -float(np.vdot(Y, np.log(yes)) + np.vdot(1.0 - Y, np.log(no))) / Y.shape[1]
        return value, (1.0 - Y) / no - Y / yes


@LOSSES.register("sigmoid_bce")
class SigmoidBinaryCrossEntropy(_Labels):
    r"""Sigmoid and binary cross-entropy fused, on raw scores Z (the input a final Sigmoid layer would get).

    With log σ(z) = z − log(1 + e^z) and log(1 − σ(z)) = −log(1 + e^z), the loss of :class:`BinaryCrossEntropy`
    becomes

    $$L = \frac{1}{b}\sum_i \sum_j \Big[\log\big(1 + e^{z^{(i)}_j}\big) - y^{(i)}_j z^{(i)}_j\Big], \qquad
    \nabla_{\mathbf{z}^{(i)}} L_i = \sigma\big(\mathbf{z}^{(i)}\big) - \mathbf{y}^{(i)}$$

    log(1 + e^z) is ``np.logaddexp(0, z)``, exact for scores of any size, and the gradient is what
    Sigmoid.backward(BinaryCrossEntropy's gradient) gives, without the rounding of 1 − ŷ. A sample is right
    when each score is on the side of 0 its label says (σ(z) ≥ ½ ⇔ z ≥ 0).
    """

    fuses = Sigmoid
    threshold = 0.0

    def value_and_gradient(self, Y: np.ndarray, Z: np.ndarray) -> tuple[float, np.ndarray]:
        """Both at once; no argument checks (the trainer's hot path).

        Args:
            Y: Labels 0 or 1 (or probabilities in [0, 1]), (k, b): one row per output.
            Z: The raw scores, (k, b): the input a final Sigmoid layer would get.
        """
        value = float(np.sum(np.logaddexp(0.0, Z)) - np.vdot(Y, Z)) / Y.shape[1]
        return value, sigmoid(Z) - Y


@LOSSES.register("sequence")
class SequenceCrossEntropy(Loss):
    r"""Softmax cross-entropy at every position of a batch of sequences, from the logits: a character model's
    loss, in nats, the mean over the T·b positions.

    Z: (V, T, b), the scores of the V tokens at each position t of each sequence i (what a final Dense layer
    gives); Y: (T, b), the id of the next token at each position, a whole number in [0, V) (stored in a
    float dtype). With z_(t,i) the column of Z at (t, i), ŷ_(t,i) = softmax(z_(t,i)) and e_y the one-hot
    column of id y:

    $$L = \frac{1}{b}\sum_{i=1}^{b} L_i, \qquad
    L_i = \frac{1}{T}\sum_{t=1}^{T} -\log \hat{y}_{t,i}[Y_{t,i}], \qquad
    \nabla_{\mathbf{z}_{t,i}} L_i = \frac{1}{T}\big(\hat{\mathbf{y}}_{t,i} - \mathbf{e}_{Y_{t,i}}\big)$$

    A sample is a sequence: as everywhere in nablanet, the gradient returned is the per-sample ∇L_i (here of
    the mean over its T positions), and the layers with parameters apply the batch mean's 1/b. The value is
    computed with a stable log-softmax over axis 0. A model trained with this loss reports no accuracy.

    >>> Z = np.zeros((4, 2, 3))  # V = 4 tokens, T = 2 positions, b = 3 sequences: uniform predictions
    >>> round(SequenceCrossEntropy().value(np.zeros((2, 3)), Z), 6)  # log 4 nats: a guess among 4 tokens
    1.386294
    """

    vector_hint = "token ids are a (T, N) matrix: one column per sequence"

    @staticmethod
    def _checked(Y: np.ndarray, Z: np.ndarray) -> None:
        if not isinstance(Z, np.ndarray) or Z.ndim != 3 or Z.dtype.kind != "f":
            raise ValueError(f"Z must be (V, T, b) float logits, received {getattr(Z, 'shape', type(Z).__name__)}")
        _checks.token_ids("Y", Y, Z.shape[0])
        if Y.shape != Z.shape[1:]:
            raise ValueError(f"Y must be (T, b) = {Z.shape[1:]}, the shape of the logits without V, received {Y.shape}")

    def value(self, Y: np.ndarray, Yhat: np.ndarray) -> float:
        """L, the mean over the T·b positions, in nats.

        Args:
            Y: The next-token ids, (T, b).
            Yhat: Z, the logits, (V, T, b).
        """
        self._checked(Y, Yhat)
        return self.value_and_gradient(Y, Yhat)[0]

    def gradient(self, Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
        """The per-sequence gradients (1/T)(ŷ − e_y) at every position, (V, T, b).

        Args:
            Y: The next-token ids, (T, b).
            Yhat: Z, the logits, (V, T, b).
        """
        self._checked(Y, Yhat)
        return self.value_and_gradient(Y, Yhat)[1]

    def value_and_gradient(self, Y: np.ndarray, Z: np.ndarray) -> tuple[float, np.ndarray]:
        """Both from one exponentiation (as :class:`SoftmaxCrossEntropy`); no argument checks (the trainer's hot
        path: ``fit`` checked the data once).

        Args:
            Y: The next-token ids, (T, b).
            Z: The logits, (V, T, b).
        """
        steps = Y.shape[0]
        ids = Y.astype(np.intp)[None]  # (1, T, b): the row of each position's target
        shifted = Z - Z.max(axis=0, keepdims=True)
        exponentials = np.exp(shifted)
        sums = exponentials.sum(axis=0, keepdims=True)
        target_log_probabilities = np.take_along_axis(shifted, ids, axis=0) - np.log(sums)
        value = -float(target_log_probabilities.sum()) / Y.size
        exponentials *= (1.0 / steps) / sums  # now ŷ / T
        np.put_along_axis(exponentials, ids, np.take_along_axis(exponentials, ids, axis=0) - 1.0 / steps, axis=0)
        return value, exponentials

    def check_targets(self, Y: np.ndarray) -> None:
        if Y.min() < 0 or not np.array_equal(Y, np.round(Y)):
            raise ValueError("Y must hold next-token ids, whole numbers ≥ 0: a (T, N) matrix, one column per window")

    def check_output_shape(self, Y: np.ndarray, shape: tuple[int, ...]) -> None:
        if len(shape) != 2:
            raise ValueError(
                f"loss 'sequence' needs a model whose output is (V, T) logits per sequence, this one's is {shape}"
            )
        if shape[1] != Y.shape[0]:
            raise ValueError(f"Y has {Y.shape[0]} rows, the model's output has {shape[1]} positions")
        if Y.max() >= shape[0]:
            raise ValueError(f"Y holds token id {Y.max():g}, the model predicts only {shape[0]} tokens")


def loss_object(loss: str | Loss, layers: Sequence[Layer] = ()) -> Loss:
    """The loss ``loss`` names — a name of :data:`LOSSES` or ``"auto"`` — or ``loss`` itself if it is one.

    ``"auto"`` is the fused loss of the model's last layer: ``"softmax_cce"`` after Softmax (classes),
    ``"sigmoid_bce"`` after Sigmoid (labels 0/1); any other model must name its loss.
    """
    names = ("auto", *LOSSES)
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        raise TypeError(f"loss must be a loss object, {loss.__name__}(), or a name; received the class itself")
    if not isinstance(loss, str):
        raise TypeError(f"loss must be one of {names} or a nablanet Loss object, received {type(loss).__name__}")
    _checks.choice("loss", loss, names)
    if loss != "auto":
        return LOSSES[loss]()
    last = layers[-1] if layers else None
    if isinstance(last, Softmax):
        return SoftmaxCrossEntropy()
    if isinstance(last, Sigmoid):
        return SigmoidBinaryCrossEntropy()
    raise ValueError(
        f"loss 'auto' needs a model that ends in Softmax (classes) or Sigmoid (labels 0/1), this one ends in "
        f"{type(last).__name__}: name the loss, e.g. loss='mse' for a regression"
    )


def resolve_loss(layers: Sequence[Layer], loss: str | Loss = "auto") -> tuple[list[Layer], Loss]:
    """Return (the layers the loss is computed after, the loss object) for a loss name or object.

    A fused loss (``"softmax_cce"``, ``"sigmoid_bce"``) leaves out the final layer whose work it does itself,
    if the model ends in one; a loss on probabilities (``"cce"``, ``"bce"``) needs the model to end in the
    layer that makes them — or in a learner's own layer (one not in ``LAYERS``, as an exercise's Softmax), which
    is taken at its word. ``"cce"`` is the notebook's path: Softmax layer, then ``cce``.
    """
    layers = list(layers)
    loss = loss_object(loss, layers)
    last = layers[-1] if layers else None
    if loss.fuses is not None and isinstance(last, loss.fuses):
        return layers[:-1], loss
    nablanets = last is None or type(last) in LAYERS.values()
    if loss.needs is not None and nablanets and not isinstance(last, loss.needs):
        raise ValueError(
            f"loss {type(loss).__name__} needs probabilities: end the model with a {loss.needs.__name__} layer"
        )
    return layers, loss
