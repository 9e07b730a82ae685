"""The one place where the benchmarks call fastbp's raw kernels.

``kernel_ops(shape, dtype)`` allocates seeded inputs and preallocated outputs for a
catalogue shape (``fastbp.bench.shapes``) and returns ``{kernel name: Op}``; each
``Op.run()`` calls exactly one kernel and allocates nothing. When a kernel's signature
changes, only this module changes.
"""

from dataclasses import dataclass
from operator import itemgetter
from typing import Callable

import numpy as np

from ..functional.pooling import is_2x2, max_pool2d_2x2_with_winner, max_pool2d_with_argmax
from ..kernels import activations as act
from ..kernels import losses
from ..kernels.affine import affine_backward_input, affine_backward_params, affine_forward
from ..kernels.batchnorm import batch_norm_backward, batch_norm_forward_train
from ..kernels.conv2d import (
    conv2d_backward,
    conv2d_backward_bias,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
    conv2d_forward_and_backward_weight,
)
from ..kernels.pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_2x2_backward,
    max_pool2d_backward,
)
from ..kernels.workspace import Workspace
from .shapes import inputs, random_array, random_labels


@dataclass(frozen=True)
class Op:
    """A kernel call on preallocated arrays, with its work: FLOPs, or bytes moved for the
    memory-bound element-wise and batch norm kernels (whose ``flops`` is 0)."""

    run: Callable[[], object]
    flops: int = 0
    nbytes: int = 0


def conv_ops(s, dtype, family=None):
    """forward, backward_input, backward_weight, backward_bias of 2-D convolution, and
    backward: dx and dw in one call, as the layer asks for them. ``family`` names the
    kernel family (``fastbp.kernels.conv2d.FAMILIES``; None: chosen by shape, as the layer
    runs)."""
    x, w, b, dy = itemgetter("x", "w", "b", "dy")(inputs(s, dtype))
    y, dx, dw, db = np.empty_like(dy), np.empty_like(x), np.empty_like(w), np.empty_like(b)
    st, p, work, f = s.stride, s.pad, Workspace(), family
    dg = dict(dilation=(s.dilation, s.dilation), groups=s.groups)
    return {
        "forward": Op(lambda: conv2d_forward(x, w, b, st, st, p, p, y, work, f, **dg), s.flops),
        "backward_input": Op(
            lambda: conv2d_backward_input(dy, w, st, st, p, p, dx, work, f, **dg), s.flops),
        "backward_weight": Op(
            lambda: conv2d_backward_weight(dy, x, st, st, p, p, dw, work, f, **dg), s.flops),
        "backward_bias": Op(lambda: conv2d_backward_bias(dy, db, False), dy.size),
        "backward": Op(
            lambda: conv2d_backward(dy, x, w, st, st, p, p, dx, dw, work, False, f, **dg),
            2 * s.flops),
    }


def conv_transpose_ops(s, dtype):
    """forward (y with its bias, added where the kernels can), backward_input, backward_weight,
    backward_bias of the 2-D transposed convolution, on the convolution kernels as
    ``fastbp.functional.conv_transpose2d`` and ``conv_transpose2d_backward`` call them: its
    forward is conv2d's input gradient, its dx conv2d's forward of dy (bias zero), its dw
    conv2d's weight gradient with x and dy swapped; and backward: dx and dw in one call,
    as the layer asks for them (``conv2d_forward_and_backward_weight``)."""
    x, w, b, dy = itemgetter("x", "w", "b", "dy")(inputs(s, dtype))
    y, dx, dw, db = np.empty_like(dy), np.empty_like(x), np.empty_like(w), np.empty_like(b)
    st, p, work = s.stride, s.pad, Workspace()
    no_bias = np.zeros(s.c, dtype)
    dg = dict(dilation=(s.dilation, s.dilation), groups=s.groups)

    return {
        "forward": Op(lambda: conv2d_backward_input(x, w, st, st, p, p, y, work, bias=b, **dg),
                      s.flops),
        "backward_input": Op(
            lambda: conv2d_forward(dy, w, no_bias, st, st, p, p, dx, work, **dg), s.flops),
        "backward_weight": Op(
            lambda: conv2d_backward_weight(x, dy, st, st, p, p, dw, work, **dg), s.flops),
        "backward_bias": Op(lambda: conv2d_backward_bias(dy, db, False), dy.size),
        "backward": Op(lambda: conv2d_forward_and_backward_weight(
            dy, w, no_bias, x, st, st, p, p, dx, dw, work, False, **dg), 2 * s.flops),
    }


