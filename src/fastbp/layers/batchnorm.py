"""Batch normalisation layers."""

import numpy as np

from .. import functional as F
from .._validation import positive_int, real_number
from .base import Layer, float_dtype


class _BatchNorm(Layer):
    """Normalises every channel (axis 1) by its mean and variance, then scales and shifts it:
    y = weight * (x - mean) / sqrt(var + eps) + bias.

    ``forward(x, training=True)`` uses the batch's statistics (the variance biased) and moves
    ``running_mean``/``running_var`` towards them by ``momentum`` (the variance unbiased,
    as PyTorch does); ``training=False`` uses the running statistics. Parameters "weight"
    (ones) and "bias" (zeros), neither weight-decayed by default (``no_decay``); the
    running statistics are buffers (``buffers``): checkpoints save them, optimisers do not
    touch them. Running one model in several threads at once in training mode updates the
    running statistics from each thread in turn, in no fixed order.
    """

    #: the input's number of dimensions: 2 (N, C) or 4 (N, C, H, W)
    ndim = None
    #: parameters the optimisers' default rule leaves out of weight decay
    no_decay = frozenset({"weight", "bias"})

    def __init__(self, num_features, momentum=0.1, eps=1e-5, *, dtype=np.float32, seed=None, rng=None):
        super().__init__(dtype)
        self.num_features = positive_int("num_features", num_features)
        self.momentum = real_number("momentum", momentum, low=0.0, high=1.0)
        self.eps = real_number("eps", eps, low=0.0, low_open=True)
        self._add_param("weight", np.ones(self.num_features, self.dtype))
        self._add_param("bias", np.zeros(self.num_features, self.dtype))
        self.buffers = {"running_mean": np.zeros(self.num_features, self.dtype),
                        "running_var": np.ones(self.num_features, self.dtype)}

    def config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps,
                "dtype": self.dtype.name}

    @staticmethod
    def param_shapes(num_features, **_):
        n = positive_int("num_features", num_features)
        return {"weight": (n,), "bias": (n,)}

    @property
    def running_mean(self):
        return self.buffers["running_mean"]

    @property
    def running_var(self):
        return self.buffers["running_var"]

    def forward(self, x, training=True):
        return self._forward(F.batch_norm, x, training)

    def backward(self, dy, input_grad=True, accumulate=False):
        return self._backward(F.batch_norm_backward, dy, input_grad, accumulate)

    def _forward(self, function, x, training):
        """y by ``function`` (``F.batch_norm`` or ``F.batch_norm_relu``), keeping its cache."""
        x = self._check_input(x)
        if x.ndim != self.ndim or x.shape[1] != self.num_features:
            layout = "(N, C)" if self.ndim == 2 else "(N, C, H, W)"
            raise ValueError(f"{self!r} takes {self.ndim}-D input {layout} with C = {self.num_features}, "
                             f"got shape {x.shape}")
        y, cache = function(x, self.params["weight"], self.params["bias"], self.running_mean,
                            self.running_var, training, self.momentum, self.eps)
        self._cache = cache, x.shape
        return y

    def _backward(self, function, dy, input_grad, accumulate):
        """dx by ``function`` (``F.batch_norm_backward`` or ``F.batch_norm_relu_backward``)."""
        cache, shape = self._cached()
        dy = self._check_grad(dy, shape, cache.x.dtype)
        targets = (self.grads["weight"], self.grads["bias"])
        kind = "add_to" if accumulate else "out"
        return function(dy, cache, self.params["weight"], input_grad, **{kind: targets})[0]

    def to(self, dtype):
        converting = self.dtype != float_dtype(dtype)
        super().to(dtype)
        if converting:
            self.buffers = {name: array.astype(self.dtype) for name, array in self.buffers.items()}
        return self


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of (N, num_features) input (after a Linear layer)."""

    ndim = 2


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of (N, num_channels, H, W) input, statistics over N, H and W."""

    ndim = 4

    def __init__(self, num_channels, momentum=0.1, eps=1e-5, *, dtype=np.float32, seed=None, rng=None):
        super().__init__(num_channels, momentum, eps, dtype=dtype, seed=seed, rng=rng)

    def config(self):
        return {"num_channels": self.num_features, "momentum": self.momentum, "eps": self.eps,
                "dtype": self.dtype.name}

    @staticmethod
    def param_shapes(num_channels, **_):
        return _BatchNorm.param_shapes(num_channels)
