"""exp, expm1, log1p and tanh in plain arithmetic, so that LLVM vectorises the loops calling them.

``math.exp`` and its kin compile to one libm call per value: a loop over them stays
scalar (a sigmoid over 64x32x32x32 float32 values took 18 ms, 9 ns a value; now 1.1 ms). These are
the textbook algorithms, written with operations every vector instruction set has (AVX2,
AVX-512, NEON): the argument is reduced to ``x = k ln2 + r`` with |r| <= ln2 / 2
(Cody-Waite: ln2 split in two so that ``k * LN2_HI`` is exact), e^r - 1 is a Taylor
polynomial long enough for the dtype, and 2^k is built from its exponent bits
(``_pow2``, an LLVM bitcast; portable IR, no instruction set named). log1p on [0, 1]
maps 1 + y to m 2^j with m in [sqrt(1/2), sqrt(2)] and sums ``2 atanh((m - 1) / (m + 1))``.

Each float32 function is computed in float32, each float64 one in float64 (the
constants are picked by the argument's type at compile time, ``_of``).
Errors against higher-precision references (tests/test_elementary.py), in ulps: exp and
log1p below 1, expm1 below 2, tanh below 3 (2.2-2.5, as the libm calls these replaced); NaN gives NaN, and
the infinities, overflow, -0.0 and subnormal results are what libm gives.
"""

import math

import llvmlite.ir as ir
import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from ._jit import inline_kernel

# Compiled once per dtype and inlined by LLVM into the callers' loops, where they vectorise
# (numba's own inlining re-types every copy: the activation kernels took 29 s to compile,
# 4.6 s so). ``contract``, and only it: a * b + c as one fused multiply-add, rounded once,
# makes a sigmoid 1.4-1.6x faster (AVX-512 and AVX2) and no less accurate; no
# re-association, so NaN, inf and the thread count change nothing. NumPy's error model:
# no zero test before a division, which would keep the loop scalar.
elementary = njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")

# float32: 2^k for k in [-126, 127] from its bits; float64: k in [-1022, 1023].
_EXPONENT = {32: (ir.IntType(32), 127, 23), 64: (ir.IntType(64), 1023, 52)}


@intrinsic
def _pow2(typingctx, k):
    """2^k as k's float type, for k a float holding an integer in the normal exponent range."""
    if not isinstance(k, types.Float):
        return None
    int_type, bias, shift = _EXPONENT[k.bitwidth]

    def codegen(context, builder, signature, args):
        bits = builder.fptosi(args[0], int_type)
        bits = builder.shl(builder.add(bits, ir.Constant(int_type, bias)), ir.Constant(int_type, shift))
        return builder.bitcast(bits, context.get_value_type(k))

    return k(k), codegen


def _taylor(count):
    """1/2!, 1/3!, ... 1/count!: e^r - 1 = r + r^2 (1/2! + r (1/3! + ...))."""
    out, factorial = [], 1.0
    for n in range(2, count + 1):
        factorial *= n
        out.append(1.0 / factorial)
    return tuple(out)


class _Constants:
    """A dtype's constants. The polynomials' lengths: float32 to r^8 (the next term,
    (ln2/2)^9 / 9!, is 2e-10 of r), float64 to r^13 (1e-17); log1p's series 2 atanh(s) =
    2s + s (2z/3 + 2z^2/5 + ...) to z^5 and z^11 in z = s^2 <= 0.0295."""

    def __init__(self, t, ln2_hi, ln2_lo, exp_min, exp_max, expm1_min, expm1_max, tanh_max,
                 taylor, atanh):
        self.log2e, self.ln2_hi, self.ln2_lo = t(np.log2(np.e)), t(ln2_hi), t(ln2_lo)
        self.exp_min, self.exp_max = t(exp_min), t(exp_max)
        self.expm1_min, self.expm1_max = t(expm1_min), t(expm1_max)
        self.tanh_max = t(tanh_max)
        self.taylor = tuple(t(c) for c in _taylor(taylor))
        self.atanh = tuple(t(2.0 / (2 * n + 1)) for n in range(1, atanh + 1))
        self.sqrt2 = t(np.sqrt(2.0))
        self.zero, self.half, self.one, self.two = t(0), t(0.5), t(1), t(2)