def batchnorm_ops(s, dtype):
    """forward (y, and the batch's mean, variance and 1/std per channel) and backward (dx,
    dweight, dbias) of batch norm with the batch's statistics, over x viewed as (N, C, H*W):
    the kernels ``fastbp.functional.batch_norm`` and ``batch_norm_backward`` call (without
    the forward's update of the C running statistics). Memory-bound, so the work is the
    bytes read and written once: x and y; dy, x and dx."""
    x, w, b, dy = itemgetter("x", "w", "b", "dy")(inputs(s, dtype))
    x, dy = x.reshape(s.n, s.c, -1), dy.reshape(s.n, s.c, -1)
    y, dx, dw, db = np.empty_like(x), np.empty_like(x), np.empty_like(w), np.empty_like(b)
    mean, var, inv_std = (np.empty(s.c) for _ in range(3))
    forward = lambda: batch_norm_forward_train(x, w, b, s.eps, False, y, mean, var, inv_std)  # noqa: E731
    forward()  # the statistics the backward reads
    return {
        "forward": Op(forward, nbytes=2 * x.nbytes),
        "backward": Op(
            lambda: batch_norm_backward(dy, x, w, mean, inv_std, True, True, False, False, dy, dx,
                                        dw, db),
            nbytes=3 * x.nbytes),
    }


def linear_ops(s, dtype):
    """forward, backward_input (dx), backward_params (dw and db) of the affine layer."""
    x, w, b, dy = itemgetter("x", "w", "b", "dy")(inputs(s, dtype))
    y, dx, dw, db = np.empty_like(dy), np.empty_like(x), np.empty_like(w), np.empty_like(b)
    work = Workspace()
    return {
        "forward": Op(lambda: affine_forward(x, w, b, y, work), s.flops),
        "backward_input": Op(lambda: affine_backward_input(dy, w, dx, work), s.flops),
        "backward_params": Op(lambda: affine_backward_params(dy, x, dw, db, work),
                              s.flops + dy.size),
    }


def pool_ops(s, dtype):
    """max_forward, max_backward (from the forward's argmax, or winners for the 2x2
    windows, as the layer does), avg_forward, avg_backward."""
    x, dy = itemgetter("x", "dy")(inputs(s, dtype))
    y, dx = np.empty_like(dy), np.empty_like(x)
    geometry = (s.k, s.k, s.stride, s.stride, s.pad, s.pad)
    work = Workspace()  # the max forwards allocate their outputs, as the layer's do
    if is_2x2((s.k, s.k), (s.stride, s.stride), (s.pad, s.pad)):
        max_forward = lambda: max_pool2d_2x2_with_winner(x, dy.shape, False, work)  # noqa: E731
        winner = max_forward()[1]
        max_backward = lambda: max_pool2d_2x2_backward(dy, winner, False, dx)  # noqa: E731
    else:
        max_forward = lambda: max_pool2d_with_argmax(x, s.k, s.stride, s.pad, work)  # noqa: E731
        argmax = max_forward()[1]
        max_backward = lambda: max_pool2d_backward(dy, argmax, dx)  # noqa: E731
    return {
        "max_forward": Op(max_forward, s.flops),
        "max_backward": Op(max_backward, s.outputs),
        "avg_forward": Op(lambda: avg_pool2d_forward(x, *geometry, y), s.flops),
        "avg_backward": Op(lambda: avg_pool2d_backward(dy, *geometry, dx), s.flops),
    }


ACTIVATIONS = {
    "relu": (act.RELU, 0.0),
    "leaky_relu": (act.LEAKY_RELU, 0.01),
    "sigmoid": (act.SIGMOID, 0.0),
    "tanh": (act.TANH, 0.0),
    "elu": (act.ELU, 1.0),
    "softplus": (act.SOFTPLUS, 0.0),
}


