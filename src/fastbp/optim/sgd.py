"""Stochastic gradient descent with optional momentum and L2 weight decay."""

import numpy as np

from ..kernels import optim as k
from ..kernels._jit import for_size
from .base import Optimizer, check_number


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0.0, weight_decay=0.0, nesterov=False, decay=None)``.

    With g = grad + weight_decay * W (weights only, not biases), each ``step`` does
    ``W -= lr * g`` without momentum, and ``v = momentum * v + g; W -= lr * v`` with it
    (``W -= lr * (g + momentum * v)`` with ``nesterov``). The velocity ``v`` starts at
    zero and is kept per parameter in ``buffers["velocity"]``. ``decay`` names the
    parameters weight decay applies to (see ``Optimizer``; by default all but biases).
    """

    hyper_names = ("lr", "momentum", "weight_decay", "nesterov")
    buffer_names = ("velocity",)

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False, decay=None):
        self.momentum = check_number("momentum", momentum, 0.0, 1.0, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov needs a momentum > 0")
        self.nesterov = bool(nesterov)
        super().__init__(params, lr, weight_decay, decay)

    def _update(self, param, grad, buffers, scalar, decay):
        if self.momentum == 0.0:
            for_size(k.sgd_step, param.size)(param, grad, scalar(self.lr), scalar(decay))
        else:
            for_size(k.sgd_momentum_step, param.size)(
                param, grad, buffers[0], scalar(self.lr), scalar(self.momentum), scalar(decay),
                self.nesterov)
