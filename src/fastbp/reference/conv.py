"""Convolution and pooling as in the notes (NCHW): the forward with stride and padding, the
input gradient by the chain rule and as the flipped-kernel convolution of the dilated
gradient, the weight gradient, max and mean pooling with their backward."""

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def zero_pad(x, padding):
    """Padding: ``p`` rows and columns of zeros around each plane, so the window at output
    (0, 0) reads ``X_{-p..}`` as 0."""
    (ph, pw) = _pair(padding)
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _taps(x_padded, ki, kj, out_hw, stride):
    """x_padded[:, :, ki + i * sh, kj + j * sw] for every output position (i, j)."""
    (oh, ow), (sh, sw) = out_hw, stride
    return x_padded[:, :, ki:ki + sh * (oh - 1) + 1:sh, kj:kj + sw * (ow - 1) + 1:sw]


def _dilated_taps(x_padded, ki, kj, out_hw, stride, dilation):
    """x_padded[:, :, ki * dh + i * sh, kj * dw + j * sw] for every output position (i, j):
    the taps of a dilated kernel sit ``dilation`` apart."""
    (dh, dw) = dilation
    return _taps(x_padded, ki * dh, kj * dw, out_hw, stride)


def conv2d(x, w, b=None, stride=1, padding=0):
    """Convolution forward with stride s and padding p:
    ``Y^{c'}_{u',v'} = sum_{i,j,k} K(i,j)^{c'}_k X^k_{u's+i, v's+j} + b^{c'}`` over the
    zero-padded X (one loop over the kernel offsets (i, j), a sum over samples and k)."""
    stride, padding = _pair(stride), _pair(padding)
    kh, kw = w.shape[2:]
    xp = zero_pad(x, padding)
    oh = (xp.shape[2] - kh) // stride[0] + 1
    ow = (xp.shape[3] - kw) // stride[1] + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for ki in range(kh):
        for kj in range(kw):
            y += np.einsum("nchw,oc->nohw", _taps(xp, ki, kj, (oh, ow), stride), w[:, :, ki, kj])
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0):
    """Convolution backward, by the chain rule through each tap of the forward:
    ``dX^c_{u's+i, v's+j} += sum_{c'} K(i,j)^{c'}_c dY^{c'}_{u',v'}`` (the input gradient,
    equal to ``conv2d_input_grad_by_flipped_kernel``),
    ``dK(i,j)^{c'}_k = sum_{n,u',v'} dY^{c'}_{u',v'} X^k_{u's+i, v's+j}`` (the weight
    gradient), ``db^{c'} = sum_{n,u',v'} dY^{c'}_{u',v'}``. Returns ``(dx, dw, db)``."""
    stride, padding = _pair(stride), _pair(padding)
    (ph, pw), (kh, kw) = padding, w.shape[2:]
    xp = zero_pad(x, padding)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    out_hw = dy.shape[2:]
    for ki in range(kh):
        for kj in range(kw):
            _taps(dxp, ki, kj, out_hw, stride)[...] += np.einsum("nohw,oc->nchw", dy, w[:, :, ki, kj])
            dw[:, :, ki, kj] = np.einsum("nohw,nchw->oc", dy, _taps(xp, ki, kj, out_hw, stride))
    dx = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
    return dx, dw, dy.sum((0, 2, 3))


def _dilate(dy, stride):
    """The stride-dilated gradient: dy's values s apart, zeros between (the notes' BP with
    stride, written with the Kronecker-dilated delta)."""
    (sh, sw) = _pair(stride)
    n, o, oh, ow = dy.shape
    dilated = np.zeros((n, o, (oh - 1) * sh + 1, (ow - 1) * sw + 1))
    dilated[:, :, ::sh, ::sw] = dy
    return dilated


