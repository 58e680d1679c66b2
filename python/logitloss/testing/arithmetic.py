"""Arithmetic beyond float64 for the references: mpmath at ``MP_DPS`` digits, error-free transformations,
double-double numbers (:class:`DD`), and the two number systems the loss references compute in.

A reference of a float16 / float32 result is computed in plain float64 (:class:`Float64Numbers`): its own
error is a few float64 eps, about 1e-9 of the float32 tolerance.  A reference of a float64 result needs more:
mpmath for the transcendental functions, rounded back as ``hi + lo`` pairs (:func:`split`), and the sums and
products after them in double-double (:class:`DoubleDoubleNumbers`, ~106 bits).
"""

from __future__ import annotations

import importlib
import math

import numpy as np

__all__ = [
    "DD",
    "METHODS",
    "MP_DPS",
    "DoubleDoubleNumbers",
    "Float64Numbers",
    "fast_two_sum",
    "load_mpmath",
    "numbers_for",
    "split",
    "two_prod",
    "two_sum",
    "uses_mpmath",
]

MP_DPS = 50  # significant digits of the mpmath paths


def load_mpmath():
    """mpmath, or an ImportError that says which extra brings it."""
    try:
        return importlib.import_module("mpmath")
    except ImportError as error:
        raise ImportError(
            "the exact references of float64 results need mpmath: pip install 'logitloss[test]' (or [bench])",
            name="mpmath",
        ) from error


def split(mp, x):
    """mp number -> (hi, lo) float64 pair with hi + lo == x to ~106 bits."""
    hi = float(x)
    if not math.isfinite(hi):
        return hi, 0.0
    return hi, float(x - hi)


def two_sum(x, y):
    """Error-free sum: ``x + y == s + e`` exactly (Knuth), elementwise float64; ``e`` is 0 where ``s`` is
    not finite."""
    s = x + y
    virtual = s - x
    e = (x - (s - virtual)) + (y - virtual)
    return s, np.where(np.isfinite(s), e, 0.0)


def fast_two_sum(x, y):
    """``two_sum`` for ``|x| >= |y|`` (Dekker)."""
    s = x + y
    e = y - (s - x)
    return s, np.where(np.isfinite(s), e, 0.0)


def two_prod(x, y):
    """Error-free product: ``x * y == p + e`` exactly (Dekker), elementwise float64; ``e`` is 0 where ``p``
    is not finite, and where Dekker's split overflows (beyond ~1e300)."""
    p = x * y
    splitter = 134217729.0  # 2**27 + 1

    def halves(v):
        c = splitter * v
        hi = c - (c - v)
        return hi, v - hi

    with np.errstate(all="ignore"):
        xh, xl = halves(x)
        yh, yl = halves(y)
        e = ((xh * yh - p) + xh * yl + xl * yh) + xl * yl
    return p, np.where(np.isfinite(p) & np.isfinite(e), e, 0.0)


class DD:
    """A float64 array pair ``hi + lo`` (|lo| <= ulp(hi) / 2): ~106 bits, vectorized.

    Enough for a float64 result to ~1e-30 relative (the tolerance is 8 eps = 1.8e-15).
    """

    __array_priority__ = 1000  # numpy arrays defer to our reflected operators

    def __init__(self, hi, lo=0.0):
        self.hi = np.asarray(hi, dtype=np.float64)
        self.lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), self.hi.shape)

    @staticmethod
    def of(value):
        return value if isinstance(value, DD) else DD(value)

    @property
    def shape(self):
        return self.hi.shape

    def __getitem__(self, key):
        return DD(self.hi[key], self.lo[key])

    def __neg__(self):
        return DD(-self.hi, -self.lo)

    def __add__(self, other):
        other = DD.of(other)
        s, e = two_sum(self.hi, other.hi)
        e = e + (self.lo + other.lo)
        return DD(*fast_two_sum(s, np.where(np.isfinite(s), e, 0.0)))

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-DD.of(other))

    def __rsub__(self, other):
        return DD.of(other) + (-self)

    def __mul__(self, other):
        other = DD.of(other)
        p, e = two_prod(self.hi, other.hi)
        with np.errstate(invalid="ignore"):
            cross = self.hi * other.lo + self.lo * other.hi
        e = e + np.where(np.isfinite(cross), cross, 0.0)
        return DD(*fast_two_sum(p, np.where(np.isfinite(p), e, 0.0)))

    __rmul__ = __mul__

    def __truediv__(self, other):
        other = DD.of(other)
        q1 = self.hi / other.hi
        r = self - other * q1
        q2 = r.hi / other.hi
        r = r - other * q2
        q3 = r.hi / other.hi
        finite = np.isfinite(q1)
        q2 = np.where(finite, q2, 0.0)
        q3 = np.where(finite, q3, 0.0)
        s, e = fast_two_sum(q1, q2)
        return DD(s, e) + DD(np.where(finite, q3, 0.0))

    def __rtruediv__(self, other):
        return DD.of(other) / self

    def __float__(self):
        return float(self.hi) + float(self.lo)


