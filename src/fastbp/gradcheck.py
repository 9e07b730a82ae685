"""Finite-difference gradient checks, for the tests and for users' own layers."""

import numpy as np


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with central differences."""


def numerical_gradient(f, x, eps=1e-6):
    """Central differences d f / d x of a scalar function ``f()`` of the float64 array ``x``.

    ``x`` is perturbed in place, one element at a time, and restored exactly.
    """
    if x.dtype != np.float64:
        raise TypeError(f"finite differences need a float64 array, got {x.dtype}")
    grad = np.empty_like(x)
    flat, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        plus = f()
        flat[i] = saved - eps
        minus = f()
        flat[i] = saved
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def assert_close(name, analytic, numeric, rtol, atol):
    """Raise GradcheckError naming the worst element unless |a - n| <= atol + rtol |n|."""
    analytic = np.asarray(analytic)
    if analytic.shape != numeric.shape:
        raise GradcheckError(f"{name}: analytic shape {analytic.shape} != {numeric.shape}")
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if not np.all(excess <= 0):
        at = np.unravel_index(np.nanargmax(np.where(np.isnan(excess), np.inf, excess)), excess.shape)
        raise GradcheckError(
            f"{name}: analytic {analytic[at]!r} vs numerical {numeric[at]!r} at index {at} "
            f"(rtol={rtol}, atol={atol})"
        )


def gradcheck(f, x, analytic, eps=1e-6, rtol=1e-5, atol=1e-8):
    """Check ``analytic`` against the central differences of scalar ``f()`` w.r.t. ``x``.

    ``f`` takes no arguments and reads ``x`` (float64), which is perturbed in place.
    Returns True or raises GradcheckError.
    """
    assert_close("gradient", analytic, numerical_gradient(f, x, eps), rtol, atol)
    return True


def gradcheck_layer(layer, x, seed=0, eps=1e-6, rtol=1e-5, atol=1e-8, training=True):
    """Check a float64 layer's (or Sequential's) backward against finite differences.

    The scalar is ``sum(forward(x) * r)`` for a fixed random ``r``, so ``backward(r)``
    must give its gradient w.r.t. x, and ``grads`` w.r.t. every parameter.
    Returns True or raises GradcheckError.
    """
    x = np.array(x, dtype=np.float64)
    r = np.random.default_rng(seed).standard_normal(layer.forward(x, training).shape)

    def objective():
        return float(np.sum(layer.forward(x, training) * r))

    layer.zero_grad()
    layer.forward(x, training)
    dx = layer.backward(r)
    assert_close("input gradient", dx, numerical_gradient(objective, x, eps), rtol, atol)
    for name, param in layer.params.items():
        numeric = numerical_gradient(objective, param, eps)
        assert_close(f"gradient of {name}", layer.grads[name], numeric, rtol, atol)
    return True
