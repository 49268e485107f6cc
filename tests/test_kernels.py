"""The fused kernels (numba) against their NumPy reference: the optimizer's bit-identical over 100 steps, and
both against Adam as the textbook writes it; the layers' (ReLU, max-pooling, im2col, col2im) bit-identical in
the forward and the backward pass, ties, zeros, NaN and inf included."""

import numpy as np
import pytest

import nablanet as nn
from nablanet import Parameter
from nablanet.core import kernels

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="the fast extra (numba) is part of the test extra")

SHAPES = [(16, 33), (8, 17), (3, 9)]  # W̃ of three Dense layers: weights and a bias column


def train(optimizer, dtype, steps=100, seed=0, order="C"):
    """``steps`` optimizer steps on three parameters with random gradients (some exactly 0, as dead units give),
    laid out in memory in ``order`` (a Dense layer's W̃ lies column by column, "F")."""
    rng = np.random.default_rng(seed)
    parameters = [
        Parameter(
            "weights",
            np.asarray(rng.standard_normal(shape).astype(dtype), order=order),
            np.zeros(shape, dtype, order),
            (slice(None), slice(None, -1)),
            order,
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
@pytest.mark.parametrize("order", ["C", "F"])
def test_the_fused_kernel_is_bit_identical_to_the_numpy_code(monkeypatch, make, dtype, order):
    kernels._State.ran.discard("Adam's update")
    fused_values, fused_state = train(make(), dtype, order=order)
    assert "Adam's update" in kernels.used()  # the kernel ran, on either layout
    monkeypatch.setenv("NABLANET_KERNELS", "0")
    assert not kernels.enabled()
    numpy_values, numpy_state = train(make(), dtype, order=order)
    for fused, reference in zip(fused_values + fused_state, numpy_values + numpy_state, strict=True):
        if isinstance(fused, dict):
            for key in fused:
                assert fused[key].flags[f"{order}_CONTIGUOUS"]
                np.testing.assert_array_equal(fused[key], reference[key])
        else:
            assert fused.dtype == dtype and fused.flags[f"{order}_CONTIGUOUS"]
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


def test_an_entry_by_entry_kernel_runs_on_arrays_laid_out_alike():
    a = np.zeros((4, 6), np.float32)
    f = np.asfortranarray(a)
    assert kernels.layout(a, a.copy()) == "C" and kernels.layout(f, np.copy(f)) == "F"
    assert kernels.layout(a, f) is None and kernels.layout(a[:, :3], a[:, :3]) is None
    assert kernels.layout(a, a.astype(np.float64)) is None and kernels.layout(a, a[:3]) is None
    # Adam on a C-ordered value with F-ordered moments: the kernel declines (NumPy does it)
    assert not kernels.adam(a, a.copy(), f, f.copy(), 0.9, 0.999, -1e-3, 1e-8)


def test_the_environment_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("NABLANET_KERNELS", "0")
    assert not kernels.enabled()
    monkeypatch.setenv("NABLANET_KERNELS", "1")
    assert kernels.enabled()


OTHER = {np.float32: np.float64, np.float64: np.float32}
LAYERS = {  # name: (a layer of that dtype, its input shape (C, H, W) or (features,))
    "relu": (lambda dtype: nn.ReLU(), (30,)),
    "maxpool-2": (lambda dtype: nn.MaxPool2D(2, input_shape=(3, 9, 9)), (3, 9, 9)),
    "maxpool-3-stride-1": (lambda dtype: nn.MaxPool2D(3, 1, input_shape=(3, 9, 9)), (3, 9, 9)),  # windows overlap
    "maxpool-2-stride-3": (lambda dtype: nn.MaxPool2D(2, 3, input_shape=(2, 9, 8)), (2, 9, 8)),  # gaps between
    "conv-3": (lambda dtype: nn.Conv2D(3, 4, 3, input_shape=(3, 9, 9), rng=0, dtype=dtype), (3, 9, 9)),
    "conv-5-stride-2-same": (
        lambda dtype: nn.Conv2D(2, 3, 5, stride=2, padding="same", input_shape=(2, 9, 8), rng=0, dtype=dtype),
        (2, 9, 8),
    ),
    "maxpool-16": (lambda dtype: nn.MaxPool2D(16, input_shape=(1, 16, 17)), (1, 16, 17)),  # winners up to 255
    "maxpool-4-stride-5": (lambda dtype: nn.MaxPool2D(4, 5, input_shape=(2, 14, 9)), (2, 14, 9)),
    "conv-1": (lambda dtype: nn.Conv2D(3, 2, 1, input_shape=(3, 5, 5), rng=0, dtype=dtype), (3, 5, 5)),
    "conv-of-the-other-dtype": (  # the data's dtype is not the layer's
        lambda dtype: nn.Conv2D(2, 3, 3, input_shape=(2, 6, 6), rng=0, dtype=OTHER[dtype]),
        (2, 6, 6),
    ),
}


def forward_and_backward(layer, X, G):
    output = layer.forward(X).copy()
    extras = [layer._winner.copy()] if isinstance(layer, nn.MaxPool2D) else []
    input_gradient = layer.backward(G)
    extras += [layer.weights_gradient.copy()] if isinstance(layer, nn.Conv2D) else []
    return [output, input_gradient, *extras]


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_layer_kernels_are_bit_identical_to_the_numpy_code(monkeypatch, name, dtype):
    make, shape = LAYERS[name]
    rng = np.random.default_rng(1)
    X = rng.standard_normal((int(np.prod(shape)), 6)).astype(dtype)
    X[::5] = np.round(X[::5])  # ties within windows, and exact zeros for ReLU
    X[::7] = 0.0
    layer = make(dtype)
    G = rng.standard_normal(layer.forward(X).shape).astype(dtype)
    fused = forward_and_backward(layer, X, G)
    monkeypatch.setenv("NABLANET_KERNELS", "0")
    reference = forward_and_backward(layer, X, G)
    for ours, theirs in zip(fused, reference, strict=True):
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_embedding_scatter_add_is_bit_identical_to_numpy_add_at(monkeypatch, dtype):
    """Tokens repeated many times (their rows' gradients summed in order) and tokens never seen (zero rows)."""
    rng = np.random.default_rng(4)
    ids = rng.choice([0, 2, 3, 5], size=(9, 7), p=[0.7, 0.1, 0.1, 0.1]).astype(dtype)  # V = 6: ids 1, 4 unseen
    G = (rng.standard_normal((5, 9, 7)) * 10.0 ** rng.integers(-6, 6, (5, 9, 7))).astype(dtype)

    def table_gradient():
        layer = nn.Embedding(6, 5, rng=0, dtype=dtype)
        layer.forward(ids)
        layer.backward(G)
        return layer.table_gradient.copy()

    compiled = table_gradient()
    assert "the Embedding's scatter-add" in kernels._State.ran
    monkeypatch.setenv("NABLANET_KERNELS", "0")
    reference = table_gradient()
    assert compiled.dtype == dtype and not compiled[[1, 4]].any() and compiled[0].all()
    np.testing.assert_array_equal(compiled, reference)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_lstm_steps_are_bit_identical_to_the_numpy_code(monkeypatch, dtype):
    """The compiled loops of the forward step (the gates and the cell) and of backpropagation through time
    against LSTM._forward's and LSTM._deltas's NumPy code: H, ∇X and ∇W̃, with saturated gates (|z| large: i, f, o
    at 0 or 1 exactly) and an inf in the incoming gradient."""
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((5, 7, 4)) * 4).astype(dtype)  # n = 5 features, T = 7 steps, b = 4 sequences
    X[:, 2, 1] = 60.0  # saturates the gates of one step
    G = rng.standard_normal((6, 7, 4)).astype(dtype)
    G[0, 3, 2] = np.inf

    def passes():
        layer = nn.LSTM(5, 6, rng=0, dtype=dtype)
        H = layer.forward(X).copy()
        gates = layer._cache["A"][:, :, : 3 * 6].copy()  # σ of i, f and o at every step
        return H, gates, layer.backward(G.copy()), layer.weights_gradient.copy()

    with np.errstate(invalid="ignore"):  # inf · 0 in the step that meets the inf
        (H, gates, *compiled) = passes()
        assert {"the LSTM's gates", "the LSTM's backward step"} <= kernels._State.ran
        monkeypatch.setenv("NABLANET_KERNELS", "0")
        (H_reference, gates_reference, *reference) = passes()
    np.testing.assert_array_equal(H, H_reference)
    np.testing.assert_array_equal(gates, gates_reference)
    assert H.dtype == dtype and np.isin(gates, [0.0, 1.0]).any()  # the saturated step: gates exactly 0 or 1
    for ours, theirs in zip(compiled, reference, strict=True):
        assert ours.dtype == dtype and np.isnan(ours).any()  # the inf reached both, as NaN where it met a zero
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("kernels_on", ["1", "0"])
def test_max_pooling_takes_nan_and_the_first_of_tied_maxima(monkeypatch, kernels_on):
    """A window holding NaN pools to NaN (np.maximum's rule) and routes its gradient to the last position; of equal
    maxima the first in reading order wins; an inf gradient gives inf · 0 = NaN to the others, as a product does."""
    monkeypatch.setenv("NABLANET_KERNELS", kernels_on)
    pool = nn.MaxPool2D(2, input_shape=(1, 2, 6))
    X = np.array([[1.0, np.nan, 2.0, 2.0, -np.inf, -np.inf], [0.0, 3.0, 2.0, 2.0, -np.inf, 5.0]]).reshape(12, 1)
    output = pool.forward(X)
    np.testing.assert_array_equal(output.ravel(), [np.nan, 2.0, 5.0])
    np.testing.assert_array_equal(pool._winner.ravel(), [3, 0, 3])
    with np.errstate(invalid="ignore"):  # inf · 0 is NaN on purpose
        dx = pool.backward(np.array([[1.0], [np.inf], [-2.0]]))
    expected = [[0, 0, np.inf, np.nan, 0, 0], [0, 1, np.nan, np.nan, 0, -2]]
    np.testing.assert_array_equal(dx.reshape(2, 6), expected)


def test_relu_backward_agrees_on_any_layout_and_propagates_nan(monkeypatch):
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((5, 8)).astype(np.float32)
    G = rng.standard_normal((5, 8)).astype(np.float32)
    G[0, 0], G[1, 1] = np.nan, np.inf
    Z[1, 1] = -1.0  # an inf gradient where the unit is off: inf · 0 = NaN, as NumPy's product gives
    with np.errstate(invalid="ignore"):  # inf · 0 is NaN on purpose
        expected = G * (Z > 0)
        for z, g in [(Z, G), (np.asfortranarray(Z), np.asfortranarray(G)), (Z, np.asfortranarray(G))]:
            relu = nn.ReLU()
            relu.forward(z)
            np.testing.assert_array_equal(relu.backward(g), expected)
    assert kernels.relu_backward(np.asfortranarray(G), Z) is None  # layouts differ: NumPy's product runs
    assert kernels.relu_backward(G, Z[:, :4]) is None  # shapes differ: NumPy decides


@pytest.mark.parametrize("dtype", [np.float16, np.dtype(">f8")], ids=["float16", "big-endian"])
def test_other_float_types_take_the_numpy_code(monkeypatch, dtype):
    """The kernels take native float32 and float64 only; the checks accept any float, and NumPy runs the rest."""
    rng = np.random.default_rng(3)
    model = nn.build_classifier(36, 3, conv=[2], hidden=[4], rng=0, dtype=np.float32, input_shape=(1, 6, 6))
    X = rng.standard_normal((36, 5)).astype(dtype)
    G = rng.standard_normal((36, 5)).astype(dtype)
    results = {}
    for kernels_on in ("1", "0"):
        monkeypatch.setenv("NABLANET_KERNELS", kernels_on)
        pool, relu = nn.MaxPool2D(2, input_shape=(1, 6, 6)), nn.ReLU()
        relu.forward(X)
        results[kernels_on] = [model.predict_proba(X), pool.forward(X), pool.backward(G[:9]), relu.backward(G)]
    for fused, reference in zip(results["1"], results["0"], strict=True):
        np.testing.assert_array_equal(fused, reference)


def test_a_failed_forward_pass_keeps_the_state_of_the_last_one(monkeypatch):
    """forward(256 samples), a forward(1 sample) that fails inside, then backward with a gradient for 256: the
    layer still holds the 256-sample pass (before, it kept the 1-sample input, and the kernel wrote out of
    bounds)."""

    def broken(*args, **kwargs):
        raise RuntimeError("a kernel failed")

    rng = np.random.default_rng(4)
    for layer, factory in [
        (nn.MaxPool2D(2, input_shape=(2, 8, 8)), "max_pool_loops"),
        (nn.Conv2D(2, 3, 3, input_shape=(2, 8, 8), rng=0), "window_loop"),
    ]:
        X = rng.standard_normal((128, 256))
        output = layer.forward(X).copy()
        with monkeypatch.context() as patch:
            patch.setattr(kernels, factory, broken)
            with pytest.raises(RuntimeError, match="a kernel failed"):
                layer.forward(X[:, :1])
        assert layer.backward(np.ones_like(output)).shape == X.shape
        np.testing.assert_array_equal(layer.output, output)


def test_pool_size_is_checked_as_any_integer():
    with pytest.raises(ValueError, match="pool_size must be at most 16"):
        nn.MaxPool2D(np.int64(17), input_shape=(1, 17, 17))


def _cnn_step(seed=0):
    """A small CNN's forward, backward and Adam step on fixed data: its weights and input gradient."""
    model = nn.build_classifier(64, 3, [5], conv=[2], input_shape=(1, 8, 8), rng=seed)
    X = np.random.default_rng(1).random((64, 6))
    Y = nn.one_hot(np.array([0, 1, 2, 0, 1, 2]), 3)
    model.fit(X, Y, epochs=2, batch_size=3, optimizer="adam", rng=2, verbose=0)
    return [parameter.value.copy() for parameter in model.parameters()]


def _forget_compiled_kernels():
    for factory in (kernels.compiled, kernels.window_loop, kernels.max_pool_loops):
        factory.cache_clear()


@pytest.fixture
def fresh_kernels(monkeypatch):
    """numba's troubles are remembered per process: each test starts with none, and leaves none behind."""
    monkeypatch.setattr(kernels._State, "uncached", False)
    monkeypatch.setattr(kernels._State, "failed", False)
    _forget_compiled_kernels()
    yield
    _forget_compiled_kernels()


def test_a_cache_numba_cannot_use_compiles_without_it_with_one_warning(monkeypatch, fresh_kernels):
    import numba

    real_njit = numba.njit

    def njit(**options):
        if options.get("cache"):  # as numba says for a read-only install: it raises on the first use

            def refuse(loop):
                def run(*arguments):
                    raise RuntimeError(f"cannot cache function {loop.__name__!r}: no locator available")

                return run

            return refuse
        return real_njit(**options)

    reference = _cnn_step()
    _forget_compiled_kernels()
    monkeypatch.setattr(numba, "njit", njit)
    with pytest.warns(
        RuntimeWarning, match="a compiled kernel failed .*no locator available.*without numba's cache"
    ) as seen:
        weights = _cnn_step()
    assert len(seen) == 1 and kernels._State.uncached and not kernels._State.failed
    for ours, expected in zip(weights, reference, strict=True):
        np.testing.assert_array_equal(ours, expected)  # the kernels ran, compiled anew


def test_a_kernel_numba_cannot_compile_turns_to_numpy_with_one_warning(monkeypatch, fresh_kernels):
    import numba

    monkeypatch.setenv("NABLANET_KERNELS", "0")
    reference = _cnn_step()
    monkeypatch.setenv("NABLANET_KERNELS", "1")

    def broken(**options):
        raise RuntimeError("pickle data was truncated")  # a damaged cache file, a compiler that fails

    monkeypatch.setattr(numba, "njit", broken)
    with pytest.warns(RuntimeWarning) as seen:
        weights = _cnn_step()
    messages = [str(warning.message) for warning in seen]
    assert len(messages) == 2, messages  # the cache left out, then the kernels: once each, whatever ran after
    assert "the NumPy code runs instead" in messages[1] and "pickle data was truncated" in messages[1]
    assert kernels._State.failed and not kernels.enabled()
    for ours, expected in zip(weights, reference, strict=True):
        np.testing.assert_array_equal(ours, expected)


@pytest.mark.slow
def test_a_damaged_cache_file_is_cleared_so_the_next_run_caches_the_kernel_anew(tmp_path):
    """A truncated cache file used to fail (and be left out) in every run; now the first run after the damage
    warns and clears it, and the run after that compiles, caches and runs the kernel without a word."""
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np; from nablanet.core import kernels; "
        "out = kernels.relu_backward(np.ones(5), np.arange(5.0) - 2); assert out is not None; print(out.tolist())"
    )
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONWARNINGS="always")

    def run_once() -> str:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
        assert result.returncode == 0 and result.stdout.strip() == "[0.0, 0.0, 0.0, 1.0, 1.0]", result.stderr
        return result.stderr

    assert run_once() == ""  # compiled and cached
    (index,) = tmp_path.rglob("*relu_backward_loop*.nbi")
    index.write_bytes(index.read_bytes()[:40])  # a truncated file, as a full disk or a killed write leaves
    damaged = run_once()
    assert "pickle data was truncated" in damaged and "its cache cleared" in damaged, damaged
    assert run_once() == ""  # compiled anew and cached: no warning
    assert run_once() == ""  # and read from the cache


