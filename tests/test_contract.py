"""The layer contract: seven public methods; a learner's class with forward, backward and parameters alone
trains, checks and saves; the fast paths live beside the layers; inference keeps no state in the layers."""

import inspect
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import nablanet as nn
from nablanet.core import layers as layers_module
from nablanet.core.layers import LAYERS, Layer, parameter_specs
from nablanet.core.losses import LOSSES

CORE = Path(layers_module.__file__).parent


def test_a_layer_has_seven_public_methods():
    public = {name for name, value in inspect.getmembers(Layer) if callable(value) and not name.startswith("_")}
    assert public == {"forward", "backward", "parameters", "buffers", "get_config", "from_config", "build"}


class Affine(Layer):
    """A learner's layer, as written after the lecture: Z = W X + b, its two gradients, nothing else."""

    def __init__(self, inputs=4, outputs=3, seed=0):
        rng = np.random.default_rng(seed)
        self.W = nn.Parameter("W", rng.normal(0, 0.5, (outputs, inputs)), np.zeros((outputs, inputs)))
        self.b = nn.Parameter("b", np.zeros((outputs, 1)), np.zeros((outputs, 1)))

    def forward(self, input):
        self.input = input
        self.output = self.W.value @ input + self.b.value
        return self.output

    def backward(self, output_gradient, learning_rate=None):
        batch = self.input.shape[1]
        self.W.gradient[...] = output_gradient @ self.input.T / batch
        self.b.gradient[...] = output_gradient.sum(axis=1, keepdims=True) / batch
        input_gradient = self.W.value.T @ output_gradient
        if learning_rate is not None:
            nn.SGD(learning_rate).step(self.parameters())
        return input_gradient

    def parameters(self):
        return [self.W, self.b]


@pytest.fixture
def toy():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4, 120))
    y = (X[0] + X[1] > 0).astype(int) + (X[2] > 1)
    return X, nn.one_hot(y, 3)


def test_a_learners_layer_with_forward_backward_and_parameters_trains_in_fit(toy):
    X, Y = toy
    model = nn.Sequential([Affine(), nn.Softmax()])
    history = model.fit(X, Y, epochs=30, batch_size=20, learning_rate=0.5, rng=0, verbose=0)
    assert history.loss[-1] < 0.6 * history.loss[0]
    assert model.evaluate(X, Y)["accuracy"] > 0.8
    assert model.predict(X).shape == (120,)
    assert model.summary().splitlines()[3].split()[:2] == ["Affine", "?"]  # its output shape is not known


def test_a_learners_layer_passes_gradcheck_and_a_wrong_one_fails(toy):
    X, Y = toy
    assert nn.gradcheck(Affine(), X[:, :6]).passed
    assert nn.gradcheck(
        nn.Sequential([Affine(), nn.Tanh(), nn.Dense(3, 3, rng=0), nn.Softmax()]), X[:, :6], Y[:, :6]
    ).passed

    class Forgetful(Affine):  # the classic slip: the bias gradient not averaged over the batch
        def backward(self, output_gradient, learning_rate=None):
            input_gradient = super().backward(output_gradient)
            self.b.gradient *= self.input.shape[1]
            return input_gradient

    report = nn.gradcheck(Forgetful(), X[:, :6])
    assert not report.passed and [result.passed for result in report.results] == [True, False, True]


