"""Fully connected layer."""

import numpy as np

from .. import functional as F
from .._validation import positive_int
from ..init import initial_weight, make_rng
from .base import Layer, weight_and_bias


class Linear(Layer):
    """y (N, out_features) = x (N, in_features) @ weight.T + bias.

    weight (out_features, in_features) is He-initialised (``init="xavier"`` for Glorot), bias zeros.
    """

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, init="he",
                 seed=None, rng=None):
        super().__init__(dtype)
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        rng = make_rng(seed, rng)
        shape = (self.out_features, self.in_features)
        self._add_param("weight", initial_weight(init, shape, in_features, out_features, rng, dtype))
        if bias:
            self._add_param("bias", np.zeros(self.out_features, dtype))

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": "bias" in self.params, "dtype": self.dtype.name}

    @staticmethod
    def param_shapes(in_features, out_features, bias=True, **_):
        """``{name: shape}`` of the parameters ``Linear(**config)`` holds, without allocating them."""
        n_in, n_out = positive_int("in_features", in_features), positive_int("out_features", out_features)
        return weight_and_bias((n_out, n_in), (n_out,), bias)

    def forward(self, x, training=True):
        return self._forward(F.linear, x)

    def _forward(self, function, x):
        """``function(x, weight, bias, workspace)`` (``F.linear``, or ``F.linear_relu`` for a
        fused step), keeping x for the backward."""
        x = self._check_input(x)
        y = function(x, self.params["weight"], self.params.get("bias"), self.workspace)
        self._cache = np.ascontiguousarray(x)
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        return F.linear_backward(dy, self._cached(), self.params["weight"], input_grad,
                                 self.workspace, **self._grad_targets(accumulate))[0]
