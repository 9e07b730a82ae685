"""Max and mean pooling over 2-D windows, NCHW, and max pooling of relu(x) in one pass."""

from typing import NamedTuple

import numpy as np

from .._validation import (
    FREE_PADDING,
    float_array,
    pair,
    same_dtype,
    same_shape,
    window_output_size,
)
from ..kernels.workspace import Workspace
from ..kernels.pooling import (
    avg_pool2d_backward as _avg_backward,
    avg_pool2d_forward as _avg_forward,
    max_pool2d_2x2_backward as _max_2x2_backward,
    max_pool2d_2x2_form,
    max_pool2d_2x2_forward_rows as _max_2x2_forward_rows,
    max_pool2d_2x2_forward_runs as _max_2x2_forward_runs,
    max_pool2d_2x2_scratch_size,
    max_pool2d_backward as _max_backward,
    max_pool2d_forward as _max_forward,
    max_pool2d_forward_planes as _max_forward_planes,
    max_pool2d_planes_scratch_size,
)
from .activations import relu, relu_backward


def pool_geometry(x, kernel_size, stride, padding, what):
    """Validated (x, kernel, stride, padding, output shape); stride defaults to the kernel.

    Padding may be at most half the kernel (as in PyTorch), so every window holds a real
    cell, and at most the larger of the input size and ``FREE_PADDING`` (16), so the window
    (at most the padded input) stays in proportion to the input. Kernel size, stride and
    padding are ints or (h, w) pairs of ints up to 2**31 - 1.
    """
    x = float_array("x", x, 4, "(N, C, H, W)")
    kernel = pair("kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair("stride", stride, 1)
    padding = pair("padding", padding, 0)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(
            f"{what}: padding {padding} must be at most half the kernel size {kernel}"
        )
    if any(p > max(size, FREE_PADDING) for p, size in zip(padding, x.shape[2:])):
        raise ValueError(
            f"{what}: padding {padding} must be at most the larger of the input size "
            f"{x.shape[2:]} and {FREE_PADDING}"
        )
    out_hw = window_output_size(x.shape[2:], kernel, stride, padding, what)
    return x, kernel, stride, padding, x.shape[:2] + out_hw


def _checked_grad(dy, x, out_shape, what):
    dy = float_array("dy", dy, 4, "(N, C, OH, OW)")
    same_dtype(dy=dy, x=x)
    same_shape("dy", dy, out_shape, f"the shape of {what}'s output")
    return dy


def max_pool2d_with_argmax(x, kernel_size, stride=None, padding=0, workspace=None):
    """(y (N, C, OH, OW), argmax (N, C, OH, OW) int64 flat index ``row * W + col`` into x).

    Vectorised across planes (``max_pool2d_forward_planes``) unless a plane is too large
    for its indices to be exact in x's float type (2**24 cells in float32)."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "max_pool2d"
    )
    y = np.empty(out_shape, x.dtype)
    argmax = np.empty(out_shape, np.int64)
    height, width = x.shape[2:]
    if height * width < 2 ** (np.finfo(x.dtype).nmant + 1):  # flat indices exact as floats
        scratch = (workspace or Workspace()).per_thread(
            "max_pool2d", max_pool2d_planes_scratch_size(height, width, out_shape[3]), x.dtype)
        _max_forward_planes(x, *kernel, *stride, *padding, y, argmax, scratch)
    else:
        _max_forward(x, *kernel, *stride, *padding, y, argmax)
    return y, argmax


def is_2x2(kernel, stride, padding):
    """Whether a pooling window is the common 2x2, stride 2, unpadded one, which has its
    own kernels."""
    return kernel == stride == (2, 2) and padding == (0, 0)


def max_pool2d_2x2_with_winner(x, out_shape, relu=False, workspace=None, form=None):
    """(y, winner (uint8)) of shape ``out_shape``: the 2x2 max pooling of a validated x,
    of relu(x) with ``relu``. ``form`` is the kernel's loop form, "rows" or "runs" (by
    default the one fastest on this CPU for these rows: ``max_pool2d_2x2_form``); both
    give the same bits."""
    form = max_pool2d_2x2_form(out_shape[3]) if form is None else form
    y = np.empty(out_shape, x.dtype)
    winner = np.empty(out_shape, np.uint8)
    if form == "rows":
        _max_2x2_forward_rows(x, relu, y, winner)
    elif form == "runs":
        workspace = workspace or Workspace()
        size = max_pool2d_2x2_scratch_size(out_shape[3])
        _max_2x2_forward_runs(x, relu, y, winner, workspace.per_thread("max_pool2d", size, x.dtype))
    else:
        raise ValueError(f"form must be 'rows' or 'runs', got {form!r}")
    return y, winner


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """y (N, C, OH, OW): window maxima of x (N, C, H, W); padded cells never win; NaN wins."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "max_pool2d"
    )
    if is_2x2(kernel, stride, padding):
        return max_pool2d_2x2_with_winner(x, out_shape)[0]
    return max_pool2d_with_argmax(x, kernel, stride, padding)[0]


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0):
    """dx (N, C, H, W): dy routed to the first maximum (row-major) of each window."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "max_pool2d"
    )
    dy = _checked_grad(dy, x, out_shape, "max_pool2d")
    return max_pool2d_routes_backward(dy, max_pool2d_with_routes(x, kernel, stride, padding)[1])


class MaxPoolRoutes(NamedTuple):
    """What the backward of a max pooling needs, from its forward: where each window's
    gradient goes. ``winner`` (uint8, which cell of a 2x2 window, and whether relu's
    derivative there is 0) or ``argmax`` (int64 flat index into the plane) has the output's
    shape; ``relu``: from ``relu_max_pool2d``; ``x``: its input, kept where relu's
    derivative is not in ``winner``."""

    x_shape: tuple
    dtype: np.dtype
    relu: bool
    winner: object
    argmax: object
    x: object

    @property
    def out_shape(self):
        return (self.argmax if self.winner is None else self.winner).shape


def _routed(x, kernel_size, stride, padding, workspace, with_relu):
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "max_pool2d"
    )
    if is_2x2(kernel, stride, padding):
        y, winner = max_pool2d_2x2_with_winner(x, out_shape, with_relu, workspace)
        return y, MaxPoolRoutes(x.shape, x.dtype, with_relu, winner, None, None)
    y, argmax = max_pool2d_with_argmax(relu(x) if with_relu else x, kernel, stride, padding,
                                       workspace)
    return y, MaxPoolRoutes(x.shape, x.dtype, with_relu, None, argmax, x if with_relu else None)


def _route_back(dy, routes, through_relu, what):
    if not isinstance(routes, MaxPoolRoutes):
        raise TypeError(f"routes must be the MaxPoolRoutes a forward returned, got "
                        f"{type(routes).__name__}")
    if through_relu and not routes.relu:
        raise ValueError(f"{what} needs the routes of relu_max_pool2d, not of "
                         f"max_pool2d_with_routes")
    dy = float_array("dy", dy, 4, "(N, C, OH, OW)")
    if dy.dtype != routes.dtype:
        raise TypeError(f"dy must be {routes.dtype} like the pooling's input, got {dy.dtype}")
    same_shape("dy", dy, routes.out_shape, "the shape of max_pool2d's output")
    dx = np.empty(routes.x_shape, routes.dtype)
    if routes.winner is not None:
        _max_2x2_backward(dy, routes.winner, through_relu, dx)
        return dx
    _max_backward(dy, routes.argmax, dx)
    return relu_backward(dx, routes.x) if through_relu else dx


def max_pool2d_with_routes(x, kernel_size, stride=None, padding=0, workspace=None):
    """(y, routes): ``max_pool2d(x, ...)`` and what ``max_pool2d_routes_backward`` needs
    (a ``MaxPoolRoutes``), so that the backward does not pool again. ``workspace`` as in
    ``conv2d``."""
    return _routed(x, kernel_size, stride, padding, workspace, False)


def max_pool2d_routes_backward(dy, routes):
    """dx (N, C, H, W): dy routed back to the first maximum of each window, by the routes
    of ``max_pool2d_with_routes`` (or of ``relu_max_pool2d``: then the gradient with
    respect to relu(x))."""
    return _route_back(dy, routes, False, "max_pool2d_routes_backward")


def relu_max_pool2d(x, kernel_size, stride=None, padding=0, workspace=None):
    """(y, routes): y = ``max_pool2d(relu(x), ...)`` in one pass, relu(x) never stored (relu
    commutes with max: the pooling reads x and relu touches only the window maxima), and
    what ``relu_max_pool2d_backward`` needs. Bit for bit the two functions one after the
    other, NaN and the sign of zero included."""
    return _routed(x, kernel_size, stride, padding, workspace, True)


def relu_max_pool2d_backward(dy, routes):
    """dx (N, C, H, W) with respect to the x of ``relu_max_pool2d``: dy routed to each
    window's first maximum, none where relu's derivative there is 0; bit for bit
    ``relu_backward(max_pool2d_backward(dy, relu(x), ...), x)``."""
    return _route_back(dy, routes, True, "relu_max_pool2d_backward")


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """y (N, C, OH, OW): window means of x (N, C, H, W); padded cells count as zeros."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "avg_pool2d"
    )
    y = np.empty(out_shape, x.dtype)
    _avg_forward(x, *kernel, *stride, *padding, y)
    return y


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0):
    """dx (N, C, H, W): each dy cell spread as dy / (KH * KW) over its window."""
    x, kernel, stride, padding, out_shape = pool_geometry(
        x, kernel_size, stride, padding, "avg_pool2d"
    )
    dy = _checked_grad(dy, x, out_shape, "avg_pool2d")
    dx = np.empty_like(x)
    _avg_backward(dy, *kernel, *stride, *padding, dx)
    return dx