def test_a_registered_learners_layer_saves_and_loads(toy, tmp_path, monkeypatch):
    X, Y = toy
    monkeypatch.setitem(LAYERS._entries, "Affine", Affine)  # what @LAYERS.register() does at definition
    model = nn.Sequential([Affine(seed=3), nn.Softmax()])
    model.fit(X, Y, epochs=2, batch_size=20, learning_rate=0.5, rng=0, verbose=0)
    assert parameter_specs(Affine, {}) == {"W": ((3, 4), np.dtype(np.float64)), "b": ((3, 1), np.dtype(np.float64))}
    nn.save(model, tmp_path / "affine.npz")
    loaded = nn.load(tmp_path / "affine.npz")
    assert isinstance(loaded.layers[0], Affine)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_parameter_specs_come_from_the_constructor_without_allocating():
    specs = parameter_specs(nn.Dense, {"input_size": 10**6, "output_size": 10**6, "dtype": "float32"})
    assert specs == {"weights": ((10**6, 10**6 + 1), np.dtype(np.float32))}  # 4 TB, never allocated
    conv = {"in_channels": 3, "out_channels": 8, "kernel_size": 5, "input_shape": [3, 32, 32]}
    assert parameter_specs(nn.Conv2D, conv) == {"weights": ((8, 3 * 25 + 1), np.dtype(np.float64))}
    assert parameter_specs(nn.Dense, {"input_size": 2, "output_size": 3})["weights"][0] == nn.Dense(2, 3).weights.shape
    with pytest.raises(ValueError, match="output_size must be a positive integer"):
        parameter_specs(nn.Dense, {"input_size": 2, "output_size": 0})


def test_no_layer_module_chooses_between_a_kernel_and_numpy():
    modules = [path for path in CORE.glob("*.py") if path.name not in ("ops.py", "kernels.py")]
    assert len(modules) > 10
    for path in modules:
        assert not re.search(r"\bkernels\.", path.read_text(encoding="utf-8")), path.name


def test_build_is_the_one_way_to_ask_a_layer_its_output_shape():
    assert nn.Conv2D(1, 4, 3, padding="same").build((1, 6, 6)) == (4, 6, 6)
    assert nn.MaxPool2D(2).build((4, 6, 6)) == (4, 3, 3)
    assert nn.Flatten().build((4, 3, 3)) == (36,)
    assert nn.Dense(36, 5).build((4, 3, 3)) == (5,)
    assert nn.ReLU().build((5,)) == nn.Dropout(0.5).build((5,)) == nn.Softmax().build((5,)) == (5,)
    assert Affine().build((4,)) is None  # a layer that does not say
    with pytest.raises(ValueError, match="Dense expects 36 input features, received 35"):
        nn.Dense(36, 5).build((35,))


CASES = [
    lambda: nn.build_classifier(784, 10, [16], conv=[4], dropout=0.5, rng=0),
    lambda: nn.build_classifier(784, 10, [32, 16], dropout=0.3, rng=0, dtype=np.float32),
]


