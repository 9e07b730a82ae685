"""Flatten: (N, ...) -> (N, features)."""

import math

from .base import Layer, ignored_dtype


class Flatten(Layer):
    """Keeps the batch axis, merges the rest: (N, C, H, W) -> (N, C * H * W)."""

    def __init__(self, *, dtype=None):
        super().__init__()
        ignored_dtype(dtype)

    def forward(self, x, training=True):
        x = self._check_input(x)
        if x.ndim < 2:
            raise ValueError(f"Flatten needs x of shape (N, ...) with at least 2 dims, got {x.shape}")
        self._cache = x.shape, x.dtype
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, input_grad=True, accumulate=False):
        shape, dtype = self._cached()
        dy = self._check_grad(dy, (shape[0], math.prod(shape[1:])), dtype)
        return dy.reshape(shape) if input_grad else None
