"""The PyTorch CPU peer. Optional: fastbp never depends on torch; ``available()`` says
whether it can be imported (``pip install torch==2.13.0`` gives the CPU build).

Forward passes call ``torch.nn.functional`` (batch norm: ATen's ``native_batch_norm``);
backward passes call the ATen backward operators directly (what autograd would run), so no
autograd graph is timed. The training steps run a mirror of fastbp's network (``mirror``)
with autograd.
"""

import functools
import importlib.util

import numpy as np

from .networks import LEARNING_RATE, batch, fastbp_network, initial_params
from .shapes import inputs


def available():
    return importlib.util.find_spec("torch") is not None


def version():
    import torch

    return torch.__version__


def set_num_threads(n):
    import torch

    torch.set_num_threads(n)


def supports(shape):
    """Every catalogue shape."""
    return True


def passes(shape, dtype):
    """Zero-argument callables for the compared passes of a conv, transposed conv, linear,
    pool, batch norm or activation shape."""
    import torch
    import torch.nn.functional as F

    aten = torch.ops.aten
    t = {name: torch.from_numpy(array) for name, array in inputs(shape, dtype).items()}
    x, dy, w, b = (t.get(name) for name in ("x", "dy", "w", "b"))
    if shape.family == "activation":  # the backward of tanh and sigmoid reads their output
        sigmoid, tanh = torch.sigmoid(x), torch.tanh(x)
        return {
            "relu_forward": lambda: F.relu(x),
            "relu_backward": lambda: aten.threshold_backward(dy, x, 0),
            "leaky_relu_forward": lambda: F.leaky_relu(x, 0.01),
            "leaky_relu_backward": lambda: aten.leaky_relu_backward(dy, x, 0.01, False),
            "sigmoid_forward": lambda: torch.sigmoid(x),
            "sigmoid_backward": lambda: aten.sigmoid_backward(dy, sigmoid),
            "tanh_forward": lambda: torch.tanh(x),
            "tanh_backward": lambda: aten.tanh_backward(dy, tanh),
            "elu_forward": lambda: F.elu(x, 1.0),
            "elu_backward": lambda: aten.elu_backward(dy, 1.0, 1, 1, False, x),
            "softplus_forward": lambda: F.softplus(x),
            "softplus_backward": lambda: aten.softplus_backward(dy, x, 1, 20),
        }
    if shape.family == "linear":
        return {"forward": lambda: F.linear(x, w, b),
                "backward": lambda: (dy @ w, dy.t() @ x, dy.sum(0))}
    if shape.family == "batchnorm":  # training: the batch's statistics; the running ones move
        mean, var = torch.zeros_like(w), torch.ones_like(w)  # the running statistics
        eps, momentum = shape.eps, shape.momentum
        saved = aten.native_batch_norm(x, w, b, mean, var, True, momentum, eps)[1:]
        return {"forward": lambda: aten.native_batch_norm(x, w, b, mean, var, True, momentum, eps),
                "backward": lambda: aten.native_batch_norm_backward(
                    dy, x, w, mean, var, *saved, True, eps, [True, True, True])}
    s, p = [shape.stride] * 2, [shape.pad] * 2
    if shape.family == "conv":
        d, g = [shape.dilation] * 2, shape.groups
        return {
            "forward": lambda: F.conv2d(x, w, b, s, p, d, g),
            "backward": lambda: aten.convolution_backward(
                dy, x, w, [shape.o], s, p, d, False, [0, 0], g, [True, True, True]),
        }
    if shape.family == "conv_transpose":
        d, g, extra = [shape.dilation] * 2, shape.groups, [shape.output_padding] * 2
        return {
            "forward": lambda: F.conv_transpose2d(x, w, b, s, p, extra, g, d),
            "backward": lambda: aten.convolution_backward(
                dy, x, w, [shape.o], s, p, d, True, extra, g, [True, True, True]),
        }
    k = [shape.k] * 2
    indices = aten.max_pool2d_with_indices(x, k, s, p)[1]
    return {
        "max_forward": lambda: aten.max_pool2d_with_indices(x, k, s, p),
        "max_backward": lambda: aten.max_pool2d_with_indices_backward(
            dy, x, k, s, p, [1, 1], False, indices),
        "avg_forward": lambda: F.avg_pool2d(x, k, s, p),
        "avg_backward": lambda: aten.avg_pool2d_backward(dy, x, k, s, p, False, True, None),
    }


@functools.cache
def _residual_class():
    import torch.nn as nn

    class Residual(nn.Module):
        """``block(x) + (shortcut(x) if shortcut else x)``, as ``fastbp.layers.Residual``."""

        def __init__(self, block, shortcut):
            super().__init__()
            self.block, self.shortcut = block, shortcut

        def forward(self, x):
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    return Residual


def mirror(layer):
    """The ``torch.nn`` module computing what the fastbp layer (or ``Sequential``) does, its
    parameters and buffers named as fastbp names them (``"3.block.0.weight"``); their
    values are torch's defaults (load ``initial_params``)."""
    import torch.nn as nn

    from .. import layers as L
    from ..sequential import Sequential

    if isinstance(layer, Sequential):
        return nn.Sequential(*(mirror(part) for part in layer.layers))
    if isinstance(layer, L.Residual):
        shortcut = None if layer.shortcut is None else mirror(layer.shortcut)
        return _residual_class()(mirror(layer.block), shortcut)
    if isinstance(layer, L.Conv2D):
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                         layer.padding, layer.dilation, layer.groups, bias="bias" in layer.params)
    if isinstance(layer, L.BatchNorm2D):
        return nn.BatchNorm2d(layer.num_features, layer.eps, layer.momentum)
    if isinstance(layer, L.Linear):
        return nn.Linear(layer.in_features, layer.out_features, bias="bias" in layer.params)
    if isinstance(layer, L.MaxPool2D):
        return nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, L.GlobalAvgPool2D):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    plain = {L.ReLU: nn.ReLU, L.Flatten: nn.Flatten}
    if type(layer) in plain:
        return plain[type(layer)]()
    raise TypeError(f"no torch mirror for {type(layer).__name__}")


def network(net, dtype):
    """The torch mirror (``mirror``) of ``fastbp.bench.networks.fastbp_network(net)``,
    holding ``initial_params``; in training mode."""
    import torch

    model = mirror(fastbp_network(net, dtype))
    model.to(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)
    state = {key: torch.from_numpy(value) for key, value in initial_params(net, dtype).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not key.endswith("num_batches_tracked") for key in missing):
        raise RuntimeError(f"the torch mirror of {net} does not match: missing {missing}, "
                           f"unexpected {unexpected}")
    return model.train()


def train_step(shape, dtype):
    """The SGD step of ``fastbp.bench.networks.fastbp_step`` with autograd; returns the loss."""
    import torch
    import torch.nn.functional as F

    model = network(shape.net, dtype)
    params = list(model.parameters())
    x, labels = (torch.from_numpy(array) for array in batch(shape, dtype))

    def step():
        loss = F.cross_entropy(model(x), labels)
        for param in params:
            param.grad = None
        loss.backward()
        with torch.no_grad():
            for param in params:
                param.sub_(param.grad, alpha=LEARNING_RATE)
        return loss.item()

    return step
