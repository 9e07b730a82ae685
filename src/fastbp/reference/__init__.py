"""The lecture notes' formulas as plain NumPy: the oracle the tests hold the kernels to.

Written for obviousness, not speed; float64 throughout; imports only NumPy. Each function
cites the formula it computes; README's "From the notes to the code" maps each one to its
fast kernel and to the test that ties them. ``dense`` holds the affine layer, the delta
recursion, the activations and maxout; ``conv`` convolution, padding and pooling;
``losses`` the losses and their gradients; ``sgd`` the update with L2 weight decay;
``norm`` batch normalisation and global average pooling.
Everything is importable from ``fastbp.reference`` itself.

Conventions (the notes write one sample as a column vector; fastbp stacks the batch as
rows, the notes' own matrix form of mini-batch backprop):

- ``y = x @ w.T + b`` is ``z = W a + b`` transposed: row ``n`` of ``x`` is ``a_n``, of ``y``
  is ``z_n``; ``w`` is ``W``, ``(out_features, in_features)``.
- ``dy`` (``dL/dy``) plays the role of ``delta``; ``dx = dy @ w`` is ``W^T delta``
  transposed; ``dw = dy.T @ x`` is ``delta a^T`` summed over the batch; ``db`` sums delta.
- Losses are averaged over the batch, so their gradients carry ``1/N``; squared error
  carries the notes' ``1/2``.
- Images are NCHW; a conv kernel ``K`` is ``w[o, c, i, j]`` = ``K(i, j)^o_c`` (output
  channel o, input channel c); "convolution" is the notes' (and every library's)
  cross-correlation ``Y_{u,v} = sum_{i,j} K(i, j) X_{u s + i, v s + j}``.
"""

from .conv import (
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    conv2d_input_grad_by_flipped_kernel,
    conv2d_weight_grad_by_dilated_gradient,
    max_pool2d,
    max_pool2d_backward,
    zero_pad,
)
from .dense import (
    ACTIVATIONS,
    backprop_delta,
    elu,
    elu_derivative,
    leaky_relu,
    leaky_relu_derivative,
    linear,
    linear_backward,
    linear_backward_by_samples,
    linear_by_samples,
    maxout,
    maxout_backward,
    relu,
    relu_derivative,
    sigmoid,
    sigmoid_derivative,
    softplus,
    softplus_derivative,
    tanh,
    tanh_derivative,
)
from .losses import (
    hinge_loss,
    log_sigmoid,
    logistic_loss,
    logistic_pm1_loss,
    mse_loss,
    softmax,
    softmax_cross_entropy,
)
from .norm import (
    batch_norm,
    batch_norm_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    running_stats,
)
from .sgd import sgd_step

__all__ = [
    "linear", "linear_backward", "linear_by_samples", "linear_backward_by_samples",
    "backprop_delta",
    "relu", "relu_derivative", "leaky_relu", "leaky_relu_derivative", "sigmoid",
    "sigmoid_derivative", "tanh", "tanh_derivative", "elu", "elu_derivative", "softplus",
    "softplus_derivative", "ACTIVATIONS",
    "maxout", "maxout_backward",
    "zero_pad", "conv2d", "conv2d_backward", "conv2d_input_grad_by_flipped_kernel",
    "conv2d_weight_grad_by_dilated_gradient",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "mse_loss", "log_sigmoid", "logistic_loss", "logistic_pm1_loss", "softmax",
    "softmax_cross_entropy", "hinge_loss",
    "batch_norm", "batch_norm_backward", "running_stats", "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "sgd_step",
]
