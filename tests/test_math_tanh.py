"""ULP sweep of the vectorized tanh and sech^2 (``tanh_and_sech_squared``, simd/math-inl.h), per ISA
and dtype: the logit softcap's capped logits and chain factor.

Documented contract: tanh within 4 ULP and sech^2 = 1 - tanh^2 within 6 ULP, relative wherever the
result is normal -- near 0 (tanh(u) ~ u keeps its relative accuracy) and near saturation (sech^2
from 4 e / (1 + e)^2, e = exp(-2|u|), no cancellation), down to |u| = 43.6 (float32) / 354 (float64);
past it sech^2 < 2^-124 / 2^-1020 is within 4 subnormal ULP.  +-inf: +-1 and 0; nan: nan.

References: mpmath (40 digits) on every point (float64 results of it, then the ULP error of the
dtype's result), over every binade of |u| of both signs, the split at |u| = 1/2, and saturation.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from logitloss import _core
from logitloss.testing.tolerances import ulp_of

from .helpers.libraries import require

DTYPES = (np.float32, np.float64)
BOUND = {"tanh": 4.0, "sech_squared": 6.0}
# Where e = exp(-2|u|) leaves the normal range: sech^2 is then subnormal-rounded (absolute bound).
NORMAL_LIMIT = {np.float32: 43.6, np.float64: 354.0}


def _random_magnitudes(rng, low, high, count, dtype):
    """Log-uniform magnitudes in [low, high] (every binade), as ``dtype``."""
    return np.exp(rng.uniform(np.log(low), np.log(high), count)).astype(dtype)


@functools.lru_cache(maxsize=None)
def sweep(dtype):
    """(u, exact tanh, exact sech^2): about 12,000 points, each with its mpmath reference."""
    mp = require("mpmath")
    rng = np.random.default_rng(2031 + (dtype == np.float64))
    limit = 2 * NORMAL_LIMIT[dtype]
    info = np.finfo(dtype)
    magnitudes = np.concatenate([
        _random_magnitudes(rng, float(info.smallest_normal), limit, 6000, dtype),  # every binade
        rng.uniform(0.0, 1.0, 2000).astype(dtype),  # the series and the split at 1/2
        (0.5 + rng.uniform(-1e-3, 1e-3, 1000)).astype(dtype),  # both sides of the split
        rng.uniform(5.0, NORMAL_LIMIT[dtype], 1000).astype(dtype),  # saturation: tanh near 1, sech^2 tiny
        np.array([0.0, 0.5, np.nextafter(dtype(0.5), dtype(0)), NORMAL_LIMIT[dtype], float(info.smallest_subnormal)],
                 dtype=dtype),
    ])
    u = np.concatenate([magnitudes, -magnitudes]).astype(dtype)
    tanh = np.empty(u.size)
    sech_squared = np.empty(u.size)
    with mp.workdps(40):
        for k, value in enumerate(u.tolist()):
            t = mp.tanh(mp.mpf(value))
            tanh[k] = float(t)
            sech_squared[k] = float(mp.sech(mp.mpf(value)) ** 2)
    u.setflags(write=False)
    return u, tanh, sech_squared


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("func", ["tanh", "sech_squared"])
def test_ulp_against_mpmath(isa, func, dtype):
    u, tanh, sech_squared = sweep(dtype)
    exact = tanh if func == "tanh" else sech_squared
    got = _core._eval_math(isa, func, np.ascontiguousarray(u))
    assert got.dtype == dtype and got.shape == u.shape
    errors = np.abs(got.astype(np.float64) - exact) / ulp_of(exact, dtype)
    normal = np.abs(u) <= NORMAL_LIMIT[dtype]
    worst = int(np.argmax(np.where(normal, errors, 0)))
    print(f"\n{func} {np.dtype(dtype).name} [{isa}]: max {errors[worst]:.3f} ULP at u={u[worst]!r}")
    assert errors[worst] <= BOUND[func], (
        f"{func} {np.dtype(dtype).name} [{isa}]: {errors[worst]:.3f} ULP at u={u[worst]!r} (got {got[worst]!r}, "
        f"exact {exact[worst]!r})")
    if func == "sech_squared":  # past the normal limit: absolute, in subnormal ULP
        subnormal_ulp = float(np.finfo(dtype).smallest_subnormal)
        far = ~normal
        assert far.any()
        assert np.all(np.abs(got[far].astype(np.float64) - exact[far]) <= 4 * subnormal_ulp + 6 * ulp_of(exact[far], dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_specials(isa, dtype):
    u = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, float(np.finfo(dtype).max)], dtype=dtype)
    tanh = _core._eval_math(isa, "tanh", u)
    sech_squared = _core._eval_math(isa, "sech_squared", u)
    assert tanh[:4].tolist() == [0.0, 0.0, 1.0, -1.0]
    assert np.signbit(tanh[1]) and not np.signbit(tanh[0])
    assert tanh[5:].tolist() == [1.0, -1.0, 1.0]
    assert sech_squared[:4].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert sech_squared[5:].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(tanh[4]) and np.isnan(sech_squared[4])
    # tiny u: tanh(u) = u exactly (its series' correction is far below half an ULP), subnormals too
    tiny = np.array([np.finfo(dtype).smallest_subnormal, np.finfo(dtype).smallest_normal, 1e-20], dtype=dtype)
    assert _core._eval_math(isa, "tanh", tiny).tolist() == tiny.tolist()
    assert _core._eval_math(isa, "sech_squared", tiny).tolist() == [1.0, 1.0, 1.0]
