"""Batch normalisation over the channel axis of x viewed as (N, C, S): S = H*W for NCHW
images, 1 for (N, C) features.

Every ``prange`` iteration owns a group of consecutive channels (``channels_per_job``) and
sums each channel's N*S values in float64, sample by sample, so the statistics, and every
output cell, are the same bits whatever the thread count.
The sums allow re-association (``reduction_kernel``), so that LLVM vectorises them: one
core, 64x32x32x32 float32, forward 3.7 -> 1.4 ms and backward 3.1 -> 1.6 ms against
strict IEEE sums (even with 16 running sums written out, which LLVM left scalar). The
order of the additions is then LLVM's, fixed when a kernel is compiled: the parallel
kernel runs it at any thread count, but a serial twin (``with_serial_twin``) would be
compiled on its own and may vectorise differently, so these kernels have none.

With ``relu`` the kernels also compute the ReLU after the normalisation (a fused step), in
the same compiled code: the forward rounds each value to x's dtype before the ReLU, and
the backward writes relu's gradient into dx first and sums it with the very loop that
reads dy otherwise, so the results are bit for bit those of the two steps apart.
"""

import numpy as np
from numba import prange

from ._jit import kernel, reduction_kernel, serial_kernel, with_serial_twin
from .activations import relu_grad, relu_value


#: Bytes of x a job reads at a stretch: a job owns consecutive channels, enough that their
#: planes of one sample make runs this long (a plane alone, of 7x7 cells, is 196 bytes, and
#: each run restarts the prefetchers). One core, x from L3, 64 samples, the sums alone per
#: channel / by groups of channels: 16 x 28 x 28 260 / 205 us, 32 x 14 x 14 189 / 125,
#: 64 x 7 x 7 143 / 94, the same bits (each channel's sum runs in the same order).
RUN_BYTES = 4096
MIN_JOBS = 8  # groups no larger than C / 8 channels, so that up to 8 threads share them


