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
    check_png(figure, tmp_path / "dynamics.png", (2750, 440))
    assert panels["dynamics.png"] == 5  # by layer, per epoch: gradients and weights; dead ReLUs; histograms


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
    probabilities = trained[0].predict_proba(mnist.X_test)
    check_png(
        plots.plot_confusion_matrix(
            mnist.y_test, probabilities.argmax(axis=0), tmp_path / "confusion.png", class_names=mnist.class_names
        ),
        tmp_path / "confusion.png",
        (1340, 1100),
    )
    check_png(
        plots.plot_misclassified(mnist.X_test, mnist.y_test, probabilities, tmp_path / "misclassified.png", rng=0),
        tmp_path / "misclassified.png",
        (1600, 720),
    )
    assert panels == {"loss.png": 1, "confusion.png": 3, "misclassified.png": 10}


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


# ------------------------------------------------------------------ pictures a student learns from


def texts(figure):
    """Every piece of text on a figure: titles, labels, tick labels, annotations, legends."""
    return [text.get_text() for text in figure.findobj(lambda artist: hasattr(artist, "get_text"))]


def test_history_has_whole_epoch_ticks_labels_and_a_title():
    figure = plots.plot_history({"loss": [1.0, 0.5, 0.4, 0.35, 0.3], "val_loss": [1.1, 0.6, 0.5, 0.45, 0.4]})
    axis = figure.axes[0]
    figure.canvas.draw()
    ticks = [tick for tick in axis.get_xticks() if axis.get_xlim()[0] <= tick <= axis.get_xlim()[1]]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert axis.get_title() and axis.get_xlabel() == "Epoch" and axis.get_ylabel() == "Loss"
    both = plots.plot_training({"loss": [1.0, 0.5], "accuracy": [0.6, 0.8]})
    assert [axis.get_title() for axis in both.axes] == ["Loss (cross-entropy) per epoch", "Accuracy per epoch"]


def test_confusion_matrix_has_a_title_a_labelled_colour_bar_and_level_labels(mnist, trained):
    predictions = trained[0].predict(mnist.X_test)
    figure = plots.plot_confusion_matrix(
        mnist.y_test, predictions, class_names=mnist.class_names, title="Confusion matrix: m.npz on the mnist test set"
    )
    axis, correct_bar, errors_bar = figure.axes
    assert axis.get_title() == "Confusion matrix: m.npz on the mnist test set"
    assert correct_bar.get_ylabel() == "correct (diagonal): images"
    assert errors_bar.get_ylabel() == "errors (off the diagonal): images"
    assert all(label.get_rotation() == 0 for label in axis.get_xticklabels())


def test_confusion_matrix_colours_the_errors_on_their_own_scale_with_every_count_in_its_cell():
    y_true = np.array([0] * 900 + [1] * 800 + [0] * 7 + [1] * 3)
    y_pred = np.array([0] * 900 + [1] * 800 + [1] * 7 + [0] * 3)
    figure = plots.plot_confusion_matrix(y_true, y_pred, class_names=["a", "b"])
    axis = figure.axes[0]
    correct, errors = axis.get_images()
    assert (correct.norm.vmin, correct.norm.vmax) == (0, 900)
    assert (errors.norm.vmin, errors.norm.vmax) == (0, 7)  # 7 errors: the darkest red, not a pale 7/900
    assert sorted(text.get_text() for text in axis.texts) == ["3", "7", "800", "900"]


def test_evaluate_titles_the_confusion_matrix_with_model_and_data_set(trained, tmp_path):
    from nablanet.app import model_commands

    nn.save(trained[0], tmp_path / "softmax.npz")
    captured = {}
    original = plots.plot_confusion_matrix

    def recording(*args, **kwargs):
        captured["figure"] = original(*args, **kwargs)
        return captured["figure"]

    plots.plot_confusion_matrix = recording
    try:
        model_commands.evaluate_model(tmp_path / "softmax.npz", dataset="mnist")
    finally:
        plots.plot_confusion_matrix = original
    assert captured["figure"].axes[0].get_title() == (
        f"Confusion matrix: {tmp_path.name}/softmax.npz on the mnist test set (10000 images)"
    )


