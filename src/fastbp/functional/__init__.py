"""Stateless forward and backward functions over NumPy arrays (float32 or float64).

Every function validates its arguments, allocates its outputs in the input's dtype and
calls the numba kernels in ``fastbp.kernels``. ``Workspace`` keeps the kernels' scratch
memory from call to call (``workspace=``).
"""

from ..kernels.workspace import Workspace

from .activations import (
    elu,
    elu_backward,
    add_relu,
    leaky_relu,
    leaky_relu_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softplus,
    softplus_backward,
    tanh,
    tanh_backward,
)
from .batchnorm import (
    BatchNormCache,
    batch_norm,
    batch_norm_backward,
    batch_norm_relu,
    batch_norm_relu_backward,
)
from .conv import conv2d, conv2d_backward
from .conv_transpose import conv_transpose2d, conv_transpose2d_backward
from .global_pool import global_avg_pool2d, global_avg_pool2d_backward
from .linear import linear, linear_backward, linear_relu, linear_relu_backward
from .losses import hinge_loss, logistic_loss, logistic_pm1_loss, mse_loss, softmax_cross_entropy
from .maxout import maxout, maxout_backward, maxout_with_argmax
from .pooling import (
    MaxPoolRoutes,
    avg_pool2d,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_routes_backward,
    max_pool2d_with_argmax,
    max_pool2d_with_routes,
    relu_max_pool2d,
    relu_max_pool2d_backward,
)

__all__ = [
    "relu",
    "relu_backward",
    "add_relu",
    "leaky_relu",
    "leaky_relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "elu",
    "elu_backward",
    "softplus",
    "softplus_backward",
    "linear",
    "linear_backward",
    "linear_relu",
    "linear_relu_backward",
    "conv2d",
    "conv2d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_with_argmax",
    "max_pool2d_with_routes",
    "max_pool2d_routes_backward",
    "relu_max_pool2d",
    "relu_max_pool2d_backward",
    "MaxPoolRoutes",
    "avg_pool2d",
    "avg_pool2d_backward",
    "maxout",
    "maxout_backward",
    "maxout_with_argmax",
    "mse_loss",
    "logistic_loss",
    "logistic_pm1_loss",
    "softmax_cross_entropy",
    "hinge_loss",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_relu",
    "batch_norm_relu_backward",
    "BatchNormCache",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "Workspace",
]
