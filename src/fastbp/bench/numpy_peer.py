"""The plain NumPy peer: convolution as im2col + GEMM, pooling over strided window views.

This is what a user without fastbp would write: every product is one BLAS GEMM, the
windows of the zero-padded input are copied into a (N * OH * OW, C * K * K) matrix
(im2col), and gradients flow back onto the input by summing the K * K taps over strided
slices (col2im); the transposed convolution is the same products with the roles of x
and dy swapped, batch norm whole-array reductions. Same conventions as
``fastbp.functional``: NCHW, cross-correlation, integer stride and padding, mean pooling
counting padded cells as zeros. The training steps build the spec-list networks
(``fastbp.bench.networks.NETWORKS``) only: no residual network.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .networks import LEARNING_RATE, NETWORKS, batch, initial_params
from .shapes import inputs


def _out(size, k, stride, pad, dilation=1):
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def _pad(x, pad, value=0.0):
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)


def _windows(x, k, stride, pad, value=0.0, dilation=1):
    """A (N, C, OH, OW, K, K) strided view of the k x k windows of x padded with ``value``
    (their taps ``dilation`` apart)."""
    h, w = x.shape[2:]
    oh, ow = _out(h, k, stride, pad, dilation), _out(w, k, stride, pad, dilation)
    span = dilation * (k - 1) + 1
    view = sliding_window_view(_pad(x, pad, value), (span, span), axis=(2, 3))
    view = view[..., ::dilation, ::dilation]
    return view[:, :, : (oh - 1) * stride + 1 : stride, : (ow - 1) * stride + 1 : stride]


def _col2im(taps, x_shape, stride, pad, dilation=1):
    """Sum taps (N, C, OH, OW, K, K) onto the input cells they were read from: dx (N, C, H, W)."""
    n, c, h, w = x_shape
    oh, ow, k = taps.shape[2], taps.shape[3], taps.shape[4]
    dx = np.zeros((n, c, h + 2 * pad, w + 2 * pad), taps.dtype)
    for i in range(k):
        for j in range(k):
            a, e = i * dilation, j * dilation
            dx[:, :, a : a + (oh - 1) * stride + 1 : stride,
               e : e + (ow - 1) * stride + 1 : stride] += taps[..., i, j]
    return np.ascontiguousarray(dx[:, :, pad : pad + h, pad : pad + w])


def im2col(x, k, stride, pad, dilation=1):
    """cols (N * OH * OW, C * K * K): one row per output position, one column per tap."""
    win = _windows(x, k, stride, pad, dilation=dilation)
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)


def conv2d(x, w, b=None, stride=1, padding=0, cols=None, *, dilation=1, groups=1):
    """y (N, O, OH, OW) = im2col(x) @ w.reshape(O, -1).T + b, put back in NCHW; with
    ``groups``, one such product per group of channels."""
    if groups > 1:
        c, o = x.shape[1] // groups, w.shape[0] // groups
        return np.concatenate([
            conv2d(x[:, g * c:(g + 1) * c], w[g * o:(g + 1) * o],
                   None if b is None else b[g * o:(g + 1) * o], stride, padding,
                   dilation=dilation) for g in range(groups)], axis=1)
    n, (o, _, k, _) = x.shape[0], w.shape
    if cols is None:
        cols = im2col(x, k, stride, padding, dilation)
    y = cols @ w.reshape(o, -1).T
    if b is not None:
        y += b
    oh = _out(x.shape[2], k, stride, padding, dilation)
    ow = _out(x.shape[3], k, stride, padding, dilation)
    return np.ascontiguousarray(y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2))


def conv2d_backward(dy, x, w, stride=1, padding=0, cols=None, *, dilation=1, groups=1):
    """(dx, dw, db): dw = dy_rows.T @ im2col(x), dx = col2im(dy_rows @ w_rows), db = sum of
    dy; with ``groups``, group by group."""
    if groups > 1:
        c, o = x.shape[1] // groups, w.shape[0] // groups
        parts = [conv2d_backward(dy[:, g * o:(g + 1) * o], x[:, g * c:(g + 1) * c],
                                 w[g * o:(g + 1) * o], stride, padding, dilation=dilation)
                 for g in range(groups)]
        return tuple(np.concatenate(p, axis=a) for p, a in zip(zip(*parts), (1, 0, 0)))
    (_, o, oh, ow), k = dy.shape, w.shape[2]
    if cols is None:
        cols = im2col(x, k, stride, padding, dilation)
    rows = dy.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (rows.T @ cols).reshape(w.shape)
    return _input_grad(rows, w, x.shape, (oh, ow), stride, padding, dilation), dw, rows.sum(0)


def _input_grad(rows, w, x_shape, out_hw, stride, padding, dilation):
    """dx (x_shape) = col2im(rows @ w_rows) for dy's rows (N * OH * OW, O), w (O, C, K, K)."""
    (n, c), (o, _, k, _) = x_shape[:2], w.shape
    taps = (rows @ w.reshape(o, -1)).reshape(n, *out_hw, c, k, k).transpose(0, 3, 1, 2, 4, 5)
    return _col2im(taps, x_shape, stride, padding, dilation)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, *, dilation=1,
                     groups=1):
    """y (N, O, OH, OW) from x (N, C, H, W), w (C, O // groups, K, K), b (O,): conv2d's input
    gradient with x in the role of dy (col2im of x's rows @ w's rows), plus b; with
    ``groups``, group by group."""
    if groups > 1:
        c, o = x.shape[1] // groups, w.shape[1]
        return np.concatenate([
            conv_transpose2d(x[:, g * c:(g + 1) * c], w[g * c:(g + 1) * c],
                             None if b is None else b[g * o:(g + 1) * o], stride, padding,
                             output_padding, dilation=dilation) for g in range(groups)], axis=1)
    (n, c, h, wd), (_, o, k, _) = x.shape, w.shape
    oh, ow = ((size - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
              for size in (h, wd))
    rows = x.transpose(0, 2, 3, 1).reshape(-1, c)
    y = _input_grad(rows, w, (n, o, oh, ow), (h, wd), stride, padding, dilation)
    return y if b is None else y + b[:, None, None]


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, *, dilation=1, groups=1):
    """(dx, dw, db): dx = conv2d(dy, w) and dw = x's rows.T @ im2col(dy) (conv2d's weight
    gradient, x and dy swapped), on one im2col of dy; db sums dy; with ``groups``, group by
    group."""
    if groups > 1:
        c, o = x.shape[1] // groups, w.shape[1]
        parts = [conv_transpose2d_backward(dy[:, g * o:(g + 1) * o], x[:, g * c:(g + 1) * c],
                                           w[g * c:(g + 1) * c], stride, padding,
                                           dilation=dilation) for g in range(groups)]
        return tuple(np.concatenate(p, axis=a) for p, a in zip(zip(*parts), (1, 0, 0)))
    cols = im2col(dy, w.shape[2], stride, padding, dilation)
    rows = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
    dx = conv2d(dy, w, None, stride, padding, cols, dilation=dilation)
    return dx, (rows.T @ cols).reshape(w.shape), dy.sum(axis=(0, 2, 3))