def test_the_jacobian_sample_is_uncertain_and_its_entries_readable(trained, mnist):
    from nablanet.app.model_commands import uncertain_sample

    probabilities = trained[1].predict_proba(mnist.X_test)
    sample = uncertain_sample(probabilities)
    assert 0.4 <= probabilities[:, sample].max() <= 0.7
    assert probabilities[:, 0].max() > 0.9  # image 0, the old default, is a confident 7: a Jacobian of ≈ 0
    figure = plots.plot_softmax_jacobian(
        mnist.X_test[:, sample], probabilities[:, sample], formula="a = softmax(z), z = the last layer's output"
    )
    cells = [text for text in texts(figure) if text.replace(".", "").replace("-", "").replace("e", "").isdigit()]
    assert len(cells) >= 100
    assert sum(cell not in ("0.000", "-0.000") for cell in cells) >= 10  # no longer a wall of 0.00
    assert "a = softmax(z), z = the last layer's output" in texts(figure)
    assert uncertain_sample(np.array([[0.99, 0.9], [0.01, 0.1]])) == 1  # none hesitant: the least certain


def test_the_jacobian_title_fits_the_model(trained, tmp_path, monkeypatch):
    from nablanet.app import model_commands

    titles = []
    original = plots.plot_softmax_jacobian
    monkeypatch.setattr(
        plots, "plot_softmax_jacobian", lambda *a, **k: titles.append(k["formula"]) or original(*a, **k)
    )
    for number, model in enumerate(trained[:2]):
        nn.save(model, tmp_path / f"{number}.npz")
        model_commands.inspect_model(tmp_path / f"{number}.npz", out=tmp_path / f"pictures{number}")
    assert titles == ["a = softmax(W̃ x̃)", "a = softmax(z), z = the last layer's output"]


def test_the_jacobian_picture_titles_its_image_with_true_and_predicted_class_and_probability(
    trained, mnist, tmp_path, monkeypatch
):
    from nablanet.app import model_commands

    figures = []
    original = plots.plot_softmax_jacobian
    monkeypatch.setattr(plots, "plot_softmax_jacobian", lambda *a, **k: figures.append(original(*a, **k)))
    nn.save(trained[0], tmp_path / "softmax.npz")
    model_commands.inspect_model(tmp_path / "softmax.npz", out=tmp_path / "pictures", sample=8)
    probabilities = trained[0].predict_proba(mnist.X_test[:, 8:9])[:, 0]
    predicted = int(probabilities.argmax())
    assert figures[0].axes[0].get_title() == (
        f"test image #8 of 10000\ntrue {mnist.y_test[8]}, predicted {predicted} "
        f"(p({predicted}) = {probabilities[predicted]:.2f})"
    )


def test_misclassified_says_when_the_true_class_is_not_in_the_top_3():
    probabilities = np.full((10, 2), 0.01)
    probabilities[[1, 2, 3], 0] = [0.5, 0.3, 0.13]  # true class 0 (p = 0.01) is 4th
    probabilities[[4, 5], 1] = [0.6, 0.33]  # true class 5 is 2nd
    figure = plots.plot_misclassified_probabilities(np.zeros((784, 2)), np.array([0, 5]), probabilities)
    notes = [text for text in texts(figure) if "not in the top 3" in text]
    assert notes == ["true class 0 not in the top 3 (p(0) = 0.01)"]


def test_dynamics_names_the_layers_and_labels_its_axes(trained):
    figure = plots.plot_dynamics(trained[2])
    legend = [text.get_text() for text in figure.axes[1].get_legend().get_texts()]
    assert legend == ["Dense (layer 0)", "Dense (layer 2)"]
    assert all(axis.get_ylabel() for axis in figure.axes)
    assert all(axis.get_xlabel() for axis in figure.axes)


def test_unit_templates_say_how_many_units_they_show(trained):
    figure = plots.plot_weight_templates(trained[1], num_units=16)
    assert figure.get_suptitle() == "Weight templates of the first layer: 16 of 32 units, largest ‖w‖ first"


def test_gradcheck_of_the_notebook_path_checks_the_softmax_jacobian(capsys):
    from nablanet.app.cli import main

    assert main(["gradcheck", "--loss", "cce", "--samples", "4", "--max-entries", "40"]) == 0
    out = capsys.readouterr().out
    assert "the Softmax layer (its Jacobian backward) + cross-entropy (cce)" in out
    assert "entries checked" in out and "40 of 7850" in out and "40 of 3136" in out
    assert "tolerance 1e-06 on the relative error" in out and "all passed" in out


