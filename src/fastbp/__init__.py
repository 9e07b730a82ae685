"""fastbp: numba-compiled backpropagation kernels for multicore CPUs.

``fastbp.functional`` holds stateless forward/backward functions over NumPy arrays,
``fastbp.layers`` the layer objects built on them, ``fastbp.Sequential`` chains layers.
"""

from . import _numba_cache, _vector_width, threads

_numba_cache.configure()  # before any kernel is compiled or loaded
_vector_width.configure()  # likewise
threads.configure_threading_layer()  # before any kernel runs

from . import data, functional, layers  # noqa: E402
from . import checkpoint, models, optim, training
from .kernels.workspace import Workspace
from .gradcheck import GradcheckError, gradcheck, gradcheck_layer, numerical_gradient
from .layers import (
    ELU,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    ConvTranspose2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    Linear,
    MaxPool2D,
    Maxout,
    ReLU,
    Residual,
    Sigmoid,
    Softplus,
    Tanh,
)
from .sequential import Sequential
from .threads import get_num_threads, set_num_threads
from .training import Trainer, fit

__version__ = "0.1.0"