@serial_kernel
def channels_per_job(n_ch, n_sp, itemsize):
    """Consecutive channels per parallel job: ``RUN_BYTES`` of a sample at a stretch,
    leaving at least ``MIN_JOBS`` jobs."""
    want = (RUN_BYTES + n_sp * itemsize - 1) // (n_sp * itemsize)
    return max(1, min(want, n_ch // MIN_JOBS))


@reduction_kernel
def batch_norm_forward_train(x, weight, bias, eps, relu, y, mean, var, inv_std):
    """y = weight * (x - mean) / sqrt(var + eps) + bias with the batch's mean and (biased)
    variance per channel, written to ``mean``, ``var``, ``inv_std`` (float64, (C,)); with
    ``relu``, y = max(that, 0) (NaN stays NaN, -0.0 becomes 0.0). A job owns a group of
    channels (``channels_per_job``), each summed sample by sample in order."""
    n_batch, n_ch, n_sp = x.shape
    count = n_batch * n_sp
    per_job = channels_per_job(n_ch, n_sp, x.itemsize)
    # Each channel's scale and shift, computed once before the pass over y: computed in
    # it, LLVM contracted them differently with and without relu (float64, test_fusion).
    affine = np.empty((n_ch, 2))
    for job in prange((n_ch + per_job - 1) // per_job):
        c0 = job * per_job
        c1 = min(n_ch, c0 + per_job)
        for c in range(c0, c1):
            mean[c] = 0.0
            var[c] = 0.0
        for n in range(n_batch):
            for c in range(c0, c1):
                total = mean[c]
                for s in range(n_sp):
                    total += x[n, c, s]
                mean[c] = total
        for c in range(c0, c1):
            mean[c] /= count
        for n in range(n_batch):
            for c in range(c0, c1):
                mu = mean[c]
                squares = var[c]
                for s in range(n_sp):
                    d = x[n, c, s] - mu
                    squares += d * d
                var[c] = squares
        for c in range(c0, c1):
            var[c] /= count
            istd = 1.0 / np.sqrt(var[c] + eps)
            inv_std[c] = istd
            scale = weight[c] * istd
            affine[c, 0] = scale
            affine[c, 1] = bias[c] - mean[c] * scale
        zero = y.dtype.type(0)
        for n in range(n_batch):
            for c in range(c0, c1):
                scale, shift = affine[c, 0], affine[c, 1]
                if relu:
                    for s in range(n_sp):
                        y[n, c, s] = relu_value(y.dtype.type(x[n, c, s] * scale + shift), zero)
                else:
                    for s in range(n_sp):
                        y[n, c, s] = x[n, c, s] * scale + shift


@with_serial_twin
@kernel
def channel_affine(x, scale, shift, y):
    """y[n, c, s] = x[n, c, s] * scale[c] + shift[c] (scale and shift float64): batch norm
    with fixed (running) statistics folded into one scale and shift per channel."""
    n_batch, n_ch, n_sp = x.shape
    per_job = channels_per_job(n_ch, n_sp, x.itemsize)
    for job in prange((n_ch + per_job - 1) // per_job):
        c0 = job * per_job
        for n in range(n_batch):
            for c in range(c0, min(n_ch, c0 + per_job)):
                a = scale[c]
                b = shift[c]
                for s in range(n_sp):
                    y[n, c, s] = x[n, c, s] * a + b


@reduction_kernel
def batch_norm_backward(dy, x, weight, mean, inv_std, batch_stats, input_grad, accumulate,
                        relu, y, dx, dweight, dbias):
    """Gradients of ``batch_norm_forward_train`` (``batch_stats``) or of the fixed-statistics
    form (not ``batch_stats``), with xhat = (x - mean) * inv_std and M = N*S:

        dbias = sum dy,  dweight = sum dy * xhat,
        dx = weight * inv_std * (dy - dbias / M - xhat * dweight / M)   (batch statistics)
        dx = weight * inv_std * dy                                       (fixed statistics)

    ``dweight``/``dbias`` are written, or added to with ``accumulate``; dx only with
    ``input_grad``. With ``relu``, dy is the gradient of the fused ReLU's output ``y``
    (then dx must have x's shape even without ``input_grad``: it holds relu's gradient);
    otherwise y is not read. Jobs as in the forward; the sums are float64, per channel
    (``sums``), sample by sample in order."""
    n_batch, n_ch, n_sp = dy.shape
    count = n_batch * n_sp
    grad = dx if relu else dy  # one loop below sums either: the same rounding
    per_job = channels_per_job(n_ch, n_sp, dy.itemsize)
    sums = np.empty((n_ch, 2))  # sum of grad, sum of grad * (x - mean)
    coef = np.empty((n_ch, 3))  # dx = k * grad + q * x + r: once a channel (see the forward)
    for job in prange((n_ch + per_job - 1) // per_job):
        c0 = job * per_job
        c1 = min(n_ch, c0 + per_job)
        if relu:
            zero = dx.dtype.type(0)
            for n in range(n_batch):
                for c in range(c0, c1):
                    for s in range(n_sp):
                        dx[n, c, s] = relu_grad(dy[n, c, s], y[n, c, s], zero)
        for c in range(c0, c1):
            sums[c, 0] = 0.0
            sums[c, 1] = 0.0
        for n in range(n_batch):
            for c in range(c0, c1):
                mu = mean[c]
                sum_dy = sums[c, 0]
                sum_dy_d = sums[c, 1]
                for s in range(n_sp):
                    g = grad[n, c, s]
                    sum_dy += g
                    sum_dy_d += g * (x[n, c, s] - mu)
                sums[c, 0] = sum_dy
                sums[c, 1] = sum_dy_d
        for c in range(c0, c1):
            mu, istd = mean[c], inv_std[c]
            sum_dy, d_weight = sums[c, 0], sums[c, 1] * istd
            if accumulate:
                dweight[c] += d_weight
                dbias[c] += sum_dy
            else:
                dweight[c] = d_weight
                dbias[c] = sum_dy
            k = weight[c] * istd
            b = d_weight * istd / count  # k * (dy - sum_dy / M - (x - mu) * b)
            coef[c, 0], coef[c, 1], coef[c, 2] = k, -k * b, k * (mu * b - sum_dy / count)
        if input_grad:
            for n in range(n_batch):
                for c in range(c0, c1):
                    k, q, r = coef[c, 0], coef[c, 1], coef[c, 2]
                    if batch_stats:  # one multiply-add each
                        for s in range(n_sp):
                            dx[n, c, s] = k * grad[n, c, s] + q * x[n, c, s] + r
                    else:
                        for s in range(n_sp):
                            dx[n, c, s] = k * grad[n, c, s]