def test_gradcheck_with_cce_fails_on_a_wrong_jacobian(monkeypatch):
    from nablanet.app.model_commands import gradcheck_run

    monkeypatch.setattr(nn.Softmax, "backward", lambda self, gradient, learning_rate=None: gradient)  # no Jacobian
    _, report = gradcheck_run(samples=4, max_entries=40, loss="cce")
    assert not report.passed


def test_misclassified_probabilities_with_two_classes():
    rng = np.random.default_rng(0)
    probabilities = rng.random((2, 20))
    probabilities /= probabilities.sum(axis=0)
    figure = plots.plot_misclassified_probabilities(
        rng.random((784, 20)), 1 - probabilities.argmax(axis=0), probabilities
    )
    assert "not in the top 3" not in " ".join(texts(figure))


def test_one_epoch_plots_have_one_whole_tick():
    figure = plots.plot_training({"loss": [0.5], "accuracy": [0.8]})
    assert [list(axis.get_xticks()) for axis in figure.axes] == [[1.0], [1.0]]


def test_the_feature_maps_of_a_model_of_990_pooling_layers_show_the_first_eleven_and_say_so():
    from nablanet.app.plots import MAX_MAP_ROWS, plot_feature_maps

    layers = [nn.AvgPool2D(1, input_shape=(1, 28, 28)), *(nn.AvgPool2D(1) for _ in range(989))]
    model = nn.Sequential([*layers, nn.Flatten(), nn.Dense(784, 10, rng=0), nn.Softmax()])
    figure = plot_feature_maps(model, np.random.default_rng(0).random(784))
    assert len(figure.axes) == MAX_MAP_ROWS * (8 + 1) == 108  # eight maps and a colour bar a row
    title = figure._suptitle.get_text()
    assert "the input, then the first 11 of its 990 convolution, activation and pooling layers" in title


def test_misclassified_titles_say_true_class_predicted_class_and_its_probability():
    probabilities = np.array([[0.7, 0.1, 0.2], [0.3, 0.6, 0.8]])  # samples 0 and 2 predicted wrongly
    figure = plots.plot_misclassified(np.zeros((784, 3)), np.array([1, 1, 0]), probabilities, rng=0)
    titles = sorted(axis.get_title() for axis in figure.axes if axis.get_title())
    assert titles == ["true 0, predicted 1 (p(1) = 0.80)", "true 1, predicted 0 (p(0) = 0.70)"]
    assert figure.get_suptitle() == "2 of the 2 misclassified images, chosen at random"


def test_misclassified_refuses_predicted_labels_in_place_of_probabilities():
    with pytest.raises(ValueError, match=r"probabilities must be \(classes, samples\)"):
        plots.plot_misclassified(np.zeros((784, 3)), np.array([1, 1, 0]), np.array([0, 1, 1]))


def test_history_with_validation_says_the_training_loss_is_a_mean_over_moving_weights():
    figure = plots.plot_history({"loss": [1.7, 0.9], "val_loss": [1.1, 0.7]})
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == [
        "training loss\n(mean over the epoch's batches, as the weights moved)",
        "validation loss\n(after the epoch)",
    ]
    alone = plots.plot_history({"loss": [1.7, 0.9]})
    assert [text.get_text() for text in alone.axes[0].get_legend().get_texts()] == ["training loss"]


def _sigmoid_dynamics():
    return {
        "gradient_norm": {"0 Dense": [1e-3, 2e-3, 3e-3], "2 Dense": [1e-2, 2e-2, 3e-2], "4 Dense": [0.4, 0.3, 0.2]},
        "weight_norm": {"0 Dense": [1.0, 1.1, 1.2], "2 Dense": [1.0, 1.1, 1.2], "4 Dense": [1.0, 1.0, 1.0]},
        "dead_fraction": {"1 Sigmoid": [0.0] * 3, "3 Sigmoid": [0.0] * 3},
        "activation_histogram": {"1 Sigmoid": ([1, 2], [0.0, 0.5, 1.0]), "3 Sigmoid": ([2, 1], [0.0, 0.5, 1.0])},
    }


