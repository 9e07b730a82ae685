"""Affine (dense) layer kernels, row-per-sample: ``y = x @ w.T + b``.

Shapes: x (N, Din), w (Dout, Din), b (Dout,), y (N, Dout).
"""

from numba import prange

from ._jit import reduction_kernel


@reduction_kernel
def affine_forward(x, w, b, y):
    """y[n, o] = b[o] + sum_i x[n, i] * w[o, i]; writes y (N, Dout)."""
    n_batch, d_in = x.shape
    d_out = w.shape[0]
    for job in prange(n_batch * d_out):
        n = job // d_out
        o = job - n * d_out
        acc = b[o]
        for i in range(d_in):
            acc += x[n, i] * w[o, i]
        y[n, o] = acc


@reduction_kernel
def affine_backward_input(dy, w, dx):
    """dx = dy @ w; dy (N, Dout), w (Dout, Din), dx (N, Din)."""
    n_batch, d_out = dy.shape
    d_in = w.shape[1]
    for n in prange(n_batch):
        for i in range(d_in):
            dx[n, i] = 0
        for o in range(d_out):
            g = dy[n, o]
            for i in range(d_in):
                dx[n, i] += g * w[o, i]


@reduction_kernel
def affine_backward_params(dy, x, dw, db):
    """dw = dy.T @ x (Dout, Din) and db = dy.sum(0) (Dout,); summed over n in order."""
    n_batch, d_out = dy.shape
    d_in = x.shape[1]
    for o in prange(d_out):
        bias_grad = dy.dtype.type(0)
        for i in range(d_in):
            dw[o, i] = 0
        for n in range(n_batch):
            g = dy[n, o]
            bias_grad += g
            for i in range(d_in):
                dw[o, i] += g * x[n, i]
        db[o] = bias_grad
