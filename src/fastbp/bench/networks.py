"""The benchmark networks, defined once, and fastbp's SGD training step over them.

A network of ``NETWORKS`` is an input shape (without the batch axis) and a list of layer
specs: ``("linear", in, out)``, ``("conv", in, out, k, stride, pad)``, ``("relu",)``,
``("maxpool", k)``, ``("flatten",)``; one of ``MODELS`` (the residual network, which is
no flat list) an input shape and a ``fastbp.models`` builder. ``fastbp_network`` builds
either; the PyTorch peer mirrors that network layer for layer, the NumPy peer builds the
spec lists only; all start from the same weights and running statistics
(``initial_params``).
"""

from .. import functional as F
from ..layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU
from ..models import resnet
from ..optim import SGD
from ..sequential import Sequential
from .shapes import random_array, random_labels

CLASSES = 10
LEARNING_RATE = 0.01

NETWORKS = {
    "mlp": ((784,), [
        ("linear", 784, 256), ("relu",), ("linear", 256, 128), ("relu",), ("linear", 128, 10),
    ]),
    "lenet5": ((1, 28, 28), [
        ("conv", 1, 6, 5, 1, 2), ("relu",), ("maxpool", 2),
        ("conv", 6, 16, 5, 1, 0), ("relu",), ("maxpool", 2),
        ("flatten",),
        ("linear", 400, 120), ("relu",), ("linear", 120, 84), ("relu",), ("linear", 84, 10),
    ]),
}
# fastbp.models.resnet's defaults: stem, three stages of one basic block (16, 32, 64 maps),
# global average pooling, Linear; batch norm in training mode (the batch's statistics)
MODELS = {"resnet": ((1, 28, 28), resnet)}


def _layer(spec, dtype, seed):
    kind, *args = spec
    if kind == "linear":
        return Linear(*args, dtype=dtype, seed=seed)
    if kind == "conv":
        c_in, c_out, k, stride, pad = args
        return Conv2D(c_in, c_out, k, stride, pad, dtype=dtype, seed=seed)
    if kind == "maxpool":
        return MaxPool2D(args[0], dtype=dtype)
    return {"relu": ReLU, "flatten": Flatten}[kind](dtype=dtype)


def fastbp_network(net, dtype):
    """A seeded ``fastbp.Sequential`` of the network ``net``: of ``NETWORKS``, layer i
    seeded with i; of ``MODELS``, its builder's with seed 0."""
    if net in MODELS:
        return MODELS[net][1](dtype=dtype, seed=0)
    return Sequential(*(_layer(spec, dtype, i) for i, spec in enumerate(NETWORKS[net][1])))


def initial_params(net, dtype):
    """Copies of the starting weights and buffers (batch norm's running statistics), keyed
    as ``Sequential`` keys them: ``{"0.weight": array, "3.block.1.running_mean": array, ...}``."""
    model = fastbp_network(net, dtype)
    return {key: value.copy() for key, value in {**model.params, **model.buffers}.items()}


def batch(shape, dtype):
    """Seeded (images (batch, *input shape), labels (batch,)) for a ``Train`` shape."""
    input_shape = (NETWORKS.get(shape.net) or MODELS[shape.net])[0]
    return (random_array((shape.batch, *input_shape), dtype, 0),
            random_labels(shape.batch, CLASSES, 1))


def fastbp_step(shape, dtype):
    """A zero-argument SGD step: forward, softmax cross-entropy, backward (which stores
    the step's gradients), ``p -= lr * g`` (fastbp's fused SGD kernel). Returns the loss."""
    model = fastbp_network(shape.net, dtype)
    x, labels = batch(shape, dtype)
    optimizer = SGD(model, LEARNING_RATE)

    def step():
        loss, dlogits = F.softmax_cross_entropy(model.forward(x), labels)
        model.backward(dlogits, input_grad=False)  # as torch: the images need no gradient
        optimizer.step()
        return loss

    return step
