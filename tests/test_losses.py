import numpy as np
import pytest

import nablanet as nn


def test_cce_is_the_batch_mean_by_hand():
    Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    Yhat = np.array([[0.8, 0.4], [0.2, 0.6]])
    assert nn.cce(Y, Yhat) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2, rel=1e-15)


def test_cce_gradient_is_minus_y_over_yhat():
    Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    Yhat = np.array([[0.8, 0.4], [0.2, 0.6]])
    np.testing.assert_allclose(nn.cce_gradient(Y, Yhat), [[-1.25, 0.0], [0.0, -1 / 0.6]], rtol=1e-15)


def test_cce_is_guarded_against_zero_probabilities():
    Y = np.array([[1.0], [0.0]])
    Yhat = np.array([[0.0], [1.0]])
    assert nn.cce(Y, Yhat) == pytest.approx(-np.log(np.finfo(np.float64).tiny))
    assert np.isfinite(nn.cce_gradient(Y, Yhat)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_confidently_wrong_prediction_keeps_its_gradient(dtype):
    # scores 40 apart: ŷ of the true class is e^-40 ≈ 4e-18; the chain −y/ŷ → Jacobian must still give ŷ − y
    Z = np.array([[40.0], [0.0]], dtype=dtype)
    Y = np.array([[0.0], [1.0]], dtype=dtype)
    softmax = nn.Softmax()
    gradient = softmax.backward(nn.cce_gradient(Y, softmax.forward(Z)))
    np.testing.assert_allclose(gradient, nn.SoftmaxCrossEntropy().gradient(Y, Z), rtol=1e-5)
    np.testing.assert_allclose(gradient, [[1.0], [-1.0]], rtol=1e-5)


def test_fused_loss_equals_softmax_then_cce(rng):
    Z = rng.normal(size=(5, 7))
    Y = nn.one_hot(rng.integers(0, 5, 7), 5)
    fused = nn.SoftmaxCrossEntropy()
    assert fused.value(Y, Z) == pytest.approx(nn.cce(Y, nn.softmax(Z)), rel=1e-13)
    softmax = nn.Softmax()
    two_step = softmax.backward(nn.cce_gradient(Y, softmax.forward(Z)))
    np.testing.assert_allclose(fused.gradient(Y, Z), two_step, rtol=0, atol=1e-14)


def test_fused_loss_is_exact_for_huge_scores():
    Z = np.array([[1000.0], [0.0]])
    Y = np.array([[0.0], [1.0]])
    assert nn.SoftmaxCrossEntropy().value(Y, Z) == pytest.approx(1000.0)


@pytest.mark.parametrize(
    "Y, Yhat, message",
    [
        (np.ones((3, 2)), np.ones((3, 3)), "same shape"),
        (np.array([[np.nan], [1.0]]), np.ones((2, 1)), "NaN or inf"),
        (np.ones(3), np.ones(3), "2-D"),
    ],
)
def test_loss_arguments_are_checked(Y, Yhat, message):
    with pytest.raises(ValueError, match=message):
        nn.cce(Y, Yhat)
