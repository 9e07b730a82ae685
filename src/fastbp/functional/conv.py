"""2-D convolution (cross-correlation) with stride and zero padding, NCHW."""

import numpy as np

from .._validation import (
    float_array,
    optional_workspace,
    pair,
    same_dtype,
    same_shape,
    window_output_size,
)
from ..kernels.conv2d import Geometry, conv2d_backward_bias, conv2d_forward, refusal
from ..kernels.conv2d import conv2d_backward as _conv2d_backward
from .linear import gradient_targets, optional_bias


def _checked(x, w, stride, padding, workspace, family):
    """Validated (x, w, stride, padding, output shape); checks that ``workspace`` is a
    ``fastbp.Workspace`` or None and ``family`` None or a kernel family that takes these
    shapes."""
    x = float_array("x", x, 4, "(N, C, H, W)")
    w = float_array("w", w, 4, "(out_channels, in_channels, kh, kw)", weights=True)
    optional_workspace("workspace", workspace)
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} channels but w of shape {w.shape} expects {w.shape[1]}"
        )
    stride = pair("stride", stride, 1)
    padding = pair("padding", padding, 0)
    out_hw = window_output_size(x.shape[2:], w.shape[2:], stride, padding, "conv2d")
    out_shape = (x.shape[0], w.shape[0], *out_hw)
    if family is not None:
        if not isinstance(family, str):
            raise TypeError(f"family must be None or a str, got {type(family).__name__}")
        problem = refusal(family, Geometry.of(x.shape, w.shape, out_shape, *stride, *padding))
        if problem:
            raise ValueError(problem)
    return x, w, stride, padding, out_shape


def conv2d(x, w, b=None, stride=1, padding=0, workspace=None, family=None):
    """y (N, O, OH, OW) from x (N, C, H, W), w (O, C, KH, KW), b (O,) or None.

    ``stride`` and ``padding`` are an int or an (h, w) pair of ints up to 2**31 - 1;
    padding may be at most the largest of the input size, KH - 1 (KW - 1) and 16 along
    each axis. ``OH = (H + 2 * padding_h - KH) // stride_h + 1``. Pass the same
    ``fastbp.Workspace`` to every call to reuse the kernels' scratch memory instead of
    allocating it anew. ``family`` names the kernel family to run (a name or family in
    ``fastbp.kernels.conv2d.FAMILIES``, for tests and benchmarks; all give the same results
    up to rounding); None chooses by shape.
    """
    x, w, stride, padding, out_shape = _checked(x, w, stride, padding, workspace, family)
    b = optional_bias(b, w.shape[0], x.dtype)
    same_dtype(x=x, w=w, b=b)
    y = np.empty(out_shape, x.dtype)
    conv2d_forward(x, w, b, *stride, *padding, y, workspace, family)
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, input_grad=True, workspace=None,
                    add_to=None, out=None, family=None):
    """Gradients of ``conv2d``: (dx (N, C, H, W), dw (O, C, KH, KW), db (O,)).

    dx is the convolution of the stride-dilated dy with the flipped, channel-transposed
    kernel; dw is the correlation of x with dy; db sums dy over (N, OH, OW).
    With ``input_grad=False`` dx is not computed and None is returned in its place.
    ``out=(dw, db)`` writes the parameter gradients into those arrays, ``add_to=(dw, db)``
    adds them (to sum micro-batches); either is returned, filled in one pass without new
    arrays (db may be None: not computed). A layer passes its ``grads``. ``family`` as in
    ``conv2d``, for dx and dw.
    """
    x, w, stride, padding, out_shape = _checked(x, w, stride, padding, workspace, family)
    dy = float_array("dy", dy, 4, "(N, O, OH, OW)")
    same_dtype(dy=dy, x=x, w=w)
    same_shape("dy", dy, out_shape, "the shape of conv2d's output")
    dx = np.empty_like(x) if input_grad else None
    dw, db, add = gradient_targets(add_to, out, w)
    _conv2d_backward(dy, x, w, *stride, *padding, dx, dw, workspace, add, family)
    if db is not None:
        conv2d_backward_bias(dy, db, add)
    return dx, dw, db
