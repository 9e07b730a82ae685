"""Batch normalisation and global average pooling, plain NumPy, float64.

Batch normalisation (Ioffe and Szegedy 2015) of channel c over its M = N H W values
``x_m`` (M = N for (N, C) input)::

    mu = 1/M sum_m x_m,  sigma^2 = 1/M sum_m (x_m - mu)^2,
    xhat_m = (x_m - mu) / sqrt(sigma^2 + eps),  y_m = gamma xhat_m + beta

and its backward, with ``delta_m = dL/dy_m``::

    dbeta = sum_m delta_m,  dgamma = sum_m delta_m xhat_m,
    dx_m = gamma / sqrt(sigma^2 + eps) (delta_m - dbeta / M - xhat_m dgamma / M)

With fixed (running) statistics mu and sigma^2 are constants: dx_m = gamma delta_m /
sqrt(sigma^2 + eps). The running statistics move by ``momentum`` towards the batch's,
the variance unbiased: ``running_var <- (1 - momentum) running_var + momentum M/(M-1) sigma^2``.
"""

import numpy as np


def _channels_last(x):
    """x (N, C) or (N, C, H, W) as (C, M): each row one channel's values."""
    x = np.asarray(x, np.float64)
    return np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)


def _from_channels(rows, shape):
    moved = (shape[1], shape[0], *shape[2:])
    return np.moveaxis(rows.reshape(moved), 0, 1)


def batch_norm(x, gamma, beta, eps=1e-5, mean=None, var=None):
    """``y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta`` per channel (axis 1); mu and
    sigma^2 the batch's (biased) unless ``mean`` and ``var`` are given. Returns
    ``(y, mu, sigma^2)``."""
    rows = _channels_last(x)
    mu = rows.mean(axis=1) if mean is None else np.asarray(mean, np.float64)
    sigma2 = ((rows - mu[:, None]) ** 2).mean(axis=1) if var is None else np.asarray(var, np.float64)
    xhat = (rows - mu[:, None]) / np.sqrt(sigma2[:, None] + eps)
    y = np.asarray(gamma, np.float64)[:, None] * xhat + np.asarray(beta, np.float64)[:, None]
    return _from_channels(y, np.shape(x)), mu, sigma2


def batch_norm_backward(dy, x, gamma, eps=1e-5, mean=None, var=None):
    """``(dx, dgamma, dbeta)`` of ``batch_norm`` (batch statistics unless ``mean`` and
    ``var`` are given), the module docstring's formulas."""
    rows = _channels_last(x)
    delta = _channels_last(dy)
    batch = mean is None
    _, mu, sigma2 = batch_norm(x, gamma, np.zeros_like(gamma), eps, mean, var)
    inv = 1.0 / np.sqrt(sigma2 + eps)
    xhat = (rows - mu[:, None]) * inv[:, None]
    dbeta = delta.sum(axis=1)
    dgamma = (delta * xhat).sum(axis=1)
    k = (np.asarray(gamma, np.float64) * inv)[:, None]
    m = rows.shape[1]
    if batch:
        dx = k * (delta - dbeta[:, None] / m - xhat * dgamma[:, None] / m)
    else:
        dx = k * delta
    return _from_channels(dx, np.shape(x)), dgamma, dbeta


def running_stats(running_mean, running_var, mu, sigma2, count, momentum=0.1):
    """The running statistics after one training batch of ``count`` values per channel:
    ``(1 - momentum) old + momentum new``, the new variance unbiased (``count/(count-1)``)."""
    new_mean = (1 - momentum) * np.asarray(running_mean, np.float64) + momentum * mu
    new_var = (1 - momentum) * np.asarray(running_var, np.float64) + momentum * sigma2 * count / (count - 1)
    return new_mean, new_var


def global_avg_pool2d(x):
    """``Y_{n,c} = 1/(H W) sum_{u,v} X_{n,c,u,v}``."""
    return np.asarray(x, np.float64).mean(axis=(2, 3))


def global_avg_pool2d_backward(dy, x_shape):
    """``dX_{n,c,u,v} = dY_{n,c} / (H W)``."""
    h, w = x_shape[2], x_shape[3]
    return np.broadcast_to(np.asarray(dy, np.float64)[:, :, None, None] / (h * w), tuple(x_shape)).copy()
