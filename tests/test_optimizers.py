"""One or two optimizer steps against numbers computed by hand (comments show the arithmetic)."""

import numpy as np
import pytest

import nablanet as nn
from nablanet import Parameter

G1 = [[0.5, -1.0, 2.0]]  # gradient of the first step; the last column plays the bias
G2 = [[1.0, 1.0, 1.0]]


def parameter(values=((1.0, 2.0, 3.0),)):
    value = np.array(values, dtype=np.float64)
    return Parameter("weights", value, np.zeros_like(value), (slice(None), slice(None, -1)))


def steps(optimizer, *gradients):
    p = parameter()
    for gradient in gradients:
        p.gradient[...] = gradient
        optimizer.step([p])
    return p.value


def test_sgd():
    # w − η g = [1 − 0.05, 2 + 0.1, 3 − 0.2]
    np.testing.assert_allclose(steps(nn.SGD(0.1), G1), [[0.95, 2.1, 2.8]], rtol=1e-15)


def test_sgd_momentum():
    # v₁ = −η g = [−0.05, 0.1, −0.2];  v₂ = 0.9 v₁ − η g = [−0.095, 0.19, −0.38];  w = 1, 2, 3 + v₁ + v₂
    np.testing.assert_allclose(steps(nn.SGD(0.1, momentum=0.9), G1, G1), [[0.855, 2.29, 2.42]], rtol=1e-14)


def test_sgd_nesterov():
    # v₁ = [−0.05, 0.1, −0.2];  w += μ v₁ − η g = [−0.095, 0.19, −0.38]
    np.testing.assert_allclose(steps(nn.SGD(0.1, momentum=0.9, nesterov=True), G1), [[0.905, 2.19, 2.62]], rtol=1e-14)


def test_adam_two_steps():
    # step 1: m̂ = g, v̂ = g², so w −= η g/|g| → [0.9, 2.1, 2.9]
    # step 2: m = [0.145, 0.01, 0.28], v = [0.00124975, 0.001999, 0.004996],
    #         m̂ = m / 0.19, v̂ = v / 0.001999, w −= 0.1 m̂ / (√v̂ + 1e-8)
    # (ε moves step 1 by η ε/|g| ≈ 2e-9, hence rtol 1e-8 for step 2, computed from the rounded step 1)
    np.testing.assert_allclose(steps(nn.Adam(0.1), G1), [[0.9, 2.1, 2.9]], rtol=1e-7)
    np.testing.assert_allclose(
        steps(nn.Adam(0.1), G1, G2), [[0.8034817986385094, 2.0947368421578947, 2.80678203670851]], rtol=1e-8
    )


def test_sgd_weight_decay_skips_the_bias():
    # g + λ w on the weights only: [0.5 + 0.1, −1 + 0.2, 2] → w − 0.1 · that = [0.94, 2.08, 2.8]
    np.testing.assert_allclose(steps(nn.SGD(0.1, weight_decay=0.1), G1), [[0.94, 2.08, 2.8]], rtol=1e-14)


def test_adamw_decays_decoupled_and_skips_the_bias():
    # w ← w − η λ w on the weights: [0.99, 1.98, 3]; then the Adam step −0.1 · sign(g): [0.89, 2.08, 2.9]
    np.testing.assert_allclose(steps(nn.AdamW(0.1, weight_decay=0.1), G1), [[0.89, 2.08, 2.9]], rtol=1e-7)


def test_adam_with_l2_adds_the_decay_to_the_gradient():
    # g + λw = [0.6, −0.8, 2] keeps every sign, so the first Adam step is still −η sign: [0.9, 2.1, 2.9]
    np.testing.assert_allclose(steps(nn.Adam(0.1, weight_decay=0.1), G1), [[0.9, 2.1, 2.9]], rtol=1e-7)


