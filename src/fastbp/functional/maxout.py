"""Maxout: the maximum over k affine pieces of the input."""

import numpy as np

from .._validation import float_array, same_dtype, same_shape
from ..kernels.maxout import maxout_backward as _maxout_backward, maxout_forward as _maxout_forward
from .linear import linear, linear_backward


def _checked(x, w, b):
    w = float_array("w", w, 3, "(out_features, pieces, in_features)", weights=True)
    d_out, pieces, d_in = w.shape
    if b is not None:
        b = float_array("b", b, 2, "(out_features, pieces)", weights=True)
        same_shape("b", b, (d_out, pieces), "(out_features, pieces) of w")
        b = b.reshape(-1)
    return w.reshape(d_out * pieces, d_in), b, (d_out, pieces)


def maxout_with_argmax(x, w, b=None):
    """(y (N, Dout), argmax (N, Dout) int64): y[n, j] = max_p (x[n] @ w[j, p] + b[j, p])."""
    w2, b2, (d_out, pieces) = _checked(x, w, b)
    z = linear(x, w2, b2).reshape(-1, d_out, pieces)
    y = np.empty(z.shape[:2], z.dtype)
    argmax = np.empty(z.shape[:2], np.int64)
    _maxout_forward(z, y, argmax)
    return y, argmax


def maxout(x, w, b=None):
    """y (N, Dout) from x (N, Din), w (Dout, pieces, Din), b (Dout, pieces) or None."""
    return maxout_with_argmax(x, w, b)[0]


def maxout_backward(dy, x, w, b=None, input_grad=True):
    """(dx (N, Din), dw (Dout, pieces, Din), db (Dout, pieces)): dy flows through the winning
    piece. With ``input_grad=False`` dx is None."""
    y, argmax = maxout_with_argmax(x, w, b)
    dy = float_array("dy", dy, 2, "(N, out_features)")
    same_dtype(dy=dy, x=y)
    same_shape("dy", dy, y.shape, "the shape of maxout's output")
    d_out, pieces, d_in = np.shape(w)
    dz = np.empty((y.shape[0], d_out, pieces), y.dtype)
    _maxout_backward(dy, argmax, dz)
    dx, dw, db = linear_backward(dz.reshape(y.shape[0], -1), x, np.reshape(w, (-1, d_in)), input_grad)
    return dx, dw.reshape(d_out, pieces, d_in), db.reshape(d_out, pieces)
