"""API errors name the argument and say what was meant; numbers stay right where they used to go wrong."""

import http.server
import threading
import time

import numpy as np
import pytest
from PIL import Image

import nablanet as nn
from nablanet.app import model_commands
from nablanet.data.datasets import download


@pytest.fixture
def model():
    return nn.Sequential(
        [nn.Dense(4, 6, rng=0), nn.ReLU(), nn.Dropout(0.2, rng=0), nn.Dense(6, 3, rng=0), nn.Softmax()]
    )


@pytest.fixture
def data(rng):
    X = rng.normal(size=(4, 30))
    return X, nn.one_hot(rng.integers(0, 3, 30), 3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, X, Y: m.fit(X[:, :0], Y[:, :0]), "X has no samples"),
        (lambda m, X, Y: m.predict(X[:, :0]), "X has no samples"),
        (lambda m, X, Y: m.fit(X, Y[:2]), "Y has 2 rows, the model has 3 outputs"),
        (lambda m, X, Y: m.evaluate(X, np.vstack([Y, Y[:1]])), "Y has 4 rows"),
        (lambda m, X, Y: m.predict_proba(X, batch_size=0), "batch_size must be a positive integer"),
        (lambda m, X, Y: m.evaluate(X, Y, batch_size=-5), "batch_size must be a positive integer"),
        (lambda m, X, Y: m.fit(X.T, Y), "did you mean X.T"),
        (lambda m, X, Y: m.predict(X.T), "did you mean X.T"),
        (lambda m, X, Y: m.fit(X, Y.argmax(axis=0)), "nablanet.one_hot"),
        (lambda m, X, Y: m.fit(X, Y * 2), "one-hot or probability columns"),
        (lambda m, X, Y: m.fit(X, Y, initial_epoch=-1), "initial_epoch must be an integer in \\[0, epochs"),
        (lambda m, X, Y: m.fit(X, Y, optimizer="rmsprop"), "optimizer must be one of"),
        (lambda m, X, Y: m.fit(X, Y, optimizer=nn.Adam(), learning_rate=0.1), "not both"),
    ],
)
def test_api_errors_name_the_argument(call, message, model, data):
    with pytest.raises(ValueError, match=message):
        call(model, *data)


def test_an_optimizer_name_and_no_callbacks_are_fine(model, data):
    history = model.fit(*data, epochs=2, batch_size=10, optimizer="adam", callbacks=None, rng=0)
    assert len(history.loss) == 2


def test_an_optimizer_used_for_a_second_model_is_refused(model, data):
    optimizer = nn.SGD(0.1)
    model.fit(*data, epochs=1, optimizer=optimizer)
    other = nn.Sequential([nn.Dense(4, 3, rng=0), nn.Softmax()])
    with pytest.raises(ValueError, match=r"holds the state of another model's 2 parameters.*one optimizer per model"):
        other.fit(*data, epochs=1, optimizer=optimizer)


def test_integer_input_to_softmax_and_dropout_names_the_argument():
    with pytest.raises(ValueError, match="input must hold floating-point numbers"):
        nn.Softmax().forward(np.ones((3, 2), dtype=int))
    with pytest.raises(ValueError, match="input must hold floating-point numbers"):
        nn.Dropout(0.5).forward(np.ones((3, 2), dtype=int))


