"""Hypothesis properties of entropy_with_logits, each within the tolerances involved (never ``==``).

Each bound is the table's tolerance of the results involved plus the rounding the property itself
introduces, stated next to it.
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.entropy import entropy as exact_entropy
from logitloss.testing.tolerances import EPS

from .helpers.isas import SUPPORTED_ISAS
from .helpers.libraries import require

hypothesis = require("hypothesis", module_level=True)
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

DTYPES = (np.float32, np.float64)
isas = pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


@st.composite
def logit_rows(draw, dtype, max_size=200, bound=1e3):
    """A 1-D row of finite logits in [-bound, bound], some entries -inf (at least one finite)."""
    n = draw(st.integers(1, max_size))
    width = 32 if dtype == np.float32 else 64
    x = draw(hnp.arrays(dtype, n, elements=st.floats(-bound, bound, width=width, allow_nan=False,
                                                      allow_infinity=False)))
    mask = draw(hnp.arrays(np.bool_, n))
    mask[draw(st.integers(0, n - 1))] = False
    x = x.copy()
    x[mask] = -np.inf
    return x


@isas
@dtypes
@given(data=st.data())
def test_bounds_zero_and_log_of_the_support(isa_name, dtype, data):
    """0 <= H <= log(k), k the finite entries (uniform over them is the maximum), within 8 eps relative."""
    x = data.draw(logit_rows(dtype))
    with logitloss.use_isa(isa_name):
        h = float(logitloss.entropy_with_logits(x))
    k = int(np.isfinite(x).sum())
    assert 0.0 <= h <= np.log(k) * (1 + 8 * EPS[np.dtype(dtype)]), (h, k)


@isas
@dtypes
@given(data=st.data())
def test_shift_invariance(isa_name, dtype, data):
    """H(x + c) == H(x) for the exact x + c: the rounding of x + c moves each entry by eps/2 |x_i + c|, so
    H by at most eps/2 max|x + c| times sum_c |dH/dx_c| <= 2 (|d_c - G| p_c summed is at most 2 G + ... <=
    2 max d); the bound adds both results' 8 eps of H."""
    x = data.draw(logit_rows(dtype))
    c = data.draw(st.floats(-1e3, 1e3, width=32 if dtype == np.float32 else 64))
    xc = (x + dtype(c)).astype(dtype)
    eps = EPS[np.dtype(dtype)]
    with logitloss.use_isa(isa_name):
        h, grad = logitloss.entropy_with_logits(x, return_grad=True)
        hc = float(logitloss.entropy_with_logits(xc))
    finite = np.isfinite(xc)
    rounding = eps / 2 * float(np.abs(xc[finite]).max()) * float(np.abs(grad).sum())
    assert abs(hc - float(h)) <= 8 * eps * (abs(float(h)) + abs(hc)) + 2 * rounding + 1e-300, (h, hc)


@isas
@dtypes
@given(data=st.data())
def test_gradient_sums_to_zero(isa_name, dtype, data):
    """sum_c dH/dx_c = sum_c p_c (d_c - G) = 0 exactly: the computed sum within the elements' tolerances
    (8 eps of p_c (d_c + G) each, and a subnormal ulp where an element is subnormal) plus the summation's own
    rounding (n eps of sum |g|)."""
    x = data.draw(logit_rows(dtype))
    with logitloss.use_isa(isa_name):
        _, grad = logitloss.entropy_with_logits(x, return_grad=True)
    exact = exact_entropy(x, method="float64")
    eps = EPS[np.dtype(dtype)]
    g = grad.astype(np.float64)
    bound = (8 * eps * float(exact.grad_scale.sum()) + len(x) * np.finfo(np.float64).eps * float(np.abs(g).sum())
             + len(x) * float(np.finfo(dtype).smallest_subnormal))
    assert abs(float(g.sum())) <= bound + 1e-300, (g.sum(), bound)


@isas
@given(data=st.data())
def test_temperature_raises_entropy(isa_name, data):
    """H(x / T) is non-decreasing in T (its derivative in T is Var_p[x] / T^3 >= 0), within the tolerances."""
    x = data.draw(logit_rows(np.float64, bound=50.0))
    t1 = data.draw(st.floats(0.25, 4.0))
    t2 = data.draw(st.floats(0.25, 4.0))
    low, high = sorted((t1, t2))
    with logitloss.use_isa(isa_name):
        h_low = float(logitloss.entropy_with_logits(x / low))
        h_high = float(logitloss.entropy_with_logits(x / high))
    assert h_low <= h_high + 16 * EPS[np.dtype(np.float64)] * (h_high + 60.0 * np.log(len(x) + 1)), (h_low, h_high)
