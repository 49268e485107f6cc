"""State left behind between calls: each of these was a bug in 0.1 (issue 9) and has its regression test."""

import os
import subprocess
import sys

import pytest

import nablanet as nn


def _problem(rng, samples=60):
    X = rng.normal(size=(5, samples))
    return X, nn.one_hot((X[0] > 0).astype(int) + (X[1] > 0), 3)


def _dropout_model():
    return nn.Sequential(
        [nn.Dense(5, 8, rng=0), nn.ReLU(), nn.Dropout(0.5, rng=0), nn.Dense(8, 3, rng=0), nn.Softmax()]
    )


def test_one_early_stopping_object_serves_two_fits_of_different_models(rng):
    X, Y = _problem(rng)
    stopper = nn.EarlyStopping(patience=1)
    small = nn.Sequential([nn.Dense(5, 3, rng=0), nn.Softmax()])
    small.fit(X, Y, epochs=4, batch_size=20, validation_split=0.25, callbacks=[stopper], rng=0)
    assert stopper.best_weights is not None and stopper.best_weights[0].shape == (3, 6)
    larger = nn.Sequential([nn.Dense(5, 6, rng=0), nn.ReLU(), nn.Dense(6, 3, rng=0), nn.Softmax()])
    history = larger.fit(X, Y, epochs=4, batch_size=20, validation_split=0.25, callbacks=[stopper], rng=0)
    assert [weights.shape for weights in stopper.best_weights] == [(6, 6), (3, 7)]
    assert stopper.best == min(history.val_loss)  # the first fit's best does not carry over


def test_early_stopping_restored_from_a_checkpoint_continues_instead_of_starting_afresh(rng):
    X, Y = _problem(rng)
    stopper = nn.EarlyStopping(patience=3)
    stopper.restore({"best": -1.0, "best_epoch": 0, "wait": 2, "best_weights": None})
    model = nn.Sequential([nn.Dense(5, 3, rng=0), nn.Softmax()])
    history = model.fit(X, Y, epochs=10, batch_size=20, validation_split=0.25, callbacks=[stopper], rng=0)
    assert len(history.loss) == 1  # a validation loss is never below −1: one more epoch ends the wait


@pytest.mark.parametrize("training", [True, False])
def test_predict_evaluate_and_gradcheck_leave_dropout_in_the_mode_they_found(training, rng):
    X, Y = _problem(rng, samples=4)
    model = _dropout_model()
    model.train(training)
    model.predict(X)
    model.predict_proba(X)
    model.evaluate(X, Y)
    nn.gradcheck(model, X, Y, max_entries=5)
    assert [layer.training for layer in model.layers] == [training] * 5


def test_fit_leaves_the_layers_in_the_mode_it_found(rng):
    X, Y = _problem(rng)
    model = _dropout_model()
    model.train(False)
    model.fit(X, Y, epochs=1, batch_size=20, validation_split=0.25, rng=0)
    assert not model.layers[2].training


def test_importing_nablanet_and_plotting_leave_the_matplotlib_backend_alone(tmp_path):
    script = (
        "import matplotlib\n"
        "import sys\n"
        "before = matplotlib.get_backend()\n"
        "import nablanet\n"
        "from nablanet.app import plots\n"
        "figure = plots.plot_history({'loss': [1.0, 0.5]})\n"
        f"plots.save_figure(figure, {str(tmp_path / 'loss.png')!r})\n"
        "assert matplotlib.get_backend() == before, (before, matplotlib.get_backend())\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "print('backend', before)\n"
    )
    environment = {**os.environ, "MPLBACKEND": "svg"}  # a backend a notebook might have chosen
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "backend svg" and (tmp_path / "loss.png").stat().st_size > 1000


def test_build_classifier_and_save_are_part_of_the_public_api():
    assert "build_classifier" in nn.__all__ and "save" in nn.__all__
    assert nn.build_classifier(4, 3, [5], rng=0).output_size(4) == 3
