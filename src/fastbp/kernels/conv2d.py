"""2-D convolution kernels (cross-correlation, as in every deep learning library), NCHW.

Shapes: x (N, C, H, W), w (O, C, KH, KW), b (O,), y (N, O, OH, OW) with
``OH = (H + 2 * pad_h - KH) // stride_h + 1`` (likewise OW). Zero padding is never
materialised: each loop runs only over the output positions whose input tap is real.
"""

from numba import prange

from ._jit import reduction_kernel, serial_kernel


@serial_kernel
def valid_output_range(tap, pad, stride, in_size, out_size):
    """Output positions ``p`` whose input index ``p * stride + tap - pad`` lies in [0, in_size).

    Returns ``(lo, hi)``, possibly empty (lo >= hi).
    """
    lo = max(0, -((tap - pad) // stride))
    hi = min(out_size, (in_size - 1 + pad - tap) // stride + 1)
    return lo, hi


@reduction_kernel
def conv2d_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, y):
    """y[n, o, i, j] = b[o] + sum_{c, ki, kj} x[n, c, i*sh + ki - ph, j*sw + kj - pw] * w[o, c, ki, kj]."""
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = y.shape[2], y.shape[3]
    for job in prange(n_batch * c_out):
        n = job // c_out
        o = job - n * c_out
        out = y[n, o]
        out[:, :] = b[o]
        for c in range(c_in):
            plane = x[n, c]
            for ki in range(k_h):
                for oi in range(out_h):
                    row = oi * stride_h + ki - pad_h
                    if row < 0 or row >= height:
                        continue
                    for kj in range(k_w):
                        weight = w[o, c, ki, kj]
                        lo, hi = valid_output_range(kj, pad_w, stride_w, width, out_w)
                        for oj in range(lo, hi):
                            out[oi, oj] += weight * plane[row, oj * stride_w + kj - pad_w]


@reduction_kernel
def conv2d_backward_input(dy, w, stride_h, stride_w, pad_h, pad_w, dx):
    """dx (N, C, H, W) as the convolution of the stride-dilated upstream gradient with the
    flipped, channel-transposed kernel.

    Dilate ``dy`` by the stride (``stride - 1`` zeros between entries), pad it by
    ``K - 1 - pad`` and correlate it with ``w_t[c, o, a, b] = w[o, c, KH-1-a, KW-1-b]``:
    ``dx[n, c, r, s] = sum_{o, a, b} dy_dilated_padded[n, o, r + a, s + b] * w_t[c, o, a, b]``.
    The dilation zeros and the padding are skipped rather than stored: for flipped tap
    ``(a, b)`` the dilated entry at ``r + a`` is ``dy[.., (r + a - (KH-1-ph)) / sh, ..]`` when that
    division is exact and in range, and zero otherwise. Parallel over (n, c): each
    iteration owns one plane of dx, so no two threads ever write the same cell.
    """
    n_batch, c_in, height, width = dx.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    edge_h = k_h - 1 - pad_h
    edge_w = k_w - 1 - pad_w
    for job in prange(n_batch * c_in):
        n = job // c_in
        c = job - n * c_in
        grad = dx[n, c]
        grad[:, :] = 0
        for o in range(c_out):
            upstream = dy[n, o]
            for a in range(k_h):
                for r in range(height):
                    dilated_row = r + a - edge_h
                    if dilated_row < 0 or dilated_row % stride_h != 0:
                        continue
                    oi = dilated_row // stride_h
                    if oi >= out_h:
                        continue
                    for bb in range(k_w):
                        weight = w[o, c, k_h - 1 - a, k_w - 1 - bb]
                        # Only columns s with (s + bb - edge_w) = oj * sw carry a non-zero
                        # dilated entry: iterate over oj and place it at s directly.
                        lo, hi = valid_output_range(k_w - 1 - bb, pad_w, stride_w, width, out_w)
                        for oj in range(lo, hi):
                            grad[r, oj * stride_w + edge_w - bb] += weight * upstream[oi, oj]


@reduction_kernel
def conv2d_backward_weight(dy, x, stride_h, stride_w, pad_h, pad_w, dw):
    """dw[o, c, ki, kj] = sum_{n, i, j} dy[n, o, i, j] * x[n, c, i*sh + ki - ph, j*sw + kj - pw].

    The correlation of the input with the upstream gradient; parallel over (o, c).
    """
    n_batch, c_in, height, width = x.shape
    c_out, _, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    for job in prange(c_out * c_in):
        o = job // c_in
        c = job - o * c_in
        for ki in range(k_h):
            for kj in range(k_w):
                lo, hi = valid_output_range(kj, pad_w, stride_w, width, out_w)
                acc = dw.dtype.type(0)
                for n in range(n_batch):
                    for oi in range(out_h):
                        row = oi * stride_h + ki - pad_h
                        if row < 0 or row >= height:
                            continue
                        for oj in range(lo, hi):
                            acc += dy[n, o, oi, oj] * x[n, c, row, oj * stride_w + kj - pad_w]
                dw[o, c, ki, kj] = acc


@reduction_kernel
def conv2d_backward_bias(dy, db):
    """db[o] = sum_{n, i, j} dy[n, o, i, j]."""
    n_batch, c_out, out_h, out_w = dy.shape
    for o in prange(c_out):
        acc = db.dtype.type(0)
        for n in range(n_batch):
            for oi in range(out_h):
                for oj in range(out_w):
                    acc += dy[n, o, oi, oj]
        db[o] = acc
