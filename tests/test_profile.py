import numpy as np
import pytest

import nablanet as nn
from nablanet.training.profile import profile_layers


def _small_cnn():
    conv = nn.Conv2D(1, 2, 3, input_shape=(1, 6, 6), rng=0, dtype=np.float32)
    layers = [conv, nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(), nn.Dense(8, 3, rng=0, dtype=np.float32), nn.Softmax()]
    return nn.Sequential(layers)


def _data(samples=40):
    rng = np.random.default_rng(0)
    return rng.random((36, samples), dtype=np.float32), np.eye(3, dtype=np.float32)[:, rng.integers(0, 3, samples)]


def test_the_profile_times_every_layer_of_a_training_step_and_leaves_the_model_as_it_was():
    model = _small_cnn()
    before = {name: array.copy() for name, array in model.get_weights().items()}
    profile = profile_layers(model, *_data(), batch_size=4, batches=3)
    assert [layer.name for layer in profile.layers] == ["1 Conv2D", "2 ReLU", "3 MaxPool2D", "4 Flatten", "5 Dense"]
    parts = [profile.gather, profile.loss, profile.optimizer]
    parts += [seconds for layer in profile.layers for seconds in (layer.forward, layer.backward)]
    assert all(seconds > 0 for seconds in parts)
    assert profile.total == pytest.approx(sum(parts))
    for name, array in model.get_weights().items():
        np.testing.assert_array_equal(array, before[name])  # a copy of the model trained


def test_the_bytes_are_each_array_of_a_pass_once():
    profile = profile_layers(_small_cnn(), *_data(), batch_size=4, batches=1)
    relu, flatten = profile.layers[1], profile.layers[3]
    assert relu.forward_bytes == 2 * (4 * 2 * 4 * 4) * 4  # in and out: 4 images of 2 × 4 × 4 float32
    assert relu.backward_bytes == 3 * (4 * 2 * 4 * 4) * 4  # its output's gradient, its input, its input's gradient
    conv = profile.layers[0]
    weights = (2 * 9 + 2) * 4
    assert conv.forward_bytes == 4 * 36 * 4 + 4 * 2 * 16 * 4 + weights
    assert conv.backward_bytes == 4 * 2 * 16 * 4 + 4 * 36 * 4 + weights  # the first layer: no input gradient
    assert flatten.forward_bytes == flatten.backward_bytes == 0  # a reshape: its output is a view of its input
    assert "total" in profile.table() and "5 Dense" in profile.table()


def test_too_few_samples_for_the_batches_is_refused_with_the_figures():
    refusal = r"needs batches \+ 1 batches of 4 samples \(44, the first for the untimed steps\), X has 40"
    with pytest.raises(ValueError, match=refusal):
        profile_layers(_small_cnn(), *_data(), batch_size=4, batches=10)


def test_the_fused_path_is_timed_block_by_block():
    profile = profile_layers(_small_cnn(), *_data(), batch_size=4, batches=1, fuse=True)
    assert [layer.name for layer in profile.layers] == ["1 ConvReLUPool", "2 Flatten", "3 Dense"]
    block = profile.layers[0]  # reads the images and the weights, writes the pooled maps only
    assert block.forward_bytes == 4 * 36 * 4 + 4 * 2 * 2 * 2 * 4 + (2 * 9 + 2) * 4
