"""The checker: a learner's layer (or loss function) beside nablanet's, check by check, with a diagnosis.

``check(MyDense, like="Dense")`` builds the learner's class and the reference with the same arguments and
the same weights, on random shapes in float64 (a batch of several samples, and a batch of one), and compares:

1. the output of ``forward`` and, for a layer with weights, ``∇_X L`` and every parameter gradient of
   ``backward(g)``, against the reference;
2. the parameter and input gradients against central finite differences (:func:`~nablanet.gradcheck`), so a
   learner's layer is proven right by the math, not only by agreement with ours;
3. the notebook's contract: ``backward(g, learning_rate)`` takes exactly the SGD step W ← W − η ∇_W L and
   computes ∇_X L with W *before* it; ``backward(g)`` without a rate changes no weight; neither pass writes
   into the arrays it was given.

Where a result is wrong, the checker compares it with what each mistake learners really make would have
given (the reference's :class:`~nablanet.exercises.references.Exercise` lists them: a missing 1/b, a
transposed product, the mask of ReLU on the wrong side, …) and says the likely cause in one sentence. A
method that still raises ``NotImplementedError`` (or returns ``None``: a body left as ``...``) is "not written
yet", not a traceback.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.gradcheck import gradcheck
from .references import EXERCISES, Exercise, Mistake, Setting

GENERIC = "not a mistake the checker knows: compare each step with the formulas above the cell, term by term"
TOLERANCE = 1e-8  # relative error of a float64 result that counts as equal (a correct one gives ~1e-16)
LEARNING_RATE = 0.1


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One check: what was checked, whether it passed, what was measured, and on failure the likely cause.

    Args:
        check: What was checked, e.g. "backward: ∇ of weights".
        passed: True, False, or None where it was not run (an earlier step failed or is not written yet).
        measured: What was found: a relative error, a shape, an exception's words.
        hint: On failure, the likely mistake and its fix (empty on success).
    """

    check: str
    passed: bool | None
    measured: str = ""
    hint: str = ""

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "·"}[self.passed]


@dataclasses.dataclass(frozen=True, repr=False)
class CheckReport:
    """The checker's verdicts on one learner's class or function: ``passed`` when every check passed. Printed,
    it is plain lines (one a check, a hint under each failure); in Jupyter, a table.

    Args:
        subject: The name of the learner's class or function.
        reference: The name of nablanet's layer or function it was checked against.
        setting: The shapes and numbers it was checked on, in words.
        verdicts: One :class:`Verdict` a check, in the order they ran.
    """

    subject: str
    reference: str
    setting: str
    verdicts: tuple[Verdict, ...]

    @property
    def passed(self) -> bool:
        return all(verdict.passed for verdict in self.verdicts)

    @property
    def written(self) -> bool:
        """Whether every method the checks call has been written (none raised ``NotImplementedError``)."""
        return not any(verdict.measured == NOT_WRITTEN for verdict in self.verdicts)

    def failures(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.passed is False]

    def summary(self) -> str:
        if not self.written:
            return f"{self.subject}: not written yet"
        failed = len(self.failures())
        if not failed:
            return f"{self.subject} passes every check against nablanet's {self.reference}"
        return f"{self.subject}: {failed} of {len(self.verdicts)} checks failed"

    def __str__(self) -> str:
        width = max(len("check"), *(len(verdict.check) for verdict in self.verdicts))
        lines = [
            f"{self.subject} checked against nablanet's {self.reference} ({self.setting})",
            f"    {'check':<{width}}  measured",
        ]
        for verdict in self.verdicts:
            lines.append(f"  {verdict.mark} {verdict.check:<{width}}  {verdict.measured}".rstrip())
            if verdict.hint:
                lines.append(f"      → {verdict.hint}")
        lines.append(self.summary())
        return "\n".join(lines)

    __repr__ = __str__  # a notebook's plain-text output and the REPL show the lines

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td style='text-align:center'>{verdict.mark}</td><td style='text-align:left'>"
            f"{html.escape(verdict.check)}</td><td style='text-align:left'>{html.escape(verdict.measured)}</td>"
            f"<td style='text-align:left'>{html.escape(verdict.hint)}</td></tr>"
            for verdict in self.verdicts
        )
        return (
            f"<p><b>{html.escape(self.subject)}</b> checked against nablanet's {html.escape(self.reference)} "
            f"({html.escape(self.setting)})</p><table><tr><th></th><th>check</th><th>measured</th><th>hint</th></tr>"
            f"{rows}</table><p><b>{html.escape(self.summary())}</b></p>"
        )