def batch_norm(x, weight, bias, eps=1e-5):
    """(y, mean, inv_std): x (N, C, H, W) normalised per channel by the batch's mean and
    (biased) variance, times weight (C,) plus bias (C,)."""
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    inv_std = 1 / np.sqrt(var + eps)
    y = (x - mean[:, None, None]) * (weight * inv_std)[:, None, None] + bias[:, None, None]
    return y, mean, inv_std


def batch_norm_backward(dy, x, weight, mean, inv_std):
    """(dx, dweight, dbias) of ``batch_norm``, from its mean and inv_std."""
    xhat = (x - mean[:, None, None]) * inv_std[:, None, None]
    dbias, dweight = dy.sum(axis=(0, 2, 3)), (dy * xhat).sum(axis=(0, 2, 3))
    mean_dy = (dbias[:, None, None] + xhat * dweight[:, None, None]) / (x.size // x.shape[1])
    return (weight * inv_std)[:, None, None] * (dy - mean_dy), dweight, dbias


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def linear_backward(dy, x, w):
    """(dx, dw, db) = (dy @ w, dy.T @ x, dy.sum(0))."""
    return dy @ w, dy.T @ x, dy.sum(0)


def max_pool2d_with_argmax(x, k, stride=None, padding=0):
    """(y, argmax): window maxima and the index (row-major, in the window) of the first one."""
    win = _windows(x, k, stride or k, padding, -np.inf)
    win = win.reshape(*win.shape[:4], k * k)
    argmax = win.argmax(-1)
    return np.take_along_axis(win, argmax[..., None], -1)[..., 0], argmax


def max_pool2d(x, k, stride=None, padding=0):
    return max_pool2d_with_argmax(x, k, stride, padding)[0]


def max_pool2d_backward_from_argmax(dy, argmax, x_shape, k, stride=None, padding=0):
    """dx: each dy cell put on its window's argmax, summed over overlapping windows."""
    taps = np.zeros((*dy.shape, k * k), dy.dtype)
    np.put_along_axis(taps, argmax[..., None], dy[..., None], -1)
    return _col2im(taps.reshape(*dy.shape, k, k), x_shape, stride or k, padding)


def max_pool2d_backward(dy, x, k, stride=None, padding=0):
    argmax = max_pool2d_with_argmax(x, k, stride, padding)[1]
    return max_pool2d_backward_from_argmax(dy, argmax, x.shape, k, stride, padding)


def avg_pool2d(x, k, stride=None, padding=0):
    """Window means; padded cells count as zeros."""
    return _windows(x, k, stride or k, padding).mean(axis=(-2, -1))


def avg_pool2d_backward(dy, x, k, stride=None, padding=0):
    taps = np.broadcast_to((dy / (k * k))[..., None, None], (*dy.shape, k, k))
    return _col2im(taps, x.shape, stride or k, padding)


def relu(x):
    return np.maximum(x, 0)


def relu_backward(dy, x):
    return np.where(x > 0, dy, 0).astype(dy.dtype)


def softmax_cross_entropy(logits, labels):
    """(mean cross-entropy, (softmax - onehot) / N)."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1
    return float(-log_p[np.arange(n), labels].mean()), grad / logits.dtype.type(n)


def supports(shape):
    """Every kernel shape but the activations (NumPy's ufuncs are no im2col peer); of the
    training steps, the spec-list networks'."""
    if shape.family == "activation":
        return False
    return shape.family != "train" or shape.net in NETWORKS


def passes(shape, dtype):
    """Zero-argument callables for the compared passes of a conv, transposed conv, linear,
    pool or batch norm shape."""
    data = inputs(shape, dtype)
    x, dy, w, b = (data.get(name) for name in ("x", "dy", "w", "b"))
    if shape.family == "linear":
        return {"forward": lambda: linear(x, w, b), "backward": lambda: linear_backward(dy, x, w)}
    if shape.family == "batchnorm":
        mean, inv_std = batch_norm(x, w, b, shape.eps)[1:]
        return {"forward": lambda: batch_norm(x, w, b, shape.eps),
                "backward": lambda: batch_norm_backward(dy, x, w, mean, inv_std)}
    st, pad = shape.stride, shape.pad
    if shape.family == "conv":
        dg = dict(dilation=shape.dilation, groups=shape.groups)
        return {"forward": lambda: conv2d(x, w, b, st, pad, **dg),
                "backward": lambda: conv2d_backward(dy, x, w, st, pad, **dg)}
    if shape.family == "conv_transpose":
        dg, extra = dict(dilation=shape.dilation, groups=shape.groups), shape.output_padding
        return {"forward": lambda: conv_transpose2d(x, w, b, st, pad, extra, **dg),
                "backward": lambda: conv_transpose2d_backward(dy, x, w, st, pad, **dg)}
    geometry = (shape.k, st, pad)
    argmax = max_pool2d_with_argmax(x, *geometry)[1]
    return {
        "max_forward": lambda: max_pool2d_with_argmax(x, *geometry),
        "max_backward": lambda: max_pool2d_backward_from_argmax(dy, argmax, x.shape, *geometry),
        "avg_forward": lambda: avg_pool2d(x, *geometry),
        "avg_backward": lambda: avg_pool2d_backward(dy, x, *geometry),
    }


class _Layer:
    """A network layer: forward caches what backward needs; backward sets ``grads``."""

    def __init__(self, spec, params):
        self.kind, *self.args = spec
        self.params, self.grads, self.cache = params, {}, None

    def forward(self, x):
        kind, args, p = self.kind, self.args, self.params
        if kind == "linear":
            self.cache = x
            return linear(x, p["weight"], p["bias"])
        if kind == "conv":
            k, stride, pad = args[2:]
            self.cache = (x, im2col(x, k, stride, pad))
            return conv2d(x, p["weight"], p["bias"], stride, pad, cols=self.cache[1])
        if kind == "relu":
            self.cache = x
            return relu(x)
        if kind == "maxpool":
            y, argmax = max_pool2d_with_argmax(x, args[0])
            self.cache = (x.shape, argmax)
            return y
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        kind, args, p = self.kind, self.args, self.params
        if kind == "linear":
            dx, self.grads["weight"], self.grads["bias"] = linear_backward(dy, self.cache, p["weight"])
            return dx
        if kind == "conv":
            (x, cols), (_, stride, pad) = self.cache, args[2:]
            dx, self.grads["weight"], self.grads["bias"] = conv2d_backward(
                dy, x, p["weight"], stride, pad, cols)
            return dx
        if kind == "relu":
            return relu_backward(dy, self.cache)
        if kind == "maxpool":
            return max_pool2d_backward_from_argmax(dy, self.cache[1], self.cache[0], args[0])
        return dy.reshape(self.cache)


def train_step(shape, dtype):
    """The SGD step of ``fastbp.bench.networks.fastbp_step`` in NumPy; returns the loss."""
    start = initial_params(shape.net, dtype)
    layers = [
        _Layer(spec, {name: start[f"{i}.{name}"] for name in ("weight", "bias") if f"{i}.{name}" in start})
        for i, spec in enumerate(NETWORKS[shape.net][1])
    ]
    x, labels = batch(shape, dtype)
    lr = np.dtype(dtype).type(LEARNING_RATE)

    def step():
        out = x
        for layer in layers:
            out = layer.forward(out)
        loss, grad = softmax_cross_entropy(out, labels)
        for layer in reversed(layers):
            grad = layer.backward(grad)
        for layer in layers:
            for name, param in layer.params.items():
                param -= lr * layer.grads[name]
        return loss

    return step

