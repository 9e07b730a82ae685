"""The PyTorch CPU peer. Optional: fastbp never depends on torch; ``available()`` says
whether it can be imported (``pip install torch==2.13.0`` gives the CPU build).

Forward passes call ``torch.nn.functional``; backward passes call the ATen backward
operators directly (what autograd would run), so no autograd graph is timed.
"""

import importlib.util

import numpy as np

from .networks import LEARNING_RATE, NETWORKS, batch, initial_params
from .shapes import inputs


def available():
    return importlib.util.find_spec("torch") is not None


def version():
    import torch

    return torch.__version__


def set_num_threads(n):
    import torch

    torch.set_num_threads(n)


def passes(shape, dtype):
    """Zero-argument callables for the compared passes of a conv, linear or pool shape."""
    import torch
    import torch.nn.functional as F

    aten = torch.ops.aten
    t = {name: torch.from_numpy(array) for name, array in inputs(shape, dtype).items()}
    x, dy = t["x"], t["dy"]
    if shape.family == "linear":
        w, b = t["w"], t["b"]
        return {"forward": lambda: F.linear(x, w, b),
                "backward": lambda: (dy @ w, dy.t() @ x, dy.sum(0))}
    k, s, p = [shape.k] * 2, [shape.stride] * 2, [shape.pad] * 2
    if shape.family == "conv":
        w, b = t["w"], t["b"]
        d, g = [shape.dilation] * 2, shape.groups
        return {
            "forward": lambda: F.conv2d(x, w, b, s, p, d, g),
            "backward": lambda: aten.convolution_backward(
                dy, x, w, [shape.o], s, p, d, False, [0, 0], g, [True, True, True]),
        }
    indices = aten.max_pool2d_with_indices(x, k, s, p)[1]
    return {
        "max_forward": lambda: aten.max_pool2d_with_indices(x, k, s, p),
        "max_backward": lambda: aten.max_pool2d_with_indices_backward(
            dy, x, k, s, p, [1, 1], False, indices),
        "avg_forward": lambda: F.avg_pool2d(x, k, s, p),
        "avg_backward": lambda: aten.avg_pool2d_backward(dy, x, k, s, p, False, True, None),
    }


def _module(spec):
    import torch.nn as nn

    kind, *args = spec
    if kind == "linear":
        return nn.Linear(*args)
    if kind == "conv":
        c_in, c_out, k, stride, pad = args
        return nn.Conv2d(c_in, c_out, k, stride, pad)
    if kind == "maxpool":
        return nn.MaxPool2d(args[0])
    return {"relu": nn.ReLU, "flatten": nn.Flatten}[kind]()


def network(net, dtype):
    """``torch.nn.Sequential`` of the network, holding ``initial_params``."""
    import torch

    model = torch.nn.Sequential(*(_module(spec) for spec in NETWORKS[net][1]))
    model.to(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)
    state = {key: torch.from_numpy(value) for key, value in initial_params(net, dtype).items()}
    model.load_state_dict(state)
    return model


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
