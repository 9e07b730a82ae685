"""Maxout layer: the maximum over k learned affine pieces."""

import numpy as np

from .. import functional as F
from .._validation import positive_int
from ..init import initial_weight, make_rng
from .base import Layer, weight_and_bias


class Maxout(Layer):
    """y (N, out_features)[n, j] = max_p x[n] @ weight[j, p] + bias[j, p].

    weight (out_features, pieces, in_features), bias (out_features, pieces).
    """

    def __init__(self, in_features, out_features, pieces, bias=True, *, dtype=np.float32,
                 init="xavier", seed=None, rng=None):
        super().__init__(dtype)
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.pieces = positive_int("pieces", pieces)
        rng = make_rng(seed, rng)
        shape = (self.out_features, self.pieces, self.in_features)
        self._add_param("weight", initial_weight(init, shape, in_features, out_features, rng, dtype))
        if bias:
            self._add_param("bias", np.zeros((self.out_features, self.pieces), dtype))

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "pieces": self.pieces, "bias": "bias" in self.params, "dtype": self.dtype.name}

    @staticmethod
    def param_shapes(in_features, out_features, pieces, bias=True, **_):
        """``{name: shape}`` of the parameters ``Maxout(**config)`` holds, without allocating them."""
        n_in, n_out = positive_int("in_features", in_features), positive_int("out_features", out_features)
        k = positive_int("pieces", pieces)
        return weight_and_bias((n_out, k, n_in), (n_out, k), bias)

    def forward(self, x, training=True):
        x = self._check_input(x)
        self._cache = x
        return F.maxout(x, self.params["weight"], self.params.get("bias"))

    def backward(self, dy, input_grad=True, accumulate=False):
        dx, dw, db = F.maxout_backward(dy, self._cached(), self.params["weight"],
                                       self.params.get("bias"), input_grad)
        self._store(accumulate, weight=dw, bias=db)
        return dx
