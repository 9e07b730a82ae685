"""Losses averaged over the batch. Each returns ``(loss: float, grad)`` where grad is
d loss / d scores, with the scores' shape and dtype.

Scores need a batch axis (first axis, N >= 1): a 0-d array is refused with a ValueError,
not read as a batch of one (reshape it to (1,) or (1, K) for that)."""

import numpy as np

from .._validation import (
    binary_targets,
    class_labels,
    float_array,
    real_number,
    same_dtype,
    same_shape,
)
from ..kernels import losses as k
from ..kernels._jit import for_size


def _run(kernel, scores, *args):
    per_sample = np.empty(scores.shape[0], np.float64)
    grad = np.empty_like(scores)
    for_size(kernel, scores.size)(scores, *args, per_sample, grad)
    # Summed by NumPy outside the parallel kernel, in a fixed order: the loss does not
    # depend on the thread count.
    return float(np.add.reduce(per_sample) / scores.shape[0]), grad


def mse_loss(y, t):
    """mean_n 1/2 ||y[n] - t[n]||^2 for y, t of shape (N, ...); grad = (y - t) / N.

    y needs a batch axis: a 0-d y is refused (ValueError), as in every loss here.
    """
    y = float_array("y", y)
    if y.ndim == 0:
        raise ValueError("y must have a batch axis, shape (N, ...), got a 0-d array")
    t = float_array("t", t)
    same_dtype(y=y, t=t)
    same_shape("t", t, y.shape, "the shape of y")
    flat = y.reshape(y.shape[0], -1)
    loss, grad = _run(k.squared_error, flat, t.reshape(flat.shape))
    return loss, grad.reshape(y.shape)


def _binary(kernel, s, targets, allowed):
    s = float_array("s", s)
    if s.ndim not in (1, 2) or (s.ndim == 2 and s.shape[1] != 1):
        raise ValueError(f"s must have shape (N,) or (N, 1), got {s.shape}")
    targets = binary_targets("y", targets, s.shape, allowed, s.dtype)
    loss, grad = _run(kernel, s.reshape(-1), targets.reshape(-1))
    return loss, grad.reshape(s.shape)


def logistic_loss(s, y01):
    """mean_n -log(sigma(s)^y (1 - sigma(s))^(1 - y)) for scores s (N,) or (N, 1), y in {0, 1}."""
    return _binary(k.logistic01, s, y01, (0, 1))


def logistic_pm1_loss(s, ypm1):
    """mean_n -log(sigma(y s)) for scores s (N,) or (N, 1) and labels y in {-1, +1}."""
    return _binary(k.logistic_pm1, s, ypm1, (-1, 1))


def _scores_and_labels(scores, labels, name):
    scores = float_array(name, scores, 2, "(N, classes)")
    labels = class_labels("labels", labels, scores.shape[0], scores.shape[1])
    return scores, labels


def softmax_cross_entropy(logits, labels):
    """mean_n (logsumexp(logits[n]) - logits[n, labels[n]]); logits (N, K), labels (N,) int.

    grad = (softmax(logits) - onehot(labels)) / N.
    """
    logits, labels = _scores_and_labels(logits, labels, "logits")
    return _run(k.softmax_cross_entropy, logits, labels)


def hinge_loss(scores, labels, margin=1.0):
    """mean_n sum_{j != y_n} max(0, s[n, j] - s[n, y_n] + margin); scores (N, K), labels (N,).

    ``margin`` is a finite real number.
    """
    margin = real_number("margin", margin)
    scores, labels = _scores_and_labels(scores, labels, "scores")
    return _run(k.multiclass_hinge, scores, labels, scores.dtype.type(margin))