NOT_WRITTEN = "not written yet"


class _NotWritten(Exception):
    """A method of the learner's still raises NotImplementedError, or returns None."""


class _Crashed(Exception):
    """The learner's code raised; the message says what, and the hint why (where it is recognised)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def check(subject: type | Callable, like: str | None = None, *, seed: int = 0) -> CheckReport:
    """Check a learner's layer class (or function) against nablanet's, check by check, naming the likely mistake.

    For a layer: the output of ``forward``; ``backward``'s input gradient and every parameter gradient; the
    gradients against central finite differences; ``backward(g, η)``'s SGD step W ← W − η ∇_W L, with the input
    gradient computed from W before it; no step without a rate; the arguments left unchanged; a batch of one.
    For a function: its result on a batch and on the cases learners get wrong (a probability of exactly 0).
    Each wrong result is compared with what the known mistakes give on the same numbers.

    >>> import numpy as np
    >>> import nablanet as nn
    >>> class MyReLU(nn.Layer):
    ...     def forward(self, input):
    ...         self.input = input
    ...         return np.maximum(input, 0)
    ...     def backward(self, output_gradient, learning_rate=None):
    ...         return output_gradient * (self.input < 0)  # the mask on the wrong side
    >>> report = check(MyReLU, like="ReLU")
    >>> report.passed
    False
    >>> print(report.failures()[0].hint)
    the mask is on the wrong side: ∇_Z L = ∇_A L ⊙ 𝟙[z > 0], the gradient flows where z was positive

    Args:
        subject: The learner's layer class (not an instance), or function for ``"cce"``, ``"cce_gradient"``,
            ``"softmax_classifier_gradient"`` and ``"scaled_dot_product_attention"`` (Q, K, V of one sequence →
            O, with the causal mask). A class is built with the exercise's arguments, e.g.
            ``Dense(input_size, output_size)``, and given nablanet's weights through its ``parameters()``.
        like: The reference: ``"Dense"``, ``"ReLU"``, ``"Softmax"``, ``"MaxPool2D"``, ``"Conv2D"``, ``"cce"``,
            ``"cce_gradient"``, ``"softmax_classifier_gradient"`` or ``"scaled_dot_product_attention"``; default:
            the subject's own ``__name__``.
        seed: Chooses the random shapes and numbers.

    Returns:
        A :class:`CheckReport`: ``print`` it, or let Jupyter show it as a table; ``.passed`` is True when every
        check passed.
    """
    name = like if like is not None else getattr(subject, "__name__", "")
    exercise = EXERCISES.lookup(name, argument="like")
    setting = exercise.setting(np.random.default_rng(seed))
    subject_name = getattr(subject, "__name__", type(subject).__name__)
    if exercise.function == isinstance(subject, type) or not callable(subject):
        wanted = "a function (Y, Ŷ) → result" if exercise.function else "a layer class (not an instance)"
        raise TypeError(f"like={exercise.name!r} checks {wanted}, received {subject_name}")
    if exercise.function:
        verdicts = _check_function(subject, exercise, setting)
    else:
        verdicts = _check_layer(subject, exercise, setting)
    return CheckReport(subject_name, exercise.name, setting.description, tuple(verdicts))


# ----- running the learner's code ---------------------------------------------------------------------------


def _call(exercise: Exercise, what: str, method: Callable, *arguments) -> Any:
    """``method(*arguments)``, the learner's; NotImplementedError or a None result → _NotWritten; any other
    exception → _Crashed with a hint for the shape errors learners meet."""
    where = getattr(method, "__qualname__", what)  # "Softmax.forward": where a subclass inherits it from
    try:
        result = method(*arguments)
    except NotImplementedError:
        raise _NotWritten(where) from None
    except Exception as error:
        message = f"{what} raised {type(error).__name__}: {error}"
        raise _Crashed(message, exercise.crash_hint(what, error)) from None
    if result is None or result is Ellipsis:  # a body left as `...` or `pass`, or a missing `return`
        raise _NotWritten(where)
    return result


def _relative_error(result: np.ndarray, expected: np.ndarray) -> float:
    difference = float(np.linalg.norm(result - expected))
    scale = float(np.linalg.norm(result) + np.linalg.norm(expected))
    return 0.0 if difference == 0 else difference / scale


def _same(result: Any, expected: np.ndarray) -> bool:
    result = np.asarray(result)
    return (
        result.shape == expected.shape
        and bool(np.all(np.isfinite(result)))
        and (_relative_error(result.astype(np.float64), expected) <= TOLERANCE)
    )


def _compare(check: str, result: Any, expected: np.ndarray, mistakes: Sequence[Mistake], generic: str = "") -> Verdict:
    """A verdict on ``result`` against ``expected``; on failure, the first of ``mistakes`` whose result it
    equals names the cause."""
    try:
        result = np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError):
        return Verdict(check, False, f"a {type(result).__name__}, not an array", "return a NumPy array")
    if _same(result, expected):
        return Verdict(check, True, f"relative error {_relative_error(result, expected):.1e}")
    if result.shape != expected.shape:
        measured = f"shape {result.shape}, expected {expected.shape}"
    elif not np.all(np.isfinite(result)):
        measured = "holds NaN or inf"
    else:
        measured = f"relative error {_relative_error(result, expected):.1e}"
    finite = bool(np.all(np.isfinite(result)))
    for mistake in mistakes:  # a mistake without a result is the cause of any NaN or inf
        if (mistake.result is None and not finite) or (mistake.result is not None and _same(result, mistake.result)):
            return Verdict(check, False, measured, mistake.hint)
    return Verdict(check, False, measured, generic or GENERIC)


# ----- a layer ---------------------------------------------------------------------------------------------


def _check_layer(subject: Any, exercise: Exercise, setting: Setting) -> list[Verdict]:
    verdicts: list[Verdict] = []

    def stop(at: str, reason: Exception) -> list[Verdict]:
        """The verdicts so far and that of the step that could not run: the checks after it need its result."""
        if isinstance(reason, _NotWritten):
            hint = f"write the body of {reason} (it still raises NotImplementedError, or returns nothing: a return?)"
            verdicts.append(Verdict(at, None, NOT_WRITTEN, hint))
        else:
            verdicts.append(Verdict(at, False, str(reason), getattr(reason, "hint", "")))
        verdicts.append(Verdict("the checks after it", None, "not run: they need this step's result"))
        return verdicts

    try:
        learner = _built(subject, exercise, setting)
    except (_NotWritten, _Crashed) as reason:
        return stop("constructor and parameters()", reason)
    X, G = setting.X, setting.G
    given_X, given_G = X.copy(), G.copy()
    reference = setting.reference
    expected_output = reference.forward(X)
    try:
        output = _call(exercise, "forward", learner.forward, X)
    except (_NotWritten, _Crashed) as reason:
        return stop("forward: the output", reason)
    verdicts.append(_compare("forward: the output", output, expected_output, exercise.output_mistakes(setting)))
    expected_input_gradient = reference.backward(G)
    weights_before = [parameter.value.copy() for parameter in learner.parameters()]
    try:
        input_gradient = _call(exercise, "backward", learner.backward, G)
    except (_NotWritten, _Crashed) as reason:
        return stop("backward", reason)
    verdicts.append(
        _compare(INPUT_GRADIENT, input_gradient, expected_input_gradient, exercise.input_gradient_mistakes(setting))
    )
    for ours, theirs in zip(reference.parameters(), learner.parameters(), strict=True):
        mistakes = [
            *_new_arrays(learner, ours.gradient, theirs.gradient, "the gradient", "[...] ="),
            *exercise.parameter_mistakes(setting, ours.name),
        ]
        verdicts.append(_compare(f"backward: ∇ of {ours.name}", theirs.gradient, ours.gradient, mistakes))
    if weights_before:
        changed = [
            parameter.name
            for parameter, before in zip(learner.parameters(), weights_before, strict=True)
            if not np.array_equal(parameter.value, before)
        ]
        verdicts.append(
            Verdict(
                "backward(g) without a learning rate changes no weight",
                not changed,
                f"{', '.join(changed)} changed" if changed else "",
                "without a learning rate, backward only stores the gradients (an optimizer applies them later)"
                if changed
                else "",
            )
        )
    untouched = np.array_equal(X, given_X) and np.array_equal(G, given_G)
    verdicts.append(
        Verdict(
            "forward and backward leave their arguments unchanged",
            untouched,
            "" if untouched else "the input or the output gradient was written into",
            ""
            if untouched
            else "an in-place operation (+=, [...] =) on an argument changes the caller's array: compute a new one",
        )
    )
    verdicts.append(_finite_differences(subject, exercise, setting, _failed(verdicts)))
    if weights_before:
        verdicts.extend(_sgd_step(subject, exercise, setting))
    verdicts.append(_one_sample(subject, exercise, setting, _failed(verdicts)))
    forward_failed = not verdicts[0].passed
    for name, inputs, hint in exercise.extra_inputs(setting):
        try:
            output = _call(exercise, "forward", _built(subject, exercise, setting).forward, inputs)
        except (_NotWritten, _Crashed) as reason:
            verdicts.append(Verdict(name, False, str(reason), getattr(reason, "hint", "")))
            continue
        generic = "wrong on ordinary scores too: see the first check" if forward_failed else ""
        verdicts.append(_compare(name, output, reference.forward(inputs), (Mistake(None, hint),), generic))
    return verdicts


INPUT_GRADIENT = "backward: ∇ of the input"


def _failed(verdicts: list[Verdict]) -> bool:
    return any(verdict.passed is False for verdict in verdicts)


def _new_arrays(learner, expected: np.ndarray, handed_out: np.ndarray, what: str, how: str) -> list[Mistake]:
    """The mistake of a learner who bound ``what`` to an attribute as a new array (``self.g = …``) instead of
    writing into the array ``parameters()`` hands out (``how``): an attribute holds ``expected``, the array
    handed out does not — so the result seen is that array as it is."""
    for name, value in vars(learner).items():
        if isinstance(value, np.ndarray) and value is not handed_out and _same(value, expected):
            hint = (
                f"{what} went into a new array (self.{name} = …), but parameters() hands out the old one: "
                f"write into it, self.{name}{how} …"
            )
            return [Mistake(np.array(handed_out, dtype=np.float64), hint)]
    return []


def _built(subject: type, exercise: Exercise, setting: Setting):
    """The learner's layer, built with the setting's arguments, holding the reference's weights."""
    arguments = ", ".join([*map(repr, setting.arguments), *(f"{k}={v!r}" for k, v in setting.keywords.items())])
    try:
        learner = subject(*setting.arguments, **setting.keywords)
    except NotImplementedError:
        raise _NotWritten("__init__") from None
    except Exception as error:
        raise _Crashed(
            f"{subject.__name__}({arguments}) raised {type(error).__name__}: {error}",
            f"the exercise's constructor takes {exercise.signature}",
        ) from None
    try:
        theirs = learner.parameters()
    except NotImplementedError:
        raise _NotWritten("parameters()") from None
    ours = setting.reference.parameters()
    shapes = [np.shape(parameter.value) for parameter in theirs]
    expected = [parameter.value.shape for parameter in ours]
    if shapes != expected:
        raise _Crashed(
            f"parameters() gives arrays of shapes {shapes}, expected {expected}",
            f"the exercise's layer keeps {', '.join(f'{p.name} {p.value.shape}' for p in ours) or 'no weights'}",
        )
    for mine, reference in zip(theirs, ours, strict=True):
        mine.value[...] = reference.value  # the same weights as the reference
    return learner