def test_nan_weights_are_refused_when_assigned_and_when_saved(tmp_path):
    layer = nn.Dense(2, 2)
    with pytest.raises(ValueError, match="finite"):
        layer.weights = np.full((2, 3), np.nan)
    model = nn.Sequential([nn.Dense(2, 2), nn.Softmax()])
    model.layers[0].weights[0, 0] = np.nan  # in place: no setter to stop it
    with pytest.raises(ValueError, match="contains NaN or inf"):
        nn.save(model, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(("dtype", "gap"), [(np.float32, 120.0), (np.float64, 800.0)])
@pytest.mark.parametrize("method", ["vectorized", "einsum", "loop"])
def test_the_notebook_loss_path_keeps_its_gradient_where_a_probability_underflows(dtype, gap, method):
    dense, softmax = nn.Dense(2, 3, rng=0, dtype=dtype), nn.Softmax(method)
    dense.weights = np.zeros((3, 3))
    dense.W[0, 0] = gap  # class 0's logit is `gap` above the true class 2's: e^(−gap) underflows
    X, Y = np.array([[1.0], [0.0]], dtype=dtype), nn.one_hot([2], 3, dtype=dtype)
    a = softmax.forward(dense.forward(X))
    gradient = softmax.backward(nn.cce_gradient(Y, a))
    np.testing.assert_allclose(gradient, a - Y, atol=1e-6)  # ŷ − y, as the fused loss gives
    losses = []
    for _ in range(20):
        a = softmax.forward(dense.forward(X))
        losses.append(nn.cce(Y, a))
        dense.backward(softmax.backward(nn.cce_gradient(Y, a)), learning_rate=gap / 4)
    assert losses[0] == pytest.approx(-np.log(np.finfo(dtype).tiny), rel=1e-6) and losses[-1] < 1e-3


def test_a_download_that_trickles_stops_at_its_deadline(tmp_path):
    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *arguments):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(nn.DatasetError, match=r"took longer than 1\.5 s"):
            download(f"http://127.0.0.1:{server.server_address[1]}/f.gz", tmp_path / "f.gz", "0" * 64, deadline=1.5)
        assert time.monotonic() - started < 5
        assert list(tmp_path.iterdir()) == []
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_predict_with_a_fashion_model_reads_pictures_as_fashion_mnist_does(tmp_path):
    data = nn.load_fashion_mnist(dtype=np.float32)
    model = nn.build_classifier(784, 10, rng=0, dtype=np.float32)
    model.fit(data.X_train, data.Y_train, epochs=2, optimizer="adam", rng=0)
    model.metadata = {"dataset": "fashion-mnist", "class_names": list(data.class_names)}
    nn.save(model, tmp_path / "fashion.npz")
    chosen = np.arange(500)
    paths = []
    for index in chosen:
        path = tmp_path / f"{index}.png"
        Image.fromarray(np.round(data.X_test[:, index].reshape(28, 28) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    predictions = model_commands.predict_images(tmp_path / "fashion.npz", paths)
    names = list(data.class_names)
    from_pictures = np.mean(
        [names.index(p.label) == label for p, label in zip(predictions, data.y_test[chosen], strict=True)]
    )
    from_arrays = np.mean(model.predict(data.X_test[:, chosen]) == data.y_test[chosen])
    assert from_arrays > 0.75 and abs(from_pictures - from_arrays) <= 0.01  # 0.1 read them as digits: 0.40


def test_a_first_conv2d_without_input_shape_says_to_give_it_in_summary_fit_and_predict():
    model = nn.Sequential([nn.Conv2D(1, 8, 3), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(), nn.Dense(1352, 10)])
    message = r"^layer 0 \(Conv2D\) needs the shape of its input images: give the first Conv2D input_shape=\(C, H, W\), e\.g\. input_shape=\(1, 28, 28\) for MNIST$"  # noqa: E501
    X, Y = np.zeros((784, 2)), nn.one_hot(np.array([0, 1]), 10)
    for call in (model.summary, lambda: model.fit(X, Y, loss="softmax_cce", verbose=0), lambda: model.predict(X)):
        with pytest.raises(ValueError, match=message):
            call()
    shaped = nn.Sequential([nn.Conv2D(1, 8, 3, input_shape=(1, 28, 28)), *model.layers[1:]])
    assert "(10,)" in shaped.summary()  # the fix the message names works


@pytest.mark.parametrize("call", [lambda m, x: m.predict(x), lambda m, x: m.evaluate(x, np.eye(3)[:, :1])])
def test_one_sample_as_a_vector_is_refused_with_x_as_a_column(call, model):
    with pytest.raises(ValueError, match=r"received a vector of shape \(4,\): one sample is one column, x\[:, None\]"):
        call(model, np.ones(4))
    assert call(model, np.ones(4)[:, None]) is not None  # what the message says works


def test_a_vector_of_samples_of_one_feature_is_refused_with_x_as_a_row():
    model = nn.Sequential([nn.Dense(1, 1, rng=0)])
    with pytest.raises(ValueError, match=r"shape \(5,\): N samples of one feature are one row, x\[None, :\]"):
        model.predict_proba(np.arange(5.0))
    assert model.predict_proba(np.arange(5.0)[None, :]).shape == (1, 5)


def test_a_layer_given_one_sample_as_a_vector_is_told_to_make_it_a_column():
    with pytest.raises(ValueError, match=r"received shape \(3,\): one sample is a column, input\[:, None\]"):
        nn.Dense(3, 2, rng=0).forward(np.zeros(3))
