import itertools

import numpy as np
import pytest

import nablanet as nn

# The notebook printed epoch-1 loss 1.442402, epoch-20 loss 0.381864 and test accuracy 0.9035. Six seeds
# (0–5) of the same recipe gave 1.4411–1.4470, 0.38142–0.38179 and 0.9034–0.9046: the tolerances below
# are about twice that seed-to-seed spread, and far tighter than what a wrong recipe gives (a learning
# rate of 0.02 instead of 0.01 ends near 0.34, a missing 1/b diverges).
NOTEBOOK = {"first_loss": (1.442402, 0.01), "last_loss": (0.381864, 0.002), "accuracy": (0.9035, 0.003)}


@pytest.mark.slow
def test_the_notebook_recipe_reproduces_the_notebooks_numbers(mnist):
    rng = np.random.default_rng(2024)
    model = nn.Sequential([nn.Dense(784, 10, rng=rng), nn.Softmax()])
    history = model.fit(
        mnist.X_train, mnist.Y_train, epochs=20, batch_size=200, learning_rate=0.01, rng=rng, loss="cce"
    )
    accuracy = model.evaluate(mnist.X_test, mnist.Y_test)["accuracy"]
    figures = {"first_loss": history.loss[0], "last_loss": history.loss[-1], "accuracy": accuracy}
    for name, (expected, tolerance) in NOTEBOOK.items():
        assert abs(figures[name] - expected) <= tolerance, (name, figures[name])
    assert all(later < earlier for earlier, later in itertools.pairwise(history.loss))


def _tiny_problem(rng, features=6, classes=3, samples=40):
    X = rng.normal(size=(features, samples))
    y = rng.integers(0, classes, samples)
    return X, nn.one_hot(y, classes)


def test_fused_and_notebook_paths_give_the_same_updates(rng):
    X, Y = _tiny_problem(rng)
    weights = {}
    for loss in ("cce", "softmax_cce"):
        model = nn.Sequential([nn.Dense(6, 5, init="he_normal", rng=1), nn.ReLU(), nn.Dense(5, 3, rng=2), nn.Softmax()])
        model.fit(X, Y, epochs=3, batch_size=8, optimizer=nn.SGD(0.1, momentum=0.9), loss=loss, rng=3)
        weights[loss] = [parameter.value for parameter in model.parameters()]
    for notebook, fused in zip(weights["cce"], weights["softmax_cce"], strict=True):
        np.testing.assert_allclose(notebook, fused, rtol=0, atol=1e-10)


def test_epoch_loss_is_the_mean_of_the_batch_losses_before_each_update(rng):
    X, Y = _tiny_problem(rng, samples=10)
    model = nn.Sequential([nn.Dense(6, 3, rng=0), nn.Softmax()])
    batch_losses = []

    class Recorder(nn.Callback):
        def on_batch_end(self, batch, loss):
            batch_losses.append(loss)

    # a replay of the loop by hand, with the same generator state
    replay = nn.Sequential([nn.Dense(6, 3, rng=0), nn.Softmax()])
    expected = []
    for indices in nn.generate_batch_indices(10, 4, np.random.default_rng(5)):
        probabilities = replay.forward(X[:, indices])
        expected.append(nn.cce(Y[:, indices], probabilities))
        replay.backward(nn.cce_gradient(Y[:, indices], probabilities), learning_rate=0.5)
    history = model.fit(X, Y, epochs=1, batch_size=4, learning_rate=0.5, rng=5, loss="cce", callbacks=[Recorder()])
    np.testing.assert_allclose(batch_losses, expected, rtol=1e-13)
    assert history.loss[0] == pytest.approx(np.mean(expected), rel=1e-13)
    np.testing.assert_allclose(model.layers[0].weights, replay.layers[0].weights, rtol=1e-13)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": -1}, "batch_size must be a positive integer"),
        ({"learning_rate": 0.0}, "learning_rate must be a positive finite number"),
        ({"learning_rate": float("nan")}, "learning_rate must be a positive finite number"),
        ({"validation_split": 1.5}, "validation_split must be a number in"),
    ],
)
def test_bad_training_arguments_are_named(rng, arguments, message):
    X, Y = _tiny_problem(rng)
    with pytest.raises(ValueError, match=message):
        nn.Sequential([nn.Dense(6, 3), nn.Softmax()]).fit(X, Y, **arguments)


def test_non_finite_data_is_refused(rng):
    X, Y = _tiny_problem(rng)
    X[2, 3] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        nn.Sequential([nn.Dense(6, 3), nn.Softmax()]).fit(X, Y)


def test_data_that_does_not_fit_the_layers_is_refused(rng):
    X, Y = _tiny_problem(rng)
    with pytest.raises(ValueError, match=r"X must have 5 rows \(features, samples\), received shape \(6, 40\)"):
        nn.Sequential([nn.Dense(5, 3), nn.Softmax()]).fit(X, Y)
    with pytest.raises(ValueError, match="same number of columns"):
        nn.Sequential([nn.Dense(6, 3), nn.Softmax()]).fit(X, Y[:, :-1])


def test_divergence_names_the_epoch_and_batch(rng):
    X, Y = _tiny_problem(rng)
    X *= 1e200
    model = nn.Sequential([nn.Dense(6, 3, init="he_normal", rng=0), nn.Softmax()])
    with (
        pytest.raises(nn.TrainingDiverged, match=r"in epoch 1, batch \d+: .*lower learning rate"),
        np.errstate(all="ignore"),
    ):
        model.fit(X, Y, learning_rate=1e10, batch_size=8)


def test_predict_and_accuracy(rng):
    X, Y = _tiny_problem(rng)
    model = nn.Sequential([nn.Dense(6, 3, rng=0), nn.Softmax()])
    probabilities = model.predict_proba(X)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0)
    np.testing.assert_array_equal(model.predict(X), probabilities.argmax(axis=0))
    expected = np.mean(model.predict(X) == Y.argmax(axis=0))
    assert model.evaluate(X, Y)["accuracy"] == pytest.approx(expected)
