"""Inverted dropout."""

import numpy as np

from ..init import make_rng
from .base import Layer


class Dropout(Layer):
    """In training, zero each element with probability p and scale the rest by 1 / (1 - p);
    at evaluation (``training=False``) the identity. Any shape."""

    def __init__(self, p=0.5, *, dtype=np.float32, seed=None, rng=None):
        super().__init__(dtype)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = make_rng(seed, rng)

    def forward(self, x, training=True):
        x = self._check_input(x)
        if training and self.p > 0.0:
            keep = self.rng.random(x.shape) >= self.p
            scale = keep.astype(self.dtype) / self.dtype.type(1.0 - self.p)
        else:
            scale = np.ones(x.shape, self.dtype)
        self._cache = scale
        return x * scale

    def backward(self, dy, input_grad=True):
        scale = self._cached()
        dy = self._check_grad(dy, scale.shape)
        return dy * scale if input_grad else None

    def extra_repr(self):
        return f"p={self.p}"
