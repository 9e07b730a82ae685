"""Dense layers as in the notes: the affine map ``z = W a + b`` with its backward and the
delta recursion, the activations with their derivatives, and maxout."""

import numpy as np


def linear(x, w, b):
    """Affine forward, batch as rows: ``X^i = X^{i-1} W^T + 1 b^T``; per sample ``z = W a + b``."""
    return x @ w.T + b


def linear_backward(dy, x, w):
    """Affine backward in the notes' matrix form: ``dX^{i-1} = dX^i W`` (``W^T delta`` per
    sample), ``dW = (dX^i)^T X^{i-1}`` (``sum_n delta_n a_n^T``), ``db = (dX^i)^T 1``.
    Returns ``(dx, dw, db)``."""
    return dy @ w, dy.T @ x, dy.sum(0)


def linear_by_samples(x, w, b):
    """``z_n = W a_n + b`` for each sample ``a_n`` (row n of x), one column vector at a time."""
    return np.stack([w @ a + b for a in x])


def linear_backward_by_samples(dy, x, w):
    """The per-sample formulas summed over the batch: ``dx_n = W^T delta_n``,
    ``dW = sum_n delta_n a_n^T``, ``db = sum_n delta_n`` (``delta_n`` is row n of dy)."""
    dx = np.stack([w.T @ delta for delta in dy])
    dw = sum(np.outer(delta, a) for delta, a in zip(dy, x))
    return dx, dw, dy.sum(0)


def backprop_delta(delta_next, w_next, z, derivative, **kwargs):
    """One step of the delta recursion, ``delta_l = (W_{l+1}^T delta_{l+1}) * f'(z_l)``,
    for each sample: row n of ``delta_next`` is ``delta_{l+1}``, of ``z`` is ``z_l``;
    ``derivative`` is ``f'`` (for example ``relu_derivative``). In fastbp this is the
    activation's backward applied to the affine layer's ``dx``."""
    return np.stack([(w_next.T @ d) * derivative(zn, **kwargs) for d, zn in zip(delta_next, z)])


# --- Activations: a = f(z), and f'(z) for the delta recursion --------------------------

def relu(x):
    """``f(z) = max(0, z)``."""
    return np.maximum(x, 0)


def relu_derivative(x):
    """``f'(z) = 1 if z > 0 else 0`` (0 at the kink)."""
    return (x > 0).astype(float)


def leaky_relu(x, slope):
    """``f(z) = z if z > 0 else slope z``."""
    return np.where(x > 0, x, slope * x)


def leaky_relu_derivative(x, slope):
    """``f'(z) = 1 if z > 0 else slope``."""
    return np.where(x > 0, 1.0, slope)


def sigmoid(x):
    """``sigma(z) = 1 / (1 + e^-z)``."""
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_derivative(x):
    """``sigma'(z) = sigma(z) (1 - sigma(z))``."""
    return sigmoid(x) * (1 - sigmoid(x))


def tanh(x):
    """``tanh(z) = (e^z - e^-z) / (e^z + e^-z)``."""
    return np.tanh(x)


def tanh_derivative(x):
    """``tanh'(z) = 1 - tanh(z)^2``."""
    return 1 - np.tanh(x) ** 2


def elu(x, alpha):
    """``f(z) = z if z > 0 else alpha (e^z - 1)``."""
    return np.where(x > 0, x, alpha * (np.exp(x) - 1))


def elu_derivative(x, alpha):
    """``f'(z) = 1 if z > 0 else alpha e^z``."""
    return np.where(x > 0, 1.0, alpha * np.exp(x))


def softplus(x):
    """``f(z) = ln(1 + e^z)``."""
    return np.log1p(np.exp(x))


def softplus_derivative(x):
    """``f'(z) = e^z / (1 + e^z) = sigma(z)``."""
    return sigmoid(x)


# name: (forward, derivative, the keyword arguments the tests call both with)
ACTIVATIONS = {
    "relu": (relu, relu_derivative, {}),
    "leaky_relu": (leaky_relu, leaky_relu_derivative, {"slope": 0.1}),
    "sigmoid": (sigmoid, sigmoid_derivative, {}),
    "tanh": (tanh, tanh_derivative, {}),
    "elu": (elu, elu_derivative, {"alpha": 0.7}),
    "softplus": (softplus, softplus_derivative, {}),
}


def maxout(x, w, b):
    """``f_k(a) = max_t ((w_t^k)^T a + b_t^k)``: x (N, D), w (K, T, D), b (K, T).
    Returns ``(y, winner)``, winner the first maximising piece t."""
    z = np.einsum("ni,kti->nkt", x, w) + b
    return z.max(axis=2), z.argmax(axis=2)


def maxout_backward(dy, x, w, b):
    """The max passes delta to its winning piece only (``d max / d z_t = 1`` at the
    argmax), which then backpropagates as an affine map. Returns ``(dx, dw, db)``."""
    _, winner = maxout(x, w, b)
    dz = np.zeros(winner.shape + (w.shape[1],))
    np.put_along_axis(dz, winner[..., None], dy[..., None], axis=2)
    return np.einsum("nkt,kti->ni", dz, w), np.einsum("nkt,ni->kti", dz, x), dz.sum(0)
