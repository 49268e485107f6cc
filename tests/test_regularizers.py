"""L1 and L2 regularisation: the penalty's gradient against finite differences, the bias left alone, and what
each does to a trained network's weights."""

from __future__ import annotations

import numpy as np
import pytest

from nablanet import Dense, Sequential, Softmax, Tanh, toy_dataset
from nablanet.core.regularizers import L1, L2, REGULARIZERS, resolve_regularizer


@pytest.mark.parametrize("cls", [L1, L2])
def test_the_gradient_is_the_penalty_s_finite_difference(cls):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 3))
    W[np.abs(W) < 0.05] = 0.5  # |w| away from 0, where L1's penalty has a kink
    regularizer, h = cls(0.3), 1e-6
    numeric = np.zeros_like(W)
    for index in np.ndindex(W.shape):
        step = np.zeros_like(W)
        step[index] = h
        numeric[index] = (regularizer.penalty(W + step) - regularizer.penalty(W - step)) / (2 * h)
    np.testing.assert_allclose(regularizer.gradient(W), numeric, rtol=1e-6, atol=1e-9)


def test_the_gradient_goes_to_the_weights_and_never_to_the_bias():
    layer = Dense(3, 2, init="glorot_uniform", rng=0)
    layer.weights[:, -1] = [0.5, -0.5]
    (parameter,) = layer.parameters()
    parameter.gradient[...] = 0
    L1(0.1).add_gradient([parameter])
    np.testing.assert_array_equal(layer.weights_gradient[:, :-1], 0.1 * np.sign(layer.W))
    np.testing.assert_array_equal(layer.weights_gradient[:, -1], 0)
    assert L2(0.2).total_penalty([parameter]) == pytest.approx(0.1 * np.square(layer.W).sum())


def net(seed=0) -> Sequential:
    return Sequential(
        [
            Dense(2, 8, init="glorot_uniform", rng=seed),
            Tanh(),
            Dense(8, 2, init="glorot_uniform", rng=seed + 1),
            Softmax(),
        ]
    )


def trained(regularizer) -> Sequential:
    data = toy_dataset("xor", 100, seed=0)
    model = net()
    model.fit(
        data.X_train,
        data.Y_train,
        epochs=30,
        batch_size=20,
        optimizer="adam",
        learning_rate=0.05,
        regularizer=regularizer,
        rng=0,
        verbose=0,
    )
    return model


def test_l2_keeps_weights_small_and_l1_makes_them_zero():
    plain, l2, l1 = trained(None), trained(L2(0.05)), trained(L1(0.01))
    sizes = {
        name: sum(float(np.square(layer.W).sum()) for layer in m.layers if isinstance(layer, Dense))
        for name, m in (("plain", plain), ("l2", l2), ("l1", l1))
    }
    assert sizes["l2"] < 0.7 * sizes["plain"]
    small = {
        name: sum(int((np.abs(layer.W) < 1e-2).sum()) for layer in m.layers if isinstance(layer, Dense))
        for name, m in (("plain", plain), ("l1", l1))
    }
    assert small["l1"] > small["plain"]


def test_a_zero_rate_or_none_trains_exactly_as_without():
    reference = trained(None)
    for same in (trained("none"), trained(L2(0.0))):
        for a, b in zip(reference.parameters(), same.parameters(), strict=True):
            np.testing.assert_array_equal(a.value, b.value)


def test_names_and_bad_arguments():
    assert sorted(REGULARIZERS) == ["l1", "l2"] and resolve_regularizer("l2").rate == 0.001
    assert repr(resolve_regularizer(L1(0.5))) == "L1(0.5)" and L1(0.5).name == "l1"
    with pytest.raises(ValueError, match="regularizer must be one of"):
        resolve_regularizer("l3")
    with pytest.raises(TypeError, match=r"regularizer must be a nablanet regularizer \(L1\(rate\)"):
        resolve_regularizer(0.1)
    with pytest.raises(ValueError, match="rate"):
        L2(-1)
