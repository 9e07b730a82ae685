"""2-D transposed convolution layer."""

import numpy as np

from .. import functional as F
from .._validation import pair, positive_int
from ..init import initial_weight, make_rng
from .base import Layer, weight_and_bias
from .conv import _groups


class ConvTranspose2D(Layer):
    """y (N, out_channels, OH, OW) from x (N, in_channels, H, W) with
    ``OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1``.

    weight (in_channels, out_channels // groups, kh, kw), He-initialised with fan-in
    (in_channels // groups) * kh * kw; arguments as in ``fastbp.functional.conv_transpose2d``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, dilation=1, bias=True, *, dtype=np.float32,
                 init="he", seed=None, rng=None):
        super().__init__(dtype)
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = pair("stride", stride, 1)
        self.padding = pair("padding", padding, 0)
        self.output_padding = pair("output_padding", output_padding, 0)
        self.groups = _groups(groups, self.in_channels, self.out_channels)
        self.dilation = pair("dilation", dilation, 1)
        for extra, s, d in zip(self.output_padding, self.stride, self.dilation):
            if extra >= max(s, d):
                raise ValueError(f"output_padding {self.output_padding} must be smaller than the "
                                 f"stride {self.stride} or the dilation {self.dilation}")
        rng = make_rng(seed, rng)
        kh, kw = self.kernel_size
        shape = (self.in_channels, self.out_channels // self.groups, kh, kw)
        fan_in = self.in_channels // self.groups * kh * kw
        fan_out = self.out_channels // self.groups * kh * kw
        self._add_param("weight", initial_weight(init, shape, fan_in, fan_out, rng, dtype))
        if bias:
            self._add_param("bias", np.zeros(self.out_channels, dtype))

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "output_padding": self.output_padding, "groups": self.groups,
                "dilation": self.dilation, "bias": "bias" in self.params,
                "dtype": self.dtype.name}

    @staticmethod
    def param_shapes(in_channels, out_channels, kernel_size, groups=1, bias=True, **_):
        """``{name: shape}`` of the parameters ``ConvTranspose2D(**config)`` holds, without
        allocating them."""
        n_in, n_out = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        per_group = n_out // _groups(groups, n_in, n_out)
        return weight_and_bias((n_in, per_group, *pair("kernel_size", kernel_size, 1)), (n_out,),
                               bias)

    def _arguments(self):
        return (self.stride, self.padding, self.output_padding, self.groups, self.dilation)

    def forward(self, x, training=True):
        x = self._check_input(x)
        y = F.conv_transpose2d(x, self.params["weight"], self.params.get("bias"),
                               *self._arguments(), workspace=self.workspace)
        self._cache = np.ascontiguousarray(x)
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        return F.conv_transpose2d_backward(
            dy, self._cached(), self.params["weight"], *self._arguments(), input_grad,
            self.workspace, **self._grad_targets(accumulate),
        )[0]
