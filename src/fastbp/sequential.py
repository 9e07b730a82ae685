"""A chain of layers run in order."""

from .layers.base import Layer


class Sequential:
    """``Sequential(layer0, layer1, ...)``: forward runs them in order, backward in reverse.

    ``params`` and ``grads`` are flat dicts keyed ``"{index}.{name}"`` (``"0.weight"``)
    holding the layers' live arrays.
    """

    def __init__(self, *layers):
        if not layers:
            raise ValueError("Sequential needs at least one layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} must be a fastbp Layer, got {type(layer).__name__}")
        self.layers = list(layers)

    def forward(self, x, training=True):
        for i, layer in enumerate(self.layers):
            try:
                y = layer.forward(x, training)
            except ValueError as error:
                if i == 0:
                    raise
                raise ValueError(
                    f"layer {i} {layer!r} cannot take the output of layer {i - 1} "
                    f"{self.layers[i - 1]!r}, of shape {x.shape}: {error}"
                ) from error
            x = y
        return x

    __call__ = forward

    def backward(self, dy, input_grad=True):
        """Fill every layer's grads and return dx; ``input_grad=False`` skips computing dx
        in the first layer (returning None), which a training step never reads."""
        for i in range(len(self.layers) - 1, -1, -1):
            dy = self.layers[i].backward(dy, input_grad or i > 0)
        return dy

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

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
