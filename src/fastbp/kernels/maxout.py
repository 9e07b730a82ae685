"""Maxout: the maximum over k affine pieces, ``y[n, j] = max_p z[n, j, p]``.

The pieces ``z`` (N, Dout, k) come from the affine kernel; these kernels do the max and
route its gradient.
"""

import math

from numba import prange

from ._jit import kernel


@kernel
def maxout_forward(z, y, argmax):
    """y (N, Dout) = max over the last axis of z (N, Dout, k); argmax (N, Dout) int64.

    First maximum wins; a NaN piece wins (NaN propagates).
    """
    n_batch, d_out, pieces = z.shape
    for n in prange(n_batch):
        for j in range(d_out):
            best = z[n, j, 0]
            best_at = 0
            for p in range(1, pieces):
                v = z[n, j, p]
                if v > best or (math.isnan(v) and not math.isnan(best)):
                    best = v
                    best_at = p
            y[n, j] = best
            argmax[n, j] = best_at


@kernel
def maxout_backward(dy, argmax, dz):
    """dz (N, Dout, k): dy routed to the winning piece, zero elsewhere."""
    n_batch, d_out, pieces = dz.shape
    for n in prange(n_batch):
        for j in range(d_out):
            for p in range(pieces):
                dz[n, j, p] = 0
            dz[n, j, argmax[n, j]] = dy[n, j]
