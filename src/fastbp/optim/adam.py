"""Adam: per-element step sizes from running moments of the gradient."""

import numpy as np

from ..kernels import optim as k
from ..kernels._jit import for_size
from .base import Optimizer, check_number


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)``.

    With g = grad + weight_decay * W (the L2 term; weights only, not biases) and step
    count t: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``W -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``. The moments live in
    ``buffers["m"]`` and ``buffers["v"]``. ``eps`` must stay above 0 in the parameters'
    dtype (in float32 it must be at least about 1.4e-45), or the update divides by zero.
    """

    hyper_names = ("lr", "beta1", "beta2", "eps", "weight_decay")
    buffer_names = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decay=None):
        if not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1 = check_number("beta1", betas[0], 0.0, 1.0, high_open=True)
        self.beta2 = check_number("beta2", betas[1], 0.0, 1.0, high_open=True)
        self.eps = check_number("eps", eps, low=0.0, low_open=True)
        super().__init__(params, lr, weight_decay, decay)
        for array in self.params.values():
            _check_eps(self.eps, array.dtype)

    def load_state_dict(self, state):
        """``Optimizer.load_state_dict``, refusing (before changing anything) betas outside
        [0, 1) and an ``eps`` that is not above 0 in the parameters' dtype."""
        hyper = state.get("hyper") if isinstance(state, dict) else None
        if isinstance(hyper, dict):
            for name in ("beta1", "beta2"):
                if name in hyper:
                    check_number(name, hyper[name], 0.0, 1.0, high_open=True)
            if "eps" in hyper:
                eps = check_number("eps", hyper["eps"], low=0.0, low_open=True)
                for array in self.params.values():
                    _check_eps(eps, array.dtype)
        super().load_state_dict(state)

    def _update(self, param, grad, buffers, scalar, decay):
        _check_eps(self.eps, param.dtype)  # eps set since, or parameters converted since
        t = self.step_count
        inv_bias1 = 1.0 / (1.0 - self.beta1**t)
        inv_bias2 = 1.0 / (1.0 - self.beta2**t)
        m, v = buffers
        for_size(k.adam_step, param.size)(
            param, grad, m, v, scalar(self.lr), scalar(self.beta1), scalar(self.beta2),
            scalar(self.eps), scalar(decay), scalar(inv_bias1), scalar(inv_bias2))


def _check_eps(eps, dtype):
    if dtype.type(eps) == 0:
        tiny = np.finfo(dtype).smallest_subnormal
        raise ValueError(
            f"eps={eps!r} rounds to 0 in {np.dtype(dtype).name}, the parameters' dtype, and the update "
            f"would divide by zero; use an eps of at least {tiny:.3g} (typically 1e-8)"
        )