def _finite_differences(subject: type, exercise: Exercise, setting: Setting, earlier_failed: bool) -> Verdict:
    name = "∇ against central finite differences"
    learner = _built(subject, exercise, setting)
    see_above = "the failed checks above say where" if earlier_failed else "compare it with the formula, term by term"
    try:
        report = gradcheck(learner, setting.X)
    except Exception as error:
        return Verdict(
            name, False, f"{type(error).__name__}: {error}", f"a gradient of the wrong shape or kind: {see_above}"
        )
    worst = max(report.results, key=lambda result: result.relative_error)
    if report.passed:
        return Verdict(name, True, f"largest relative error {worst.relative_error:.1e}")
    wrong = ", ".join(result.name for result in report.results if not result.passed)
    hint = f"backward does not give the derivative of forward: {see_above}"
    return Verdict(name, False, f"{wrong}: relative error {worst.relative_error:.1e}", hint)


def _sgd_step(subject: type, exercise: Exercise, setting: Setting) -> list[Verdict]:
    """backward(g, η): the step W ← W − η ∇_W L, and ∇_X L with W before it."""
    step = "backward(g, η) takes the step W ← W − η ∇_W L"
    before_name = "backward(g, η): ∇ of the input, W before the step"
    learner = _built(subject, exercise, setting)
    reference = setting.reference
    reference.forward(setting.X)
    expected_input_gradient = reference.backward(setting.G)
    try:
        learner.forward(setting.X)
        input_gradient = _call(exercise, "backward", learner.backward, setting.G, LEARNING_RATE)
    except (_NotWritten, _Crashed) as reason:
        return [Verdict(step, False, str(reason), getattr(reason, "hint", "")), Verdict(before_name, None, "not run")]
    verdicts = []
    for ours, theirs in zip(reference.parameters(), learner.parameters(), strict=True):
        expected = ours.value - LEARNING_RATE * ours.gradient
        mistakes = [
            *_new_arrays(learner, expected, theirs.value, "the step", " -="),
            Mistake(ours.value + LEARNING_RATE * ours.gradient, "the step goes uphill: W ← W − η ∇_W L (a minus)"),
            Mistake(ours.value - ours.gradient, "the learning rate is left out: W ← W − η ∇_W L"),
            Mistake(ours.value, "backward(g, η) must update the weights: W ← W − η ∇_W L"),
            *(  # a step with a wrong gradient: the gradient's own mistake
                Mistake(ours.value - LEARNING_RATE * wrong.result, f"the step took a wrong gradient: {wrong.hint}")
                for wrong in exercise.parameter_mistakes(setting, ours.name)
                if wrong.result is not None and wrong.result.shape == ours.value.shape
            ),
        ]
        verdicts.append(_compare(f"{step} ({ours.name})", theirs.value, expected, mistakes))
    after = [parameter.value for parameter in learner.parameters()]
    verdicts.append(
        _compare(
            before_name,
            input_gradient,
            expected_input_gradient,
            [*exercise.updated_weights_mistakes(setting, after), *exercise.input_gradient_mistakes(setting)],
        )
    )
    return verdicts


