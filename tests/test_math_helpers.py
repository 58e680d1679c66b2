"""ULP sweep of the vectorized exp / log / log1p helpers, per ISA and per dtype.

Documented contract (``logitloss._core._eval_math``): exp on [-104, 0] (float32) and [-745, 0]
(float64), subnormal results rounded once and never flushed, below the range 0, exp(-inf) = 0,
exp(nan) = nan; log on (0, inf) including subnormal inputs; log1p on (-1, inf); log1p_unit_interval
(the softplus term of binary cross-entropy) on [0, 1].  Max error 2 ULP.  exp_nonpositive and
exp_sum_term are the kernels' exp of x - max <= 0 (its output form, and its sum term
exp(x) * 2**S, S = 64 for float32 and 512 for float64, a normal number for every x in the range):
swept over exp's inputs, against the same references scaled by 2**S.

References:
* float32: numpy's float64 exp / log / log1p (correctly rounded to within ~1 float64 ulp, i.e.
  2**-29 float32 ulp): exact for a float32 ULP measurement.
* float64, full sweep (>= 10**6 inputs): numpy ``longdouble`` (x87 80-bit, 64-bit mantissa: 11 bits
  beyond float64, so its error is < 0.001 float64 ULP) where the platform has it.  Where
  ``longdouble`` is just float64 the full sweep is measured against float64 libm instead and the
  bound is 2 + 1 ULP (libm's own error), which the test states in its report line.
* float64, always: mpmath (40 digits) on a 20,000-point subsample including the hard regions
  (results near 1 and near 0, subnormal results, arguments near 1 and near -1); that sample also
  checks the longdouble reference itself.
The max ULP error of every (ISA, function, dtype) is printed in the terminal summary.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from logitloss import _core
from logitloss.testing.tolerances import ulp_of

from .helpers.libraries import require

FUNCS = ("exp", "exp_nonpositive", "exp_sum_term", "log", "log1p", "log1p_unit_interval")
EXP_FUNCS = ("exp", "exp_nonpositive", "exp_sum_term")  # swept over the same inputs
# The NumPy / mpmath function each helper computes, and the power of two its result carries.
REFERENCE_NAME = {"exp": "exp", "exp_nonpositive": "exp", "exp_sum_term": "exp", "log": "log", "log1p": "log1p",
                  "log1p_unit_interval": "log1p"}
SUM_SCALE = {np.float32: 64, np.float64: 512}


def _scale_exponent(func, dtype):
    return SUM_SCALE[dtype] if func == "exp_sum_term" else 0
DTYPES = (np.float32, np.float64)
MAX_ULP = 2.0
SWEEP_SIZE = 1_000_000
MP_SAMPLE = 20_000

EXP_LOWER = {np.float32: -104.0, np.float64: -745.0}
LONGDOUBLE_IS_EXTENDED = np.finfo(np.longdouble).nmant >= 63

UINT = {np.float32: np.uint32, np.float64: np.uint64}


def _bits(value, dtype):
    return int(np.array(value, dtype=dtype).view(UINT[dtype]))


def _from_bits(bits, dtype):
    return np.asarray(bits, dtype=UINT[dtype]).view(dtype)


def _random_bits(rng, low_value, high_value, count, dtype):
    """Uniform over the *representations* between two floats of one sign (log-uniform-ish)."""
    low, high = sorted((_bits(low_value, dtype), _bits(high_value, dtype)))
    return _from_bits(rng.integers(low, high, size=count, endpoint=True, dtype=np.uint64), dtype)


@functools.lru_cache(maxsize=None)
def sweep_inputs(func, dtype):
    """>= 10**6 inputs spread over the whole valid range of ``func`` in ``dtype``, plus hard regions."""
    if func in EXP_FUNCS:
        func = "exp"
    rng = np.random.default_rng(20240 + FUNCS.index(func) + (100 if dtype == np.float64 else 0))
    info = np.finfo(dtype)
    parts = []
    if func == "exp":
        lower = EXP_LOWER[dtype]
        subnormal_start = float(np.log(info.smallest_normal))  # exp below this is subnormal
        parts += [
            np.linspace(lower, 0.0, 600_001),
            _random_bits(rng, -0.0, lower, 300_000, dtype),  # every binade down to -denorm
            np.linspace(lower, subnormal_start, 150_000),  # subnormal results
            -(10.0 ** rng.uniform(-30, -1, 50_000)),  # results just below 1
            np.array([0.0, -0.0, lower, subnormal_start, -info.smallest_subnormal]),
        ]
    elif func == "log":
        parts += [
            _random_bits(rng, info.smallest_subnormal, info.max, 550_000, dtype),  # every binade
            _from_bits(_bits(1.0, dtype) + np.arange(-65_536, 65_537, dtype=np.int64), dtype),  # around 1
            np.linspace(0.5, 2.0, 250_000),
            _random_bits(rng, info.smallest_subnormal, info.smallest_normal, 100_000, dtype),  # subnormal
            np.ldexp(1.0, np.arange(info.minexp - info.nmant, info.maxexp)).astype(dtype),  # powers of 2
            np.array([info.smallest_subnormal, info.smallest_normal, info.max, 1.0]),
        ]
    elif func == "log1p_unit_interval":
        parts += [
            _random_bits(rng, info.smallest_subnormal, 1.0, 500_000, dtype),  # every binade of [0, 1]
            np.linspace(0.0, 1.0, 400_001),
            _from_bits(_bits(0.5, dtype) + np.arange(-75_000, 75_001, dtype=np.int64), dtype),  # the 1/2 split
            np.array([0.0, info.smallest_subnormal, info.smallest_normal, 0.5, 1.0]),
        ]
    else:  # log1p
        below_one = _bits(-1.0, dtype)
        parts += [
            _random_bits(rng, info.smallest_subnormal, info.max, 350_000, dtype),
            _random_bits(rng, -info.smallest_subnormal, np.nextafter(dtype(-1.0), dtype(0.0)), 250_000, dtype),
            _from_bits(np.uint64(below_one) - np.arange(1, 100_001, dtype=np.uint64), dtype),  # just above -1
            np.linspace(-0.9, 3.0, 250_000),
            _random_bits(rng, info.smallest_subnormal, 1e-3, 50_000, dtype),  # result ~ x
            -_random_bits(rng, info.smallest_subnormal, 1e-3, 50_000, dtype),
            np.array([0.0, info.smallest_subnormal, -info.smallest_subnormal, info.max]),
        ]
    x = np.concatenate([np.asarray(p, dtype=dtype) for p in parts])
    x = x[np.isfinite(x)]
    if func == "exp":
        x = x[(x >= EXP_LOWER[dtype]) & (x <= 0)]
    elif func == "log":
        x = x[x > 0]
    elif func == "log1p_unit_interval":
        x = x[(x >= 0) & (x <= 1)]
    else:
        x = x[x > -1]
    assert x.size >= SWEEP_SIZE
    x = np.ascontiguousarray(x, dtype=dtype)
    x.setflags(write=False)
    return x


def _reference_float64(func, x):
    return np.ldexp(getattr(np, REFERENCE_NAME[func])(x.astype(np.float64)), _scale_exponent(func, x.dtype.type))


@functools.lru_cache(maxsize=None)
def _reference_longdouble(func, dtype):
    exact = getattr(np, REFERENCE_NAME[func])(sweep_inputs(func, dtype).astype(np.longdouble))
    return exact * np.longdouble(2.0) ** _scale_exponent(func, dtype)


def _mp_sample(func, dtype):
    """Indices of the mpmath subsample: random over the sweep plus the hard regions."""
    x = sweep_inputs(func, dtype)
    rng = np.random.default_rng(7)
    random_part = rng.choice(x.size, size=MP_SAMPLE - 6000, replace=False)
    if func in EXP_FUNCS:
        hard = [np.argsort(np.abs(x))[:2000], np.argsort(x)[:2000]]  # results near 1, subnormal results
        near_half_ln2 = np.abs(np.remainder(x / np.log(2.0), 1.0) - 0.5)  # range-reduction boundary
        hard.append(np.argsort(near_half_ln2)[:2000])
    elif func == "log":
        hard = [np.argsort(np.abs(x - 1.0))[:3000], np.argsort(x)[:1500], np.argsort(x)[-1500:]]
    elif func == "log1p_unit_interval":  # tiny results, the split at 1/2, results near ln 2
        hard = [np.argsort(x)[:2000], np.argsort(np.abs(x - 0.5))[:2000], np.argsort(x)[-2000:]]
    else:
        hard = [np.argsort(np.abs(x))[:2000], np.argsort(x)[:2000], np.argsort(x)[-2000:]]
    return np.unique(np.concatenate([random_part] + hard))


@functools.lru_cache(maxsize=None)
def _reference_mpmath(func, dtype):
    """(indices, hi, residual): the exact value of each subsample point is ``hi + residual * ulp(hi)``,
    ``hi`` its float64 rounding.  (The residual is kept in ULPs because below float64's normal range
    ``exact - hi`` is not representable as a float64.)"""
    mp = require("mpmath")
    x = sweep_inputs(func, dtype)
    idx = _mp_sample(func, dtype)
    f = getattr(mp, REFERENCE_NAME[func])
    hi = np.empty(idx.size)
    residual = np.empty(idx.size)
    with mp.workdps(40):
        scale = mp.mpf(2) ** _scale_exponent(func, dtype)
        for k, i in enumerate(idx):
            value = f(mp.mpf(float(x[i]))) * scale
            high = float(value)  # a Python float: mpf - np.float64 would round in float64
            hi[k] = high
            residual[k] = float((value - high) / float(ulp_of(np.float64(high), np.float64)))
    return idx, hi, residual


def _ulp_errors_float32(got, x, func):
    exact = _reference_float64(func, x)
    return np.abs(got.astype(np.float64) - exact) / ulp_of(exact, np.float32)


def _ulp_errors_longdouble(got, exact_ld):
    return np.asarray(np.abs(got.astype(np.longdouble) - exact_ld) / ulp_of(exact_ld, np.float64), dtype=np.float64)


def _ulp_errors_residual(got, hi, residual):
    return np.abs((got - hi) / ulp_of(hi, np.float64) - residual)


def _record(report, isa, func, dtype, errors, x):
    worst = int(np.argmax(errors))
    key = (isa, func, np.dtype(dtype).name)
    previous = report.get(key)
    if previous is None or errors[worst] > previous[0]:
        report[key] = (float(errors[worst]), int(errors.size), float(x[worst]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("func", FUNCS)
def test_ulp_sweep(isa, func, dtype, ulp_report):
    x = sweep_inputs(func, dtype)
    got = _core._eval_math(isa, func, x)
    assert isinstance(got, np.ndarray) and got.dtype == dtype and got.shape == x.shape
    assert np.isfinite(got).all(), f"non-finite {func} output inside the valid range: x={x[~np.isfinite(got)][:5]}"
    if dtype == np.float32:
        errors = _ulp_errors_float32(got, x, func)
        bound = MAX_ULP
    elif LONGDOUBLE_IS_EXTENDED:
        errors = _ulp_errors_longdouble(got, _reference_longdouble(func, dtype))
        bound = MAX_ULP
    else:
        errors = np.abs(got - _reference_float64(func, x)) / ulp_of(_reference_float64(func, x), np.float64)
        bound = MAX_ULP + 1.0  # the float64 libm reference may itself be 1 ULP off
    _record(ulp_report, isa, func, dtype, errors, x)
    worst = int(np.argmax(errors))
    assert errors[worst] <= bound, (
        f"{func} {np.dtype(dtype).name} [{isa}]: {errors[worst]:.3f} ULP at x={x[worst]!r} "
        f"(got {got[worst]!r}); {int((errors > bound).sum())} of {x.size} inputs above {bound} ULP"
    )


@pytest.mark.parametrize("func", FUNCS)
def test_ulp_float64_mpmath_subsample(isa, func, ulp_report):
    x = sweep_inputs(func, np.float64)
    idx, hi, residual = _reference_mpmath(func, np.float64)
    assert idx.size >= MP_SAMPLE - 200  # the hard regions may overlap the random part a little
    sample = np.ascontiguousarray(x[idx])
    got = _core._eval_math(isa, func, sample)
    errors = _ulp_errors_residual(got, hi, residual)
    _record(ulp_report, isa, func + "/mp", np.float64, errors, sample)
    worst = int(np.argmax(errors))
    assert errors[worst] <= MAX_ULP, (
        f"{func} float64 [{isa}] vs mpmath: {errors[worst]:.3f} ULP at x={sample[worst]!r} (got {got[worst]!r})"
    )


@pytest.mark.parametrize("func", FUNCS)
def test_longdouble_reference_agrees_with_mpmath(func):
    """The float64 sweep's longdouble reference is itself within 0.01 float64 ULP of mpmath."""
    if not LONGDOUBLE_IS_EXTENDED:
        pytest.skip("longdouble is float64 here: the float64 sweep uses the libm reference and a 3 ULP bound")
    idx, hi, residual = _reference_mpmath(func, np.float64)
    exact_ld = _reference_longdouble(func, np.float64)[idx]
    in_ulps = (exact_ld - hi.astype(np.longdouble)) / ulp_of(hi, np.float64).astype(np.longdouble)
    errors = np.abs(np.asarray(in_ulps, dtype=np.float64) - residual)
    assert errors.max() < 0.01


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_exact_points_and_specials(isa, dtype):
    info = np.finfo(dtype)
    lower = EXP_LOWER[dtype]

    def ev(func, values):
        out = _core._eval_math(isa, func, np.ascontiguousarray(values, dtype=dtype))
        assert out.dtype == dtype
        return out

    assert ev("exp", [0.0, -0.0]).tolist() == [1.0, 1.0]
    assert ev("log", [1.0]).tolist() == [0.0]
    assert ev("log1p", [0.0]).tolist() == [0.0]
    assert ev("log1p_unit_interval", [0.0, 1.0]).tolist() == [0.0, float(dtype(np.log(2.0)))]
    assert np.isnan(ev("log1p_unit_interval", [np.nan])[0])
    # below float's resolution near 1 the result is e itself, subnormals included
    tiny_e = np.array([info.smallest_subnormal, 7 * info.smallest_subnormal, info.smallest_normal, 2**-60], dtype=dtype)
    assert ev("log1p_unit_interval", tiny_e).tolist() == tiny_e.tolist()
    # exp: -inf -> 0, nan -> nan, below the valid range -> exactly 0 (never garbage, never negative)
    out = ev("exp", [-np.inf, np.nan, lower - 0.5, lower * 2, -1e30, -info.max])
    assert out[0] == 0.0
    assert np.isnan(out[1])
    assert out[2:].tolist() == [0.0] * 4
    # the kernels' exp of x - max: the same limits
    out = ev("exp_nonpositive", [0.0, -np.inf, np.nan, lower - 0.5, -1e30, -info.max])
    assert out[0] == 1.0 and out[1] == 0.0 and np.isnan(out[2]) and out[3:].tolist() == [0.0] * 3
    out = ev("exp_sum_term", [0.0, -np.inf, np.nan, lower - 0.5, -1e30])
    assert out[0] == 2.0 ** SUM_SCALE[dtype] and np.isnan(out[2])
    # inside its range (down to -131 / -1060) a normal number; below it, and at -inf, exactly +0
    # (tests/test_exp_range.py has the ends of the range)
    assert out[3] >= info.smallest_normal and out[3] < 2.0 ** (SUM_SCALE[dtype] - 140)
    assert out[[1, 4]].tolist() == [0.0, 0.0] and not np.signbit(out[[1, 4]]).any()
    # subnormal results are rounded, not flushed: exp(log(k * denorm)) within 2 ULP (= 2 denorm)
    targets = np.array([1.0, 2.0, 3.0, 100.0, 12345.0]) * info.smallest_subnormal
    x = np.log(targets.astype(np.longdouble)).astype(dtype)
    got = ev("exp", x)
    expected = np.exp(x.astype(np.longdouble))
    assert (got > 0).all(), f"subnormal exp results flushed to zero: {got}"
    assert np.all(np.abs(got.astype(np.longdouble) - expected) <= 2 * info.smallest_subnormal), (got, expected)
    # log of a subnormal input: log(denorm) = (minexp - nmant) * ln 2
    expected = (info.minexp - info.nmant) * np.log(np.longdouble(2.0))
    got = ev("log", [info.smallest_subnormal])[0]
    assert abs(np.longdouble(got) - expected) <= 2 * ulp_of(expected, dtype)
    # log1p(x) rounds to x for |x| tiny, including subnormals: within 2 ULP of x
    tiny = np.array([info.smallest_subnormal, -info.smallest_subnormal, info.smallest_normal, 2**-60], dtype=dtype)
    got = ev("log1p", tiny)
    exact = np.log1p(tiny.astype(np.longdouble))
    assert np.all(np.abs(got.astype(np.longdouble) - exact) <= 2 * ulp_of(exact, dtype)), got
    # powers of two: exact multiples of ln 2 within 2 ULP (the sweep covers them too; cheap here)
    exponents = np.arange(-20, 21)
    expected = exponents * np.log(np.longdouble(2.0))
    got = ev("log", np.ldexp(dtype(1.0), exponents))
    assert got[exponents == 0].tolist() == [0.0]
    assert np.all(np.abs(got.astype(np.longdouble) - expected) <= 2 * ulp_of(expected, dtype))
