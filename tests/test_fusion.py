"""The fused path (``fit(..., fuse=True)``, :mod:`nablanet.core.fusion`) against the eager layers it replaces:
the same outputs and gradients bit for bit (ties, dead windows and uncovered rows included), the gradient checks
in float64, training that ends with the same weights, and saving, loading and resuming as the eager model does."""

import numpy as np
import pytest

import nablanet as nn
from nablanet.core import kernels
from nablanet.core.fusion import ConvReLUPool, DenseReLU, fuse
from nablanet.core.gradcheck import gradcheck
from nablanet.core.layers import parameter_gradients, run
from nablanet.files.checkpoint import Checkpoint, load_checkpoint
from nablanet.training.loop import History


def small_cnn(dtype, seed=0):
    """14×14 images: Conv(3) 12×12 → pool 6×6, Conv(4) 4×4 → pool 2×2 (every output of the convolutions in a
    pooling window, so the fused blocks compute what the eager layers do), Flatten, Dropout, Dense(8) ReLU,
    Dropout, Dense(3), Softmax."""
    return nn.build_classifier(196, 3, [8], conv=(3, 4), dropout=0.25, dtype=dtype, rng=seed)


def halves(rng, shape, dtype):
    """Random multiples of 1/2 in [−2, 2]: sums of them are exact, so windows hold ties, zeros and dead units."""
    return (rng.integers(-4, 5, shape) / 2).astype(dtype)


def passes(layers, X, G):
    """(output, ∇X, every parameter's gradient) of one forward and backward pass through ``layers``."""
    output = run(layers, X)
    gradient = G
    for layer in reversed(layers):
        gradient = layer.backward(gradient)
    return output, gradient, [parameter.gradient.copy() for layer in layers for parameter in layer.parameters()]


def test_fuse_replaces_the_known_runs_and_keeps_the_rest():
    model = small_cnn(np.float32)
    fused = fuse(model.layers)
    assert [type(layer).__name__ for layer in fused] == [
        "ConvReLUPool",
        "ConvReLUPool",
        "Flatten",
        "Dropout",
        "DenseReLU",
        "Dropout",
        "Dense",
        "Softmax",
    ]
    assert fused[0].parameters() == model.layers[0].parameters()  # the same Parameter objects
    assert fused[2] is model.layers[6]


def test_fuse_leaves_what_it_cannot_fuse_as_it_is(monkeypatch):
    class MyConv(nn.Conv2D):
        pass

    conv = [MyConv(1, 2, 3, input_shape=(1, 6, 6)), nn.ReLU(), nn.MaxPool2D(2)]
    loop = [nn.Conv2D(1, 2, 3, input_shape=(1, 6, 6), method="loop"), nn.ReLU(), nn.MaxPool2D(2)]
    overlapping = [nn.Conv2D(1, 2, 3, input_shape=(1, 6, 6)), nn.ReLU(), nn.MaxPool2D(2, stride=1)]
    for layers in (conv, loop, overlapping):
        assert fuse(layers) == layers
    monkeypatch.setenv("NABLANET_KERNELS", "0")
    model = small_cnn(np.float32)
    assert fuse(model.layers) == model.layers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_blocks_give_the_eager_outputs_and_gradients_bit_for_bit(dtype):
    rng = np.random.default_rng(1)
    model = small_cnn(dtype)
    for parameter in model.parameters():
        parameter.value[...] = halves(rng, parameter.value.shape, dtype)
    X = halves(rng, (196, 9), dtype)
    G = rng.standard_normal((3, 9)).astype(dtype)
    layers = model.layers[:-1]  # up to the scores
    with nn.core.layers.mode(layers, training=False):
        eager = passes(layers, X, G)
        fused = passes(fuse(layers), X, G)
    windows = eager_pooled = run(layers[:3], X)
    assert np.mean(eager_pooled == 0) > 0.1 and np.any(windows > 0)  # dead windows and live ones
    np.testing.assert_array_equal(fused[0], eager[0])
    np.testing.assert_array_equal(fused[1], eager[1])
    for ours, reference in zip(fused[2], eager[2], strict=True):
        np.testing.assert_array_equal(ours, reference)


def assert_equal_to_rounding(ours, reference, data=np.float32):
    """Equal to the rounding of sums grouped otherwise, in the precision of the ``data`` the sums add up:
    relative to the array's largest entry, 1e-5 in float32, 1e-13 in float64."""
    assert ours.dtype == reference.dtype
    scale = np.max(np.abs(reference)) or 1.0
    tolerance = 1e-5 if data == np.float32 else 1e-13
    np.testing.assert_allclose(ours, reference, rtol=0, atol=tolerance * scale)