def conv2d_input_grad_by_flipped_kernel(dy, x_shape, w, stride=1, padding=0):
    """The notes' formula, literally: ``delta X(l-1)^c = K~^c * delta~X(l)`` with the
    flipped, channel-transposed kernel ``K~(i,j)^c_k = K(-i,-j)^k_c`` and the stride-dilated
    gradient, padded by ``K - 1 - p`` (cropped where p > K - 1)."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    oh, ow = dy.shape[2:]
    kh, kw = w.shape[2:]
    # Rows the forward windows never reached (when (H + 2p - K) % s != 0) get zero gradient.
    extra_h = x_shape[2] + 2 * ph - kh - (oh - 1) * sh
    extra_w = x_shape[3] + 2 * pw - kw - (ow - 1) * sw
    top, left = kh - 1 - ph, kw - 1 - pw
    bottom, right = top + extra_h, left + extra_w
    d = np.pad(_dilate(dy, stride), ((0, 0), (0, 0), (max(top, 0), max(bottom, 0)),
                                     (max(left, 0), max(right, 0))))
    d = d[:, :, max(-top, 0):d.shape[2] - max(-bottom, 0), max(-left, 0):d.shape[3] - max(-right, 0)]
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return conv2d(d, flipped)


def conv2d_weight_grad_by_dilated_gradient(dy, x, w_shape, stride=1, padding=0):
    """The notes' weight gradient as a convolution: ``dK^{c'}_k = delta~X^{c'} * X^k``, the
    padded input correlated with the stride-dilated gradient, summed over the batch."""
    kh, kw = w_shape[2:]
    dilated = _dilate(dy, stride)
    xp = zero_pad(x, padding)[:, :, :kh - 1 + dilated.shape[2], :kw - 1 + dilated.shape[3]]
    # per sample: input channels k as the batch, output channels c' as the kernel's
    return sum(conv2d(xp[n][:, None], dilated[n][:, None]).transpose(1, 0, 2, 3)
               for n in range(x.shape[0]))


# --- Pooling ----------------------------------------------------------------------------

def _windows(x, kernel, stride, padding):
    """Yield (n, c, i, j, [(row, col), ...] of real cells in row-major order)."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    n_, c_, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    cells = [(r, q) for r in range(i * sh - ph, i * sh - ph + kh)
                             for q in range(j * sw - pw, j * sw - pw + kw)
                             if 0 <= r < h and 0 <= q < w]
                    yield n, c, i, j, cells, (oh, ow)


def max_pool2d(x, kernel, stride=None, padding=0):
    """Max pooling: ``Y_{u',v'} = max_{i,j} X_{u's+i, v's+j}``; padding never wins, a NaN
    does, and ties go to the first maximum in row-major order. Returns ``(y, route)``,
    route mapping each output (n, c, i, j) to its winning input cell."""
    stride = kernel if stride is None else stride
    y, dx_route = None, {}
    for n, c, i, j, cells, out_hw in _windows(x, kernel, stride, padding):
        if y is None:
            y = np.zeros(x.shape[:2] + out_hw)
        values = [x[n, c, r, q] for r, q in cells]
        nan_at = [k for k, v in enumerate(values) if np.isnan(v)]
        best = nan_at[0] if nan_at else int(np.argmax(values))  # argmax: first maximum
        y[n, c, i, j] = values[best]
        dx_route[n, c, i, j] = cells[best]
    return y, dx_route


def max_pool2d_backward(dy, x, kernel, stride=None, padding=0):
    """``d max(X) / dX = e_argmax``: each output's delta flows to its window's maximum only
    (summed where windows overlap), zero elsewhere."""
    _, route = max_pool2d(x, kernel, stride, padding)
    dx = np.zeros(x.shape)
    for (n, c, i, j), (r, q) in route.items():
        dx[n, c, r, q] += dy[n, c, i, j]
    return dx


def avg_pool2d(x, kernel, stride=None, padding=0):
    """Mean pooling: ``Y_{u',v'} = 1/(k_h k_w) sum_{i,j} X_{u's+i, v's+j}`` (padding
    counts as zeros, the divisor is always the full window)."""
    stride = kernel if stride is None else stride
    area = np.prod(_pair(kernel))
    y = None
    for n, c, i, j, cells, out_hw in _windows(x, kernel, stride, padding):
        if y is None:
            y = np.zeros(x.shape[:2] + out_hw)
        y[n, c, i, j] = sum(x[n, c, r, q] for r, q in cells) / area
    return y


def avg_pool2d_backward(dy, x, kernel, stride=None, padding=0):
    """``dX_{u's+i, v's+j} += dY_{u',v'} / (k_h k_w)`` for every cell of every window."""
    stride = kernel if stride is None else stride
    area = np.prod(_pair(kernel))
    dx = np.zeros(x.shape)
    for n, c, i, j, cells, _ in _windows(x, kernel, stride, padding):
        for r, q in cells:
            dx[n, c, r, q] += dy[n, c, i, j] / area
    return dx


