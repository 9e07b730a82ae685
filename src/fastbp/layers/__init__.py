"""Layer objects: ``forward(x, training=True)``, ``backward(dy) -> dx``, ``params``, ``grads``."""

from .activations import ELU, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .base import Layer
from .batchnorm import BatchNorm1D, BatchNorm2D
from .conv import Conv2D
from .conv_transpose import ConvTranspose2D
from .dropout import Dropout
from .global_pool import GlobalAvgPool2D
from .linear import Linear
from .maxout import Maxout
from .pooling import AvgPool2D, MaxPool2D
from .reshape import Flatten
from .residual import Residual

__all__ = [
    "AvgPool2D", "BatchNorm1D", "BatchNorm2D", "Conv2D", "ConvTranspose2D", "Dropout", "ELU", "Flatten",
    "GlobalAvgPool2D", "Layer", "LeakyReLU", "Linear", "MaxPool2D", "Maxout", "ReLU", "Residual", "Sigmoid", "Softplus", "Tanh",
]
