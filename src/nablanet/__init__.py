"""nablanet: neural networks from scratch in NumPy, every forward and backward pass written as the math.

The package is layered; each layer imports only the ones before it (``make lint`` checks this):

1. :mod:`nablanet.core` — the math: layers, activations, losses, optimizers, the gradient check;
2. :mod:`nablanet.training` — ``Sequential``, its ``fit`` loop and callbacks;
3. :mod:`nablanet.files` — atomic writes, model files, checkpoints;
4. :mod:`nablanet.data` — data sets and images;
5. :mod:`nablanet.exercises` — the checker of a learner's own layers and losses;
6. :mod:`nablanet.app` — plots, whole runs, the command line.

The names below are the public API.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads the name the same way)
if TYPE_CHECKING:
    from typing import Any

    # for type checkers and documentation tools; at run time each name loads on first use
    from .app.live import LivePlot
    from .app.sweep import SweepResult, sweep
    from .core.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, softmax, softmax_jacobian
    from .core.attention import MultiHeadSelfAttention, PositionalEmbedding, TransformerBlock
    from .core.convolution import AvgPool2D, Conv2D, Flatten, MaxPool2D
    from .core.gradcheck import gradcheck
    from .core.layers import Composite, Dense, Dropout, Layer, Residual
    from .core.losses import (
        BinaryCrossEntropy,
        CategoricalCrossEntropy,
        MeanSquaredError,
        SequenceCrossEntropy,
        SigmoidBinaryCrossEntropy,
        SoftmaxCrossEntropy,
        cce,
        cce_gradient,
    )
    from .core.normalization import BatchNorm, LayerNorm
    from .core.optimizers import SGD, Adam, AdamW
    from .core.parameter import Parameter
    from .core.preprocessing import MinMaxScaler, generate_batch_indices, one_hot
    from .core.recurrent import LSTM, RNN, Embedding
    from .core.schedules import CosineDecay, StepDecay
    from .data.datasets import Dataset, load_dataset, load_fashion_mnist, load_mnist
    from .data.idx import DatasetError, read_idx
    from .data.text import TextDataset, load_words, windows
    from .data.toy import toy_dataset, toy_regression
    from .exercises.checker import check
    from .files.serialization import ModelFileError, load, save
    from .training.callbacks import Callback, EarlyStopping
    from .training.loop import History, TrainingDiverged
    from .training.model import Sequential, build_classifier

__all__ = [
    "LSTM",
    "RNN",
    "SGD",
    "Adam",
    "AdamW",
    "AvgPool2D",
    "BatchNorm",
    "BinaryCrossEntropy",
    "Callback",
    "CategoricalCrossEntropy",
    "Composite",
    "Conv2D",
    "CosineDecay",
    "Dataset",
    "DatasetError",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Embedding",
    "Flatten",
    "History",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "LivePlot",
    "MaxPool2D",
    "MeanSquaredError",
    "MinMaxScaler",
    "ModelFileError",
    "MultiHeadSelfAttention",
    "Parameter",
    "PositionalEmbedding",
    "ReLU",
    "Residual",
    "SequenceCrossEntropy",
    "Sequential",
    "Sigmoid",
    "SigmoidBinaryCrossEntropy",
    "Softmax",
    "SoftmaxCrossEntropy",
    "StepDecay",
    "SweepResult",
    "Tanh",
    "TextDataset",
    "TrainingDiverged",
    "TransformerBlock",
    "build_classifier",
    "cce",
    "cce_gradient",
    "check",
    "generate_batch_indices",
    "gradcheck",
    "load",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_words",
    "one_hot",
    "read_idx",
    "save",
    "softmax",
    "softmax_jacobian",
    "sweep",
    "toy_dataset",
    "toy_regression",
    "windows",
]

# The modules the public names live in, searched in order by __getattr__. Loading them lazily keeps
# `import nablanet` (and so the start of the command line) free of NumPy until a name is used: a
# Ctrl-C in the first milliseconds of `nablanet train` then ends in one line, not a traceback.
_MODULES = (
    "core.activations",
    "core.attention",
    "core.convolution",
    "core.gradcheck",
    "core.layers",
    "core.losses",
    "core.normalization",
    "core.optimizers",
    "core.parameter",
    "core.preprocessing",
    "core.recurrent",
    "core.schedules",
    "data.datasets",
    "data.idx",
    "data.text",
    "data.toy",
    "files.serialization",
    "training.callbacks",
    "training.loop",
    "training.model",
    "exercises.checker",
    "app.live",
    "app.sweep",
)


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the one version, written in pyproject.toml
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("nablanet")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    if name in __all__:
        for module_name in _MODULES:
            module = import_module(f"{__name__}.{module_name}")
            if hasattr(module, name):
                value = getattr(module, name)
                globals()[name] = value  # the next lookup is an ordinary attribute
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
