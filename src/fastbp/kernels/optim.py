"""Fused parameter-update kernels: one parallel pass over a parameter's elements.

Every array is a flat 1-D view of one contiguous parameter and its companions (gradient,
optimiser buffers), all of the parameter's dtype; scalars come in that dtype too. Each
element is updated by exactly one ``prange`` iteration with no reduction, so results are
bit-identical whatever the thread count. Strict IEEE semantics (``kernel``): a NaN or inf
in a gradient reaches the parameter, as it would in NumPy.

``decay`` is the L2 coefficient lambda of ``lambda/2 ||W||^2``: its gradient ``lambda W``
is added to the loss gradient inside the kernel. Callers pass ``decay = 0`` for biases.
"""

import math

from numba import prange

from ._jit import kernel, with_serial_twin


@with_serial_twin
@kernel
def sgd_step(param, grad, lr, decay):
    """param[i] -= lr * (grad[i] + decay * param[i])."""
    for i in prange(param.size):
        p = param[i]
        param[i] = p - lr * (grad[i] + decay * p)


@with_serial_twin
@kernel
def sgd_momentum_step(param, grad, velocity, lr, momentum, decay, nesterov):
    """Heavy-ball momentum: v = momentum * v + g; param -= lr * v, with g = grad + decay * param.

    With ``nesterov`` the step is ``lr * (g + momentum * v)`` (the look-ahead form).
    """
    for i in prange(param.size):
        p = param[i]
        g = grad[i] + decay * p
        v = momentum * velocity[i] + g
        velocity[i] = v
        if nesterov:
            param[i] = p - lr * (g + momentum * v)
        else:
            param[i] = p - lr * v


@with_serial_twin
@kernel
def adam_step(param, grad, m, v, lr, beta1, beta2, eps, decay, inv_bias1, inv_bias2):
    """Adam (Kingma & Ba) with the L2 gradient ``decay * param`` added to ``grad``.

    m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
    param -= lr * (m * inv_bias1) / (sqrt(v * inv_bias2) + eps),
    where inv_bias1 = 1 / (1 - beta1^t) and inv_bias2 = 1 / (1 - beta2^t) at step t.
    """
    one = param.dtype.type(1)
    for i in prange(param.size):
        p = param[i]
        g = grad[i] + decay * p
        mi = beta1 * m[i] + (one - beta1) * g
        vi = beta2 * v[i] + (one - beta2) * (g * g)
        m[i] = mi
        v[i] = vi
        param[i] = p - lr * (mi * inv_bias1) / (math.sqrt(vi * inv_bias2) + eps)
