"""LayerNorm and BatchNorm: finite differences in float64, the loop reference, hand-computed values, the two modes
and the running statistics."""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nablanet as nn
from nablanet.core.gradcheck import gradcheck
from nablanet.core.layers import outputs
from nablanet.core.normalization import standardize_backward, standardize_backward_loop

TOLERANCE = 1e-6
# at least 3 values a group: with 2, x̂ = ±1 whatever x is, and the input gradient is about ε, too small to compare
shapes = {"features": st.integers(3, 5), "positions": st.integers(1, 4), "batch": st.integers(3, 5)}


def randomised(layer, rng):
    """The layer with γ and β away from 1 and 0, so that the check sees them."""
    layer.gamma[...] = rng.uniform(0.5, 2.0, layer.gamma.shape)
    layer.beta[...] = rng.normal(size=layer.beta.shape)
    return layer


@pytest.mark.parametrize("method", ["vectorized", "loop"])
@given(**shapes, sequences=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_layer_norm_gradients_match_central_differences(method, features, positions, batch, sequences, seed):
    rng = np.random.default_rng(seed)
    shape = (features, positions, batch) if sequences else (features, batch)
    layer = randomised(nn.LayerNorm(features, method=method), rng)
    report = gradcheck(layer, rng.normal(size=shape), tolerance=TOLERANCE)
    assert [result.name for result in report.results] == ["layer 0 LayerNorm.gamma", "layer 0 LayerNorm.beta", "input"]
    assert report.passed, report.table()


@pytest.mark.parametrize("method", ["vectorized", "loop"])
@pytest.mark.parametrize("training", [True, False])
@given(**shapes, images=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_batch_norm_gradients_match_central_differences(method, training, features, positions, batch, images, seed):
    """Training: through the batch statistics, per feature (Dense) or per channel (images of positions² pixels);
    inference: through the running statistics."""
    rng = np.random.default_rng(seed)
    input_shape = (features, positions, positions) if images else (features,)
    layer = randomised(nn.BatchNorm(features, input_shape=input_shape, method=method), rng)
    layer.forward(rng.normal(2.0, 3.0, size=(np.prod(input_shape), 8)))  # running statistics away from 0 and 1
    X = rng.normal(size=(np.prod(input_shape), batch))
    report = gradcheck(layer, X, tolerance=TOLERANCE, training=training)
    assert len(report.results) == 3
    assert report.passed, report.table()


@given(**shapes, seed=st.integers(0, 2**32 - 1))
def test_the_vectorised_backward_equals_its_loop_reference(features, positions, batch, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(features, positions, batch))
    gradient = rng.normal(size=X.shape)
    for axes in [(0,), (1, 2)]:  # LayerNorm's and BatchNorm's groups
        mean, variance = X.mean(axis=axes, keepdims=True), X.var(axis=axes, keepdims=True)
        inverse_std = 1 / np.sqrt(variance + 1e-5)
        fast = standardize_backward(gradient, (X - mean) * inverse_std, inverse_std, axes)
        reference = standardize_backward_loop(gradient, X, axes, 1e-5)
        np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("layer", [nn.LayerNorm(3, method="loop"), nn.BatchNorm(3, method="loop")])
def test_both_methods_give_the_same_layer_gradients(layer, rng):
    fast = copy.deepcopy(layer)
    fast.method = "vectorized"
    X, G = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    for each in (layer, fast):
        each.forward(X)
    np.testing.assert_allclose(layer.backward(G), fast.backward(G), rtol=0, atol=1e-12)


def test_layer_norm_standardises_every_column_and_position(rng):
    X = rng.normal(3.0, 5.0, size=(4, 3, 2))
    Y = nn.LayerNorm(4).forward(X)
    np.testing.assert_allclose(Y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Y.var(axis=0), 1, atol=1e-5)  # σ² / (σ² + ε)
    column = X[:, 1, 0]
    np.testing.assert_allclose(Y[:, 1, 0], (column - column.mean()) / np.sqrt(column.var() + 1e-5))


def test_layer_norm_by_hand():
    """x = (1, 2, 3): μ = 2, σ² = 2/3, so x̂ = (−1, 0, 1) / √(2/3 + ε); y = γ x̂ + β."""
    layer = nn.LayerNorm(3)
    layer.gamma[...] = [1.0, 2.0, 3.0]
    layer.beta[...] = [0.0, 1.0, -1.0]
    Y = layer.forward(np.array([[1.0], [2.0], [3.0]]))
    scale = 1 / np.sqrt(2 / 3 + 1e-5)
    np.testing.assert_allclose(Y[:, 0], [-scale, 1.0, 3 * scale - 1.0])


def test_batch_norm_standardises_each_channel_over_the_batch_and_its_pixels(rng):
    layer = nn.BatchNorm(2, input_shape=(2, 3, 3))
    X = rng.normal(size=(18, 4)) + np.repeat([10.0, -4.0], 9)[:, None]
    channels = layer.forward(X).reshape(2, 9, 4)
    np.testing.assert_allclose(channels.mean(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(channels.var(axis=(1, 2)), 1, atol=1e-4)
    per_channel = X.reshape(2, 9, 4)
    np.testing.assert_allclose(layer.running_mean, 0.1 * per_channel.mean(axis=(1, 2)))
    np.testing.assert_allclose(layer.running_variance, 0.9 + 0.1 * per_channel.var(axis=(1, 2)))


def test_batch_norm_follows_a_conv2d_and_takes_its_channels():
    model = nn.Sequential([nn.Conv2D(1, 3, 3, input_shape=(1, 6, 6), rng=0), nn.BatchNorm(3), nn.ReLU()])
    assert model.shapes()[1] == (3, 4, 4)
    assert model.layers[1].get_config()["input_shape"] == [3, 4, 4]


def test_inference_uses_the_running_statistics_and_leaves_them_alone(rng):
    layer = nn.BatchNorm(2)
    layer.forward(rng.normal(size=(2, 50)))
    mean, variance = layer.running_mean, layer.running_variance
    X = rng.normal(size=(2, 3))
    (inferred,) = outputs([layer], X, inference=True)  # a shallow copy in inference mode
    np.testing.assert_array_equal(inferred, (X - mean[:, None]) / np.sqrt(variance[:, None] + 1e-5))
    assert layer.running_mean is mean and layer.running_variance is variance  # the copy changed nothing
    np.testing.assert_array_equal(outputs([layer], X[:, :1], inference=True).__next__(), inferred[:, :1])


def test_every_training_batch_moves_the_running_statistics_by_the_momentum(rng):
    layer = nn.BatchNorm(3, momentum=0.5)
    first, second = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    layer.forward(first)
    before = layer.running_mean  # kept: the update replaces the array, never writes into it
    layer.forward(second)
    np.testing.assert_allclose(before, 0.5 * first.mean(axis=1))
    np.testing.assert_allclose(layer.running_mean, 0.25 * first.mean(axis=1) + 0.5 * second.mean(axis=1))


def test_the_running_statistics_keep_the_layers_dtype(rng):
    layer = nn.BatchNorm(2, dtype=np.float32)
    layer.forward(rng.normal(size=(2, 5)))  # float64 data
    assert layer.running_mean.dtype == layer.running_variance.dtype == np.float32


def test_weight_decay_and_optimizers_touch_no_buffer_and_neither_gamma_nor_beta(rng):
    layer = nn.BatchNorm(2)
    layer.forward(rng.normal(size=(2, 5)))
    statistics = [buffer.value.copy() for buffer in layer.buffers()]
    for parameter in layer.parameters():
        parameter.gradient[...] = 0.0
    nn.AdamW(0.1, weight_decay=0.5).step(layer.parameters())
    np.testing.assert_array_equal(layer.gamma, [1.0, 1.0])  # no decay towards 0
    np.testing.assert_array_equal(layer.beta, [0.0, 0.0])
    assert all(np.array_equal(buffer.value, kept) for buffer, kept in zip(layer.buffers(), statistics, strict=True))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: nn.LayerNorm(3).forward(np.ones((4, 2))), "input must have 3 rows"),
        (lambda: nn.LayerNorm(3).forward(np.ones((3, 0, 2))), "no positions"),
        (lambda: nn.BatchNorm(3).forward(np.ones((3, 2, 2))), "2-D"),
        (lambda: nn.BatchNorm(2, input_shape=(2, 3, 3)).forward(np.ones((2, 5))), "input must have 18 rows"),
        (lambda: nn.BatchNorm(3, momentum=1.0), "momentum"),
        (lambda: nn.BatchNorm(3, epsilon=0), "epsilon"),
        (lambda: nn.LayerNorm(0), "features"),
        (lambda: nn.BatchNorm(3, input_shape=(4, 2, 2)), r"C = 3, received shape \(4, 2, 2\)"),
        (lambda: nn.Sequential([nn.Dense(4, 5), nn.BatchNorm(4)]), "BatchNorm.4. takes 4 features"),
        (lambda: nn.LayerNorm(3, method="fast"), "method"),
        (lambda: nn.LayerNorm(3).backward(np.ones((3, 2))), "forward pass first"),
    ],
)
def test_wrong_arguments_are_refused_with_a_message_naming_them(make, message):
    with pytest.raises(ValueError if "forward" not in message else RuntimeError, match=message):
        make()


def batch_norm_model(rng):
    layers = [nn.Dense(4, 3, rng=0), nn.BatchNorm(3, momentum=0.5), nn.Sigmoid(), nn.Dense(3, 2, rng=1), nn.Softmax()]
    model = nn.Sequential(layers)
    model.fit(rng.normal(size=(4, 20)), nn.one_hot(rng.integers(0, 2, 20), 2), epochs=1, batch_size=5, verbose=0)
    return model


def test_the_running_statistics_are_saved_and_loaded_with_the_model(tmp_path, rng):
    model = batch_norm_model(rng)
    assert not np.array_equal(model.layers[1].running_mean, np.zeros(3))  # the training moved them
    weights = model.get_weights()
    assert {"layer1.gamma", "layer1.beta", "layer1.running_mean", "layer1.running_variance"} <= set(weights)
    assert len(model.parameters()) == 4  # W̃, γ, β, W̃: the buffers are no parameters
    nn.save(model, tmp_path / "model.npz")
    loaded = nn.load(tmp_path / "model.npz")
    for name, array in weights.items():
        np.testing.assert_array_equal(loaded.get_weights()[name], array)
    X = rng.normal(size=(4, 7))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda arrays: arrays.pop("layer1.running_mean"), "'layer1.running_mean' is missing"),
        (lambda arrays: arrays.update({"layer1.running_variance": np.ones(4)}), r"has shape \(4,\)"),
        (lambda arrays: arrays["layer1.running_variance"].__setitem__(0, np.nan), "NaN or inf"),
    ],
    ids=["missing", "wrong shape", "NaN"],
)
def test_a_file_with_wrong_running_statistics_is_refused(tmp_path, rng, change, message):
    from nablanet.files.serialization import write_archive

    model = batch_norm_model(rng)
    arrays = {name: array.copy() for name, array in model.get_weights().items()}
    change(arrays)
    write_archive(tmp_path / "bad.npz", "model", model.get_config(), arrays)
    with pytest.raises(nn.ModelFileError, match=message):
        nn.load(tmp_path / "bad.npz")


