"""nablanet: neural networks from scratch in NumPy, every forward and backward pass written as the math."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, softmax
from .callbacks import Callback, EarlyStopping
from .datasets import Dataset, load_fashion_mnist, load_mnist
from .idx import DatasetError, read_idx
from .layers import Dense, Dropout, Layer, Parameter
from .losses import CategoricalCrossEntropy, SoftmaxCrossEntropy, cce, cce_gradient
from .model import Sequential
from .optimizers import SGD, Adam, AdamW
from .preprocessing import MinMaxScaler, generate_batch_indices, one_hot
from .schedules import CosineDecay, StepDecay
from .serialization import ModelFileError, load
from .training import History, TrainingDiverged

__all__ = [
    "Adam", "AdamW", "Callback", "CategoricalCrossEntropy", "CosineDecay", "Dataset", "DatasetError", "Dense",
    "Dropout", "EarlyStopping", "History", "Layer", "LeakyReLU", "MinMaxScaler", "ModelFileError", "Parameter",
    "ReLU", "SGD", "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "StepDecay", "Tanh",
    "TrainingDiverged", "cce", "cce_gradient", "generate_batch_indices", "load", "load_fashion_mnist",
    "load_mnist", "one_hot", "read_idx", "softmax",
]
__version__ = "0.1.0"
