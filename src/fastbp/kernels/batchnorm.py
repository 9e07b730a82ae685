"""Batch normalisation over the channel axis of x viewed as (N, C, S): S = H*W for NCHW
images, 1 for (N, C) features.

Every ``prange`` iteration owns one channel: it sums that channel's N*S values in a fixed
order (n, then s) in float64, so the statistics, and every output cell, are the same bits
whatever the thread count. Strict IEEE arithmetic (``kernel``, not ``reduction_kernel``):
with re-association allowed, LLVM vectorised these sums differently in the parallel
kernels and their serial twins, whose float64 results then differed in the last bits.
"""

import numpy as np
from numba import prange

from ._jit import kernel, with_serial_twin


@with_serial_twin
@kernel
def batch_norm_forward_train(x, weight, bias, eps, y, mean, var, inv_std):
    """y = weight * (x - mean) / sqrt(var + eps) + bias with the batch's mean and (biased)
    variance per channel, written to ``mean``, ``var``, ``inv_std`` (float64, (C,))."""
    n_batch, n_ch, n_sp = x.shape
    count = n_batch * n_sp
    for c in prange(n_ch):
        total = 0.0
        for n in range(n_batch):
            for s in range(n_sp):
                total += x[n, c, s]
        mu = total / count
        squares = 0.0
        for n in range(n_batch):
            for s in range(n_sp):
                d = x[n, c, s] - mu
                squares += d * d
        v = squares / count
        istd = 1.0 / np.sqrt(v + eps)
        mean[c] = mu
        var[c] = v
        inv_std[c] = istd
        scale = weight[c] * istd
        shift = bias[c] - mu * scale
        for n in range(n_batch):
            for s in range(n_sp):
                y[n, c, s] = x[n, c, s] * scale + shift


@with_serial_twin
@kernel
def channel_affine(x, scale, shift, y):
    """y[n, c, s] = x[n, c, s] * scale[c] + shift[c] (scale and shift float64): batch norm
    with fixed (running) statistics folded into one scale and shift per channel."""
    n_batch, n_ch, n_sp = x.shape
    for c in prange(n_ch):
        a = scale[c]
        b = shift[c]
        for n in range(n_batch):
            for s in range(n_sp):
                y[n, c, s] = x[n, c, s] * a + b


@with_serial_twin
@kernel
def batch_norm_backward(dy, x, weight, mean, inv_std, batch_stats, input_grad, accumulate,
                        dx, dweight, dbias):
    """Gradients of ``batch_norm_forward_train`` (``batch_stats``) or of the fixed-statistics
    form (not ``batch_stats``), with xhat = (x - mean) * inv_std and M = N*S:

        dbias = sum dy,  dweight = sum dy * xhat,
        dx = weight * inv_std * (dy - dbias / M - xhat * dweight / M)   (batch statistics)
        dx = weight * inv_std * dy                                       (fixed statistics)

    ``dweight``/``dbias`` are written, or added to with ``accumulate``; dx only with
    ``input_grad``."""
    n_batch, n_ch, n_sp = dy.shape
    count = n_batch * n_sp
    for c in prange(n_ch):
        mu = mean[c]
        istd = inv_std[c]
        sum_dy = 0.0
        sum_dy_d = 0.0
        for n in range(n_batch):
            for s in range(n_sp):
                g = dy[n, c, s]
                sum_dy += g
                sum_dy_d += g * (x[n, c, s] - mu)
        d_weight = sum_dy_d * istd
        if accumulate:
            dweight[c] += d_weight
            dbias[c] += sum_dy
        else:
            dweight[c] = d_weight
            dbias[c] = sum_dy
        if input_grad:
            k = weight[c] * istd
            if batch_stats:
                a = sum_dy / count
                b = d_weight * istd / count
                for n in range(n_batch):
                    for s in range(n_sp):
                        dx[n, c, s] = k * (dy[n, c, s] - a - (x[n, c, s] - mu) * b)
            else:
                for n in range(n_batch):
                    for s in range(n_sp):
                        dx[n, c, s] = k * dy[n, c, s]
