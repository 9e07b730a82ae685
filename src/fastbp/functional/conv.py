"""2-D convolution (cross-correlation) with stride, zero padding, dilation and groups, NCHW."""

import numpy as np

from .._validation import (
    float_array,
    optional_workspace,
    pair,
    positive_int,
    same_dtype,
    same_shape,
    window_output_size,
)
from ..kernels.conv2d import Geometry, conv2d_backward_bias, conv2d_forward, refusal
from ..kernels.conv2d import conv2d_backward as _conv2d_backward
from .linear import gradient_targets, optional_bias


def _checked(x, w, stride, padding, dilation, groups, workspace, family):
    """Validated (x, w, stride, padding, dilation, groups, output shape); checks that
    ``workspace`` is a ``fastbp.Workspace`` or None and ``family`` None or a kernel family
    that takes these shapes."""
    x = float_array("x", x, 4, "(N, C, H, W)")
    w = float_array("w", w, 4, "(out_channels, in_channels // groups, kh, kw)", weights=True)
    optional_workspace("workspace", workspace)
    groups = positive_int("groups", groups)
    if x.shape[1] % groups:
        raise ValueError(f"groups={groups} must divide the {x.shape[1]} input channels of x")
    if w.shape[0] % groups:
        raise ValueError(
            f"groups={groups} must divide the {w.shape[0]} output channels of w (shape {w.shape})"
        )
    if x.shape[1] != w.shape[1] * groups:
        expects = (f"{w.shape[1]}" if groups == 1
                   else f"{w.shape[1] * groups} ({w.shape[1]} per group, groups={groups})")
        raise ValueError(f"x has {x.shape[1]} channels but w of shape {w.shape} expects {expects}")
    stride = pair("stride", stride, 1)
    padding = pair("padding", padding, 0)
    dilation = pair("dilation", dilation, 1)
    out_hw = window_output_size(x.shape[2:], w.shape[2:], stride, padding, "conv2d", dilation)
    out_shape = (x.shape[0], w.shape[0], *out_hw)
    if family is not None:
        if not isinstance(family, str):
            raise TypeError(f"family must be None or a str, got {type(family).__name__}")
        problem = refusal(family, Geometry.of(x.shape, w.shape, out_shape, *stride, *padding,
                                              *dilation, groups))
        if problem:
            raise ValueError(problem)
    return x, w, stride, padding, dilation, groups, out_shape


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, workspace=None, family=None):
    """y (N, O, OH, OW) from x (N, C, H, W), w (O, C // groups, KH, KW), b (O,) or None.

    ``stride``, ``padding`` and ``dilation`` are an int or an (h, w) pair of ints up to
    2**31 - 1 (stride and dilation at least 1); padding may be at most the largest of the
    input size, the dilated kernel size - 1 and 16 along each axis. A dilated kernel's taps
    sit ``dilation`` apart: ``OH = (H + 2 * padding_h - dilation_h * (KH - 1) - 1) //
    stride_h + 1``. With ``groups`` G (dividing C and O), the channels are split into G
    groups and output channel o sees only the C // G input channels of its group
    ``o // (O // G)``; ``groups == C`` is the depthwise convolution (PyTorch's conventions).
    Pass the same ``fastbp.Workspace`` to every call to reuse the kernels' scratch memory
    instead of allocating it anew. ``family`` names the kernel family to run (a name or
    family in ``fastbp.kernels.conv2d.FAMILIES``, for tests and benchmarks; all give the
    same results up to rounding); None chooses by shape.
    """
    x, w, stride, padding, dilation, groups, out_shape = _checked(
        x, w, stride, padding, dilation, groups, workspace, family)
    b = optional_bias(b, w.shape[0], x.dtype)
    same_dtype(x=x, w=w, b=b)
    y = np.empty(out_shape, x.dtype)
    conv2d_forward(x, w, b, *stride, *padding, y, workspace, family, dilation, groups)
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, input_grad=True,
                    workspace=None, add_to=None, out=None, family=None):
    """Gradients of ``conv2d``: (dx (N, C, H, W), dw (O, C // groups, KH, KW), db (O,)).

    dx is the convolution of the stride-dilated dy with the flipped, channel-transposed
    kernel (group by group, its taps ``dilation`` apart); dw is the correlation of x with
    dy; db sums dy over (N, OH, OW).
    With ``input_grad=False`` dx is not computed and None is returned in its place.
    ``out=(dw, db)`` writes the parameter gradients into those arrays, ``add_to=(dw, db)``
    adds them (to sum micro-batches); either is returned, filled in one pass without new
    arrays (db may be None: not computed). A layer passes its ``grads``. ``family`` as in
    ``conv2d``, for dx and dw.
    """
    x, w, stride, padding, dilation, groups, out_shape = _checked(
        x, w, stride, padding, dilation, groups, workspace, family)
    dy = float_array("dy", dy, 4, "(N, O, OH, OW)")
    same_dtype(dy=dy, x=x, w=w)
    same_shape("dy", dy, out_shape, "the shape of conv2d's output")
    dx = np.empty_like(x) if input_grad else None
    dw, db, add = gradient_targets(add_to, out, w)
    _conv2d_backward(dy, x, w, *stride, *padding, dx, dw, workspace, add, family, dilation,
                     groups)
    if db is not None:
        conv2d_backward_bias(dy, db, add)
    return dx, dw, db
