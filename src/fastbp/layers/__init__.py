"""Layer objects: ``forward(x, training=True)``, ``backward(dy) -> dx``, ``params``, ``grads``."""

from .activations import ELU, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .base import Layer
from .conv import Conv2D
from .dropout import Dropout
from .linear import Linear
from .maxout import Maxout
from .pooling import AvgPool2D, MaxPool2D
from .reshape import Flatten

__all__ = [
    "AvgPool2D", "Conv2D", "Dropout", "ELU", "Flatten", "Layer", "LeakyReLU", "Linear",
    "MaxPool2D", "Maxout", "ReLU", "Sigmoid", "Softplus", "Tanh",
]
