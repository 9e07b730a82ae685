"""Batch normalisation (Ioffe and Szegedy, 2015) over the channel axis of (N, C) or
(N, C, H, W) input, PyTorch's conventions: batch statistics (biased variance) when
training, the running ones otherwise; the running variance is updated with the unbiased
batch variance."""

from dataclasses import dataclass

import numpy as np

from .._validation import float_array, real_number, same_dtype
from ..kernels._jit import for_size
from ..kernels.activations import FORWARD, RELU
from ..kernels.batchnorm import batch_norm_backward as _backward_kernel
from ..kernels.batchnorm import batch_norm_forward_train, channel_affine


@dataclass
class BatchNormCache:
    """What ``batch_norm_backward`` needs from its forward: the input, the per-channel mean
    and 1/sqrt(var + eps) used (float64), and whether they were the batch's own; from
    ``batch_norm_relu``, also its output ``relu_out`` (None from ``batch_norm``)."""

    x: np.ndarray
    mean: np.ndarray
    inv_std: np.ndarray
    batch_stats: bool
    relu_out: np.ndarray = None


def _as3d(name, x):
    x = float_array(name, x, None)
    if x.ndim not in (2, 4):
        raise ValueError(f"{name} must be 2-D (N, C) or 4-D (N, C, H, W), got shape {x.shape}")
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_vector(name, value, channels, dtype):
    value = float_array(name, value, 1, "(C,)", weights=True)
    if value.shape != (channels,):
        raise ValueError(f"{name} must have shape ({channels},) (one per channel), got {value.shape}")
    if value.dtype != dtype:
        raise TypeError(f"{name} is {value.dtype} but x is {dtype}; convert them to one float dtype")
    return value


def _running(name, value, channels, dtype):
    """A running statistic: updated in place, so it must be the caller's own array."""
    if not isinstance(value, np.ndarray) or value.shape != (channels,) or value.dtype != dtype \
            or not value.flags.c_contiguous or not value.flags.writeable:
        raise TypeError(f"{name} must be a writeable, contiguous {dtype} array of shape ({channels},), "
                        f"got {value!r:.80}")
    return value


def batch_norm(x, weight, bias, running_mean=None, running_var=None, training=True, momentum=0.1,
               eps=1e-5):
    """``(y, cache)``: y = weight * (x - mean) / sqrt(var + eps) + bias per channel (axis 1).

    ``training=True``: mean and var are the batch's (over N, H, W; the variance biased), and
    ``running_mean``/``running_var`` (if given; updated in place) move by ``momentum``
    towards them, the variance unbiased (times M/(M-1), M = N*H*W), as PyTorch does.
    ``training=False``: the running statistics are used (both required). weight, bias (C,)
    and the running statistics have x's dtype. ``cache`` is for ``batch_norm_backward``.
    """
    return _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, False)


def batch_norm_relu(x, weight, bias, running_mean=None, running_var=None, training=True,
                    momentum=0.1, eps=1e-5):
    """``(y, cache)``: y = ``relu(batch_norm(x, ...)[0])`` in one pass, bit for bit, NaN and
    the sign of zero included; arguments as ``batch_norm``. ``cache`` is for
    ``batch_norm_relu_backward`` (and for ``batch_norm_backward``, given the gradient of
    the normalised values before the ReLU)."""
    return _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, True)


