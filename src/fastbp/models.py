"""Model builders: a few standard architectures as ``Sequential``s, seeded.

Every builder draws all its layers' initial weights from one generator seeded with
``seed``, so the same arguments give the same network.
"""

import numbers

import numpy as np

from . import layers as L
from .init import make_rng
from .sequential import Sequential

ACTIVATIONS = {"relu": L.ReLU, "leaky_relu": L.LeakyReLU, "tanh": L.Tanh, "sigmoid": L.Sigmoid,
               "elu": L.ELU, "softplus": L.Softplus}


def _activation(name, dtype):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name](dtype=dtype)


def _sizes(name, values):
    values = [values] if isinstance(values, numbers.Integral) else list(values)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be positive ints, got {values!r}")
    return [int(v) for v in values]


def mlp(in_features, hidden=(256, 128), out_features=10, *, activation="relu", dropout=0.0,
        dtype=np.float32, seed=0):
    """Dense network x (N, in_features) -> scores (N, out_features).

    ``Linear -> activation [-> Dropout]`` for each size in ``hidden``, then a final
    ``Linear`` (no activation: pair it with a softmax cross-entropy loss). He
    initialisation for ReLU-family activations, Xavier/Glorot for tanh and sigmoid.
    ``mlp(784)`` is the 3-layer 784-256-128-10 ReLU network.
    """
    (in_features,) = _sizes("in_features", in_features)
    (out_features,) = _sizes("out_features", out_features)
    hidden = _sizes("hidden", hidden)
    init = "xavier" if activation in ("tanh", "sigmoid") else "he"
    rng = make_rng(seed)
    layers, width = [], in_features
    for size in hidden:
        layers += [L.Linear(width, size, dtype=dtype, init=init, rng=rng), _activation(activation, dtype)]
        if dropout:
            layers.append(L.Dropout(dropout, dtype=dtype, rng=rng))
        width = size
    layers.append(L.Linear(width, out_features, dtype=dtype, init=init, rng=rng))
    return Sequential(*layers)


def lenet5(image_size=28, in_channels=1, num_classes=10, *, dtype=np.float32, seed=0):
    """LeNet-5 style CNN for x (N, in_channels, image_size, image_size) -> scores (N, num_classes).

    conv 5x5 (6 maps, padding 2) -> ReLU -> 2x2 max-pool -> conv 5x5 (16 maps) -> ReLU ->
    2x2 max-pool -> Flatten -> Linear 120 -> ReLU -> Linear 84 -> ReLU -> Linear num_classes.
    The second convolution is padded by 2 when the pooled map is smaller than 10 pixels
    (8x8 digits), so small images still fit.
    """
    (image_size,) = _sizes("image_size", image_size)
    if image_size < 4:
        raise ValueError(f"image_size must be at least 4, got {image_size}")
    rng = make_rng(seed)
    kw = dict(dtype=dtype, rng=rng)
    side = image_size // 2
    padding2 = 0 if side >= 10 else 2
    side = (side + 2 * padding2 - 4) // 2
    return Sequential(
        L.Conv2D(in_channels, 6, 5, padding=2, **kw), L.ReLU(dtype=dtype), L.MaxPool2D(2, dtype=dtype),
        L.Conv2D(6, 16, 5, padding=padding2, **kw), L.ReLU(dtype=dtype), L.MaxPool2D(2, dtype=dtype),
        L.Flatten(dtype=dtype),
        L.Linear(16 * side * side, 120, **kw), L.ReLU(dtype=dtype),
        L.Linear(120, 84, **kw), L.ReLU(dtype=dtype),
        L.Linear(84, num_classes, **kw),
    )


def autoencoder(in_features, hidden=(128, 32), *, activation="relu", dtype=np.float32, seed=0):
    """Encoder ``in_features -> hidden[0] -> ... -> hidden[-1]`` (the code) and the mirrored
    decoder back to ``in_features``, x (N, in_features) -> reconstruction (N, in_features).

    Hidden layers use ``activation``; the output layer is linear, to be trained with the
    squared error against the (standardised) input. ``encoder_depth(model)`` layers
    form the encoder.
    """
    (in_features,) = _sizes("in_features", in_features)
    hidden = _sizes("hidden", hidden)
    if not hidden:
        raise ValueError("hidden must name at least one layer size (the code size)")
    init = "xavier" if activation in ("tanh", "sigmoid") else "he"
    rng = make_rng(seed)
    widths = [in_features, *hidden, *reversed(hidden[:-1])]
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [L.Linear(a, b, dtype=dtype, init=init, rng=rng), _activation(activation, dtype)]
    layers.append(L.Linear(widths[-1], in_features, dtype=dtype, init="xavier", rng=rng))
    return Sequential(*layers)


def encoder_depth(hidden):
    """The number of leading layers of ``autoencoder(..., hidden)`` that form the encoder."""
    return 2 * len(_sizes("hidden", hidden))


MODELS = {"mlp": "flat", "lenet": "image", "linear": "flat"}


def build_classifier(name, image_shape, num_classes=10, *, seed=0, dtype=np.float32, **options):
    """A classifier for images of ``image_shape`` (H, W) by name, and its input layout.

    ``"mlp"``: ``mlp(H*W, **options)``; ``"lenet"``: ``lenet5(H)`` (square images);
    ``"linear"``: softmax regression, one Linear layer. Returns ``(model, layout)`` with
    layout "flat" (inputs (N, H*W)) or "image" (inputs (N, 1, H, W)).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    h, w = image_shape
    if name == "mlp":
        return mlp(h * w, out_features=num_classes, seed=seed, dtype=dtype, **options), "flat"
    if name == "linear":
        return Sequential(L.Linear(h * w, num_classes, dtype=dtype, init="xavier", seed=seed)), "flat"
    if h != w:
        raise ValueError(f"lenet needs square images, got {h}x{w}")
    return lenet5(h, 1, num_classes, dtype=dtype, seed=seed), "image"
