"""The notes' update rule: gradient descent with L2 weight decay."""


def sgd_step(param, grad, lr, weight_decay=0.0):
    """Gradient descent on ``E = 1/N sum_n E_n + lambda/2 ||W||^2``:
    ``W <- W - eta (dE/dW + lambda W)``, ``dE/dW`` being ``grad`` (the batch mean's
    gradient). Returns the new parameter. Biases are not decayed (the notes update B by
    the data term alone): pass ``weight_decay=0`` for them."""
    return param - lr * (grad + weight_decay * param)