def _one_sample(subject: type, exercise: Exercise, setting: Setting, earlier_failed: bool) -> Verdict:
    """The same layer on a batch of one sample: the shapes (k, 1) that loops and squeezes get wrong."""
    name = "a batch of one sample"
    learner = _built(subject, exercise, setting)
    X, G = setting.X[..., :1].copy(), setting.G[..., :1].copy()  # samples are the last axis (sequences too)
    reference = setting.reference
    try:
        output = _call(exercise, "forward", learner.forward, X)
        input_gradient = _call(exercise, "backward", learner.backward, G)
    except (_NotWritten, _Crashed) as reason:
        return Verdict(name, False, str(reason), getattr(reason, "hint", ""))
    expected = reference.forward(X)
    expected_gradient = reference.backward(G)
    for result, wanted in ((output, expected), (input_gradient, expected_gradient)):
        if earlier_failed:
            hint = "wrong on one sample as on the whole batch: the checks above say where"
        elif np.shape(result) != wanted.shape:
            hint = "a batch of one is a (features, 1) matrix: keep the second axis (no squeeze, no [:, 0])"
        else:
            hint = "right on a batch, wrong on one sample: a loop, a sum or an axis that assumes several columns"
        verdict = _compare(name, result, wanted, (), hint)
        if not verdict.passed:
            return verdict
    return Verdict(name, True, f"output {np.shape(output)}, ∇ of the input {np.shape(input_gradient)}")


