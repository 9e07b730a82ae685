"""A chain of layers run in order."""

from .layers.activations import ReLU
from .layers.base import Layer
from .layers.pooling import MaxPool2D


class Sequential:
    """``Sequential(layer0, layer1, ...)``: forward runs them in order, backward in reverse.

    ``params`` and ``grads`` are flat dicts keyed ``"{index}.{name}"`` (``"0.weight"``)
    holding the layers' live arrays. ``backward(dy)`` stores this call's gradients in
    ``grads``; ``backward(dy, accumulate=True)`` adds them (micro-batches).
    """

    def __init__(self, *layers):
        if not layers:
            raise ValueError("Sequential needs at least one layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} must be a fastbp Layer, got {type(layer).__name__}")
        self.layers = list(layers)

    def forward(self, x, training=True):
        """Each layer's output into the next. A ReLU followed by a max pooling runs as one
        pass (``ReLU.forward_then_max_pool``): the same results, a pass over the largest
        activations fewer each way."""
        layers = self.layers
        i = 0
        while i < len(layers):
            fused = self._relu_then_max_pool(i)
            try:
                if fused:
                    y = layers[i].forward_then_max_pool(x, layers[i + 1])
                else:
                    y = layers[i].forward(x, training)
            except TypeError as error:
                raise TypeError(f"layer {i} {layers[i]!r}: {error}") from error
            except ValueError as error:
                j = i + 1 if fused else i  # a ReLU takes any shape: the pooling refused it
                if j == 0:
                    raise
                raise ValueError(
                    f"layer {j} {layers[j]!r} cannot take the output of layer {j - 1} "
                    f"{layers[j - 1]!r}, of shape {x.shape}: {error}"
                ) from error
            x = y
            i += 2 if fused else 1
        return x

    __call__ = forward

    def backward(self, dy, input_grad=True, accumulate=False):
        """Store every layer's parameter gradients in its grads (add them with
        ``accumulate=True``) and return dx; ``input_grad=False`` skips computing dx in the
        first layer (returning None), which a training step never reads."""
        fused = self._fused_pairs()
        i = len(self.layers) - 1
        while i >= 0:
            if i - 1 in fused:
                dy = self.layers[i].backward_of_relu(dy, input_grad or i > 1)
                i -= 2
            else:
                dy = self.layers[i].backward(dy, input_grad or i > 0, accumulate)
                i -= 1
        return dy

    def _fused_pairs(self):
        """The first index of every pair that forward runs as one (a function of the layers'
        types only, so concurrent calls from several threads agree on it)."""
        fused, i = set(), 0
        while i < len(self.layers):
            if self._relu_then_max_pool(i):
                fused.add(i)
                i += 2
            else:
                i += 1
        return fused

    def _relu_then_max_pool(self, i):
        """Whether layers i and i + 1 are a ReLU and a max pooling that can run as one."""
        layers = self.layers
        return (i + 1 < len(layers) and type(layers[i]) is ReLU
                and type(layers[i + 1]) is MaxPool2D)

    @property
    def params(self):
        return self._collect("params")

    @property
    def grads(self):
        return self._collect("grads")

    def _collect(self, attribute):
        return {
            f"{i}.{name}": array
            for i, layer in enumerate(self.layers)
            for name, array in getattr(layer, attribute).items()
        }

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def to(self, dtype, optimizer=None):
        """Convert every parameter and gradient to ``dtype`` (float32 or float64), in place,
        and return the model. Pass the ``optimizer`` built over this model to convert its
        state too and make it update the new arrays."""
        if optimizer is not None:
            optimizer.check_params(self.params)
        for layer in self.layers:
            layer.to(dtype)
        if optimizer is not None:
            optimizer.follow(self.params)
        return self

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