def activation_ops(s, dtype):
    """NAME_forward and NAME_backward for every activation, over flat arrays; the backward
    as the layers run it: from the forward's output for sigmoid and tanh, from x otherwise."""
    x, dy = itemgetter("x", "dy")(inputs(s, dtype))
    y, dx = np.empty_like(x), np.empty_like(x)
    ops = {}
    for name, (kind, param) in ACTIVATIONS.items():
        param = x.dtype.type(param)
        ops[f"{name}_forward"] = Op(
            lambda kind=kind, param=param: act.FORWARD[kind](x, param, y),
            nbytes=2 * x.nbytes,
        )
        if kind in (act.SIGMOID, act.TANH):
            out = np.empty_like(x)
            act.FORWARD[kind](x, param, out)
            backward = lambda kind=kind, out=out: act.BACKWARD_FROM_OUTPUT[kind](dy, out, dx)  # noqa: E731
        else:
            backward = lambda kind=kind, param=param: act.BACKWARD[kind](dy, x, param, dx)  # noqa: E731
        ops[f"{name}_backward"] = Op(backward, nbytes=3 * x.nbytes)
    return ops


def loss_ops(s, dtype):
    """Each loss kernel (per-sample losses and gradient in one pass) over (n, classes) scores."""
    scores = random_array((s.n, s.classes), dtype, 0)
    targets = random_array((s.n, s.classes), dtype, 1)
    labels = random_labels(s.n, s.classes, 2)
    flat = scores.reshape(-1)
    zeros_ones = (targets.reshape(-1) > 0).astype(dtype)
    signs = 2 * zeros_ones - 1
    grad = np.empty_like(scores)
    flat_grad = grad.reshape(-1)
    per_sample, per_score = np.empty(s.n), np.empty(flat.size)
    margin = scores.dtype.type(1.0)
    with_labels = scores.nbytes + labels.nbytes + grad.nbytes + per_sample.nbytes
    binary = 2 * flat.nbytes + flat_grad.nbytes + per_score.nbytes
    return {
        "softmax_cross_entropy": Op(
            lambda: losses.softmax_cross_entropy(scores, labels, per_sample, grad), nbytes=with_labels
        ),
        "hinge": Op(
            lambda: losses.multiclass_hinge(scores, labels, margin, per_sample, grad), nbytes=with_labels
        ),
        "mse": Op(
            lambda: losses.squared_error(scores, targets, per_sample, grad),
            nbytes=3 * scores.nbytes + per_sample.nbytes,
        ),
        "logistic": Op(
            lambda: losses.logistic01(flat, zeros_ones, per_score, flat_grad), nbytes=binary
        ),
        "logistic_pm1": Op(
            lambda: losses.logistic_pm1(flat, signs, per_score, flat_grad), nbytes=binary
        ),
    }


KERNELS = {
    "conv": ("forward", "backward_input", "backward_weight", "backward_bias", "backward"),
    "conv_transpose": ("forward", "backward_input", "backward_weight", "backward_bias",
                       "backward"),
    "batchnorm": ("forward", "backward"),
    "linear": ("forward", "backward_input", "backward_params"),
    "pool": ("max_forward", "max_backward", "avg_forward", "avg_backward"),
    "loss": ("softmax_cross_entropy", "hinge", "mse", "logistic", "logistic_pm1"),
}
BUILDERS = {
    "conv": conv_ops,
    "conv_transpose": conv_transpose_ops,
    "batchnorm": batchnorm_ops,
    "linear": linear_ops,
    "pool": pool_ops,
    "activation": activation_ops,
    "loss": loss_ops,
}


def kernel_ops(shape, dtype, **options):
    """``{kernel name: Op}`` for a catalogue shape of a kernel family, in ``dtype``;
    ``options`` go to the family's builder (``conv_ops(..., family=)``)."""
    return BUILDERS[shape.family](shape, np.dtype(dtype), **options)


def kernel_names(family):
    """The kernel names ``kernel_ops`` returns for ``family``, without building anything
    (so asv can list its parameters without running a kernel)."""
    if family == "activation":
        return tuple(f"{name}_{way}" for name in ACTIVATIONS for way in ("forward", "backward"))
    return KERNELS[family]
