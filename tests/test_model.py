import numpy as np
import pytest

import nablanet as nn


class _Scripted(nn.Callback):
    """Sets the weights and validation loss of each epoch by script, to test early stopping."""

    def __init__(self, model, losses):
        self.model, self.losses = model, losses

    def on_epoch_end(self, epoch, logs):
        self.model.parameters()[0].value[...] = epoch
        logs["val_loss"] = self.losses[epoch]


def test_early_stopping_stops_after_patience_and_restores_the_best_weights(rng):
    X, Y = rng.normal(size=(2, 6)), nn.one_hot(rng.integers(0, 2, 6), 2)
    model = nn.Sequential([nn.Dense(2, 2), nn.Softmax()])
    stopper = nn.EarlyStopping(patience=2)
    history = model.fit(X, Y, epochs=10, callbacks=[_Scripted(model, [1.0, 0.8, 0.9, 0.95, 0.5, 0.1]), stopper])
    assert len(history.loss) == 4  # epochs 0..3: no improvement on 0.8 in epochs 2 and 3
    assert stopper.best_epoch == 1
    np.testing.assert_array_equal(model.parameters()[0].value, 1.0)  # the weights of epoch 1


def test_early_stopping_needs_validation(rng):
    X, Y = rng.normal(size=(2, 6)), nn.one_hot(rng.integers(0, 2, 6), 2)
    with pytest.raises(ValueError, match="give validation data"):
        nn.Sequential([nn.Dense(2, 2), nn.Softmax()]).fit(X, Y, epochs=2, callbacks=[nn.EarlyStopping()])


def test_validation_split_reports_validation_figures(rng):
    X, Y = rng.normal(size=(4, 50)), nn.one_hot(rng.integers(0, 3, 50), 3)
    model = nn.Sequential(
        [
            nn.Dense(4, 8, init="he_normal", rng=0),
            nn.ReLU(),
            nn.Dropout(0.2, rng=0),
            nn.Dense(8, 3, rng=0),
            nn.Softmax(),
        ]
    )
    history = model.fit(X, Y, epochs=3, batch_size=10, optimizer=nn.Adam(0.01), validation_split=0.2, rng=0)
    figures = history.as_dict()
    assert set(figures) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in figures.values())
    expected = model.evaluate(X[:, 40:], Y[:, 40:])
    assert figures["val_loss"][-1] == pytest.approx(expected["loss"])
    assert model.layers[2].training  # fit puts every layer back in the mode it found (training, here)


def test_summary_lists_layers_shapes_and_parameter_counts():
    model = nn.Sequential([nn.Dense(784, 256), nn.ReLU(), nn.Dense(256, 10), nn.Softmax()])
    text = model.summary()
    assert "Dense" in text and "(256,)" in text and "(10,)" in text
    assert "200,960" in text and "2,570" in text and "Total parameters: 203,530" in text


def test_summary_of_a_cnn_shows_images_as_channels_height_width():
    text = nn.build_classifier(784, 10, conv=[32, 64], dropout=0.5, rng=0).summary()
    for row in (
        "Conv2D     (32, 26, 26)         320",
        "MaxPool2D  (32, 13, 13)",
        "Conv2D     (64, 11, 11)      18,496",
        "MaxPool2D  (64, 5, 5)",
        "Flatten    (1600,)",
        "Dense      (10,)             16,010",
    ):
        assert row in text
    assert "Total parameters: 34,826" in text  # the Keras "simple MNIST convnet", parameter for parameter


def test_build_classifier_without_hidden_layers_is_the_notebooks_model():
    model = nn.build_classifier(784, 10, rng=0)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Softmax"]
    np.testing.assert_array_equal(model.layers[0].weights[:, -1], 0.01)


def test_sequential_refuses_non_layers():
    with pytest.raises(TypeError, match=r"layers\[1\] must be a nablanet Layer"):
        nn.Sequential([nn.Dense(2, 2), "relu"])