def conv2d_dilated_grouped(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Convolution forward with stride s, padding p, dilation d and G groups (PyTorch's
    conventions): w is (C', C / G, KH, KW); output channel c' of group
    ``g = c' // (C' / G)`` reads the input channels ``k`` of group g only, and its taps sit
    d apart:
    ``Y^{c'}_{u',v'} = sum_{i,j} sum_{k in group g} K(i,j)^{c'}_{k - g C/G} X^k_{u's+id, v's+jd} + b^{c'}``
    over the zero-padded X; ``OH = (H + 2p - d (KH - 1) - 1) // s + 1``. With d = 1 and
    G = 1 it is ``conv2d``. Plain loops over groups and kernel offsets."""
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    (kh, kw), (dh, dw) = w.shape[2:], dilation
    c_group, o_group = x.shape[1] // groups, w.shape[0] // groups
    xp = zero_pad(x, padding)
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for g in range(groups):
        xs, os = slice(g * c_group, (g + 1) * c_group), slice(g * o_group, (g + 1) * o_group)
        for ki in range(kh):
            for kj in range(kw):
                taps = _dilated_taps(xp[:, xs], ki, kj, (oh, ow), stride, dilation)
                y[:, os] += np.einsum("nchw,oc->nohw", taps, w[os, :, ki, kj])
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_dilated_grouped_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1):
    """Backward of ``conv2d_dilated_grouped``, by the chain rule through each tap, group by
    group: ``dX^k_{u's+id, v's+jd} += sum_{c' in group g} K(i,j)^{c'}_{k - g C/G} dY^{c'}_{u',v'}``,
    ``dK(i,j)^{c'}_{k - g C/G} = sum_{n,u',v'} dY^{c'}_{u',v'} X^k_{u's+id, v's+jd}``,
    ``db^{c'} = sum_{n,u',v'} dY^{c'}_{u',v'}``. Returns ``(dx, dw, db)``."""
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    (ph, pw), (kh, kw) = padding, w.shape[2:]
    c_group, o_group = x.shape[1] // groups, w.shape[0] // groups
    xp = zero_pad(x, padding)
    dxp = np.zeros_like(xp, dtype=np.float64)
    dw = np.zeros(w.shape)
    out_hw = dy.shape[2:]
    for g in range(groups):
        xs, os = slice(g * c_group, (g + 1) * c_group), slice(g * o_group, (g + 1) * o_group)
        for ki in range(kh):
            for kj in range(kw):
                _dilated_taps(dxp[:, xs], ki, kj, out_hw, stride, dilation)[...] += np.einsum(
                    "nohw,oc->nchw", dy[:, os], w[os, :, ki, kj])
                dw[os, :, ki, kj] = np.einsum(
                    "nohw,nchw->oc", dy[:, os],
                    _dilated_taps(xp[:, xs], ki, kj, out_hw, stride, dilation))
    dx = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
    return dx, dw, dy.sum((0, 2, 3))


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed convolution, by its definition: every input cell spreads over the output
    cells a convolution with the same arguments reads it from,
    ``Y^{o}_{u s + i d - p, v s + j d - p} += K(i,j)^{k}_{o - g O/G} X^k_{u,v}`` for the
    input channels k of group g and the O/G output channels o of that group; w is
    (C, O / G, KH, KW), ``OH = (H - 1) s - 2p + d (KH - 1) + output_padding + 1``."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    (dh, dw), (eh, ew) = _pair(dilation), _pair(output_padding)
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    c_group, o_group = c // groups, w.shape[1]
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + eh + 1
    ow = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + ew + 1
    # scatter onto a canvas holding every cell the taps reach, then cut out the output
    canvas = np.zeros((n, o_group * groups, (h - 1) * sh + dh * (kh - 1) + 1 + eh + ph,
                       (wd - 1) * sw + dw * (kw - 1) + 1 + ew + pw))
    for g in range(groups):
        xs, os = slice(g * c_group, (g + 1) * c_group), slice(g * o_group, (g + 1) * o_group)
        for i in range(kh):
            for j in range(kw):
                canvas[:, os, i * dh:i * dh + (h - 1) * sh + 1:sh,
                       j * dw:j * dw + (wd - 1) * sw + 1:sw] += np.einsum(
                    "nkuv,ko->nouv", x[:, xs], w[xs, :, i, j])
    y = canvas[:, :, ph:ph + oh, pw:pw + ow].copy()
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1):
    """Backward of ``conv_transpose2d`` by the chain rule through each tap:
    ``dX^k_{u,v} = sum_{o,i,j} K(i,j)^k_{o - g O/G} dY^o_{u s + i d - p, v s + j d - p}``,
    ``dK(i,j)^k_{o'} = sum_{n,u,v} X^k_{u,v} dY^{o' + g O/G}_{u s + i d - p, v s + j d - p}``
    (dY zero outside the output), ``db^o = sum dY^o``. Returns ``(dx, dw, db)``."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    (dh, dw_), (eh, ew) = _pair(dilation), _pair(output_padding)
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    c_group, o_group = c // groups, w.shape[1]
    canvas = np.zeros((n, dy.shape[1], (h - 1) * sh + dh * (kh - 1) + 1 + eh + ph,
                       (wd - 1) * sw + dw_ * (kw - 1) + 1 + ew + pw))
    canvas[:, :, ph:ph + dy.shape[2], pw:pw + dy.shape[3]] = dy
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    for g in range(groups):
        xs, os = slice(g * c_group, (g + 1) * c_group), slice(g * o_group, (g + 1) * o_group)
        for i in range(kh):
            for j in range(kw):
                taps = canvas[:, os, i * dh:i * dh + (h - 1) * sh + 1:sh,
                              j * dw_:j * dw_ + (wd - 1) * sw + 1:sw]
                dx[:, xs] += np.einsum("nouv,ko->nkuv", taps, w[xs, :, i, j])
                dw[xs, :, i, j] = np.einsum("nouv,nkuv->ko", taps, x[:, xs])
    return dx, dw, dy.sum((0, 2, 3))
