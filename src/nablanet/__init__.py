"""nablanet: neural networks from scratch in NumPy, every forward and backward pass written as the math.

The package is layered; each layer imports only the ones before it (``make lint`` checks this):

1. :mod:`nablanet.core` — the math: layers, activations, losses, optimizers, the gradient check;
2. :mod:`nablanet.training` — ``Sequential``, its ``fit`` loop and callbacks;
3. :mod:`nablanet.files` — atomic writes, model files, checkpoints;
4. :mod:`nablanet.data` — data sets and images;
5. :mod:`nablanet.app` — plots, whole runs, the command line.

The names below are the public API.
"""

from importlib.metadata import PackageNotFoundError, version

from .core.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, softmax, softmax_jacobian
from .core.gradcheck import gradcheck
from .core.layers import Dense, Dropout, Layer
from .core.losses import CategoricalCrossEntropy, SoftmaxCrossEntropy, cce, cce_gradient
from .core.optimizers import SGD, Adam, AdamW
from .core.parameter import Parameter
from .core.preprocessing import MinMaxScaler, generate_batch_indices, one_hot
from .core.schedules import CosineDecay, StepDecay
from .data.datasets import Dataset, load_dataset, load_fashion_mnist, load_mnist
from .data.idx import DatasetError, read_idx
from .files.serialization import ModelFileError, load, save
from .training.callbacks import Callback, EarlyStopping
from .training.loop import History, TrainingDiverged
from .training.model import Sequential, build_classifier

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Callback",
    "CategoricalCrossEntropy",
    "CosineDecay",
    "Dataset",
    "DatasetError",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "History",
    "Layer",
    "LeakyReLU",
    "MinMaxScaler",
    "ModelFileError",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "StepDecay",
    "Tanh",
    "TrainingDiverged",
    "build_classifier",
    "cce",
    "cce_gradient",
    "generate_batch_indices",
    "gradcheck",
    "load",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "one_hot",
    "read_idx",
    "save",
    "softmax",
    "softmax_jacobian",
]

try:
    __version__ = version("nablanet")  # the one version, written in pyproject.toml
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
