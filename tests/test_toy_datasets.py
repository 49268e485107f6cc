"""The 2-D toy data sets: shapes, classes, determinism, the documented geometry, and clear errors."""

import numpy as np
import pytest

import nablanet as nn
from nablanet.data.toy import TOY_DATASETS, TOY_REGRESSIONS


@pytest.mark.parametrize("name", ["spiral", "circles", "xor", "blobs"])
def test_every_toy_data_set_is_a_dataset_in_the_notebook_layout(name):
    data = nn.toy_dataset(name, 301, seed=3)
    assert data.name == name and data.X_train.shape == (2, 301) and data.X_test.shape == (2, 301)
    assert data.Y_train.shape == (data.num_classes, 301)
    counts = np.bincount(data.y_train, minlength=data.num_classes)
    assert counts.max() - counts.min() <= 1 or name == "xor"  # XOR's classes are the quadrants the points fall in
    assert np.abs(data.X_train).max() < 2
    again = nn.toy_dataset(name, 301, seed=3)
    np.testing.assert_array_equal(data.X_train, again.X_train)
    assert not np.array_equal(data.X_train, data.X_test)  # the test points are drawn anew
    assert not np.array_equal(data.X_train, nn.toy_dataset(name, 301, seed=4).X_train)


def test_the_spiral_without_noise_is_the_formula():
    data = nn.toy_dataset("spiral", 30, classes=3, noise=0.0)
    r = np.linspace(0, 1, 10)
    for k in range(3):
        theta = 2.5 * (4 * k + 4 * r)
        np.testing.assert_allclose(data.X_train[:, data.y_train == k], [r * np.sin(theta), r * np.cos(theta)])


def test_circles_xor_and_blobs_have_their_geometry():
    circles = nn.toy_dataset("circles", 200, noise=0.0)
    radius = np.linalg.norm(circles.X_train, axis=0)
    np.testing.assert_allclose(radius[circles.y_train == 0], 1.0)
    np.testing.assert_allclose(radius[circles.y_train == 1], 0.5)
    xor = nn.toy_dataset("xor", 200, noise=0.0)
    np.testing.assert_array_equal(xor.y_train, (xor.X_train[0] * xor.X_train[1] > 0).astype(int))
    blobs = nn.toy_dataset("blobs", 400, classes=4, noise=0.0)
    centres = [blobs.X_train[:, blobs.y_train == k].mean(axis=1) for k in range(4)]
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 0.7)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"name": "moons"}, "toy data set must be one of"),
        ({"name": "xor", "classes": 3}, "always has 2 classes"),
        ({"name": "spiral", "classes": 1}, "from 2 to 10"),
        ({"name": "spiral", "classes": 2.5}, "from 2 to 10"),
        ({"name": "spiral", "samples": 0}, "samples must be a positive integer"),
        ({"name": "blobs", "samples": 2, "classes": 3}, "fewer than the 3 classes"),
        ({"name": "circles", "noise": -0.1}, "noise must be"),
        ({"name": "circles", "noise": float("nan")}, "noise must be"),
        ({"name": "circles", "dtype": "int32"}, "dtype"),
    ],
)
def test_bad_arguments_are_named(arguments, words):
    name = arguments.pop("name")
    with pytest.raises(ValueError, match=words):
        nn.toy_dataset(name, **arguments)


def test_the_registry_is_what_the_playground_offers():
    assert list(TOY_DATASETS) == ["spiral", "circles", "xor", "blobs"]


# ------------------------------------------------------------------------------------------- regressions


@pytest.mark.parametrize("name", ["plane", "gaussians"])
def test_every_toy_regression_gives_points_and_a_row_of_real_targets(name):
    data = nn.toy_regression(name, 301, seed=3)
    assert data.name == name and data.X_train.shape == (2, 301) and data.X_test.shape == (2, 301)
    assert data.Y_train.shape == (1, 301) and data.Y_test.shape == (1, 301) and data.Y_train.dtype == np.float64
    assert np.abs(data.X_train).max() <= 1 and data.limit == 1.0
    assert len(np.unique(data.Y_train)) == 301  # numbers, not classes
    again = nn.toy_regression(name, 301, seed=3)
    np.testing.assert_array_equal(data.X_train, again.X_train)
    np.testing.assert_array_equal(data.Y_train, again.Y_train)
    assert not np.array_equal(data.X_train, data.X_test)  # the test points are drawn anew
    assert not np.array_equal(data.Y_train, nn.toy_regression(name, 301, seed=4).Y_train)
    assert nn.toy_regression(name, 10, dtype=np.float32).Y_test.dtype == np.float32


@pytest.mark.parametrize("name", ["plane", "gaussians"])
def test_without_noise_every_target_lies_in_the_stated_range_and_fills_most_of_it(name):
    data = nn.toy_regression(name, 5000, noise=0.0)
    assert np.abs(data.Y_train).max() <= data.limit
    assert data.Y_train.min() < -0.9 and data.Y_train.max() > 0.9


def test_the_regressions_are_their_formulas_and_the_noise_is_on_the_target():
    plane = nn.toy_regression("plane", 200, noise=0.0)
    np.testing.assert_allclose(plane.Y_train[0], 0.6 * plane.X_train[0] + 0.4 * plane.X_train[1])
    bumps = nn.toy_regression("gaussians", 200, noise=0.0)
    expected = sum(
        sign * np.exp(-((bumps.X_train[0] - cx) ** 2 + (bumps.X_train[1] - cy) ** 2) / (2 * 0.35**2))
        for (cx, cy), sign in [((0.5, 0.5), 1), ((-0.5, -0.5), 1), ((0.5, -0.5), -1), ((-0.5, 0.5), -1)]
    )
    np.testing.assert_allclose(bumps.Y_train[0], expected)
    noisy = nn.toy_regression("plane", 20_000, noise=0.1)
    residual = noisy.Y_train[0] - (0.6 * noisy.X_train[0] + 0.4 * noisy.X_train[1])
    assert abs(residual.std() - 0.1) < 0.005 and abs(residual.mean()) < 0.005


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"name": "spiral"}, "toy regression must be one of"),
        ({"name": "plane", "samples": 0}, "samples must be a positive integer"),
        ({"name": "plane", "noise": -0.1}, "noise must be"),
        ({"name": "gaussians", "noise": float("inf")}, "noise must be"),
        ({"name": "plane", "dtype": "int32"}, "dtype"),
    ],
)
def test_bad_regression_arguments_are_named(arguments, words):
    name = arguments.pop("name")
    with pytest.raises(ValueError, match=words):
        nn.toy_regression(name, **arguments)


def test_the_regression_registry_is_what_the_playground_offers():
    assert list(TOY_REGRESSIONS) == ["plane", "gaussians"]