def test_a_file_declaring_a_huge_batch_norm_is_refused_before_allocating(tmp_path, rng):
    from nablanet.files.serialization import write_archive

    config = {"layers": [{"type": "BatchNorm", "config": {"features": 10**11}}], "metadata": {}}
    arrays = {f"layer0.{name}": np.ones(3) for name in ("gamma", "beta", "running_mean", "running_variance")}
    write_archive(tmp_path / "huge.npz", "model", config, arrays)
    with pytest.raises(nn.ModelFileError, match="more than the 256 MiB"):
        nn.load(tmp_path / "huge.npz")


def test_a_checkpoint_restores_the_running_statistics(tmp_path, rng):
    from nablanet.files.checkpoint import Checkpoint, load_checkpoint

    model = batch_norm_model(rng)
    optimizer = nn.Adam(0.01)
    optimizer.step(model.parameters())
    stopper = nn.EarlyStopping(monitor="loss")
    stopper.on_train_begin(model)
    stopper.on_epoch_end(0, {"loss": 1.0})  # keeps the best weights: the parameters and the buffers
    checkpoint = Checkpoint(None, optimizer=optimizer, rng=rng, history=nn.History(), early_stopping=stopper)
    checkpoint.on_train_begin(model)
    checkpoint.write(tmp_path / "c.npz")
    state = load_checkpoint(tmp_path / "c.npz")
    for name, array in model.get_weights().items():
        np.testing.assert_array_equal(state.model.get_weights()[name], array)
    assert len(state.optimizer.state) == len(model.parameters())  # the optimizer's state follows the parameters only
    assert [best.shape for best in state.early_stopping["best_weights"]] == [a.shape for a in stopper.best_weights]


