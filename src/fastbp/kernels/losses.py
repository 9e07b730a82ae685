"""Loss kernels: per-sample losses and d(mean loss)/d(scores).

Each kernel fills ``per_sample`` (N,) float64 and ``grad`` (same shape as the scores),
already divided by N. Samples are independent, so the batch axis is parallel; the
caller sums ``per_sample`` serially, which keeps the loss independent of thread count.
"""

import math

from numba import prange, uint64

from ._jit import inline_kernel, kernel, with_serial_twin
from .activations import sigmoid_scalar
from .elementary import exp_value, log1p_unit


@with_serial_twin
@kernel
def squared_error(y, t, per_sample, grad):
    """y, t (N, D): per_sample[n] = 1/2 ||y[n] - t[n]||^2, grad = (y - t) / N."""
    n_batch, dim = y.shape
    inv_n = y.dtype.type(1.0 / n_batch)
    for n in prange(n_batch):
        acc = 0.0
        for i in range(dim):
            r = y[n, i] - t[n, i]
            acc += float(r) * float(r)
            grad[n, i] = r * inv_n
        per_sample[n] = 0.5 * acc


@with_serial_twin
@kernel
def logistic01(s, y, per_sample, grad):
    """s, y (N,), y in {0, 1}: -log(sigma(s)^y (1 - sigma(s))^(1-y)) = softplus(s) - y s."""
    n_batch = s.shape[0]
    inv_n = s.dtype.type(1.0 / n_batch)
    one = s.dtype.type(1)
    for n in prange(n_batch):
        v = float(s[n])
        label = float(y[n])
        # max(v, 0) - y v is exact for the large |v| where softplus(v) ~ max(v, 0).
        per_sample[n] = (max(v, 0.0) - label * v) + log1p_unit(exp_value(-abs(v)))
        grad[n] = (sigmoid_scalar(s[n], one) - y[n]) * inv_n


@with_serial_twin
@kernel
def logistic_pm1(s, y, per_sample, grad):
    """s, y (N,), y in {-1, +1}: -log(sigma(y s)) = softplus(-y s); grad = -y sigma(-y s) / N."""
    n_batch = s.shape[0]
    inv_n = s.dtype.type(1.0 / n_batch)
    one = s.dtype.type(1)
    for n in prange(n_batch):
        m = -float(y[n]) * float(s[n])
        per_sample[n] = max(m, 0.0) + log1p_unit(exp_value(-abs(m)))
        grad[n] = -y[n] * sigmoid_scalar(-y[n] * s[n], one) * inv_n


@inline_kernel
def sum_in_fours(a):
    """sum(a) in float64, by four running sums (positions mod 4) added at the end: a fixed
    order, four times the throughput of one chain of dependent adds."""
    s0 = s1 = s2 = s3 = 0.0
    n = uint64(a.size)
    main = n - n % uint64(4)
    for k in range(uint64(0), main, uint64(4)):
        s0 += float(a[k])
        s1 += float(a[k + 1])
        s2 += float(a[k + 2])
        s3 += float(a[k + 3])
    for k in range(main, n):
        s0 += float(a[k])
    return (s0 + s1) + (s2 + s3)


@with_serial_twin
@kernel
def softmax_cross_entropy(logits, labels, per_sample, grad):
    """logits (N, K), labels (N,) int: log-sum-exp(s) - s[label]; grad = (softmax - onehot) / N.

    The max is subtracted before exponentiating, so |logits| of 1e4 neither overflow nor
    lose the answer. Each row's exponentials are written into its grad row (a vector
    loop), summed in float64, and scaled there into the softmax.
    """
    n_batch, classes = logits.shape
    inv_n = logits.dtype.type(1.0 / n_batch)
    for n in prange(n_batch):
        row = logits[n]
        out = grad[n]
        top = row[0]
        for k in range(1, classes):
            if row[k] > top:
                top = row[k]
        for k in range(uint64(classes)):
            out[k] = exp_value(row[k] - top)
        total = sum_in_fours(out)
        label = labels[n]
        per_sample[n] = (float(top) + math.log(total)) - float(row[label])
        scale = out.dtype.type(1.0 / (n_batch * total))
        for k in range(uint64(classes)):
            out[k] *= scale
        out[label] -= inv_n


@with_serial_twin
@kernel
def multiclass_hinge(scores, labels, margin, per_sample, grad):
    """scores (N, K), labels (N,) int: sum_{j != y} max(0, s_j - s_y + margin).

    grad: +1/N on every class with a positive term, minus their count / N on the label.
    """
    n_batch, classes = scores.shape
    inv_n = scores.dtype.type(1.0 / n_batch)
    zero = scores.dtype.type(0)
    for n in prange(n_batch):
        label = labels[n]
        target = scores[n, label]
        loss = 0.0
        active = 0
        for k in range(classes):
            grad[n, k] = zero
            if k == label:
                continue
            term = scores[n, k] - target + margin
            if term > zero:
                loss += float(term)
                grad[n, k] = inv_n
                active += 1
            elif term != term:
                loss += float(term)
                grad[n, k] = term
        grad[n, label] = -active * inv_n if loss == loss else loss
        per_sample[n] = loss
