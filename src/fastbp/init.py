"""Seeded weight initialisation: He (for ReLU-family layers) and Xavier/Glorot."""

import math

import numpy as np


def make_rng(seed=None, rng=None):
    """A numpy Generator: ``rng`` itself if given, else one seeded with ``seed``."""
    if rng is not None and seed is not None:
        raise ValueError("pass either seed or rng, not both")
    return rng if rng is not None else np.random.default_rng(seed)


def he_normal(shape, fan_in, rng, dtype=np.float32):
    """N(0, 2 / fan_in) samples of ``shape``: keeps activations' variance through ReLUs."""
    return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype)


def xavier_uniform(shape, fan_in, fan_out, rng, dtype=np.float32):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)): Glorot's rule for tanh and sigmoid."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, shape).astype(dtype)


def initial_weight(scheme, shape, fan_in, fan_out, rng, dtype):
    """Weights by the name of their scheme: "he" or "xavier"."""
    if scheme == "he":
        return he_normal(shape, fan_in, rng, dtype)
    if scheme == "xavier":
        return xavier_uniform(shape, fan_in, fan_out, rng, dtype)
    raise ValueError(f"init must be 'he' or 'xavier', got {scheme!r}")
