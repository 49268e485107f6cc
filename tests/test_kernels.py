"""The fused optimizer kernels (numba) against their NumPy reference: bit-identical over 100 steps, and both
against Adam as the textbook writes it."""

import numpy as np
import pytest

import nablanet as nn
from nablanet import Parameter
from nablanet.core import kernels

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="the fast extra (numba) is part of the test extra")

SHAPES = [(16, 33), (8, 17), (3, 9)]  # W̃ of three Dense layers: weights and a bias column


def train(optimizer, dtype, steps=100, seed=0):
    """``steps`` optimizer steps on three parameters with random gradients (some exactly 0, as dead units give)."""
    rng = np.random.default_rng(seed)
    parameters = [
        Parameter(
            "weights", rng.standard_normal(shape).astype(dtype), np.zeros(shape, dtype), (slice(None), slice(None, -1))
        )
        for shape in SHAPES
    ]
    for _ in range(steps):
        for parameter in parameters:
            gradient = rng.standard_normal(parameter.value.shape) * rng.choice([0.0, 1e-3, 1.0], parameter.value.shape)
            parameter.gradient[...] = gradient
        optimizer.step(parameters)
    return [parameter.value for parameter in parameters], optimizer.state


OPTIMIZERS = [
    lambda: nn.Adam(1e-2),
    lambda: nn.Adam(3e-3, beta1=0.8, beta2=0.99, epsilon=1e-6, weight_decay=1e-2),
    lambda: nn.AdamW(1e-2, weight_decay=0.1),
]


@pytest.mark.parametrize("make", OPTIMIZERS, ids=["adam", "adam-l2", "adamw"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_kernel_is_bit_identical_to_the_numpy_code(monkeypatch, make, dtype):
    fused_values, fused_state = train(make(), dtype)
    monkeypatch.setenv("NABLANET_KERNELS", "0")
    assert not kernels.enabled()
    numpy_values, numpy_state = train(make(), dtype)
    for fused, reference in zip(fused_values + fused_state, numpy_values + numpy_state, strict=True):
        if isinstance(fused, dict):
            for key in fused:
                np.testing.assert_array_equal(fused[key], reference[key])
        else:
            assert fused.dtype == dtype
            np.testing.assert_array_equal(fused, reference)


@pytest.mark.parametrize("kernels_on", ["1", "0"])
def test_adam_is_the_textbook_formula(monkeypatch, kernels_on):
    """m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², W ← W − η m̂/(√v̂ + ε): 100 steps in float64."""
    monkeypatch.setenv("NABLANET_KERNELS", kernels_on)
    values, _ = train(nn.Adam(1e-2), np.float64)
    rng = np.random.default_rng(0)
    W = [rng.standard_normal(shape) for shape in SHAPES]
    m = [np.zeros(shape) for shape in SHAPES]
    v = [np.zeros(shape) for shape in SHAPES]
    for t in range(1, 101):
        gradients = [rng.standard_normal(shape) * rng.choice([0.0, 1e-3, 1.0], shape) for shape in SHAPES]
        for k, g in enumerate(gradients):
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g**2
            W[k] = W[k] - 1e-2 * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
    for ours, textbook in zip(values, W, strict=True):
        np.testing.assert_allclose(ours, textbook, rtol=1e-12, atol=1e-14)


def test_arrays_that_cannot_be_fused_take_the_numpy_path():
    a = np.zeros((4, 6), np.float32)
    assert kernels.fusable(a, a.copy()) and not kernels.fusable(a[:, :3], a[:, :3])
    assert not kernels.fusable(a, a.astype(np.float64))


def test_the_environment_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("NABLANET_KERNELS", "0")
    assert not kernels.enabled()
    monkeypatch.setenv("NABLANET_KERNELS", "1")
    assert kernels.enabled()
