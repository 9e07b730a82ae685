"""2-D transposed convolution (the input gradient of ``conv2d`` used as a forward), NCHW.

x (N, C, H, W), w (C, O // groups, KH, KW), y (N, O, OH, OW) with
``OH = (H - 1) * stride_h - 2 * padding_h + dilation_h * (KH - 1) + output_padding_h + 1``
(PyTorch's conventions). Seen from ``conv2d`` with weights w (C output channels, O // groups
input channels per group), y has the shape of that convolution's input and x of its
output: the transposed convolution's forward is conv2d's input gradient (the notes'
flipped-kernel convolution of the stride-dilated x), its input gradient the ordinary
convolution of dy with w, and its weight gradient conv2d's weight gradient with the roles
of x and dy swapped. All three run on the convolution kernels (``kernels.conv2d``).
"""

import numpy as np

from .._validation import float_array, optional_workspace, pair, positive_int, same_dtype, same_shape
from ..kernels.conv2d import conv2d_backward as _conv2d_backward
from ..kernels.conv2d import (
    conv2d_backward_bias,
    conv2d_backward_input,
    conv2d_forward_and_backward_weight,
)
from .linear import gradient_targets, optional_bias


def _checked(x, w, stride, padding, output_padding, groups, dilation, workspace):
    """Validated (x, w, stride, padding, dilation, groups, output shape)."""
    x = float_array("x", x, 4, "(N, C, H, W)")
    w = float_array("w", w, 4, "(in_channels, out_channels // groups, kh, kw)", weights=True)
    optional_workspace("workspace", workspace)
    groups = positive_int("groups", groups)
    if x.shape[1] % groups:
        raise ValueError(f"groups={groups} must divide the {x.shape[1]} input channels of x")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"x has {x.shape[1]} channels but w of shape {w.shape} expects {w.shape[0]}")
    stride = pair("stride", stride, 1)
    padding = pair("padding", padding, 0)
    dilation = pair("dilation", dilation, 1)
    output_padding = pair("output_padding", output_padding, 0)
    for extra, s, d in zip(output_padding, stride, dilation):
        if extra >= max(s, d):
            raise ValueError(f"output_padding {output_padding} must be smaller than the stride "
                             f"{stride} or the dilation {dilation}, along each axis")
    out_hw = []
    for size, k, s, p, d, extra in zip(x.shape[2:], w.shape[2:], stride, padding, dilation,
                                       output_padding):
        out = (size - 1) * s - 2 * p + d * (k - 1) + extra + 1
        if out < 1:
            raise ValueError(
                f"conv_transpose2d: padding {padding} leaves no output for input {x.shape[2:]}, "
                f"kernel {w.shape[2:]}, stride {stride} and dilation {dilation}")
        if p > max(out, d * (k - 1), 16):
            raise ValueError(f"conv_transpose2d: padding {padding} must be at most the largest "
                             "of the output size, the dilated kernel size - 1 and 16, along each axis")
        out_hw.append(out)
    out_shape = (x.shape[0], w.shape[1] * groups, *out_hw)
    return x, w, stride, padding, dilation, groups, out_shape


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     workspace=None):
    """y (N, O, OH, OW) from x (N, C, H, W), w (C, O // groups, KH, KW), b (O,) or None:

    ``y[n, o, i*s + ki*d - p, j*s + kj*d - p] += x[n, c, i, j] * w[c, o - G(c) O/G, ki, kj]``
    summed over (c of o's group, i, j, ki, kj), plus b[o]: every input cell spreads its
    value, weighted by the kernel, over the output cells a convolution with the same
    arguments would have read it from. ``OH = (H - 1) * stride - 2 * padding +
    dilation * (KH - 1) + output_padding + 1``; ``output_padding`` (smaller than the stride
    or the dilation) picks among the output sizes a strided convolution maps to H.
    """
    x, w, stride, padding, dilation, groups, out_shape = _checked(
        x, w, stride, padding, output_padding, groups, dilation, workspace)
    b = optional_bias(b, out_shape[1], x.dtype)
    same_dtype(x=x, w=w, b=b)
    y = np.empty(out_shape, x.dtype)
    conv2d_backward_input(x, w, *stride, *padding, y, workspace, dilation=dilation, groups=groups,
                          bias=b if b.any() else None)
    return y


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, input_grad=True, workspace=None, add_to=None, out=None):
    """Gradients of ``conv_transpose2d``: (dx (N, C, H, W), dw (C, O // groups, KH, KW),
    db (O,)). dx is the convolution of dy with w (``conv2d``'s forward, w's C rows as its
    output channels); dw is ``conv2d``'s weight gradient with x in the role of the
    convolution's upstream gradient and dy in that of its input; db sums dy over
    (N, OH, OW). ``input_grad``, ``add_to`` and ``out`` as in ``conv2d_backward``.
    """
    x, w, stride, padding, dilation, groups, out_shape = _checked(
        x, w, stride, padding, output_padding, groups, dilation, workspace)
    dy = float_array("dy", dy, 4, "(N, O, OH, OW)")
    same_dtype(dy=dy, x=x, w=w)
    same_shape("dy", dy, out_shape, "the shape of conv_transpose2d's output")
    dw, db, add = gradient_targets(add_to, out, w, out_shape[1])
    dx = None
    if input_grad:
        dx = np.empty_like(x)
        conv2d_forward_and_backward_weight(dy, w, np.zeros(w.shape[0], x.dtype), x, *stride,
                                           *padding, dx, dw, workspace, add, dilation, groups)
    else:
        _conv2d_backward(x, dy, w, *stride, *padding, None, dw, workspace, add,
                         dilation=dilation, groups=groups)
    if db is not None:
        conv2d_backward_bias(dy, db, add)
    return dx, dw, db
