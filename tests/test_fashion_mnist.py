"""Fashion-MNIST from Debian's dataset-fashion-mnist package, which .ci/run installs."""

import numpy as np

import nablanet as nn
from nablanet.data.datasets import FASHION_SYSTEM_DIR


def test_fashion_mnist_from_the_system_install(tmp_path):
    assert FASHION_SYSTEM_DIR.is_dir(), "install Debian's dataset-fashion-mnist (.ci/run does)"
    data = nn.load_fashion_mnist(data_home=tmp_path, dtype=np.float32)  # empty data_home: the system files
    assert data.X_train.shape == (784, 60000) and data.X_test.shape == (784, 10000)
    np.testing.assert_array_equal(np.bincount(data.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(data.y_test), [1000] * 10)
    assert data.class_names[9] == "Ankle boot" and data.X_train.max() == 1.0
    assert list(tmp_path.iterdir()) == []  # nothing downloaded
