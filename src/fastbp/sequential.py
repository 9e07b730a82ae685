"""A chain of layers run in order."""

from .layers.base import Layer
from .layers.fused import fuse


class Sequential:
    """``Sequential(layer0, layer1, ...)``: forward runs them in order, backward in reverse.

    ``params`` and ``grads`` are flat dicts keyed ``"{index}.{name}"`` (``"0.weight"``)
    holding the layers' live arrays. ``backward(dy)`` stores this call's gradients in
    ``grads``; ``backward(dy, accumulate=True)`` adds them (micro-batches).

    Adjacent layers with a fused step (``layers.fused``: a ``ReLU`` directly followed by a
    ``MaxPool2D``, a batch norm, a ``Residual`` or a ``Linear`` by a ``ReLU``) run as that
    one step, with exactly the results of the layers one by one.
    ``layers`` stays the list given; the steps are built from it, and again after it is
    changed.

    A ``Sequential`` can stand wherever a layer can: inside another ``Sequential`` (its
    names then nest: ``"2.0.weight"``) or as a ``Residual``'s block or shortcut.
    ``buffers`` collects the layers' non-trained state (batch norm's running statistics)
    keyed like ``params``; ``no_decay`` the parameters the layers keep out of weight decay.
    """

    def __init__(self, *layers):
        if not layers:
            raise ValueError("Sequential needs at least one layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (Layer, Sequential)):
                raise TypeError(f"layer {i} must be a fastbp Layer, got {type(layer).__name__} "
                                "(a Sequential is accepted too)")
        self.layers = list(layers)
        self._built = (tuple(self.layers), fuse(self.layers))

    def _steps(self):
        """``[(index of the first layer, step)]`` for the current ``layers`` (rebuilt when the
        list has changed): a function of the layers, never of a forward, so every thread
        runs the same steps."""
        layers, steps = self._built
        if len(layers) != len(self.layers) or any(a is not b for a, b in zip(layers, self.layers)):
            self._built = (tuple(self.layers), fuse(self.layers))
            steps = self._built[1]
        return steps

    def forward(self, x, training=True):
        """Each step's output into the next."""
        for i, step in self._steps():
            try:
                y = step.forward(x, training)
            except (TypeError, ValueError) as error:
                named = self._named(error, i, step, x)
                if named is None:
                    raise
                raise named from error
            x = y
        return x

    __call__ = forward

    def backward(self, dy, input_grad=True, accumulate=False):
        """Store every layer's parameter gradients in its grads (add them with
        ``accumulate=True``) and return dx; ``input_grad=False`` skips computing dx in the
        first layer (returning None), which a training step never reads."""
        for i, step in reversed(self._steps()):
            dy = step.backward(dy, input_grad or i > 0, accumulate)
        return dy

    def _named(self, error, i, step, x):
        """The error of step i, naming its layer: a TypeError (input dtype) its first; a
        ValueError (a shape refused) the layer that checks shapes, with the shape and the
        layer before it (None for the first layer's shape: the caller's input)."""
        if isinstance(error, TypeError):
            return TypeError(f"layer {i} {self.layers[i]!r}: {error}")
        j = i + getattr(step, "checks_shape", 0)
        if j == 0:
            return None
        return ValueError(f"layer {j} {self.layers[j]!r} cannot take the output of layer "
                          f"{j - 1} {self.layers[j - 1]!r}, of shape {x.shape}: {error}")

    @property
    def params(self):
        return self._collect("params")

    @property
    def grads(self):
        return self._collect("grads")

    @property
    def buffers(self):
        return self._collect("buffers")

    @property
    def no_decay(self):
        return frozenset(f"{i}.{name}" for i, layer in enumerate(self.layers)
                         for name in getattr(layer, "no_decay", ()))

    def _collect(self, attribute):
        return {
            f"{i}.{name}": array
            for i, layer in enumerate(self.layers)
            for name, array in getattr(layer, attribute, {}).items()
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
        inner = "".join(f"\n  ({i}) {layer!r}".replace("\n", "\n  ").replace("\n  ", "\n", 1)
                        for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