@pytest.mark.parametrize(("channels", "padding", "size"), [(3, 0, 8), (2, "same", 7), (1, 1, 9)])
def test_a_convolution_block_of_any_shape_matches_the_eager_layers(channels, padding, size):
    """Several channels, padding, odd sizes; one window size and stride, as each compiles anew. Where pooling
    covers every output of the convolution (8×8 → 6×6 → 3×3) the fused block gives the eager numbers bit for
    bit; where it leaves the last row and column out (7×7 → 7×7 → 3×3, 9×9 → 9×9 → 4×4), the block computes only
    the outputs a window reads, and BLAS's sums over fewer columns may round otherwise."""
    stride, pool = 1, 2
    rng = np.random.default_rng(2)
    conv = nn.Conv2D(channels, 3, 3, stride=stride, padding=padding, input_shape=(channels, size, size), rng=3)
    layers = [conv, nn.ReLU(), nn.MaxPool2D(pool)]
    nn.Sequential(layers)
    X = rng.standard_normal((channels * size * size, 5)).astype(np.float32)
    block = ConvReLUPool(*layers)
    G = rng.standard_normal(run(layers, X).shape).astype(np.float32)
    eager, fused = passes(layers, X, G), passes([block], X, G)
    covered = not block.skips()
    assert covered == (size == 8)
    for ours, reference in zip([*fused[:2], *fused[2]], [*eager[:2], *eager[2]], strict=True):
        if covered:
            np.testing.assert_array_equal(ours, reference)
        else:
            assert_equal_to_rounding(ours, reference)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_keras_convnet_blocks_skip_what_pooling_leaves_out_and_give_the_eager_numbers(dtype):
    """The Keras convnet's two blocks on MNIST-sized images: the second convolution's 11×11 outputs in 5×5 windows
    of 2 leave the last row and column out, so its block computes 10×10 of them (83 %). The outputs and
    gradients equal the eager layers' to rounding: ∇W̃ sums the same products less the zeros of the outputs
    left out, and BLAS may round a product with fewer columns otherwise."""
    rng = np.random.default_rng(9)
    model = nn.build_classifier(784, 10, conv=(32, 64), dtype=dtype, rng=1)
    layers = model.layers[:6]  # Conv2D ReLU MaxPool2D Conv2D ReLU MaxPool2D
    X = rng.random((784, 12)).astype(dtype)
    G = rng.standard_normal((64 * 5 * 5, 12)).astype(dtype)
    eager = passes(layers, X, G)
    blocks = fuse(layers)
    fused = passes(blocks, X, G)
    assert [block._windows() for block in blocks] == [(26, 26), (10, 10)]
    assert blocks[1]._columns.shape == (32 * 3 * 3, 12 * 10 * 10)
    for ours, reference in zip([*fused[:2], *fused[2]], [*eager[:2], *eager[2]], strict=True):
        assert_equal_to_rounding(ours, reference, dtype)


def test_the_first_block_stores_the_eager_parameter_gradients_without_the_input_gradient():
    rng = np.random.default_rng(4)
    model = small_cnn(np.float32)
    X, G = rng.standard_normal((196, 6)).astype(np.float32), rng.standard_normal((3 * 6 * 6, 6)).astype(np.float32)
    gradients = []
    for layers in (model.layers[:3], fuse(model.layers[:3])):
        run(layers, X)
        gradient = G
        for layer in reversed(layers[1:]):
            gradient = layer.backward(gradient)
        parameter_gradients(layers[0], gradient)
        gradients.append(model.layers[0].weights_gradient.copy())
    assert len(fuse(model.layers[:3])) == 1
    np.testing.assert_array_equal(gradients[1], gradients[0])


@pytest.mark.parametrize("block", ["conv", "dense"])
def test_the_fused_blocks_pass_the_gradient_check_in_float64(block):
    rng = np.random.default_rng(5)
    if block == "conv":
        layers = [nn.Conv2D(2, 3, 3, input_shape=(2, 7, 7), rng=6), nn.ReLU(), nn.MaxPool2D(2)]
        nn.Sequential(layers)
        fused, X = ConvReLUPool(*layers), rng.standard_normal((2 * 7 * 7, 4))
    else:
        fused, X = DenseReLU(nn.Dense(6, 5, init="he_normal", rng=6), nn.ReLU()), rng.standard_normal((6, 4))
    report = gradcheck(fused, X, max_entries=24)  # two forward passes per entry: 24 of each array
    assert report.passed, report


