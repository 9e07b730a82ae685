"""Max and mean pooling layers."""

from .. import functional as F
from .._validation import pair
from .base import Layer, ignored_dtype


class _Pool2D(Layer):
    def __init__(self, kernel_size, stride=None, padding=0, *, dtype=None):
        super().__init__()
        ignored_dtype(dtype)
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else pair("stride", stride, 1)
        self.padding = pair("padding", padding, 0)

    def config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class MaxPool2D(_Pool2D):
    """Window maxima (N, C, OH, OW) of x (N, C, H, W); stride defaults to kernel_size."""

    def forward(self, x, training=True):
        y, self._cache = F.max_pool2d_with_routes(self._check_input(x), self.kernel_size,
                                                  self.stride, self.padding, self.workspace)
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        routes = self._cached()
        dy = self._check_grad(dy, routes.out_shape, routes.dtype)
        return F.max_pool2d_routes_backward(dy, routes) if input_grad else None


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
