"""Residual connection: y = block(x) + shortcut(x)."""

import threading

import numpy as np

from ..functional import Workspace
from .base import Layer

_MODEL_PARTS = ("forward", "backward", "params", "grads", "zero_grad", "to")


def _part(name, value, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, Layer) or all(hasattr(value, a) for a in _MODEL_PARTS):
        return value
    raise TypeError(f"{name} must be a fastbp Layer or Sequential{' or None' if optional else ''}, "
                    f"got {type(value).__name__}")


def _sum(dx, dskip, dy):
    """dx + dskip, added into dx where dx is the block's own new array (it shares no memory
    with dy or dskip): a new array there cost a ResNet step 784 page faults (b64, 28 px).
    A block that hands dy back (a Flatten of 2-D input) gets a new array, so the caller's
    dy is never written."""
    if not dx.flags.writeable or np.may_share_memory(dx, dy) or np.may_share_memory(dx, dskip):
        return dx + dskip
    np.add(dx, dskip, out=dx)
    return dx


def _prefixed(prefix, mapping):
    return {f"{prefix}.{name}": array for name, array in mapping.items()}


class Residual(Layer):
    """``y = block(x) + (shortcut(x) if shortcut else x)``, block and shortcut layers or
    ``Sequential``s (the shortcut a 1x1 strided ``Conv2D`` where the block changes the
    shape). Parameters, gradients and buffers are the parts', keyed ``"block.<name>"``
    and ``"shortcut.<name>"`` (``"block.0.weight"`` for a Sequential block); ``backward``
    sums the two paths' input gradients and passes ``accumulate`` to both."""

    def __init__(self, block, shortcut=None):
        # No Layer.__init__: params and grads are views of the parts', not arrays of its own.
        self.block = _part("block", block)
        self.shortcut = _part("shortcut", shortcut, optional=True)
        self._local = threading.local()
        self.workspace = Workspace()

    @property
    def dtype(self):
        return None  # the parts hold the parameters

    def _parts(self):
        return [("block", self.block)] + ([("shortcut", self.shortcut)] if self.shortcut is not None else [])

    @property
    def params(self):
        return {k: v for name, part in self._parts() for k, v in _prefixed(name, part.params).items()}

    @property
    def grads(self):
        return {k: v for name, part in self._parts() for k, v in _prefixed(name, part.grads).items()}

    @property
    def buffers(self):
        return {k: v for name, part in self._parts()
                for k, v in _prefixed(name, getattr(part, "buffers", {})).items()}

    @property
    def no_decay(self):
        return frozenset(k for name, part in self._parts()
                         for k in _prefixed(name, dict.fromkeys(getattr(part, "no_decay", ()))))

    def forward(self, x, training=True):
        return np.add(*self._paths(x, training))

    def _paths(self, x, training):
        """(block(x), shortcut(x) or x), checked to have one shape."""
        x = self._check_input(x)
        y = self.block.forward(x, training)
        skip = x if self.shortcut is None else self.shortcut.forward(x, training)
        if y.shape != skip.shape:
            raise ValueError(f"Residual: the block's output {y.shape} and the shortcut's {skip.shape} "
                             "differ in shape; give a shortcut that maps x to the block's output shape")
        self._cache = y.shape, y.dtype
        return y, skip

    def backward(self, dy, input_grad=True, accumulate=False):
        shape, dtype = self._cached()
        dy = self._check_grad(dy, shape, dtype)
        dx = self.block.backward(dy, input_grad, accumulate)
        dskip = dy if self.shortcut is None else self.shortcut.backward(dy, input_grad, accumulate)
        return _sum(dx, dskip, dy) if input_grad else None

    def zero_grad(self):
        for _, part in self._parts():
            part.zero_grad()

    def to(self, dtype):
        for _, part in self._parts():
            part.to(dtype)
        self._local = threading.local()
        return self

    def __repr__(self):
        inner = f"\n  block={self.block!r}"
        if self.shortcut is not None:
            inner += f",\n  shortcut={self.shortcut!r}"
        return f"Residual({inner.replace(chr(10), chr(10) + '  ')}\n)"
