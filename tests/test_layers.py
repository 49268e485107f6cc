import numpy as np
import pytest

import nablanet as nn


def test_dense_bias_trick_equals_the_notebooks_vstack(rng):
    layer = nn.Dense(5, 3, rng=rng)
    X = rng.normal(size=(5, 7))
    X_tilde = np.vstack([X, np.ones((1, 7))])
    np.testing.assert_allclose(layer.forward(X), layer.weights @ X_tilde, rtol=1e-14)


def test_dense_initialisation_is_the_notebooks_and_seedable():
    layer = nn.Dense(784, 10, rng=7)
    assert layer.weights.shape == (10, 785)
    np.testing.assert_array_equal(layer.weights[:, -1], 0.01)
    assert 0.009 < layer.weights[:, :-1].std() < 0.011
    np.testing.assert_array_equal(layer.weights, nn.Dense(784, 10, rng=7).weights)


def test_dense_keeps_its_weights_column_by_column_with_w_and_b_as_contiguous_views():
    layer = nn.Dense(784, 10, rng=7, dtype=np.float32)
    assert layer.weights.flags.f_contiguous and layer.weights_gradient.flags.f_contiguous
    assert layer.W.flags.f_contiguous and layer.b.flags.c_contiguous
    assert np.shares_memory(layer.W, layer.weights) and np.shares_memory(layer.b, layer.weights)
    assert layer.parameters()[0].order == "F"


def test_dense_backward_is_the_notebooks_loop_and_sgd_step(rng):
    layer = nn.Dense(4, 3, rng=rng)
    X = rng.normal(size=(4, 6))
    output_gradient = rng.normal(size=(3, 6))
    before = layer.weights.copy()
    layer.forward(X)
    input_gradient = layer.backward(output_gradient, learning_rate=0.1)
    X_tilde = np.vstack([X, np.ones((1, 6))])
    expected = sum(np.outer(output_gradient[:, b], X_tilde[:, b]) for b in range(6)) / 6  # the notebook's loop
    np.testing.assert_allclose(layer.weights_gradient, expected, rtol=1e-13)
    np.testing.assert_allclose(layer.weights, before - 0.1 * expected, rtol=1e-13)
    np.testing.assert_allclose(input_gradient, before[:, :-1].T @ output_gradient, rtol=1e-13)


def test_dense_backward_without_learning_rate_leaves_weights(rng):
    layer = nn.Dense(2, 2, rng=rng)
    before = layer.weights.copy()
    layer.forward(rng.normal(size=(2, 3)))
    layer.backward(rng.normal(size=(2, 3)))
    np.testing.assert_array_equal(layer.weights, before)


@pytest.mark.parametrize("shape", [(3, 4), (5,), (4, 4, 1), (5, 4, 1, 1)])  # (5, T, b) is a batch of sequences
def test_dense_refuses_input_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match="input"):
        nn.Dense(5, 2).forward(np.ones(shape))


def test_dense_refuses_a_wrong_output_gradient(rng):
    layer = nn.Dense(3, 2)
    layer.forward(np.ones((3, 4)))
    with pytest.raises(ValueError, match="output_gradient"):
        layer.backward(np.ones((2, 5)))


@pytest.mark.parametrize("argument", [0, -3, 2.5, "10", True])
def test_dense_sizes_must_be_positive_integers(argument):
    with pytest.raises(ValueError, match="input_size must be a positive integer"):
        nn.Dense(argument, 3)


def test_dense_refuses_a_non_positive_learning_rate(rng):
    layer = nn.Dense(2, 2)
    layer.forward(np.ones((2, 2)))
    with pytest.raises(ValueError, match="learning_rate"):
        layer.backward(np.ones((2, 2)), learning_rate=-0.1)


@pytest.mark.parametrize("name", ["he_normal", "he_uniform", "glorot_normal", "glorot_uniform"])
def test_initialisers_have_the_documented_spread(name):
    weights = nn.Dense(400, 300, init=name, rng=0).weights
    fan_in, fan_out = 400, 300
    variance = {
        "he_normal": 2 / fan_in,
        "he_uniform": 2 / fan_in,
        "glorot_normal": 2 / (fan_in + fan_out),
        "glorot_uniform": 2 / (fan_in + fan_out),
    }[name]
    assert weights[:, :-1].var() == pytest.approx(variance, rel=0.02)
    np.testing.assert_array_equal(weights[:, -1], 0.0)


def test_unknown_initialiser_is_refused():
    with pytest.raises(ValueError, match="init must be one of"):
        nn.Dense(2, 2, init="zeros")


def test_dropout_inference_is_identity_and_training_scales_the_kept(rng):
    layer = nn.Dropout(0.5, rng=0)
    X = rng.normal(size=(4, 5))
    layer.training = False
    assert layer.forward(X) is X
    np.testing.assert_array_equal(layer.backward(X), X)
    layer.training = True
    out = layer.forward(np.ones((1000, 10)))
    assert set(np.unique(out)) == {0.0, 2.0}  # kept entries scaled by 1 / (1 − p)
    assert 0.45 < (out == 0).mean() < 0.55
    np.testing.assert_array_equal(layer.backward(np.full((1000, 10), 3.0)), 3.0 * out)


def test_dropout_mask_by_hand():
    layer = nn.Dropout(0.25, rng=0)
    expected_keep = np.random.default_rng(0).random((2, 3)) < 0.75
    out = layer.forward(np.full((2, 3), 3.0))
    np.testing.assert_allclose(out, np.where(expected_keep, 4.0, 0.0))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 2])
def test_dropout_rate_must_be_a_fraction(rate):
    with pytest.raises(ValueError, match="rate must be a number in"):
        nn.Dropout(rate)


@pytest.mark.parametrize(
    "layer, z, a, derivative",
    [
        (nn.ReLU(), [-2.0, 0.5], [0.0, 0.5], [0.0, 1.0]),
        (nn.LeakyReLU(0.1), [-2.0, 0.5], [-0.2, 0.5], [0.1, 1.0]),
        (nn.Tanh(), [0.0, 1.0], [0.0, np.tanh(1.0)], [1.0, 1 - np.tanh(1.0) ** 2]),
        (nn.Sigmoid(), [0.0, 2.0], [0.5, 1 / (1 + np.exp(-2.0))], [0.25, np.exp(-2.0) / (1 + np.exp(-2.0)) ** 2]),
    ],
)
def test_activation_values_by_hand(layer, z, a, derivative):
    Z = np.array([z])
    np.testing.assert_allclose(layer.forward(Z), [a], rtol=1e-14)
    np.testing.assert_allclose(layer.backward(np.ones_like(Z)), [derivative], rtol=1e-14)


def test_sigmoid_is_stable_for_large_inputs():
    with np.errstate(over="raise"):
        out = nn.Sigmoid().forward(np.array([[-1000.0, 1000.0, -50.0]]))
    np.testing.assert_allclose(out, [[0.0, 1.0, np.exp(-50.0) / (1 + np.exp(-50.0))]], rtol=1e-14)
