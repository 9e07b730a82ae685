"""Seeded weight initialisation: He (for ReLU-family layers) and Xavier/Glorot."""

import math
import numbers

import numpy as np

from ._validation import describe


def _is_seed_int(value):
    return (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
            and value >= 0)


def make_rng(seed=None, rng=None):
    """A numpy Generator: ``rng`` itself if given, else one seeded with ``seed``.

    ``seed`` is what ``numpy.random.default_rng`` takes: None (fresh entropy), a
    non-negative int, a non-empty sequence of non-negative ints, or a
    ``numpy.random.SeedSequence``, ``BitGenerator`` or ``Generator``; anything else is a
    TypeError, a negative int (or a bad sequence) a ValueError. ``rng`` is a
    ``numpy.random.Generator`` or None.
    """
    if rng is not None and seed is not None:
        raise ValueError("pass either seed or rng, not both")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator or None, got {describe(rng)}")
        return rng
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.BitGenerator,
                                         np.random.Generator)):
        return np.random.default_rng(seed)
    expected = ("None, a non-negative int, a sequence of non-negative ints or a "
                "numpy.random.SeedSequence, BitGenerator or Generator")
    if isinstance(seed, (list, tuple, np.ndarray)):
        items = np.asarray(seed, dtype=object).ravel() if isinstance(seed, np.ndarray) else seed
        if len(items) == 0 or not all(_is_seed_int(item) for item in items):
            raise ValueError(f"seed must be {expected}, got {describe(seed)}")
        return np.random.default_rng([int(item) for item in items])
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be {expected}, got {describe(seed)}")
    if seed < 0:
        raise ValueError(f"seed must be {expected}, got {seed!r}")
    return np.random.default_rng(int(seed))


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
