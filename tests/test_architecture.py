"""The registries are the one list of each kind: the CLI, the model files and the checkpoints read them."""

import argparse

import numpy as np
import pytest

import nablanet as nn
from nablanet.app.commands import build_parser
from nablanet.app.language import TEXT_DATASETS
from nablanet.core.activations import ACTIVATIONS
from nablanet.core.initializers import INITIALIZERS
from nablanet.core.layers import LAYERS, Layer
from nablanet.core.optimizers import OPTIMIZERS
from nablanet.core.registry import Registry
from nablanet.core.schedules import SCHEDULES
from nablanet.data.datasets import DATASETS


def _choices(command: str) -> dict[str, tuple]:
    parser = build_parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return {action.dest: tuple(action.choices) for action in subparsers.choices[command]._actions if action.choices}


def test_the_cli_choices_are_the_registries():
    train = _choices("train")
    assert DATASETS.names() == ("mnist", "fashion-mnist")
    assert train["dataset"] == (*DATASETS.names(), *TEXT_DATASETS)  # the text data sets: train's character models
    assert train["activation"] == ACTIVATIONS.names() == ("relu", "leaky_relu", "sigmoid", "tanh")
    assert train["optimizer"] == OPTIMIZERS.names() == ("sgd", "adam", "adamw")
    assert train["schedule"] == SCHEDULES.names() == ("constant", "step", "cosine")
    assert train["init"] == ("auto", *INITIALIZERS.names())
    assert _choices("evaluate")["dataset"] == _choices("inspect")["dataset"] == DATASETS.names()
    assert _choices("gradcheck")["activation"] == ACTIVATIONS.names()


def test_every_layer_class_of_the_public_api_is_registered():
    public_layers = {
        name
        for name in nn.__all__
        if isinstance(getattr(nn, name), type)
        and issubclass(getattr(nn, name), Layer)
        and name not in ("Layer", "Composite")  # the base classes a learner's own layer subclasses
    }
    assert public_layers == set(LAYERS)


class Scale(Layer):
    """A layer defined outside nablanet: A = s X, ∇_X L = s ∇_A L."""

    def __init__(self, factor: float = 2.0):
        super().__init__()
        self.factor = factor

    def forward(self, input):
        self.input, self.output = input, self.factor * input
        return self.output

    def backward(self, output_gradient, learning_rate=None):
        return self.factor * output_gradient

    def get_config(self):
        return {"factor": self.factor}


def test_a_new_layer_needs_only_its_registration_to_be_saved_and_loaded(tmp_path, monkeypatch):
    model = nn.Sequential([nn.Dense(3, 4, rng=0), Scale(0.5), nn.Dense(4, 2, rng=0), nn.Softmax()])
    with pytest.raises(TypeError, match="not a registered nablanet layer"):
        nn.save(model, tmp_path / "m.npz")
    monkeypatch.setitem(LAYERS._entries, "Scale", Scale)  # what @LAYERS.register() does at definition
    nn.save(model, tmp_path / "m.npz")
    loaded = nn.load(tmp_path / "m.npz")
    assert isinstance(loaded.layers[1], Scale) and loaded.layers[1].factor == 0.5
    X = np.random.default_rng(0).normal(size=(3, 5))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_registry_refuses_a_second_entry_under_one_name_and_names_the_choices():
    colours = Registry("colour")
    colours.register("red")(object())
    with pytest.raises(ValueError, match="registered already"):
        colours.register("red")(object())
    with pytest.raises(ValueError, match=r"shade must be one of \['red'\], received: 'blue'"):
        colours.lookup("blue", argument="shade")


def test_dense_exposes_W_and_b_as_views_of_one_array():
    layer = nn.Dense(3, 2, rng=0)
    layer.W[...] = 1.0
    layer.b[...] = -1.0
    np.testing.assert_array_equal(layer.weights, [[1, 1, 1, -1], [1, 1, 1, -1]])
    assert np.shares_memory(layer.W, layer.weights) and np.shares_memory(layer.b, layer.weights)


def test_the_notebooks_backward_with_a_learning_rate_is_the_sgd_optimizers_step(rng):
    X, G = rng.normal(size=(4, 6)), rng.normal(size=(3, 6))
    by_layer, by_optimizer = nn.Dense(4, 3, rng=0), nn.Dense(4, 3, rng=0)
    by_layer.forward(X)
    by_layer.backward(G, learning_rate=0.1)
    by_optimizer.forward(X)
    by_optimizer.backward(G)
    nn.SGD(0.1).step(by_optimizer.parameters())
    np.testing.assert_array_equal(by_layer.weights, by_optimizer.weights)


def test_backward_before_forward_says_so():
    with pytest.raises(RuntimeError, match="needs a forward pass first"):
        nn.Dense(3, 2).backward(np.ones((2, 4)))
    with pytest.raises(RuntimeError, match="needs a forward pass first"):
        nn.ReLU().backward(np.ones((2, 4)))
