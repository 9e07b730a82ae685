"""Max and mean pooling layers."""

import numpy as np

from .. import functional as F
from .._validation import pair
from ..functional.pooling import is_2x2, max_pool2d_2x2_with_winner, pool_geometry
from ..kernels.pooling import max_pool2d_2x2_backward, max_pool2d_backward
from .base import Layer, ignored_dtype


class _Pool2D(Layer):
    def __init__(self, kernel_size, stride=None, padding=0, *, dtype=None):
        super().__init__()
        ignored_dtype(dtype)
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else pair("stride", stride, 1)
        self.padding = pair("padding", padding, 0)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2D(_Pool2D):
    """Window maxima (N, C, OH, OW) of x (N, C, H, W); stride defaults to kernel_size."""

    def forward(self, x, training=True):
        return self._pool(self._check_input(x), relu=False)

    def forward_of_relu(self, x):
        """``forward(relu(x))`` without computing relu(x) (max commutes with relu); then
        ``backward_of_relu`` gives the gradient w.r.t. x, and ``backward`` still the one
        w.r.t. relu(x)."""
        return self._pool(self._check_input(x), relu=True)

    def backward(self, dy, input_grad=True, accumulate=False):
        return self._unpool(dy, input_grad, relu=False)

    def backward_of_relu(self, dy, input_grad=True):
        """dx (N, C, H, W) w.r.t. the x of the last ``forward_of_relu``."""
        return self._unpool(dy, input_grad, relu=True)

    def _pool(self, x, relu):
        _, kernel, stride, padding, out_shape = pool_geometry(
            x, self.kernel_size, self.stride, self.padding, "max_pool2d")
        if is_2x2(kernel, stride, padding):
            y, winner = max_pool2d_2x2_with_winner(x, out_shape, relu, self.workspace)
            self._cache = (x.shape, x.dtype, x if relu else None, winner, None)
            return y
        y, argmax = F.max_pool2d_with_argmax(F.relu(x) if relu else x, kernel, stride, padding,
                                             self.workspace)
        self._cache = (x.shape, x.dtype, x if relu else None, None, argmax)
        return y

    def _unpool(self, dy, input_grad, relu):
        x_shape, dtype, relu_input, winner, argmax = self._cached()
        if relu and relu_input is None:
            raise RuntimeError(f"{self!r}: backward_of_relu needs forward_of_relu before it")
        dy = self._check_grad(dy, (argmax if winner is None else winner).shape, dtype)
        if not input_grad:
            return None
        dx = np.empty(x_shape, dtype)
        if winner is not None:
            max_pool2d_2x2_backward(dy, winner, relu, dx)
        else:
            max_pool2d_backward(dy, argmax, dx)
            if relu:
                dx = F.relu_backward(dx, relu_input)
        return dx


class AvgPool2D(_Pool2D):
    """Window means (N, C, OH, OW) of x (N, C, H, W), padded cells counted as zeros."""

    def forward(self, x, training=True):
        x = self._check_input(x)
        self._cache = x
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def backward(self, dy, input_grad=True, accumulate=False):
        x = self._cached()
        if not input_grad:
            return None
        return F.avg_pool2d_backward(dy, x, self.kernel_size, self.stride, self.padding)
