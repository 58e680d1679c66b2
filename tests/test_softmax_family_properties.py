"""Hypothesis properties of the family, each within the tolerance table (never ``==``).

Each bound is the sum of the table's tolerances of the results involved plus the rounding the
property itself introduces (e.g. ``x + c`` rounded to the dtype), stated next to it.
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.softmax_family import logsumexp as exact_logsumexp, softmax as exact_softmax
from logitloss.testing.tolerances import EPS, GRADIENT, tolerance

from .helpers.isas import SUPPORTED_ISAS
from .helpers.libraries import require

hypothesis = require("hypothesis", module_level=True)
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

DTYPES = (np.float32, np.float64)


@st.composite
def logit_rows(draw, dtype, max_size=200, bound=1e3):
    """A 1-D row of finite logits in [-bound, bound], some entries -inf (at least one finite)."""
    n = draw(st.integers(1, max_size))
    width = 32 if dtype == np.float32 else 64
    x = draw(
        hnp.arrays(
            dtype,
            n,
            elements=st.floats(-bound, bound, width=width, allow_nan=False, allow_infinity=False),
        )
    )
    mask = draw(hnp.arrays(np.bool_, n))
    mask[draw(st.integers(0, n - 1))] = False
    x = x.copy()
    x[mask] = -np.inf
    return x


isas = pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


@isas
@dtypes
@given(data=st.data())
def test_shift_invariance(isa_name, dtype, data):
    """lse(x + c) == lse(x) + c within tol(lse(x + c)) + tol(lse(x)) + the rounding of x + c
    (each entry moves by <= eps/2 |x_i + c|, so lse by <= eps/2 max|x + c|)."""
    x = data.draw(logit_rows(dtype))
    c = data.draw(st.floats(-1e3, 1e3, width=32 if dtype == np.float32 else 64))
    xc = (x + dtype(c)).astype(dtype)
    with logitloss.use_isa(isa_name):
        shifted = float(logitloss.logsumexp(xc))
        plain = float(logitloss.logsumexp(x))
    exact_xc = exact_logsumexp(xc)
    exact_x = exact_logsumexp(x)
    finite = xc[np.isfinite(xc)]
    bound = (
        tolerance(dtype, exact_xc.value, exact_xc.scale)
        + tolerance(dtype, exact_x.value, exact_x.scale)
        + EPS[np.dtype(dtype)] / 2 * np.abs(finite).max()
        + EPS[np.dtype(np.float64)] * abs(plain + float(dtype(c)))  # the float64 sum plain + c
    )
    assert abs(shifted - (plain + float(dtype(c)))) <= bound


@isas
@dtypes
@given(data=st.data())
def test_lse_bounds(isa_name, dtype, data):
    """max(x) <= lse(x) <= max(x) + log(n), each within the table's tolerance of lse(x)."""
    x = data.draw(logit_rows(dtype))
    with logitloss.use_isa(isa_name):
        out = float(logitloss.logsumexp(x))
    exact = exact_logsumexp(x)
    tol = float(tolerance(dtype, exact.value, exact.scale))
    top = float(x.max())
    assert top - tol <= out <= top + np.log(np.isfinite(x).sum()) + tol


@isas
@dtypes
@given(data=st.data())
def test_softmax_sums_to_one(isa_name, dtype, data):
    """sum(softmax(x)) == 1 within the sum of the elements' tolerances (float64 summation of the
    results adds <= n eps64)."""
    x = data.draw(logit_rows(dtype))
    with logitloss.use_isa(isa_name):
        p = logitloss.softmax(x)
    exact = exact_softmax(x)
    bound = tolerance(dtype, exact.softmax, exact.softmax_scale).sum() + x.size * EPS[np.dtype(np.float64)]
    assert abs(p.astype(np.float64).sum() - 1.0) <= bound
    assert (p >= 0).all() and (p <= 1).all()


@isas
@dtypes
@given(data=st.data())
def test_lse_gradient_sums_to_one(isa_name, dtype, data):
    """sum(d lse / d x) == 1 within the sum of the gradient's per-element (normwise) tolerances."""
    x = data.draw(logit_rows(dtype))
    with logitloss.use_isa(isa_name):
        _, grad = logitloss.logsumexp(x, return_grad=True)
    exact = exact_logsumexp(x)
    bound = tolerance(dtype, exact.grad, exact.grad_scale, GRADIENT).sum() + x.size * EPS[np.dtype(np.float64)]
    assert abs(grad.astype(np.float64).sum() - 1.0) <= bound


@isas
@dtypes
@given(data=st.data())
def test_log_softmax_is_x_minus_lse(isa_name, dtype, data):
    """log_softmax(x) == x - lse(x) within tol(log_softmax_i) + tol(lse) (the float64 difference
    x_i - lse is exact to 1 eps64)."""
    x = data.draw(logit_rows(dtype))
    with logitloss.use_isa(isa_name):
        log_p = logitloss.log_softmax(x)
        lse = float(logitloss.logsumexp(x))
    exact_ls = exact_softmax(x)
    exact_lse = exact_logsumexp(x)
    finite = np.isfinite(x)
    assert (log_p[~finite] == -np.inf).all()
    bound = (
        tolerance(dtype, exact_ls.log_softmax, exact_ls.log_softmax_scale)
        + tolerance(dtype, exact_lse.value, exact_lse.scale)
        + EPS[np.dtype(np.float64)] * np.abs(x.astype(np.float64) - lse)
    )
    with np.errstate(invalid="ignore"):  # -inf - -inf at the masked entries (checked above)
        difference = np.abs(log_p.astype(np.float64) - (x.astype(np.float64) - lse))
    assert (difference[finite] <= bound[finite]).all()


@isas
@dtypes
@given(data=st.data())
def test_softmax_is_exp_log_softmax(isa_name, dtype, data):
    """softmax(x) == exp(log_softmax(x)): |p - exp(lp)| <= tol(p) + exp(lp) * (tol(lp) + eps64)."""
    x = data.draw(logit_rows(dtype))
    with logitloss.use_isa(isa_name):
        p = logitloss.softmax(x).astype(np.float64)
        lp = logitloss.log_softmax(x).astype(np.float64)
    exact = exact_softmax(x)
    via_log = np.exp(lp)
    masked = ~np.isfinite(x)
    assert (p[masked] == 0).all() and (via_log[masked] == 0).all()
    bound = tolerance(dtype, exact.softmax, exact.softmax_scale) + via_log * (
        tolerance(dtype, exact.log_softmax, exact.log_softmax_scale) + EPS[np.dtype(np.float64)]
    )
    assert (np.abs(p - via_log)[~masked] <= bound[~masked]).all()