def test_state_is_one_entry_per_parameter():
    optimizer = nn.Adam()
    first, second = parameter(), parameter(((1.0, 1.0),))
    optimizer.step([first, second])
    assert len(optimizer.state) == 2 and optimizer.state[1]["m"].shape == (1, 2)
    with pytest.raises(ValueError, match="one optimizer per model"):
        optimizer.step([first])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nn.SGD(-1.0), "learning_rate"),
        (lambda: nn.SGD(0.1, momentum=1.0), "momentum"),
        (lambda: nn.SGD(0.1, nesterov=True), "nesterov"),
        (lambda: nn.Adam(beta1=1.5), "beta1"),
        (lambda: nn.SGD(0.1, weight_decay=-1.0), "weight_decay"),
    ],
)
def test_bad_optimizer_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_fit_applies_the_schedule_each_epoch(rng):
    X, Y = rng.normal(size=(3, 10)), nn.one_hot(rng.integers(0, 2, 10), 2)
    rates = []

    class Recorder(nn.Callback):
        def on_epoch_end(self, epoch, logs):
            rates.append(optimizer.learning_rate)

    optimizer = nn.SGD(nn.StepDecay(0.1, factor=0.5, every=1))
    nn.Sequential([nn.Dense(3, 2), nn.Softmax()]).fit(X, Y, epochs=3, optimizer=optimizer, callbacks=[Recorder()])
    np.testing.assert_allclose(rates, [0.1, 0.05, 0.025])


def test_clipping_scales_all_gradients_together_to_the_global_norm():
    # ‖g‖ = √(0.5² + 1² + 2² + 2²) = 3.05…; with c = 1 every entry is divided by ‖g‖: the direction is kept
    first, second = parameter(), parameter(((0.0,),))
    first.gradient[...], second.gradient[...] = G1, [[2.0]]
    optimizer = nn.SGD(0.1, clip_norm=1.0)
    optimizer.step([first, second])
    norm = np.sqrt(0.25 + 1 + 4 + 4)
    assert optimizer.gradient_norm == pytest.approx(norm, rel=1e-15)
    np.testing.assert_allclose(first.value, [[1 - 0.05 / norm, 2 + 0.1 / norm, 3 - 0.2 / norm]], rtol=1e-15)
    np.testing.assert_allclose(second.value, [[-0.2 / norm]], rtol=1e-15)
    np.testing.assert_allclose(np.sqrt(np.sum(first.gradient**2) + np.sum(second.gradient**2)), 1.0, rtol=1e-15)


def test_a_gradient_within_the_clip_norm_is_left_as_it_is():
    np.testing.assert_array_equal(steps(nn.SGD(0.1, clip_norm=3.1), G1), steps(nn.SGD(0.1), G1))  # ‖g‖ = 2.29
    # Adam's first step is η g/|g| entry by entry: clipping changes nothing there, but it does in step 2
    assert not np.array_equal(steps(nn.Adam(0.1, clip_norm=1.0), G1, G2), steps(nn.Adam(0.1), G1, G2))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_clip_norm_is_part_of_the_optimizer_config_a_checkpoint_keeps(name):
    from nablanet.core.optimizers import OPTIMIZERS

    optimizer = OPTIMIZERS[name](0.01, clip_norm=2.5)
    assert optimizer.get_config()["clip_norm"] == 2.5
    assert OPTIMIZERS[name](0.01, **optimizer.get_config()).clip_norm == 2.5
    with pytest.raises(ValueError, match="clip_norm must be a positive finite number, received: 0"):
        OPTIMIZERS[name](0.01, clip_norm=0)


def test_the_global_norm_reads_a_column_major_gradient_without_copying_it():
    """A Dense layer's W̃ lies column by column: ``np.vdot`` would copy it row by row (twice) on every step
    with clipping; ``ops.squared_norm`` reads it as it lies."""
    import tracemalloc

    from nablanet.core import ops

    gradient = np.asfortranarray(np.random.default_rng(0).standard_normal((256, 785)).astype(np.float32))
    tracemalloc.start()
    value = ops.squared_norm(gradient)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < gradient.nbytes / 10
    np.testing.assert_allclose(value, np.sum(gradient.astype(np.float64) ** 2), rtol=1e-5)
