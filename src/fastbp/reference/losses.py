"""Losses as in the notes, averaged over the batch: each returns ``(loss, delta)``, delta
being ``dL/dscores``, the output layer's delta."""

import numpy as np


def mse_loss(y, t):
    """Squared error with the notes' 1/2: ``C = 1/N sum_n 1/2 ||y_n - t_n||^2``,
    ``delta = (y - t) / N``."""
    n = y.shape[0]
    return 0.5 * np.sum((y - t) ** 2) / n, (y - t) / n


def log_sigmoid(x):
    """log(sigma(x)) = -log(1 + e^-x), by NumPy's logaddexp: finite for any finite x (the
    direct log(sigmoid(x)) is log(0) = -inf once e^-x overflows, near |x| = 745)."""
    return -np.logaddexp(0.0, -x)


def logistic_loss(s, y):
    """0/1 logistic: ``L = -log(phi(s)^y (1 - phi(s))^(1-y))``, ``delta = (phi(s) - y) / N``."""
    # -[y log sigma(s) + (1 - y) log(1 - sigma(s))], with 1 - sigma(s) = sigma(-s)
    p = np.exp(log_sigmoid(s))
    return -np.mean(y * log_sigmoid(s) + (1 - y) * log_sigmoid(-s)), (p - y) / s.shape[0]


def logistic_pm1_loss(s, y):
    """+-1 logistic: ``L = -log(phi(y s))``, ``delta = -y phi(-y s) / N``."""
    return -np.mean(log_sigmoid(y * s)), -y * np.exp(log_sigmoid(-y * s)) / s.shape[0]


def softmax(s):
    """``p_i = e^{s_i} / sum_j e^{s_j}`` per row (shifted by the row maximum first)."""
    e = np.exp(s - s.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def softmax_cross_entropy(logits, labels):
    """``L = -s_y + log sum_i e^{s_i}``, ``delta = (p - e_y) / N`` with p the softmax."""
    n = logits.shape[0]
    shifted = logits - logits.max(1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    grad = np.exp(log_softmax)
    grad[np.arange(n), labels] -= 1
    return -np.mean(log_softmax[np.arange(n), labels]), grad / n


def hinge_loss(scores, labels, margin=1.0):
    """Multiclass SVM: ``L = sum_{i != y} (s_i - s_y + margin)_+``,
    ``delta = (sum_{j in Delta} e_j - |Delta| e_y) / N`` over the violating classes Delta."""
    n = scores.shape[0]
    loss, grad = 0.0, np.zeros_like(scores)
    for i in range(n):
        for j in range(scores.shape[1]):
            if j != labels[i] and scores[i, j] - scores[i, labels[i]] + margin > 0:
                loss += scores[i, j] - scores[i, labels[i]] + margin
                grad[i, j] += 1
                grad[i, labels[i]] -= 1
    return loss / n, grad / n
