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


def conv_autoencoder(image_size=28, in_channels=1, *, channels=16, code_channels=4,
                     dtype=np.float32, seed=0):
    """A convolutional autoencoder, x (N, in_channels, S, S) -> reconstruction
    (N, in_channels * S * S), S = ``image_size`` a multiple of 4.

    Encoder: two 3x3 stride-2 convolutions (``channels`` maps, then ``code_channels``),
    each followed by ReLU: the code is (code_channels, S/4, S/4). Decoder: two 4x4 stride-2
    transposed convolutions (padding 1) back to (channels, S/2, S/2) with ReLU, then to
    (in_channels, S, S), linear; then Flatten, to be trained with the squared error
    against the flattened (standardised) input. The first two layers' units form the code.
    """
    (image_size,) = _sizes("image_size", image_size)
    (in_channels,) = _sizes("in_channels", in_channels)
    (channels,) = _sizes("channels", channels)
    (code_channels,) = _sizes("code_channels", code_channels)
    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 (two stride-2 halvings), got {image_size}")
    rng = make_rng(seed)
    kw = dict(dtype=dtype, rng=rng)
    return Sequential(
        L.Conv2D(in_channels, channels, 3, stride=2, padding=1, **kw), L.ReLU(dtype=dtype),
        L.Conv2D(channels, code_channels, 3, stride=2, padding=1, **kw), L.ReLU(dtype=dtype),
        L.ConvTranspose2D(code_channels, channels, 4, stride=2, padding=1, **kw), L.ReLU(dtype=dtype),
        L.ConvTranspose2D(channels, in_channels, 4, stride=2, padding=1, init="xavier", **kw),
        L.Flatten(dtype=dtype),
    )


def _conv_bn(c_in, c_out, kernel, stride, kw, groups=1):
    """A bias-free convolution (the batch norm after it shifts) and its batch norm."""
    conv = L.Conv2D(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False, **kw)
    return [conv, L.BatchNorm2D(c_out, dtype=kw["dtype"])]


def _conv3x3_bn(c_in, c_out, stride, kw, separable):
    """A 3x3 convolution and batch norm; ``separable``: a depthwise 3x3 (groups = c_in),
    batch norm, ReLU, then a pointwise 1x1 and batch norm."""
    if not separable:
        return _conv_bn(c_in, c_out, 3, stride, kw)
    return [*_conv_bn(c_in, c_in, 3, stride, kw, groups=c_in), L.ReLU(dtype=kw["dtype"]),
            *_conv_bn(c_in, c_out, 1, 1, kw)]


def basic_block(c_in, c_out, stride=1, *, separable=False, dtype=np.float32, seed=None, rng=None):
    """He et al.'s basic block: ``Residual(conv3x3-BN-ReLU-conv3x3-BN, shortcut)`` then a
    ReLU, as two layers. The shortcut is the identity, or a strided 1x1 convolution and batch
    norm where the block changes the shape."""
    kw = dict(dtype=dtype, rng=make_rng(seed, rng))
    body = Sequential(*_conv3x3_bn(c_in, c_out, stride, kw, separable), L.ReLU(dtype=dtype),
                      *_conv3x3_bn(c_out, c_out, 1, kw, separable))
    shortcut = None if stride == 1 and c_in == c_out else Sequential(*_conv_bn(c_in, c_out, 1, stride, kw))
    return [L.Residual(body, shortcut), L.ReLU(dtype=dtype)]


def resnet(image_size=28, in_channels=1, num_classes=10, *, widths=(16, 32, 64), blocks=(1, 1, 1),
           separable=False, dtype=np.float32, seed=0):
    """A small residual network for x (N, in_channels, image_size, image_size) -> scores.

    A stem (3x3 convolution to ``widths[0]`` maps, batch norm, ReLU), then one stage per
    width of ``blocks[i]`` basic blocks (``basic_block``), every stage after the first
    starting with a stride-2 block (28x28 -> 14x14 -> 7x7) whose shortcut is a 1x1
    convolution; then global average pooling and one Linear layer. ``separable=True``
    makes every 3x3 convolution of the blocks depthwise-separable (a depthwise 3x3 with
    ``groups`` = channels, then a pointwise 1x1). Convolutions before a batch norm have no
    bias.
    """
    (image_size,) = _sizes("image_size", image_size)
    (in_channels,) = _sizes("in_channels", in_channels)
    (num_classes,) = _sizes("num_classes", num_classes)
    widths, blocks = _sizes("widths", widths), _sizes("blocks", blocks)
    if not widths or len(widths) != len(blocks):
        raise ValueError(f"widths and blocks must have one entry per stage, got {widths} and {blocks}")
    rng = make_rng(seed)
    kw = dict(dtype=dtype, rng=rng)
    layers = [*_conv_bn(in_channels, widths[0], 3, 1, kw), L.ReLU(dtype=dtype)]
    c_in = widths[0]
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            layers += basic_block(c_in, width, stride, separable=separable, dtype=dtype, rng=rng)
            c_in = width
    layers += [L.GlobalAvgPool2D(), L.Linear(c_in, num_classes, **kw)]
    return Sequential(*layers)


MODELS = {"mlp": "flat", "lenet": "image", "linear": "flat", "resnet": "image"}


def build_classifier(name, image_shape, num_classes=10, *, seed=0, dtype=np.float32, **options):
    """A classifier for images of ``image_shape`` (H, W) by name, and its input layout.

    ``"mlp"``: ``mlp(H*W, **options)``; ``"lenet"``: ``lenet5(H)`` (square images);
    ``"linear"``: softmax regression, one Linear layer; ``"resnet"``: ``resnet(H, **options)``
    (square images). Returns ``(model, layout)`` with
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
        raise ValueError(f"{name} needs square images, got {h}x{w}")
    if name == "resnet":
        return resnet(h, 1, num_classes, dtype=dtype, seed=seed, **options), "image"
    return lenet5(h, 1, num_classes, dtype=dtype, seed=seed), "image"
