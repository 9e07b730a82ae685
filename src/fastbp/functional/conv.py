"""2-D convolution (cross-correlation) with stride and zero padding, NCHW."""

import numpy as np

from .._validation import float_array, pair, same_dtype, same_shape, window_output_size
from ..kernels.conv2d import conv2d_backward as _conv2d_backward
from ..kernels.conv2d import conv2d_backward_bias, conv2d_forward
from .linear import checked_targets, optional_bias


def _checked(x, w, stride, padding):
    """Validated (x, w, stride, padding, output shape)."""
    x = float_array("x", x, 4, "(N, C, H, W)")
    w = float_array("w", w, 4, "(out_channels, in_channels, kh, kw)")
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} channels but w of shape {w.shape} expects {w.shape[1]}"
        )
    stride = pair("stride", stride, 1)
    padding = pair("padding", padding, 0)
    out_hw = window_output_size(x.shape[2:], w.shape[2:], stride, padding, "conv2d")
    return x, w, stride, padding, (x.shape[0], w.shape[0], *out_hw)


def conv2d(x, w, b=None, stride=1, padding=0, workspace=None):
    """y (N, O, OH, OW) from x (N, C, H, W), w (O, C, KH, KW), b (O,) or None.

    ``stride`` and ``padding`` are an int or an (h, w) pair;
    ``OH = (H + 2 * padding_h - KH) // stride_h + 1``. Pass the same ``fastbp.Workspace``
    to every call to reuse the kernels' scratch memory instead of allocating it anew.
    """
    x, w, stride, padding, out_shape = _checked(x, w, stride, padding)
    b = optional_bias(b, w.shape[0], x.dtype)
    same_dtype(x=x, w=w, b=b)
    y = np.empty(out_shape, x.dtype)
    conv2d_forward(x, w, b, *stride, *padding, y, workspace)
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, input_grad=True, workspace=None,
                    add_to=None):
    """Gradients of ``conv2d``: (dx (N, C, H, W), dw (O, C, KH, KW), db (O,)).

    dx is the convolution of the stride-dilated dy with the flipped, channel-transposed
    kernel; dw is the correlation of x with dy; db sums dy over (N, OH, OW).
    With ``input_grad=False`` dx is not computed and None is returned in its place.
    ``add_to=(dw, db)`` adds the gradients to those arrays (db may be None: not computed)
    and returns them, in one pass and without new arrays: a layer's accumulated grads.
    """
    x, w, stride, padding, out_shape = _checked(x, w, stride, padding)
    dy = float_array("dy", dy, 4, "(N, O, OH, OW)")
    same_dtype(dy=dy, x=x, w=w)
    same_shape("dy", dy, out_shape, "the shape of conv2d's output")
    dx = np.empty_like(x) if input_grad else None
    if add_to is None:
        dw, db = np.empty_like(w), np.empty(w.shape[0], w.dtype)
    else:
        dw, db = checked_targets(add_to, w)
    _conv2d_backward(dy, x, w, *stride, *padding, dx, dw, workspace, add_to is not None)
    if db is not None:
        conv2d_backward_bias(dy, db, add_to is not None)
    return dx, dw, db
