"""Adjacent layers that ``Sequential`` runs as one step: one pass over the data where the
layers one by one would make two, with exactly their results.

A fusion is a class registered for a pair of layer types with ``@fusion(First, Second)``
(exact types: a subclass may change what the layer computes). ``Sequential`` builds one
from the two layers, ``cls(first, second)``, wherever they follow each other
(``fuse``). It has a layer's ``forward(x, training)`` and ``backward(dy, input_grad,
accumulate)``, does its work through a functional pair (``fastbp.functional``), and keeps
what its backward needs in the two layers' per-thread caches, each as that layer's own
forward would have left it (or with values its backward treats the same): a fused step
holds no state of its own, so one model can run in several threads, the steps can be
rebuilt at any time, and either layer's own backward still works after the fused forward.
To add a fusion: its functional pair, then a ``FusedPair`` class here.
"""

from .. import functional as F
from .activations import ReLU
from .batchnorm import BatchNorm1D, BatchNorm2D
from .linear import Linear
from .pooling import MaxPool2D
from .residual import Residual

FUSIONS = {}  # (type of the first layer, type of the second) -> fused step class


def fusion(first, second):
    """Class decorator: register a fused step for a ``first`` layer directly followed by a
    ``second``."""
    def register(cls):
        FUSIONS[first, second] = cls
        return cls
    return register


def fuse(layers):
    """The steps that run ``layers`` in order: ``[(index of the step's first layer, step)]``,
    a step being a layer or a fused pair, pairs taken from the left. A function of the
    layers' types alone."""
    steps, i = [], 0
    while i < len(layers):
        fused = FUSIONS.get((type(layers[i]), type(layers[i + 1]))) if i + 1 < len(layers) else None
        if fused is None:
            steps.append((i, layers[i]))
            i += 1
        else:
            steps.append((i, fused(layers[i], layers[i + 1])))
            i += 2
    return steps


class FusedPair:
    """What every fused step shares: its two layers, in order, and its repr."""

    def __init__(self, first, second):
        self.layers = (first, second)

    def __repr__(self):
        return f"{type(self).__name__}({self.layers[0]!r}, {self.layers[1]!r})"


@fusion(ReLU, MaxPool2D)
class ReLUMaxPool2D(FusedPair):
    """A ReLU and the max pooling after it in one pass (``F.relu_max_pool2d``): relu
    commutes with max, so the pooling reads the pre-activations and relu touches only the
    pooled values; the backward routes dy straight to x (``F.relu_max_pool2d_backward``)."""

    #: Which of the two layers a ValueError (a shape refused) is about: a ReLU takes any.
    checks_shape = 1

    def forward(self, x, training=True):
        relu, pool = self.layers
        x = relu._check_input(x)
        y, routes = F.relu_max_pool2d(x, pool.kernel_size, pool.stride, pool.padding,
                                      pool.workspace)
        relu._cache, pool._cache = x, routes  # as relu.forward(x), pool.forward(relu(x))
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        relu, pool = self.layers
        routes = pool._cached()
        if not routes.relu:
            raise RuntimeError(f"{self!r}: backward needs this pair's forward "
                               f"(relu_max_pool2d) before it, not {pool!r}'s alone")
        dy = pool._check_grad(dy, routes.out_shape, routes.dtype)
        return F.relu_max_pool2d_backward(dy, routes) if input_grad else None


@fusion(BatchNorm1D, ReLU)
@fusion(BatchNorm2D, ReLU)
class BatchNormReLU(FusedPair):
    """A batch norm and the ReLU after it in one pass (``F.batch_norm_relu``): the
    normalised values are never stored, and the backward computes relu's gradient on the
    way into batch norm's sums (``F.batch_norm_relu_backward``)."""

    #: Which of the two layers a ValueError (a shape refused) is about.
    checks_shape = 0

    def forward(self, x, training=True):
        norm, relu = self.layers
        y = norm._forward(F.batch_norm_relu, x, training)
        # relu's own backward reads only where its input is > 0, and so is y: it may stand
        # in for the normalised values, which are not stored.
        relu._cache = y
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        norm = self.layers[0]
        if norm._cached()[0].relu_out is None:
            raise RuntimeError(f"{self!r}: backward needs this pair's forward "
                               f"(batch_norm_relu) before it, not {norm!r}'s alone")
        return norm._backward(F.batch_norm_relu_backward, dy, input_grad, accumulate)


@fusion(Residual, ReLU)
class ResidualReLU(FusedPair):
    """A residual block and the ReLU after it: the sum and the ReLU in one pass
    (``F.add_relu``), one new array where the two layers make two."""

    #: Which of the two layers a ValueError (a shape refused) is about.
    checks_shape = 0

    def forward(self, x, training=True):
        residual, relu = self.layers
        y = F.add_relu(*residual._paths(x, training))
        relu._cache = y  # as in BatchNormReLU: y > 0 exactly where the sum is
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        residual, relu = self.layers
        return residual.backward(relu.backward(dy), input_grad, accumulate)


@fusion(Linear, ReLU)
class LinearReLU(FusedPair):
    """A Linear layer and the ReLU after it: the bias and the ReLU added in one pass
    (``F.linear_relu``); the backward takes relu's gradient in the pass that sums the bias
    gradient (``F.linear_relu_backward``)."""

    #: Which of the two layers a ValueError (a shape refused) is about.
    checks_shape = 0

    def forward(self, x, training=True):
        linear, relu = self.layers
        y = linear._forward(F.linear_relu, x)
        relu._cache = y  # as in BatchNormReLU: y > 0 exactly where relu's input is
        return y

    def backward(self, dy, input_grad=True, accumulate=False):
        linear, relu = self.layers
        # relu's cache is y after this pair's forward, x after the layers' own: either
        # gives its gradient
        return F.linear_relu_backward(dy, linear._cached(), linear.params["weight"],
                                      relu._cached(), input_grad, linear.workspace,
                                      **linear._grad_targets(accumulate))[0]
