"""Inverted dropout."""

import numpy as np

from .._validation import real_number
from ..init import make_rng
from .base import Layer, ignored_dtype


class Dropout(Layer):
    """In training, zero each element with probability p and scale the rest by 1 / (1 - p);
    at evaluation (``training=False``) the identity. Any shape."""

    def __init__(self, p=0.5, *, dtype=None, seed=None, rng=None):
        super().__init__()
        ignored_dtype(dtype)
        self.p = real_number("p", p, 0.0, 1.0, high_open=True)
        self.rng = make_rng(seed, rng)

    def config(self):
        return {"p": self.p}  # the generator's state is saved apart, by checkpoints

    def forward(self, x, training=True):
        x = self._check_input(x)
        if training and self.p > 0.0:
            keep = self.rng.random(x.shape) >= self.p
            scale = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)
        else:
            scale = np.ones(x.shape, x.dtype)
        self._cache = scale
        return x * scale

    def backward(self, dy, input_grad=True, accumulate=False):
        scale = self._cached()
        dy = self._check_grad(dy, scale.shape, scale.dtype)
        return dy * scale if input_grad else None