# exp's argument clamped to [exp_min, exp_max], beyond which the result is 0 or inf
# anyway; expm1's to [expm1_min, exp_max] (below, -1), and computed as exp(x) - 1 above
# expm1_max; tanh's 2|x| stays within expm1_max.
_F32 = _Constants(np.float32, 0.693359375, -2.12194440e-4, -104.0, 89.0, -30.0, 20.0, 10.0, 8, 5)
_F64 = _Constants(np.float64, 6.93147180369123816490e-01, 1.90821492927058770002e-10,
                  -746.0, 710.0, -60.0, 40.0, 20.0, 13, 11)


def _of(x, name):
    """The constant ``name`` (an attribute of ``_Constants``) of x's float type (stub)."""


@overload(_of, inline="always", prefer_literal=True)
def _of_typed(x, name):
    if not isinstance(x, types.Float) or not isinstance(name, types.StringLiteral):
        return None
    value = getattr(_F32 if x.bitwidth == 32 else _F64, name.literal_value)
    return lambda x, name: value


@inline_kernel
def _horner(x, coefficients):
    """c0 + x (c1 + x (c2 + ...)) for a tuple of constants (unrolled: its length is known)."""
    p = coefficients[-1]
    for i in range(len(coefficients) - 2, -1, -1):
        p = coefficients[i] + x * p
    return p


@inline_kernel
def _reduce(x):
    """(k, r): x = k ln2 + r, |r| <= ln2/2 (and a rounding), k integral."""
    k = np.floor(x * _of(x, "log2e") + _of(x, "half"))
    return k, (x - k * _of(x, "ln2_hi")) - k * _of(x, "ln2_lo")


@inline_kernel
def _expm1_reduced(r):
    """e^r - 1 for |r| <= ln2/2: the Taylor polynomial."""
    return r + (r * r) * _horner(r, _of(r, "taylor"))


@inline_kernel
def _scales(k, half):
    """(2^k1, 2^k2) with k1 + k2 = k: k reaches past the normal exponents at both ends of
    exp's range, its halves do not."""
    k1 = np.floor(k * half)
    return _pow2(k1), _pow2(k - k1)


@elementary
def exp_value(x):
    """e^x; 0 below and inf above the dtype's range, NaN for NaN."""
    k, r = _reduce(min(max(x, _of(x, "exp_min")), _of(x, "exp_max")))
    s1, s2 = _scales(k, _of(x, "half"))
    e = ((_of(x, "one") + _expm1_reduced(r)) * s1) * s2
    return e if x == x else x


@elementary
def expm1_value(x):
    """e^x - 1, accurate also near 0 (-0.0 stays -0.0); NaN for NaN."""
    one = _of(x, "one")
    k, r = _reduce(min(max(x, _of(x, "expm1_min")), _of(x, "exp_max")))
    p = _expm1_reduced(r)
    s1, s2 = _scales(k, _of(x, "half"))
    scale = s1 * s2
    # For |x| <= ln2/2, k = 0 and r = x: the polynomial is the result. Up to expm1_max,
    # 2^k (1 + p) - 1 = 2^k p + (2^k - 1) loses nothing to cancellation; beyond, the 1
    # is below the result's rounding, and 2^k alone may overflow where the result does not.
    e = scale * p + (scale - one) if x <= _of(x, "expm1_max") else ((one + p) * s1) * s2 - one
    return x if x != x or x == 0 else e


@elementary
def log1p_unit(y):
    """log(1 + y) for y in [0, 1] (softplus and the logistic losses take the log of
    1 + e^-|v|); NaN for NaN."""
    one, half = _of(y, "one"), _of(y, "half")
    u = one + y
    # u - 1 is exact; y - (u - 1), the rounding of 1 + y, enters as its first-order term
    correction = (y - (u - one)) / u
    high = u > _of(y, "sqrt2")
    j = one if high else _of(y, "zero")
    f = (u * half if high else u) - one  # log(1 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1]
    # fdlibm's form: s = f / (2 + f), log(1 + f) = 2 atanh(s) = f - (f^2/2 - s (f^2/2 + R))
    s = f / (_of(y, "two") + f)
    z = s * s
    hfsq = half * f * f
    series = s * (hfsq + z * _horner(z, _of(y, "atanh")))
    tail = hfsq - (series + (j * _of(y, "ln2_lo") + correction))
    return j * _of(y, "ln2_hi") - (tail - f)


@elementary
def tanh_value(x):
    """tanh(x) = e / (e + 2) with e = expm1(2|x|), the sign of x (-0.0 included); NaN for
    NaN. |x| is clamped where tanh rounds to 1 (above 9.01 in float32, 19.1 in float64)."""
    e = expm1_value(_of(x, "two") * min(abs(x), _of(x, "tanh_max")))
    return x if x != x else math.copysign(e / (e + _of(x, "two")), x)
