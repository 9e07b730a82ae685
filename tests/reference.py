"""Plain NumPy references, written for obviousness rather than speed. float64 throughout."""

import numpy as np


def linear(x, w, b):
    return x @ w.T + b


def linear_backward(dy, x, w):
    return dy @ w, dy.T @ x, dy.sum(0)


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def _taps(x_padded, ki, kj, out_hw, stride):
    """x_padded[:, :, ki + i * sh, kj + j * sw] for every output position (i, j)."""
    (oh, ow), (sh, sw) = out_hw, stride
    return x_padded[:, :, ki:ki + sh * (oh - 1) + 1:sh, kj:kj + sw * (ow - 1) + 1:sw]


def conv2d(x, w, b=None, stride=1, padding=0):
    stride, padding = _pair(stride), _pair(padding)
    (ph, pw), (kh, kw) = padding, w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
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
    stride, padding = _pair(stride), _pair(padding)
    (ph, pw), (kh, kw) = padding, w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    out_hw = dy.shape[2:]
    for ki in range(kh):
        for kj in range(kw):
            _taps(dxp, ki, kj, out_hw, stride)[...] += np.einsum("nohw,oc->nchw", dy, w[:, :, ki, kj])
            dw[:, :, ki, kj] = np.einsum("nohw,nchw->oc", dy, _taps(xp, ki, kj, out_hw, stride))
    dx = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
    return dx, dw, dy.sum((0, 2, 3))


def conv2d_input_grad_by_flipped_kernel(dy, x_shape, w, stride=1, padding=0):
    """The lecture notes' formula, literally: dilate dy by the stride, pad by K - 1 - p,
    and correlate with the flipped, channel-transposed kernel."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, o, oh, ow = dy.shape
    kh, kw = w.shape[2:]
    dilated = np.zeros((n, o, (oh - 1) * sh + 1, (ow - 1) * sw + 1))
    dilated[:, :, ::sh, ::sw] = dy
    # Rows the forward windows never reached (when (H + 2p - K) % s != 0) get zero gradient.
    extra_h = x_shape[2] + 2 * ph - kh - (oh - 1) * sh
    extra_w = x_shape[3] + 2 * pw - kw - (ow - 1) * sw
    dilated = np.pad(dilated, ((0, 0), (0, 0), (0, extra_h), (0, extra_w)))
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return conv2d(dilated, flipped, padding=(kh - 1 - ph, kw - 1 - pw))


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
    _, route = max_pool2d(x, kernel, stride, padding)
    dx = np.zeros(x.shape)
    for (n, c, i, j), (r, q) in route.items():
        dx[n, c, r, q] += dy[n, c, i, j]
    return dx


def avg_pool2d(x, kernel, stride=None, padding=0):
    stride = kernel if stride is None else stride
    area = np.prod(_pair(kernel))
    y = None
    for n, c, i, j, cells, out_hw in _windows(x, kernel, stride, padding):
        if y is None:
            y = np.zeros(x.shape[:2] + out_hw)
        y[n, c, i, j] = sum(x[n, c, r, q] for r, q in cells) / area
    return y


def avg_pool2d_backward(dy, x, kernel, stride=None, padding=0):
    stride = kernel if stride is None else stride
    area = np.prod(_pair(kernel))
    dx = np.zeros(x.shape)
    for n, c, i, j, cells, _ in _windows(x, kernel, stride, padding):
        for r, q in cells:
            dx[n, c, r, q] += dy[n, c, i, j] / area
    return dx


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ACTIVATIONS = {
    # name: (forward, derivative, kwargs)
    "relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float), {}),
    "leaky_relu": (lambda x, slope: np.where(x > 0, x, slope * x),
                   lambda x, slope: np.where(x > 0, 1.0, slope), {"slope": 0.1}),
    "sigmoid": (sigmoid, lambda x: sigmoid(x) * (1 - sigmoid(x)), {}),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2, {}),
    "elu": (lambda x, alpha: np.where(x > 0, x, alpha * (np.exp(x) - 1)),
            lambda x, alpha: np.where(x > 0, 1.0, alpha * np.exp(x)), {"alpha": 0.7}),
    "softplus": (lambda x: np.log1p(np.exp(x)), sigmoid, {}),
}


def mse_loss(y, t):
    n = y.shape[0]
    return 0.5 * np.sum((y - t) ** 2) / n, (y - t) / n


def log_sigmoid(x):
    """log(sigma(x)) = -log(1 + e^-x), by NumPy's logaddexp: finite for any finite x (the
    direct log(sigmoid(x)) is log(0) = -inf once e^-x overflows, near |x| = 745)."""
    return -np.logaddexp(0.0, -x)


def logistic_loss(s, y):
    # -[y log sigma(s) + (1 - y) log(1 - sigma(s))], with 1 - sigma(s) = sigma(-s)
    p = np.exp(log_sigmoid(s))
    return -np.mean(y * log_sigmoid(s) + (1 - y) * log_sigmoid(-s)), (p - y) / s.shape[0]


def logistic_pm1_loss(s, y):
    return -np.mean(log_sigmoid(y * s)), -y * np.exp(log_sigmoid(-y * s)) / s.shape[0]


def softmax_cross_entropy(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    grad = np.exp(log_softmax)
    grad[np.arange(n), labels] -= 1
    return -np.mean(log_softmax[np.arange(n), labels]), grad / n


def hinge_loss(scores, labels, margin=1.0):
    n = scores.shape[0]
    loss, grad = 0.0, np.zeros_like(scores)
    for i in range(n):
        for j in range(scores.shape[1]):
            if j != labels[i] and scores[i, j] - scores[i, labels[i]] + margin > 0:
                loss += scores[i, j] - scores[i, labels[i]] + margin
                grad[i, j] += 1
                grad[i, labels[i]] -= 1
    return loss / n, grad / n