# ----- a loss function -------------------------------------------------------------------------------------


def _check_function(subject: Callable, exercise: Exercise, setting: Setting) -> list[Verdict]:
    verdicts = []
    for case in exercise.cases(setting):
        arguments = tuple(argument.copy() for argument in case.arguments)
        try:
            result = _call(exercise, subject.__name__, subject, *arguments)
        except _NotWritten:
            return [Verdict(case.name, None, NOT_WRITTEN, f"write {subject.__name__}")]
        except _Crashed as crash:
            verdicts.append(Verdict(case.name, False, str(crash), crash.hint))
            continue
        verdicts.append(_compare(case.name, result, np.asarray(case.expected, dtype=np.float64), case.mistakes))
        if not all(np.array_equal(a, b) for a, b in zip(arguments, case.arguments, strict=True)):
            verdicts.append(
                Verdict(
                    f"{case.name}: the arguments unchanged",
                    False,
                    "an argument was written into",
                    "compute a new array instead of changing Y or Ŷ in place",
                )
            )
    if exercise.gradient_of is not None and all(verdict.passed is not None for verdict in verdicts):
        verdicts.append(_loss_finite_differences(subject, exercise, setting))
    return verdicts


@dataclasses.dataclass(frozen=True)
class _LearnersGradient:
    """A loss for :func:`~nablanet.gradcheck`: the reference's value, the learner's gradient."""

    value: Callable
    gradient: Callable


def _loss_finite_differences(subject: Callable, exercise: Exercise, setting: Setting) -> Verdict:
    name = f"against central finite differences of {exercise.gradient_of.__name__}"
    try:
        Y, Yhat = setting.inputs
        report = gradcheck(_LearnersGradient(exercise.gradient_of, subject), Yhat, Y)
    except Exception as error:
        return Verdict(name, False, f"{type(error).__name__}: {error}")
    (result,) = report.results
    hint = "" if result.passed else "not the derivative of the loss: differentiate −Σ y log ŷ entry by entry"
    return Verdict(name, result.passed, f"relative error {result.relative_error:.1e}", hint)