def test_early_stopping_puts_back_the_running_statistics_of_the_best_epoch(rng):
    model = batch_norm_model(rng)
    stopper = nn.EarlyStopping(monitor="loss", patience=1)
    stopper.on_train_begin(model)
    stopper.on_epoch_end(0, {"loss": 1.0})
    best = {name: array.copy() for name, array in model.get_weights().items()}
    model.layers[1].forward(rng.normal(5.0, size=(3, 4)))  # a worse epoch moves the running statistics
    stopper.on_epoch_end(1, {"loss": 2.0})
    stopper.on_train_end()
    for name, array in best.items():
        np.testing.assert_array_equal(model.get_weights()[name], array)


def test_the_command_line_puts_batch_norm_before_every_hidden_activation():
    from types import SimpleNamespace

    from nablanet.app.commands import build_parser
    from nablanet.app.run import TrainingSettings, _classifier

    args = build_parser().parse_args(["train", "--batch-norm", "--conv", "2", "--hidden", "8", "--activation", "tanh"])
    settings = TrainingSettings(**{field: getattr(args, field) for field in TrainingSettings.__dataclass_fields__})
    settings.check()
    model = _classifier(settings, SimpleNamespace(X_train=np.zeros((784, 1)), num_classes=10, name="mnist"))
    names = [type(layer).__name__ for layer in model.layers]
    assert names == [
        "Conv2D",
        "BatchNorm",
        "Tanh",
        "MaxPool2D",
        "Flatten",
        "Dense",
        "BatchNorm",
        "Tanh",
        "Dense",
        "Softmax",
    ]
    assert model.shapes()[1] == (2, 26, 26) and model.layers[1].features == 2  # per channel
    assert model.layers[6].features == 8 and model.layers[1].gamma.dtype == np.float32  # the run's --dtype
    assert not TrainingSettings().batch_norm


def test_a_model_may_start_with_batch_norm(rng):
    model = nn.Sequential([nn.BatchNorm(3), nn.Dense(3, 2, rng=0)])
    assert model.input_shape == (3,) and model.shapes() == [(3,), (2,)]
    assert model.predict_proba(rng.normal(size=(3, 4))).shape == (2, 4)
