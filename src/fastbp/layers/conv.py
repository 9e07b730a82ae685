"""2-D convolution layer."""

import numpy as np

from .. import functional as F
from .._validation import pair, positive_int
from ..init import initial_weight, make_rng
from .base import Layer, weight_and_bias


class Conv2D(Layer):
    """y (N, out_channels, OH, OW) from x (N, in_channels, H, W).

    weight (out_channels, in_channels // groups, kh, kw) He-initialised with fan-in
    (C // groups) * kh * kw. ``dilation`` and ``groups`` as in ``fastbp.functional.conv2d``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dilation=1, groups=1, *, dtype=np.float32, init="he", seed=None, rng=None):
        super().__init__(dtype)
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = pair("stride", stride, 1)
        self.padding = pair("padding", padding, 0)
        self.dilation = pair("dilation", dilation, 1)
        self.groups = _groups(groups, self.in_channels, self.out_channels)
        rng = make_rng(seed, rng)
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        fan_in = self.in_channels // self.groups * kh * kw
        fan_out = self.out_channels // self.groups * kh * kw
        self._add_param("weight", initial_weight(init, shape, fan_in, fan_out, rng, dtype))
        if bias:
            self._add_param("bias", np.zeros(self.out_channels, dtype))

    def config(self):
        """The constructor's arguments; ``dilation`` and ``groups`` only where they are not
        1, so a plain convolution's checkpoint reads as it did before they existed."""
        config = {"in_channels": self.in_channels, "out_channels": self.out_channels,
                  "kernel_size": self.kernel_size, "stride": self.stride,
                  "padding": self.padding}
        if self.dilation != (1, 1):
            config["dilation"] = self.dilation
        if self.groups != 1:
            config["groups"] = self.groups
        return {**config, "bias": "bias" in self.params, "dtype": self.dtype.name}

    @staticmethod
    def param_shapes(in_channels, out_channels, kernel_size, bias=True, groups=1, **_):
        """``{name: shape}`` of the parameters ``Conv2D(**config)`` holds, without allocating them."""
        n_in, n_out = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        per_group = n_in // _groups(groups, n_in, n_out)
        return weight_and_bias((n_out, per_group, *pair("kernel_size", kernel_size, 1)), (n_out,),
                               bias)

    def forward(self, x, training=True):
        x = self._check_input(x)
        y = F.conv2d(x, self.params["weight"], self.params.get("bias"), self.stride, self.padding,
                     self.dilation, self.groups, workspace=self.workspace)
        self._cache = np.ascontiguousarray(x)
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        return F.conv2d_backward(
            dy, self._cached(), self.params["weight"], self.stride, self.padding, self.dilation,
            self.groups, input_grad, self.workspace, **self._grad_targets(accumulate),
        )[0]


def _groups(groups, in_channels, out_channels):
    """``groups`` checked: a positive int dividing both channel counts."""
    groups = positive_int("groups", groups)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels ({in_channels}) and "
                         f"out_channels ({out_channels})")
    return groups
