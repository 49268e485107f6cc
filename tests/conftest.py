import numpy as np
import pytest
from hypothesis import settings

import nablanet as nn

settings.register_profile("nablanet", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("nablanet")


@pytest.fixture(scope="session")
def mnist():
    """The bundled MNIST in float64, loaded once for the whole run."""
    return nn.load_mnist()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
