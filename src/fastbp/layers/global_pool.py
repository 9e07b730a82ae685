"""Global average pooling."""

from .. import functional as F
from .base import Layer, ignored_dtype


class GlobalAvgPool2D(Layer):
    """The mean of every plane: x (N, C, H, W) -> y (N, C)."""

    def __init__(self, *, dtype=None):
        super().__init__()
        ignored_dtype(dtype)

    def forward(self, x, training=True):
        x = self._check_input(x)
        y = F.global_avg_pool2d(x)
        self._cache = x.shape, x.dtype
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        shape, dtype = self._cached()
        dy = self._check_grad(dy, shape[:2], dtype)
        return F.global_avg_pool2d_backward(dy, shape) if input_grad else None
