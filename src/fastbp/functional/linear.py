"""Affine (dense) layer: ``y = x @ w.T + b``, alone or with the ReLU after it."""

import numpy as np

from .._validation import float_array, optional_workspace, same_dtype, same_shape
from ..kernels.affine import (affine_backward_input, affine_backward_params, affine_forward,
                              bias_grad)
from .activations import relu_backward


def optional_bias(b, size, dtype, name="b"):
    """b as a contiguous (size,) array, or zeros of ``dtype`` when b is None."""
    if b is None:
        return np.zeros(size, dtype)
    b = float_array(name, b, 1, f"({size},)", weights=True)
    if b.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {b.shape}")
    return b


def _checked(x, w):
    x = float_array("x", x, 2, "(N, in_features)")
    w = float_array("w", w, 2, "(out_features, in_features)", weights=True)
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} features but w of shape {w.shape} expects {w.shape[1]}"
        )
    return x, w


def linear(x, w, b=None, workspace=None):
    """y (N, Dout) = x (N, Din) @ w.T + b, with w (Dout, Din) and b (Dout,) or None. Pass
    the same ``fastbp.Workspace`` to every call to reuse the packed panels' memory."""
    return _forward(x, w, b, workspace, relu=False)


def linear_relu(x, w, b=None, workspace=None):
    """relu(x @ w.T + b) (N, Dout), the bias and the ReLU added in one pass over y: bit for
    bit ``relu(linear(x, w, b))``. Its backward is ``linear_relu_backward`` with y this
    output."""
    return _forward(x, w, b, workspace, relu=True)


def _forward(x, w, b, workspace, relu):
    x, w = _checked(x, w)
    optional_workspace("workspace", workspace)
    b = optional_bias(b, w.shape[0], x.dtype)
    same_dtype(x=x, w=w, b=b)
    y = np.empty((x.shape[0], w.shape[0]), x.dtype)
    affine_forward(x, w, b, y, workspace, relu)
    return y


def linear_backward(dy, x, w, input_grad=True, workspace=None, add_to=None, out=None):
    """Gradients of ``linear``: dx = dy @ w (N, Din), dw = dy.T @ x (Dout, Din), db = dy.sum(0).

    With ``input_grad=False`` dx is not computed and None is returned in its place. Pass
    the same ``fastbp.Workspace`` to every call to reuse the scratch memory (transposes,
    packed panels).
    ``out=(dw, db)`` writes the parameter gradients into those arrays, ``add_to=(dw, db)``
    adds them (to sum micro-batches); either is returned, filled in one pass without new
    arrays (db may be None: not computed). A layer passes its ``grads``.
    """
    return _backward(dy, x, w, None, input_grad, workspace, add_to, out)


def linear_relu_backward(dy, x, w, y, input_grad=True, workspace=None, add_to=None, out=None):
    """Gradients of ``linear_relu`` from its input x and its output y (N, Dout) (or the
    ReLU's input: either is > 0 exactly where the other is): with g = dy where y > 0, else
    0, dx = g @ w, dw = g.T @ x, db = g.sum(0), bit for bit ``linear_backward(relu_backward(dy,
    y), x, w, ...)``; g and db come from one pass over dy. Arguments and returns as
    ``linear_backward``'s."""
    return _backward(dy, x, w, y, input_grad, workspace, add_to, out)


def _backward(dy, x, w, relu_y, input_grad, workspace, add_to, out):
    """``linear_backward``, dy first back through a ReLU unless relu_y (its output or
    input) is None."""
    x, w = _checked(x, w)
    optional_workspace("workspace", workspace)
    dy = float_array("dy", dy, 2, "(N, out_features)")
    same_dtype(dy=dy, x=x, w=w)
    same_shape("dy", dy, (x.shape[0], w.shape[0]), "the shape of linear's output")
    if relu_y is not None:
        relu_y = float_array("y", relu_y, 2, "(N, out_features)")
        same_dtype(dy=dy, y=relu_y)
        same_shape("y", relu_y, dy.shape, "the shape of dy")
    dw, db, add = gradient_targets(add_to, out, w)
    db_to_sum = db  # the bias gradient affine_backward_params still has to sum
    if relu_y is not None:
        if db is None:
            dy = relu_backward(dy, relu_y)
        else:
            g = np.empty_like(dy)
            bias_grad(dy, db, add, relu=(relu_y, g))  # db from the pass that makes g
            dy, db_to_sum = g, None
    dx = None
    if input_grad:
        dx = np.empty_like(x)
        affine_backward_input(dy, w, dx, workspace)
    affine_backward_params(dy, x, dw, db_to_sum, workspace, add)
    return dx, dw, db


def gradient_targets(add_to, out, w, bias_size=None):
    """``(dw, db, add)``: where a backward puts the parameter gradients of weight ``w``,
    and whether it adds to them. New arrays when ``add_to`` and ``out`` are both None;
    otherwise the given pair of writeable C-contiguous arrays of w's dtype, shaped like
    w and (bias_size,) (default: w's first axis; db may be None: not computed)."""
    bias_size = w.shape[0] if bias_size is None else bias_size
    if add_to is not None and out is not None:
        raise ValueError("pass add_to (add the gradients) or out (write them), not both")
    if add_to is None and out is None:
        return np.empty_like(w), np.empty(bias_size, w.dtype), False
    name = "add_to" if out is None else "out"
    pair = add_to if out is None else out
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (dw, db) of arrays, got {pair!r:.80}")
    dw, db = pair
    for part, target, shape in (("dw", dw, w.shape), ("db", db, (bias_size,))):
        if target is None and part == "db":
            continue
        if (not isinstance(target, np.ndarray) or target.shape != shape
                or target.dtype != w.dtype or not target.flags.c_contiguous
                or not target.flags.writeable):
            raise ValueError(f"{name}'s {part} must be a writeable C-contiguous {w.dtype} "
                             f"array of shape {shape}")
    return dw, db, out is None