def _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, relu):
    x3 = _as3d("x", x)
    n_ch = x3.shape[1]
    weight = _channel_vector("weight", weight, n_ch, x3.dtype)
    bias = _channel_vector("bias", bias, n_ch, x3.dtype)
    eps = real_number("eps", eps, low=0.0, low_open=True)
    momentum = real_number("momentum", momentum, low=0.0, high=1.0)
    if (running_mean is None) != (running_var is None):
        raise TypeError("give both running_mean and running_var, or neither")
    if running_mean is not None:
        _running("running_mean", running_mean, n_ch, x3.dtype)
        _running("running_var", running_var, n_ch, x3.dtype)
    y3 = np.empty_like(x3)
    if training:
        count = x3.shape[0] * x3.shape[2]
        if count < 2:
            raise ValueError(f"batch norm in training needs more than one value per channel, got x of "
                             f"shape {np.shape(x)}")
        mean, var, inv_std = (np.empty(n_ch) for _ in range(3))
        batch_norm_forward_train(x3, weight, bias, float(eps), relu, y3, mean, var, inv_std)  # no twin
        if running_mean is not None:
            running_mean[...] = (1.0 - momentum) * running_mean + momentum * mean
            running_var[...] = (1.0 - momentum) * running_var + momentum * var * (count / (count - 1))
    else:
        if running_mean is None:
            raise TypeError("batch_norm with training=False needs running_mean and running_var")
        mean = running_mean.astype(np.float64)
        inv_std = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
        scale = weight * inv_std
        for_size(channel_affine, x3.size)(x3, scale, bias - mean * scale, y3)
        if relu:
            flat = y3.reshape(-1)
            for_size(FORWARD[RELU], flat.size)(flat, flat.dtype.type(0), flat)
    cache = BatchNormCache(x3, mean, inv_std, bool(training), y3 if relu else None)
    return y3.reshape(np.shape(x)), cache


def batch_norm_backward(dy, cache, weight, input_grad=True, add_to=None, out=None):
    """``(dx, dweight, dbias)``, the gradients of ``batch_norm`` given its ``cache`` and
    ``weight``. ``out=(dweight, dbias)`` writes them into those arrays, ``add_to=`` adds
    them; with ``input_grad=False`` dx is None."""
    return _batch_norm_backward(dy, cache, weight, input_grad, add_to, out, False)


def batch_norm_relu_backward(dy, cache, weight, input_grad=True, add_to=None, out=None):
    """The gradients of ``batch_norm_relu`` (dy that of its output) given its ``cache``: bit
    for bit ``batch_norm_backward(relu_backward(dy, pre-activation), ...)``, in one pass;
    arguments and results as ``batch_norm_backward``."""
    if isinstance(cache, BatchNormCache) and cache.relu_out is None:
        raise ValueError("batch_norm_relu_backward needs the cache of batch_norm_relu, not of "
                         "batch_norm")
    return _batch_norm_backward(dy, cache, weight, input_grad, add_to, out, True)


def _batch_norm_backward(dy, cache, weight, input_grad, add_to, out, relu):
    if not isinstance(cache, BatchNormCache):
        raise TypeError(f"cache must be what batch_norm returned, got {type(cache).__name__}")
    x3 = cache.x
    dy = float_array("dy", dy, None)
    if dy.size != x3.size or dy.shape[:2] != x3.shape[:2]:
        raise ValueError(f"dy has shape {dy.shape}, expected the shape of batch_norm's input")
    dy3 = dy.reshape(x3.shape)
    n_ch = x3.shape[1]
    weight = _channel_vector("weight", weight, n_ch, x3.dtype)
    same_dtype(dy=dy3, x=x3)
    if add_to is not None and out is not None:
        raise TypeError("give add_to or out, not both")
    targets = add_to if add_to is not None else out
    if targets is None:
        dweight, dbias = np.empty(n_ch, x3.dtype), np.empty(n_ch, x3.dtype)
    else:
        dweight, dbias = (_running(name, t, n_ch, x3.dtype) for name, t in zip(("dweight", "dbias"), targets))
    dx = np.empty_like(x3) if input_grad or relu else np.empty((1, 1, 1), x3.dtype)
    _backward_kernel(dy3, x3, weight, cache.mean, cache.inv_std, cache.batch_stats, bool(input_grad),
                     add_to is not None, relu, cache.relu_out if relu else dy3, dx, dweight, dbias)
    return (dx.reshape(dy.shape) if input_grad else None), dweight, dbias
