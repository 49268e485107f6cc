"""Every layer and loss against central finite differences in float64 (relative error < 1e-6)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nablanet as nn
from nablanet.core.gradcheck import gradcheck

TOLERANCE = 1e-6


def away_from_zero(values):
    """Keep inputs of kinked activations (ReLU at 0) farther from the kink than the step h."""
    return np.sign(values) * (0.05 + np.abs(values))


def one_hot_targets(rng, classes, batch):
    return nn.one_hot(rng.integers(0, classes, batch), classes)


def binary_targets(rng, outputs, batch):
    """Labels 0 or 1, one row per output."""
    return rng.integers(0, 2, (outputs, batch)).astype(np.float64)


# Each case: (rng, n_in, n_out, batch) -> (target, X, Y or None)
CASES = {
    "Dense": lambda rng, i, o, b: (nn.Dense(i, o, init="he_normal", rng=rng), rng.normal(size=(i, b)), None),
    "Dense(notebook init)": lambda rng, i, o, b: (nn.Dense(i, o, rng=rng), rng.normal(size=(i, b)), None),
    "Softmax(vectorized)": lambda rng, i, o, b: (nn.Softmax(), rng.normal(size=(o, b)), None),
    "Softmax(einsum)": lambda rng, i, o, b: (nn.Softmax("einsum"), rng.normal(size=(o, b)), None),
    "Softmax(loop)": lambda rng, i, o, b: (nn.Softmax("loop"), rng.normal(size=(o, b)), None),
    "ReLU": lambda rng, i, o, b: (nn.ReLU(), away_from_zero(rng.normal(size=(i, b))), None),
    "LeakyReLU": lambda rng, i, o, b: (nn.LeakyReLU(0.1), away_from_zero(rng.normal(size=(i, b))), None),
    "Sigmoid": lambda rng, i, o, b: (nn.Sigmoid(), 3 * rng.normal(size=(i, b)), None),
    "Tanh": lambda rng, i, o, b: (nn.Tanh(), rng.normal(size=(i, b)), None),
    "cce": lambda rng, i, o, b: (
        nn.CategoricalCrossEntropy(),
        nn.softmax(rng.normal(size=(o, b))),
        one_hot_targets(rng, o, b),
    ),
    "softmax_cce (fused)": lambda rng, i, o, b: (
        nn.SoftmaxCrossEntropy(),
        rng.normal(size=(o, b)),
        one_hot_targets(rng, o, b),
    ),
    "mse": lambda rng, i, o, b: (nn.MeanSquaredError(), rng.normal(size=(o, b)), rng.normal(size=(o, b))),
    "bce": lambda rng, i, o, b: (
        nn.BinaryCrossEntropy(),
        nn.Sigmoid().forward(rng.normal(size=(o, b))),
        binary_targets(rng, o, b),
    ),
    "sigmoid_bce (fused)": lambda rng, i, o, b: (
        nn.SigmoidBinaryCrossEntropy(),
        3 * rng.normal(size=(o, b)),
        binary_targets(rng, o, b),
    ),
    "Dense→Tanh→Dense→mse": lambda rng, i, o, b: (
        _Chain(
            nn.Sequential(
                [
                    nn.Dense(i, 4, init="glorot_normal", rng=rng),
                    nn.Tanh(),
                    nn.Dense(4, o, init="glorot_uniform", rng=rng),
                ]
            ),
            "mse",
        ),
        rng.normal(size=(i, b)),
        rng.normal(size=(o, b)),
    ),
    "Dense→Sigmoid→bce": lambda rng, i, o, b: (
        _Chain(nn.Sequential([nn.Dense(i, o, init="glorot_uniform", rng=rng), nn.Sigmoid()]), "bce"),
        rng.normal(size=(i, b)),
        binary_targets(rng, o, b),
    ),
    "Dense→Sigmoid→sigmoid_bce (fused)": lambda rng, i, o, b: (
        _Chain(nn.Sequential([nn.Dense(i, o, init="glorot_uniform", rng=rng), nn.Sigmoid()]), "sigmoid_bce"),
        rng.normal(size=(i, b)),
        binary_targets(rng, o, b),
    ),
    "Dense→Softmax→cce": lambda rng, i, o, b: (
        _Chain(nn.Sequential([nn.Dense(i, o, init="he_normal", rng=rng), nn.Softmax()]), "cce"),
        rng.normal(size=(i, b)),
        one_hot_targets(rng, o, b),
    ),
    "Dense→Tanh→Dense→Sigmoid→Dense→softmax_cce": lambda rng, i, o, b: (
        _Chain(
            nn.Sequential(
                [
                    nn.Dense(i, 4, init="glorot_normal", rng=rng),
                    nn.Tanh(),
                    nn.Dense(4, 3, init="glorot_uniform", rng=rng),
                    nn.Sigmoid(),
                    nn.Dense(3, o, init="he_uniform", rng=rng),
                    nn.Softmax(),
                ]
            ),
            "softmax_cce",
        ),
        rng.normal(size=(i, b)),
        one_hot_targets(rng, o, b),
    ),
}


class _Chain:
    """A model together with the loss to check it under."""

    def __init__(self, model, loss):
        self.model, self.loss = model, loss


@pytest.mark.parametrize("case", CASES)
@given(n_in=st.integers(1, 6), n_out=st.integers(2, 5), batch=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_analytic_gradients_match_central_differences(case, n_in, n_out, batch, seed):
    rng = np.random.default_rng(seed)
    target, X, Y = CASES[case](rng, n_in, n_out, batch)
    if isinstance(target, _Chain):
        report = gradcheck(target.model, X, Y, loss=target.loss, tolerance=TOLERANCE)
    else:
        report = gradcheck(target, X, Y, tolerance=TOLERANCE)
    assert report.results, "nothing was compared"
    assert report.passed, report.table()


class _WrongDense(nn.Dense):
    """A Dense layer whose backward forgets the 1/b of the batch mean."""

    def backward(self, output_gradient, learning_rate=None):
        input_gradient = super().backward(output_gradient, learning_rate)
        self.weights_gradient[...] *= self.input.shape[1]
        return input_gradient


class _WrongReLU(nn.ReLU):
    """A ReLU whose backward lets the gradient through everywhere."""

    def backward(self, output_gradient, learning_rate=None):
        return output_gradient


def test_gradcheck_flags_a_wrong_weight_gradient(rng):
    report = gradcheck(_WrongDense(4, 3, rng=rng), rng.normal(size=(4, 5)))
    assert not report.passed
    verdicts = {result.name: result.passed for result in report.results}
    assert verdicts == {"layer 0 _WrongDense.weights": False, "input": True}
    assert "FAIL" in report.table()


def test_gradcheck_flags_a_wrong_input_gradient(rng):
    model = nn.Sequential(
        [nn.Dense(4, 6, init="he_normal", rng=rng), _WrongReLU(), nn.Dense(6, 3, rng=rng), nn.Softmax()]
    )
    report = gradcheck(model, rng.normal(size=(4, 8)), one_hot_targets(rng, 3, 8))
    assert not report.passed
    assert not report.results[-1].passed  # the input gradient flows through the broken ReLU


def test_gradcheck_refuses_float32_parameters(rng):
    with pytest.raises(ValueError, match="float64"):
        gradcheck(nn.Dense(2, 2, dtype=np.float32), rng.normal(size=(2, 3)))
