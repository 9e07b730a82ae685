"""Max and mean pooling layers."""

import numpy as np

from .. import functional as F
from .._validation import pair
from ..kernels.pooling import max_pool2d_backward
from .base import Layer


class _Pool2D(Layer):
    def __init__(self, kernel_size, stride=None, padding=0, *, dtype=np.float32):
        super().__init__(dtype)
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else pair("stride", stride, 1)
        self.padding = pair("padding", padding, 0)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2D(_Pool2D):
    """Window maxima (N, C, OH, OW) of x (N, C, H, W); stride defaults to kernel_size."""

    def forward(self, x, training=True):
        x = self._check_input(x)
        y, argmax = F.max_pool2d_with_argmax(x, self.kernel_size, self.stride, self.padding)
        self._cache = (x.shape, argmax)
        return y

    def backward(self, dy, input_grad=True):
        x_shape, argmax = self._cached()
        dy = self._check_grad(dy, argmax.shape)
        if not input_grad:
            return None
        dx = np.empty(x_shape, self.dtype)
        max_pool2d_backward(dy, argmax, dx)
        return dx


class AvgPool2D(_Pool2D):
    """Window means (N, C, OH, OW) of x (N, C, H, W), padded cells counted as zeros."""

    def forward(self, x, training=True):
        x = self._check_input(x)
        self._cache = x
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def backward(self, dy, input_grad=True):
        x = self._cached()
        if not input_grad:
            return None
        return F.avg_pool2d_backward(dy, x, self.kernel_size, self.stride, self.padding)