@pytest.mark.parametrize("kernels_on", ["1", "0"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cache_bytes", [1, 9000, 2**30], ids=["a-sample-a-piece", "uneven-pieces", "one-piece"])
def test_col2im_in_pieces_is_the_whole_product_added_back(monkeypatch, kernels_on, dtype, cache_bytes):
    """col2im(W_colᵀ ∇Z_col) made a few samples at a time gives the numbers of the whole product, added back
    window offset by window offset as the formula reads — with or without the kernels, whatever the pieces."""
    monkeypatch.setenv("NABLANET_KERNELS", kernels_on)
    # 9000 B: pieces of 10 and 2 samples (float32), of 5, 5 and 2 (float64)
    monkeypatch.setattr(nn.core.ops, "CACHE_BYTES", cache_bytes)
    rng = np.random.default_rng(3)
    batch, channels, height, width, k, s, p, filters = 12, 2, 7, 6, 3, 2, 1, 4
    out_h, out_w = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
    W_col = rng.standard_normal((filters, channels * k * k)).astype(dtype)
    delta = rng.standard_normal((filters, batch * out_h * out_w)).astype(dtype)
    columns = (W_col.T @ delta).reshape(channels, k, k, batch, out_h, out_w)
    padded = np.zeros((batch, channels, height + 2 * p, width + 2 * p), dtype)
    for u in range(k):
        for v in range(k):
            padded[:, :, u : u + s * out_h : s, v : v + s * out_w : s] += columns[:, u, v].transpose(1, 0, 2, 3)
    ours = nn.core.ops.col2im(W_col, delta, (batch, channels, height, width), k, s, p)
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, padded[:, :, p : p + height, p : p + width])