def test_dynamics_plots_the_gradient_norm_against_the_layer_one_line_per_epoch():
    figure = plots.plot_dynamics(_sigmoid_dynamics())
    by_layer = figure.axes[0]
    assert by_layer.get_xlabel() == "layer (input side → output side)"
    assert [label.get_text() for label in by_layer.get_xticklabels()] == [
        "Dense\n(layer 0)",
        "Dense\n(layer 2)",
        "Dense\n(layer 4)",
    ]
    lines = by_layer.get_lines()
    assert [line.get_label() for line in lines] == ["epoch 1", "epoch 2", "epoch 3"]
    assert list(lines[2].get_ydata()) == [3e-3, 3e-2, 0.2]  # the last epoch, from the input side to the output


def test_dynamics_of_a_sigmoid_network_has_no_dead_units_panel():
    figure = plots.plot_dynamics(_sigmoid_dynamics())
    titles = [axis.get_title() for axis in figure.axes]
    assert not any("dead" in title for title in titles)
    assert len(figure.axes) == 4  # by layer, gradients and weights per epoch, histograms


def test_feature_maps_say_how_many_of_each_layers_maps_they_show_on_a_labelled_scale():
    model = build_classifier(784, 10, conv=[8, 16], rng=0)
    figure = plots.plot_feature_maps(model, np.random.default_rng(0).random(784), sample="test image #3")
    titles = [axis.get_title(loc="left") for axis in figure.axes if axis.get_title(loc="left")]
    assert titles == [
        "input: 1 of 1 maps\nch 0",
        "0 Conv2D: 8 of 8 maps\nch 0",
        "1 ReLU: 8 of 8 maps\nch 0",
        "2 MaxPool2D: 8 of 8 maps\nch 0",
        "3 Conv2D: 8 of 16 maps\nch 0",
        "4 ReLU: 8 of 16 maps\nch 0",
        "5 MaxPool2D: 8 of 16 maps\nch 0",
    ]
    colour_bars = [axis.get_ylabel() for axis in figure.axes if axis.get_ylabel()]
    assert colour_bars == ["pixel"] + ["value"] * 6
    assert figure.get_suptitle().startswith("Feature maps of test image #3\n")


@pytest.mark.slow
def test_train_titles_its_misclassified_images_and_confusion_matrix(tmp_path, monkeypatch):
    from nablanet.app.cli import main

    figures = {}
    original = plots.save_figure

    def recording(figure, path):
        figures[path.name] = figure
        return original(figure, path)

    monkeypatch.setattr(plots, "save_figure", recording)
    arguments = ["train", "--epochs", "1", "--val-split", "0.1", "--batch-size", "500", "--out", str(tmp_path / "run")]
    assert main(arguments) == 0
    wrong = figures["misclassified.png"]
    titles = [axis.get_title() for axis in wrong.axes if axis.get_title()]
    assert len(titles) == 10 and all(
        title.startswith("true ") and ", predicted " in title and "(p(" in title for title in titles
    )
    assert wrong.get_suptitle().startswith("10 of the ") and wrong.get_suptitle().endswith(
        " misclassified images, chosen at random"
    )
    assert (
        figures["confusion_matrix.png"].axes[0].get_title() == "Confusion matrix on the mnist test set (10000 images)"
    )
    legend = [text.get_text() for text in figures["loss.png"].axes[0].get_legend().get_texts()]
    assert legend[0] == "training loss\n(mean over the epoch's batches, as the weights moved)"


def test_a_regressions_live_plot_shows_its_loss_alone_without_naming_cross_entropy(tmp_path):
    x = np.linspace(-3, 3, 40)[None, :]
    model = nn.Sequential([nn.Dense(1, 8, rng=0), nn.Tanh(), nn.Dense(8, 1, rng=0)])
    live = nn.LivePlot(tmp_path / "live.png")
    model.fit(x, np.sin(x), loss="mse", epochs=3, batch_size=10, validation_split=0.25, callbacks=[live], verbose=0)
    figure = plots.plot_training(live.history)
    assert [axis.get_title() for axis in figure.axes] == ["Loss per epoch"]
    legend = [text.get_text().split("\n")[0] for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["training loss", "validation loss"]
    assert Image.open(tmp_path / "live.png").size[0] < Image.open(tmp_path / "live.png").size[1] * 2  # one panel