def test_a_kernel_that_fails_leaves_the_eager_layers_to_compute_the_same(monkeypatch):
    rng = np.random.default_rng(7)
    model = small_cnn(np.float32)
    X, G = rng.standard_normal((196, 5)).astype(np.float32), rng.standard_normal((3, 5)).astype(np.float32)
    layers = model.layers[:-1]
    with nn.core.layers.mode(layers, training=False):
        eager = passes(layers, X, G)
        fused = fuse(layers)
        monkeypatch.setattr(kernels, "conv_relu_pool_loops", lambda pool: (lambda *arrays: False,) * 2)
        monkeypatch.setattr(kernels, "compiled", lambda loop, name=None: lambda *arrays: False)
        fallback = passes(fused, X, G)
    assert all(block._eager for block in fused if isinstance(block, (ConvReLUPool, DenseReLU)))
    for ours, reference in zip([*fallback[:2], *fallback[2]], [*eager[:2], *eager[2]], strict=True):
        np.testing.assert_array_equal(ours, reference)


def data(samples=40, seed=8):
    rng = np.random.default_rng(seed)
    X = rng.random((196, samples), dtype=np.float32)
    Y = np.eye(3, dtype=np.float32)[:, rng.integers(0, 3, samples)]
    return X, Y


def train(fuse_it, epochs=2, **options):
    model = small_cnn(np.float32)
    X, Y = data()
    history = model.fit(X, Y, epochs=epochs, batch_size=16, optimizer="adam", rng=0, verbose=0, fuse=fuse_it, **options)
    return model, history


def test_training_with_the_fused_path_ends_with_the_eager_weights_bit_for_bit():
    eager, eager_history = train(False)
    fused, fused_history = train(True)
    assert fused_history.as_dict() == eager_history.as_dict()
    for name, array in eager.get_weights().items():
        np.testing.assert_array_equal(fused.get_weights()[name], array, err_msg=name)


def test_a_fused_run_saves_loads_and_resumes_as_the_eager_one(tmp_path):
    straight, _ = train(False)
    X, Y = data()
    model, rng, optimizer, history = small_cnn(np.float32), np.random.default_rng(0), nn.Adam(), History()
    checkpoint = Checkpoint(tmp_path, optimizer=optimizer, rng=rng, history=history)
    options = {"batch_size": 16, "verbose": 0, "fuse": True}
    model.fit(X, Y, epochs=1, optimizer=optimizer, rng=rng, history=history, callbacks=[checkpoint], **options)
    state = load_checkpoint(tmp_path / "checkpoint.npz")
    state.model.fit(
        X,
        Y,
        epochs=2,
        optimizer=state.optimizer,
        rng=state.rng,
        initial_epoch=state.epoch,
        history=state.history,
        **options,
    )
    nn.save(state.model, tmp_path / "model.npz")
    loaded = nn.load(tmp_path / "model.npz")
    for name, array in straight.get_weights().items():
        np.testing.assert_array_equal(state.model.get_weights()[name], array, err_msg=name)
        np.testing.assert_array_equal(loaded.get_weights()[name], array, err_msg=name)
    np.testing.assert_array_equal(loaded.predict_proba(X), straight.predict_proba(X))


def test_fuse_must_be_a_bool():
    with pytest.raises(TypeError, match="fuse must be True or False, received 'yes'"):
        train("yes")


def test_nan_and_inf_go_through_a_fused_block_as_through_the_eager_layers():
    rng = np.random.default_rng(9)
    layers = [nn.Conv2D(1, 2, 3, input_shape=(1, 8, 8), rng=10), nn.ReLU(), nn.MaxPool2D(2)]
    nn.Sequential(layers)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    X[[5, 40], [0, 2]] = np.nan, np.inf
    G = rng.standard_normal((2 * 3 * 3, 3)).astype(np.float32)
    with np.errstate(invalid="ignore"):  # inf − inf in the products
        eager, fused = passes(layers, X, G), passes([ConvReLUPool(*layers)], X, G)
    assert np.isnan(eager[0]).any() and np.isinf(eager[0]).any() and np.isnan(eager[2][0]).any()
    for ours, reference in zip([*fused[:2], *fused[2]], [*eager[:2], *eager[2]], strict=True):
        np.testing.assert_array_equal(ours, reference)
