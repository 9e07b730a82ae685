"""The named benchmark shapes, their work counts (FLOPs, bytes, images) and seeded data.

The catalogues are append-only: a name, once published, always means the same shape,
so results stay comparable across commits. ``TINY`` holds one small shape per family,
used to warm the JIT, to measure start-up and by the smoke tests; it is not part of the
default benchmark selection.
"""

from dataclasses import dataclass

import numpy as np


def _out(size, k, stride, pad, dilation=1):
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


@dataclass(frozen=True)
class Conv:
    """x (n, c, h, w) correlated with w (o, c // groups, k, k) at ``stride`` and ``pad``, the
    kernel's taps ``dilation`` apart."""

    name: str
    n: int
    c: int
    h: int
    w: int
    o: int
    k: int
    stride: int = 1
    pad: int = 0
    dilation: int = 1
    groups: int = 1
    family = "conv"

    @property
    def out_hw(self):
        return (_out(self.h, self.k, self.stride, self.pad, self.dilation),
                _out(self.w, self.k, self.stride, self.pad, self.dilation))

    @property
    def flops(self):
        """2 * N * O * OH * OW * (C / groups) * K * K: the forward's, and each of dx's and dw's."""
        oh, ow = self.out_hw
        return 2 * self.n * self.o * oh * ow * (self.c // self.groups) * self.k * self.k


@dataclass(frozen=True)
class ConvTranspose(Conv):
    """x (n, c, h, w) spread by w (c, o // groups, k, k) onto y (n, o, OH, OW), the transposed
    convolution at ``stride``, ``pad`` and ``output_padding`` (PyTorch's layout and sizes)."""

    output_padding: int = 0
    family = "conv_transpose"

    @property
    def out_hw(self):
        """``(size - 1) * stride - 2 * pad + dilation * (k - 1) + output_padding + 1`` each."""
        return tuple((size - 1) * self.stride - 2 * self.pad + self.dilation * (self.k - 1)
                     + self.output_padding + 1 for size in (self.h, self.w))

    @property
    def flops(self):
        """2 * N * C * H * W * (O / groups) * K * K: the forward's, and each of dx's and dw's
        (those of the convolution it transposes)."""
        return 2 * self.n * self.c * self.h * self.w * (self.o // self.groups) * self.k * self.k


@dataclass(frozen=True)
class Dense:
    """x (n, d_in) times w (d_out, d_in).T."""

    name: str
    n: int
    d_in: int
    d_out: int
    family = "linear"

    @property
    def flops(self):
        """2 * N * Din * Dout: the forward's, and each of dx's and dw's."""
        return 2 * self.n * self.d_in * self.d_out


@dataclass(frozen=True)
class Pool:
    """k x k windows at ``stride`` and ``pad`` over x (n, c, h, w)."""

    name: str
    n: int
    c: int
    h: int
    w: int
    k: int
    stride: int
    pad: int = 0
    family = "pool"

    @property
    def out_hw(self):
        return _out(self.h, self.k, self.stride, self.pad), _out(self.w, self.k, self.stride, self.pad)

    @property
    def outputs(self):
        oh, ow = self.out_hw
        return self.n * self.c * oh * ow

    @property
    def flops(self):
        """One comparison (max) or addition (mean) per window cell: N * C * OH * OW * K * K."""
        return self.outputs * self.k * self.k


@dataclass(frozen=True)
class BatchNorm:
    """Batch norm of x (n, c, h, w) with the batch's statistics (training), weight and bias (c,).
    Memory-bound: its work is bytes (``nbytes`` of the kernels in ``fastbp.bench.kernels``)."""

    name: str
    n: int
    c: int
    h: int
    w: int
    eps: float = 1e-5
    momentum: float = 0.1
    family = "batchnorm"


@dataclass(frozen=True)
class Elementwise:
    """An activation over a tensor of ``shape``."""

    name: str
    shape: tuple
    family = "activation"

    @property
    def size(self):
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Scores:
    """A loss over scores (n, classes) and n labels."""

    name: str
    n: int
    classes: int
    family = "loss"


@dataclass(frozen=True)
class Train:
    """One SGD step of the network ``net`` (see ``fastbp.bench.networks``) on ``batch`` images."""

    name: str
    net: str
    batch: int
    family = "train"


CONV = (
    Conv("lenet_conv1", 64, 1, 28, 28, 6, 5, 1, 2),
    Conv("lenet_conv2", 64, 6, 14, 14, 16, 5),
    Conv("conv3x3_32to64_32px", 64, 32, 32, 32, 64, 3, 1, 1),
    Conv("conv3x3s2_64to128_32px", 64, 64, 32, 32, 128, 3, 2, 1),
    Conv("stem7x7s2_3to64_224px", 8, 3, 224, 224, 64, 7, 2, 3),
    Conv("conv3x3s2_3to25_31px", 100, 3, 31, 31, 25, 3, 2, 1),
    Conv("depthwise3x3_64x64x32x32", 64, 64, 32, 32, 64, 3, 1, 1, groups=64),
    Conv("grouped3x3g4_64to64_32px", 64, 64, 32, 32, 64, 3, 1, 1, groups=4),
    Conv("dilated3x3d2_32to64_32px", 64, 32, 32, 32, 64, 3, 1, 2, dilation=2),
)
DENSE = (
    Dense("linear_784to256_b256", 256, 784, 256),
    Dense("linear_1024to1024_b1024", 1024, 1024, 1024),
)
POOL = (
    Pool("pool2x2s2_64x32x32x32", 64, 32, 32, 32, 2, 2),
    Pool("pool3x3s2_64x32x32x32", 64, 32, 32, 32, 3, 2),
)
ELEMENTWISE = (Elementwise("act_64x32x32x32", (64, 32, 32, 32)),)
SCORES = (Scores("logits_256x10", 256, 10), Scores("logits_1024x1000", 1024, 1000))
TRAIN = (
    Train("mlp_b64", "mlp", 64),
    Train("mlp_b256", "mlp", 256),
    Train("lenet5_b64", "lenet5", 64),
    Train("lenet5_b256", "lenet5", 256),
    Train("resnet_b64", "resnet", 64),
)
CONV_TRANSPOSE = (ConvTranspose("convT4x4s2_64x32x16x16to16", 64, 32, 16, 16, 16, 4, 2, 1),)
BATCHNORM = (BatchNorm("batchnorm2d_64x32x32x32", 64, 32, 32, 32),)
TINY = (
    Conv("tiny_conv", 2, 3, 9, 9, 4, 3, 2, 1),
    Dense("tiny_linear", 4, 16, 8),
    Pool("tiny_pool", 2, 3, 8, 8, 3, 2, 1),
    Elementwise("tiny_act", (2, 3, 4, 4)),
    Scores("tiny_logits", 4, 5),
    Train("tiny_mlp", "mlp", 4),
    ConvTranspose("tiny_conv_transpose", 2, 3, 5, 5, 4, 3, 2, 1, output_padding=1),
    BatchNorm("tiny_batchnorm", 2, 3, 4, 4),
    Train("tiny_resnet", "resnet", 2),
)

DEFAULT = CONV + CONV_TRANSPOSE + DENSE + POOL + BATCHNORM + ELEMENTWISE + SCORES + TRAIN
BY_NAME = {shape.name: shape for shape in DEFAULT + TINY}


def of_family(family, tiny=False):
    """The shapes of one family ("conv", "linear", ...): the default ones, or the tiny ones."""
    return tuple(s for s in (TINY if tiny else DEFAULT) if s.family == family)


def tiny(family):
    """The tiny shape of ``family``."""
    return of_family(family, tiny=True)[0]


def random_array(shape, dtype, seed):
    """Standard normal samples of ``shape`` and ``dtype``, reproducible from ``seed``."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def random_labels(n, classes, seed):
    """n class indices in [0, classes), int64, reproducible from ``seed``."""
    return np.random.default_rng(seed).integers(0, classes, n)


def array_shapes(shape):
    """``{name: shape}`` of the arrays ``inputs`` makes for a kernel shape."""
    family = shape.family
    if family == "activation":  # flat, as the kernels take them
        return {"x": (shape.size,), "dy": (shape.size,)}
    if family == "linear":
        return {"x": (shape.n, shape.d_in), "dy": (shape.n, shape.d_out),
                "w": (shape.d_out, shape.d_in), "b": (shape.d_out,)}
    x_shape = (shape.n, shape.c, shape.h, shape.w)
    if family == "conv":
        return {"x": x_shape, "dy": (shape.n, shape.o, *shape.out_hw),
                "w": (shape.o, shape.c // shape.groups, shape.k, shape.k), "b": (shape.o,)}
    if family == "conv_transpose":
        return {"x": x_shape, "dy": (shape.n, shape.o, *shape.out_hw),
                "w": (shape.c, shape.o // shape.groups, shape.k, shape.k), "b": (shape.o,)}
    if family == "batchnorm":
        return {"x": x_shape, "dy": x_shape, "w": (shape.c,), "b": (shape.c,)}
    return {"x": x_shape, "dy": (shape.n, shape.c, *shape.out_hw)}


def inputs(shape, dtype):
    """The seeded arrays every peer computes on, for a conv, transposed conv, linear, pool,
    batch norm or activation shape: ``x``, the upstream gradient ``dy`` and, but for
    pooling and activations, ``w`` and ``b`` (batch norm's weight and bias)."""
    seeds = {"x": 0, "w": 1, "b": 2, "dy": 3}
    return {name: random_array(array_shape, dtype, seeds[name])
            for name, array_shape in array_shapes(shape).items()}