class Float64Numbers:
    """Plain float64 arrays: the number system of float16 / float32 results."""

    exact = False

    def pair(self, hi, lo):
        return np.asarray(hi, dtype=np.float64) + np.asarray(lo, dtype=np.float64)

    def const(self, value):
        return np.float64(value)

    def where(self, cond, a, b):
        return np.where(cond, a, b)

    def nonzero(self, x):
        return np.asarray(x) != 0

    def rowsum(self, x):
        return np.asarray(x).sum(axis=1)

    def total(self, x):
        return np.float64(np.asarray(x).sum())

    def split(self, values):
        values = np.asarray(values, dtype=np.float64)
        return values, np.zeros_like(values)

    def to_float(self, values):
        return np.asarray(values, dtype=np.float64)


class DoubleDoubleNumbers:
    """:class:`DD` arrays, sums over rows correctly rounded: the number system of float64 results."""

    exact = True

    def pair(self, hi, lo):
        return DD(hi, lo)

    def const(self, value):
        return DD(float(value))

    def where(self, cond, a, b):
        a, b = DD.of(a), DD.of(b)
        return DD(np.where(cond, a.hi, b.hi), np.where(cond, a.lo, b.lo))

    def nonzero(self, x):
        return DD.of(x).hi != 0

    def rowsum(self, x):
        """Row sums, correctly rounded as hi and again as lo (math.fsum); plain where non-finite."""
        x = DD.of(x)
        R = x.shape[0]
        hi = np.empty(R)
        lo = np.zeros(R)
        for r in range(R):
            pieces = np.concatenate([x.hi[r], x.lo[r]])
            if np.all(np.isfinite(pieces)):
                h = math.fsum(pieces.tolist())
                hi[r] = h
                if math.isfinite(h):
                    lo[r] = math.fsum(pieces.tolist() + [-h])
            else:
                with np.errstate(invalid="ignore"):
                    hi[r] = x.hi[r].sum()
        return DD(hi, lo)

    def total(self, x):
        x = DD.of(x)
        return self.rowsum(DD(x.hi.reshape(1, -1), x.lo.reshape(1, -1)))[0]

    def split(self, values):
        values = DD.of(values)
        return values.hi.copy(), np.where(np.isfinite(values.hi), values.lo, 0.0)

    def to_float(self, values):
        values = DD.of(values)
        with np.errstate(invalid="ignore"):
            return values.hi + np.where(np.isfinite(values.hi), values.lo, 0.0)


def numbers_for(exact):
    """Double-double for an exact (float64 result) reference, plain float64 otherwise."""
    return DoubleDoubleNumbers() if exact else Float64Numbers()


METHODS = (None, "float64", "mpmath")


def uses_mpmath(result_dtype, method=None):
    """Whether a reference of a ``result_dtype`` result computes in mpmath: ``method`` None chooses by the
    result dtype (mpmath for float64 results, float64 with care for float16 / float32 ones); "float64" or
    "mpmath" forces one (a sanity check of large float64 arrays does not need 50 digits)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return np.dtype(result_dtype) == np.float64 if method is None else method == "mpmath"
