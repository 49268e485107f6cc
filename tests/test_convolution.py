"""Conv2D, MaxPool2D, AvgPool2D and Flatten: finite differences, the loop reference, hand-worked
numbers, and a CNN through everything else (save/load, checkpoints, the command line)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nablanet as nn
from nablanet.app.cli import main
from nablanet.core.gradcheck import gradcheck
from nablanet.core.ops import images, matrix

TOLERANCE = 1e-6


@st.composite
def convolutions(draw):
    kernel = draw(st.sampled_from([1, 3, 5]))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from([0, "same", 1]))
    pad = (kernel - 1) // 2 if padding == "same" else padding
    channels, filters = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    height = draw(st.integers(max(1, kernel - 2 * pad), 8))
    width = draw(st.integers(max(1, kernel - 2 * pad), 8))
    return (
        {
            "in_channels": channels,
            "out_channels": filters,
            "kernel_size": kernel,
            "stride": stride,
            "padding": padding,
            "input_shape": (channels, height, width),
        },
        draw(st.integers(1, 4)),
        draw(st.integers(0, 2**31)),
    )


@given(convolutions())
def test_conv2d_gradients_match_finite_differences(case):
    arguments, batch, seed = case
    rng = np.random.default_rng(seed)
    layer = nn.Conv2D(**arguments, rng=rng)
    layer.b[...] = rng.normal(size=layer.b.shape)  # the bias column is checked too
    X = rng.normal(size=(int(np.prod(arguments["input_shape"])), batch))
    report = gradcheck(layer, X, tolerance=TOLERANCE)
    assert report.passed, report.table()
    assert [result.name for result in report.results] == ["layer 0 Conv2D.weights", "input"]


@given(convolutions())
def test_the_im2col_conv2d_equals_the_loop_reference(case):
    arguments, batch, seed = case
    rng = np.random.default_rng(seed)
    fast, loop = nn.Conv2D(**arguments, rng=seed), nn.Conv2D(**arguments, rng=seed, method="loop")
    X = rng.normal(size=(int(np.prod(arguments["input_shape"])), batch))
    np.testing.assert_allclose(fast.forward(X), loop.forward(X), rtol=0, atol=1e-12)
    G = rng.normal(size=fast.output.shape)
    np.testing.assert_allclose(fast.backward(G), loop.backward(G), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.weights_gradient, loop.weights_gradient, rtol=0, atol=1e-12)


@given(st.sampled_from([(2, None), (3, 2), (2, 1), (3, 3)]), st.integers(1, 3), st.integers(0, 2**31))
@pytest.mark.parametrize("pool", [nn.MaxPool2D, nn.AvgPool2D])
def test_pooling_gradients_match_finite_differences(pool, sizes, batch, seed):
    rng = np.random.default_rng(seed)
    layer = pool(*sizes, input_shape=(2, 7, 6))
    report = gradcheck(layer, rng.normal(size=(84, batch)), tolerance=TOLERANCE)
    assert report.passed, report.table()


def test_a_convolution_by_hand():
    # one 3×3 image, one 2×2 filter: Z[i, j] = Σ_u Σ_v W[u, v] X[i + u, j + v] + b
    layer = nn.Conv2D(1, 1, 2, input_shape=(1, 3, 3))
    layer.W[...] = [[1.0, 0.0], [0.0, -1.0]]
    layer.b[...] = 0.5
    X = np.arange(9.0).reshape(9, 1)  # rows 0 1 2 / 3 4 5 / 6 7 8
    np.testing.assert_array_equal(layer.forward(X).ravel(), [0 - 4 + 0.5, 1 - 5 + 0.5, 3 - 7 + 0.5, 4 - 8 + 0.5])
    gradient = layer.backward(np.ones((4, 1)))  # each input pixel collects W[u, v] from every window it is in
    np.testing.assert_array_equal(gradient.reshape(3, 3), [[1, 1, 0], [1, 0, -1], [0, -1, -1]])
    np.testing.assert_array_equal(
        layer.weights_gradient, [[0 + 1 + 3 + 4, 1 + 2 + 4 + 5, 3 + 4 + 6 + 7, 4 + 5 + 7 + 8, 4]]
    )


def test_max_pooling_sends_the_gradient_to_the_first_maximum_of_a_tie():
    pool = nn.MaxPool2D(2, input_shape=(1, 2, 4))
    X = np.array([[3.0, 3.0, 1.0, 2.0], [1.0, 3.0, 2.0, 2.0]]).reshape(8, 1)  # windows [3 3; 1 3] and [1 2; 2 2]
    np.testing.assert_array_equal(pool.forward(X).ravel(), [3.0, 2.0])
    np.testing.assert_array_equal(
        pool.backward(np.array([[10.0], [20.0]])).reshape(2, 4), [[10, 0, 0, 20], [0, 0, 0, 0]]
    )


def test_average_pooling_by_hand():
    pool = nn.AvgPool2D(2, input_shape=(1, 2, 2))
    np.testing.assert_array_equal(pool.forward(np.array([[1.0], [2.0], [3.0], [6.0]])), [[3.0]])
    np.testing.assert_array_equal(pool.backward(np.array([[4.0]])).ravel(), [1.0, 1.0, 1.0, 1.0])


def test_images_and_matrices_are_views_of_the_same_memory():
    batch = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    X = matrix(batch)
    assert X.shape == (60, 2) and np.shares_memory(X, batch)
    np.testing.assert_array_equal(X[:, 1], batch[1].ravel())  # a column: channel by channel, row by row
    assert np.shares_memory(images(X, (3, 4, 5)), batch)


def test_shapes_travel_through_a_sequential_and_errors_say_where():
    model = nn.Sequential(
        [
            nn.Conv2D(1, 4, 3, padding="same", input_shape=(1, 9, 9)),
            nn.ReLU(),
            nn.AvgPool2D(3),
            nn.Conv2D(4, 2, 3, stride=2),
            nn.Flatten(),
            nn.Dense(2, 3),
            nn.Softmax(),
        ]
    )
    assert model.shapes() == [(4, 9, 9), (4, 9, 9), (4, 3, 3), (2, 1, 1), (2,), (3,), (3,)]
    with pytest.raises(ValueError, match=r"layer 1 \(Conv2D\): Conv2D expects 3 input channels"):
        nn.Sequential([nn.Conv2D(1, 4, 3, input_shape=(1, 9, 9)), nn.Conv2D(3, 2, 3)])
    with pytest.raises(ValueError, match="a window of 5 does not fit in 4 pixels"):
        nn.Conv2D(1, 1, 5, input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="needs its input_shape"):
        nn.Conv2D(1, 1, 3).forward(np.ones((9, 1)))
    with pytest.raises(ValueError, match="padding 'same' needs an odd kernel_size"):
        nn.Conv2D(1, 1, 2, padding="same")
    with pytest.raises(ValueError, match="pool_size must be at most 16"):  # the winner's position is one byte
        nn.MaxPool2D(17)


def _small_cnn(dtype=np.float64):
    return nn.build_classifier(784, 10, conv=[3], hidden=[8], dropout=0.2, rng=0, dtype=dtype)


def test_a_cnn_learns_saves_loads_and_predicts_the_same(mnist, tmp_path):
    model = _small_cnn(np.float32)
    X, Y = mnist.X_train[:, :2000].astype(np.float32), mnist.Y_train[:, :2000].astype(np.float32)
    history = model.fit(X, Y, epochs=2, batch_size=50, optimizer="adam", rng=0)
    assert history.loss[-1] < history.loss[0]
    nn.save(model, tmp_path / "cnn.npz")
    loaded = nn.load(tmp_path / "cnn.npz")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    X_test = mnist.X_test[:, :300].astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    assert loaded.layers[0].input_shape == (1, 28, 28) and loaded.summary() == model.summary()


def test_a_whole_cnn_passes_the_gradient_check(mnist):
    model = _small_cnn()
    for layer in model.layers:
        if hasattr(layer, "b"):
            layer.b[...] = 0.1  # away from the ReLU kink on the black background
    X = mnist.X_train[:, :3] + 0.01 * np.random.default_rng(0).standard_normal((784, 3))
    report = gradcheck(model, X, mnist.Y_train[:, :3], max_entries=40)
    assert report.passed, report.table()


@pytest.mark.slow
def test_cnn_from_the_command_line_trains_resumes_bit_for_bit_and_is_inspected(tmp_path, capsys):
    common = ["--conv", "2", "--dropout", "0.2", "--optimizer", "adam", "--dtype", "float64", "--batch-size", "500"]
    whole = tmp_path / "whole"
    assert main(["train", *common, "--epochs", "2", "--out", str(whole)]) == 0
    assert (
        main(
            ["train", *common, "--epochs", "1", "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "a")]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "--resume",
                "--checkpoint-dir",
                str(tmp_path / "ck"),
                "--epochs",
                "2",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    for mine, theirs in zip(
        nn.load(tmp_path / "b" / "model.npz").parameters(), nn.load(whole / "model.npz").parameters(), strict=True
    ):
        np.testing.assert_array_equal(mine.value, theirs.value)
    capsys.readouterr()
    assert main(["inspect", str(whole / "model.npz"), "--out", str(tmp_path / "pictures")]) == 0
    assert "Conv2D     (2, 26, 26)" in capsys.readouterr().out
    names = sorted(path.name for path in (tmp_path / "pictures").iterdir())
    assert names == ["feature_maps.png", "filters.png", "misclassified_probabilities.png", "softmax_jacobian.png"]
