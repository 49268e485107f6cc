"""Every picture: the file exists, has the expected pixel size and panel count, and is not blank."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import nablanet as nn
from nablanet.app import plots
from nablanet.training.callbacks import Dynamics
from nablanet.training.model import build_classifier


@pytest.fixture
def panels(monkeypatch):
    """Records the number of panels (axes, colour bars included) of every figure saved."""
    counts = {}
    original = plots.save_figure

    def recording(figure, path):
        counts[path.name] = len(figure.axes)
        return original(figure, path)

    monkeypatch.setattr(plots, "save_figure", recording)
    return counts


@pytest.fixture(scope="module")
def trained(mnist):
    """A softmax classifier and an MLP (with recorded dynamics), briefly trained on part of MNIST."""
    X, Y = mnist.X_train[:, :6000], mnist.Y_train[:, :6000]
    classifier = build_classifier(784, 10, rng=0)
    classifier.fit(X, Y, epochs=2, rng=0)
    mlp = build_classifier(784, 10, (32,), rng=0)
    dynamics = Dynamics(X[:, :500])
    mlp.fit(X, Y, epochs=3, batch_size=100, optimizer=nn.Adam(1e-3), rng=0, callbacks=[dynamics])
    return classifier, mlp, dynamics.dynamics


def check_png(figure, path, size, min_variance=100.0):
    assert isinstance(figure, Figure)  # returned, so that a notebook shows it inline
    assert path.is_file()
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    assert pixels.shape[::-1] == size
    assert pixels.var() > min_variance, f"{path.name} looks blank (variance {pixels.var():.1f})"


def test_weight_templates_of_a_softmax_classifier(trained, mnist, tmp_path, panels):
    figure = plots.plot_weight_templates(trained[0], tmp_path / "templates.png", class_names=list(mnist.class_names))
    check_png(figure, tmp_path / "templates.png", (1200, 580))
    assert panels["templates.png"] == 10 + 1  # ten class templates and the colour bar


def test_weight_templates_of_an_mlp(trained, tmp_path, panels):
    figure = plots.plot_weight_templates(trained[1], tmp_path / "units.png", num_units=16)
    check_png(figure, tmp_path / "units.png", (1920, 580))
    assert panels["units.png"] == 16 + 1


def test_softmax_jacobian(trained, mnist, tmp_path, panels):
    probabilities = trained[0].predict_proba(mnist.X_test[:, :1])[:, 0]
    figure = plots.plot_softmax_jacobian(mnist.X_test[:, 0], probabilities, tmp_path / "jacobian.png")
    check_png(figure, tmp_path / "jacobian.png", (1800, 600))
    assert panels["jacobian.png"] == 3 + 1  # image, probabilities, Jacobian and its colour bar


def test_misclassified_with_probabilities(trained, mnist, tmp_path, panels):
    probabilities = trained[0].predict_proba(mnist.X_test)
    figure = plots.plot_misclassified_probabilities(
        mnist.X_test, mnist.y_test, probabilities, tmp_path / "wrong.png", num_images=8, rng=0
    )
    check_png(figure, tmp_path / "wrong.png", (1300, 1040))
    assert panels["wrong.png"] == 8 * 2


def test_training_dynamics(trained, tmp_path, panels):
    dynamics = trained[2]
    assert list(dynamics["gradient_norm"]) == ["0 Dense", "2 Dense"]
    assert len(dynamics["weight_norm"]["0 Dense"]) == 3 and list(dynamics["dead_fraction"]) == ["1 ReLU"]
    assert all(0 <= fraction <= 1 for fraction in dynamics["dead_fraction"]["1 ReLU"])
    figure = plots.plot_dynamics(dynamics, tmp_path / "dynamics.png")
    check_png(figure, tmp_path / "dynamics.png", (2200, 420))
    assert panels["dynamics.png"] == 4


def test_dead_relus_are_counted(rng):
    model = nn.Sequential([nn.Dense(3, 4, rng=0), nn.ReLU(), nn.Dense(4, 2, rng=0), nn.Softmax()])
    model.layers[0].weights[:2] = -1.0  # units 0 and 1 see only negative input on positive data
    recorder = Dynamics(np.abs(rng.normal(size=(3, 20))))
    model.fit(
        np.abs(rng.normal(size=(3, 20))),
        nn.one_hot(rng.integers(0, 2, 20), 2),
        epochs=1,
        batch_size=20,
        learning_rate=1e-6,
        callbacks=[recorder],
    )
    assert recorder.dynamics["dead_fraction"]["1 ReLU"] == [0.5]


def test_training_plots(trained, mnist, tmp_path, panels):
    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.5]}
    check_png(plots.plot_history(history, tmp_path / "loss.png"), tmp_path / "loss.png", (600, 400))
    predictions = trained[0].predict(mnist.X_test)
    check_png(
        plots.plot_confusion_matrix(
            mnist.y_test, predictions, tmp_path / "confusion.png", class_names=mnist.class_names
        ),
        tmp_path / "confusion.png",
        (1200, 1100),
    )
    check_png(
        plots.plot_misclassified(mnist.X_test, mnist.y_test, predictions, tmp_path / "misclassified.png", rng=0),
        tmp_path / "misclassified.png",
        (1600, 680),
    )
    assert panels == {"loss.png": 1, "confusion.png": 2, "misclassified.png": 10}


@pytest.mark.slow
def test_inspect_command_writes_every_picture(trained, tmp_path, capsys):
    from nablanet.app.cli import main

    nn.save(trained[1], tmp_path / "mlp.npz")
    assert main(["inspect", str(tmp_path / "mlp.npz"), "--out", str(tmp_path / "pictures")]) == 0
    assert "Total parameters: 25,450" in capsys.readouterr().out
    names = sorted(path.name for path in (tmp_path / "pictures").iterdir())
    assert names == ["misclassified_probabilities.png", "softmax_jacobian.png", "weight_templates.png"]


def test_gradcheck_command_prints_a_passing_table(capsys):
    from nablanet.app.cli import main

    assert main(["gradcheck", "--hidden", "8", "--activation", "tanh", "--samples", "4", "--max-entries", "50"]) == 0
    out = capsys.readouterr().out
    assert out.count("  pass\n") == 3 and "all passed" in out  # two Dense layers and the input