@pytest.mark.parametrize("make", CASES, ids=["cnn", "mlp"])
def test_two_threads_predicting_with_one_model_give_what_one_thread_gives(make):
    model = make()
    X = np.random.default_rng(0).random((784, 64))
    alone = model.predict_proba(X, batch_size=8)
    barrier, results = threading.Barrier(2), {}

    def predict(name):
        barrier.wait()
        results[name] = [model.predict_proba(X, batch_size=8) for _ in range(5)]

    threads = [threading.Thread(target=predict, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outputs in results.values():
        for output in outputs:
            np.testing.assert_array_equal(output, alone)
    assert all(layer.training for layer in model.layers)  # predictions never touch the layers' mode


@pytest.mark.parametrize("make", CASES, ids=["cnn", "mlp"])
def test_a_prediction_between_forward_and_backward_changes_no_gradient(make):
    X = np.random.default_rng(1).random((784, 6))
    gradient = np.random.default_rng(2).random((10, 6))
    gradients = []
    for predict_between in (False, True):
        model = make()
        model.forward(X)
        if predict_between:
            model.predict_proba(np.random.default_rng(3).random((784, 3)))
        model.backward(gradient)
        gradients.append([parameter.gradient.copy() for parameter in model.parameters()])
    for before, after in zip(*gradients, strict=True):
        np.testing.assert_array_equal(before, after)


def one_of_each_layer():
    """A layer of every kind, each taking 16 features (an image of 1×4×4 for the image layers)."""
    return [
        nn.Dense(16, 3),
        nn.ReLU(),
        nn.Sigmoid(),
        nn.Softmax(),
        nn.Dropout(0.5),
        nn.Conv2D(1, 2, 3, input_shape=(1, 4, 4)),
        nn.MaxPool2D(2, input_shape=(1, 4, 4)),
        nn.AvgPool2D(2, input_shape=(1, 4, 4)),
        nn.Flatten(input_shape=(1, 4, 4)),
    ]


def test_every_layer_checks_the_gradient_it_is_given():
    X = np.random.default_rng(0).random((16, 2))
    for layer in one_of_each_layer():
        output = layer.forward(X)
        name = type(layer).__name__
        with pytest.raises(TypeError, match=f"{name}.backward: output_gradient must be a NumPy array, received: list"):
            layer.backward(output.tolist())
        with pytest.raises(
            ValueError, match=rf"{name}.backward: output_gradient must have the shape of the layer's output"
        ):
            layer.backward(np.ones((output.shape[0], output.shape[1] + 1)))


def test_the_layer_of_how_to_add_a_layer_works_as_contributing_says(tmp_path, monkeypatch):
    text = (Path(__file__).parents[1] / "CONTRIBUTING.md").read_text(encoding="utf-8")
    block = text.split("<!-- the block below is run by tests/test_contract.py -->\n```python\n")[1].split("```")[0]
    monkeypatch.setattr(LAYERS, "_entries", dict(LAYERS._entries))  # its registration ends with this test
    namespace: dict = {}
    exec(compile(block, "CONTRIBUTING.md", "exec"), namespace)
    softplus = namespace["Softplus"]
    X = np.random.default_rng(0).normal(size=(3, 5))
    np.testing.assert_allclose(softplus().forward(np.array([[0.0], [1000.0]])), [[np.log(2)], [1000.0]])
    assert nn.gradcheck(softplus(), X).passed
    model = nn.Sequential([nn.Dense(3, 4, rng=0), softplus(), nn.Dense(4, 2, rng=0), nn.Softmax()])
    assert model.shapes() == [(4,), (4,), (2,), (2,)]
    nn.save(model, tmp_path / "softplus.npz")
    np.testing.assert_array_equal(nn.load(tmp_path / "softplus.npz").predict_proba(X), model.predict_proba(X))


def test_the_playgrounds_views_of_one_model_from_two_threads_are_those_of_one_thread():
    from nablanet.app.playground.inside import look_inside

    model = nn.build_classifier(784, 10, [8], conv=[4], rng=0)
    x = np.random.default_rng(0).random((784, 1))
    names = [str(digit) for digit in range(10)]
    alone = look_inside(model, x, names)
    barrier, views = threading.Barrier(2), []

    def look():
        barrier.wait()
        views.extend(look_inside(model, x, names) for _ in range(3))

    threads = [threading.Thread(target=look) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(views) == 6 and all(view == alone for view in views)
    assert [layer["name"] for layer in alone["layers"]] == ["1 ReLU", "2 MaxPool2D", "5 ReLU"]


class Doubler(Layer):
    """A learner's element-wise layer without ``build``: A = 2 X."""

    def forward(self, input):
        self.input, self.output = input, 2 * input
        return self.output

    def backward(self, output_gradient, learning_rate=None):
        return 2 * output_gradient


def test_an_image_layer_after_a_layer_that_does_not_say_its_shape_is_refused_with_what_to_write():
    with pytest.raises(ValueError, match=r"layer 2 \(MaxPool2D\) needs the shape of its input, which layer 1 "):
        nn.Sequential([nn.Conv2D(1, 2, 3, input_shape=(1, 6, 6)), Doubler(), nn.MaxPool2D(2), nn.Flatten()])

    class ShapedDoubler(Doubler):
        def build(self, input_shape):
            return input_shape

    model = nn.Sequential(
        [nn.Conv2D(1, 2, 3, input_shape=(1, 6, 6), rng=0), ShapedDoubler(), nn.MaxPool2D(2), nn.Flatten()]
    )
    assert model.shapes() == [(2, 4, 4), (2, 4, 4), (2, 2, 2), (8,)]


def test_each_layer_that_fixes_its_input_starts_the_shapes_afresh():
    model = nn.Sequential([nn.Conv2D(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Dense(100, 3)])  # no input_shape given
    assert model.shapes() == [None, None, None, (3,)]
    model = nn.Sequential([nn.Dense(3, 4, rng=0), Doubler(), nn.Dense(4, 2, rng=0), nn.Softmax()])
    assert model.shapes() == [(4,), None, (2,), (2,)]


def test_a_parameter_too_large_for_numpy_is_one_clear_error():
    with pytest.raises(ValueError, match=r"an array of shape \(4, 9223372036854775808\) is larger than NumPy can"):
        parameter_specs(nn.Dense, {"input_size": 2**63 - 1, "output_size": 4})


def test_every_layer_refuses_an_empty_batch_in_one_line():
    for layer in one_of_each_layer():
        with pytest.raises(ValueError, match=r"^input has no samples: it needs at least one column$"):
            layer.forward(np.ones((16, 0)))


def test_flatten_checks_the_shape_of_its_input():
    with pytest.raises(ValueError, match=r"input must have 16 rows \(features, batch\), received shape \(15, 2\)"):
        nn.Flatten(input_shape=(1, 4, 4)).forward(np.ones((15, 2)))


def test_the_loss_of_how_to_add_a_loss_works_as_contributing_says(monkeypatch):
    text = (Path(__file__).parents[1] / "CONTRIBUTING.md").read_text(encoding="utf-8")
    block = text.split("<!-- the loss block below is run by tests/test_contract.py -->\n```python\n")[1]
    monkeypatch.setattr(LOSSES, "_entries", dict(LOSSES._entries))  # its registration ends with this test
    namespace: dict = {}
    exec(compile(block.split("```")[0], "CONTRIBUTING.md", "exec"), namespace)
    log_cosh = namespace["LogCosh"]()
    rng = np.random.default_rng(0)
    Y, Yhat = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    assert log_cosh.value(Y, Yhat) == pytest.approx(np.sum(np.log(np.cosh(Yhat - Y))) / 5, rel=1e-12)
    assert log_cosh.value(np.zeros((1, 1)), np.array([[1000.0]])) == pytest.approx(1000 - np.log(2))
    assert nn.gradcheck(log_cosh, Yhat, Y).passed
    x = np.linspace(-2, 2, 50)[None, :]
    model = nn.Sequential([nn.Dense(1, 8, rng=0), nn.Tanh(), nn.Dense(8, 1, rng=0)])
    history = model.fit(
        x, np.sin(x), loss="log_cosh", epochs=100, batch_size=10, optimizer=nn.Adam(0.01), rng=0, verbose=0
    )
    assert history.as_dict().keys() == {"loss"} and history.loss[-1] < 0.1 * history.loss[0]  # measured: 0.26 → 0.0013


def test_a_model_that_starts_with_a_learners_layer_takes_its_input_size_from_the_data():
    """Its input says nothing of a later Dense layer's: a learner's convolution (784 rows in) before a Dense of
    676 inputs used to be refused with "X must have 676 rows"."""

    class Halver(Layer):  # a learner's layer that changes the size: the first half of the rows
        def forward(self, input):
            self.input = input
            return input[: input.shape[0] // 2]

        def backward(self, output_gradient, learning_rate=None):
            return np.vstack([output_gradient, np.zeros_like(output_gradient)])

    model = nn.Sequential([Halver(), nn.Dense(3, 2, rng=0), nn.Softmax()])
    assert model.input_shape is None and model.input_size is None
    X, Y = np.random.default_rng(0).random((6, 20)), nn.one_hot(np.arange(20) % 2, 2)
    history = model.fit(X, Y, epochs=2, batch_size=5, learning_rate=0.1, rng=0, verbose=0)
    assert len(history.loss) == 2 and model.predict(X).shape == (20,)
    assert nn.Sequential([nn.Dropout(0.5), nn.Dense(3, 2)]).input_size == 3  # a layer that keeps the shape
