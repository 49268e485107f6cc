"""The hostile-file suite: model files, checkpoints and images made to break nablanet. Each is refused with
one line (or, for the images that are fine, classified), nothing from a file runs, and no refusal costs
more than 200 MB of memory (tracemalloc's peak, which counts NumPy's arrays)."""

import tracemalloc

import numpy as np
import pytest
from hostile import MARKER, hostile_checkpoint_files, hostile_images, hostile_model_files, reference_model

import nablanet as nn
from nablanet.app.cli import main
from nablanet.data.images import load_image
from nablanet.files.checkpoint import load_checkpoint

PEAK_LIMIT = 200 * 2**20


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def model_files(folder):
    return hostile_model_files(folder / "models")


@pytest.fixture(scope="module")
def checkpoint_files(folder):
    return hostile_checkpoint_files(folder / "checkpoints")


@pytest.fixture(scope="module")
def images(folder):
    return hostile_images(folder / "images")


def test_the_suite_is_as_large_as_promised(model_files, checkpoint_files, images):
    assert len(model_files) + len(checkpoint_files) >= 40 and len(images) >= 20


def _refused_cheaply(load, path):
    tracemalloc.start()
    try:
        with pytest.raises(nn.ModelFileError) as caught:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{path.name}: {peak / 2**20:.0f} MiB"
    assert str(path) in str(caught.value)
    return str(caught.value)


def test_every_hostile_model_file_is_refused_cheaply_and_runs_nothing(model_files):
    MARKER.unlink(missing_ok=True)
    for description, path in model_files.items():
        message = _refused_cheaply(nn.load, path)
        assert "\n" not in message, description
        assert not MARKER.exists(), f"{description}: code from the file ran"


def test_every_hostile_checkpoint_is_refused_cheaply(checkpoint_files, model_files):
    MARKER.unlink(missing_ok=True)
    for path in [*checkpoint_files.values(), *model_files.values()]:
        _refused_cheaply(load_checkpoint, path)
    assert not MARKER.exists()


def test_the_messages_say_what_is_wrong(model_files, checkpoint_files):
    expected = {
        "a pickle renamed .npz": "a Python pickle, which nablanet never loads",
        "an object array as config": "has dtype object, expected numbers",
        "a zip bomb (2 MB that inflates to 2 GB)": "refused before decompressing",
        "a member that is not .npy": "is not an .npy array",
        "a member twice": "appears twice",
        "encrypted members": "is encrypted",
        "bzip2-compressed members": "stored or deflated members only",
        "an .npy header declaring 8 TB": "does not match its size",
        "a Dense of 784 × 10⁹ (8 TB)": "more than the 256 MiB nablanet reads from one file",
        "a config nested 100,000 deep": "the config is not valid JSON",
        "class names with a terminal escape": "printable text",
        "class names that do not match the outputs": "names 1 classes, the model has 3 outputs",
        "a missing array": "'layer0.weights' is missing",
        "a NaN weight": "NaN or inf",
        "an unknown layer": "unknown type 'Conv3D'",
        "rng as a layer argument": "has no arguments ['rng']",
        "a 1×1 convolution padded by 1,400, then a 2828×2828 average pool (39 hours of evaluation)": (
            "one sample through this model makes 23,992,753 numbers, more than the 16,777,216 nablanet allows"
        ),
        "a 1×1 convolution padded by 3, then a 34×34 average pool (1,156 passes a batch)": (
            "each batch through this model takes 1,157 array passes (pooling and convolution windows), more "
            "than the 1,024 nablanet allows a model file"
        ),
        "a Conv2D of 2,000 filters computed by the loop": (
            "one sample through this model takes 1,568,000 steps of a Python loop"
        ),
        "a 25×25 convolution of 4,000 filters (4 GFLOP a sample)": (
            "takes 3,923,628,704 floating-point operations, more than the 2,147,483,648 nablanet allows"
        ),
    }
    for description, fragment in expected.items():
        with pytest.raises(
            nn.ModelFileError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
        ):
            nn.load(model_files[description])
    with pytest.raises(nn.ModelFileError, match=r"malformed checkpoint .*'loss' must be a list of at most 2 finite"):
        load_checkpoint(checkpoint_files["a history holding strings"])
    with pytest.raises(nn.ModelFileError, match=r"early_stopping\.0"):
        load_checkpoint(checkpoint_files["an early-stopping weight of shape (1,)"])


def test_each_refused_model_file_is_one_line_from_the_command_line(model_files, capsys):
    for description, path in list(model_files.items())[::4]:
        assert main(["predict", str(path), str(path)]) == 2, description
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("nablanet predict: error: ") and "\x1b" not in err


def test_hostile_images_are_refused_cheaply_or_read_as_the_digit_they_show(images):
    reference = load_image(images["a digit, 8-bit grey"][0])
    for description, (path, expected) in images.items():
        tracemalloc.start()
        try:
            if expected is None:
                column = load_image(path)
                assert column.shape == (784, 1) and column.min() >= 0 and column.max() <= 1, description
                assert np.abs(column - reference).max() < 0.35 and column.max() > 0.9, description
            else:
                with pytest.raises((nn.DatasetError, FileNotFoundError), match=expected):
                    load_image(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < PEAK_LIMIT, f"{description}: {peak / 2**20:.0f} MiB"


def test_a_model_file_written_by_nablanet_still_loads(folder):
    model = reference_model()
    nn.save(model, folder / "fine.npz")
    X = np.random.default_rng(0).normal(size=(6, 4))
    np.testing.assert_array_equal(nn.load(folder / "fine.npz").predict_proba(X), model.predict_proba(X))
