"""Hypothesis properties of cross_entropy, each within the tolerances of the results involved
(never ``==``), on every ISA this CPU supports (looped inside each example, so the reference is
computed once per example).

Each bound is the sum of the cross-entropy tolerances (``logitloss.testing.cross_entropy``) of the results
involved plus what the property itself introduces (e.g. ``x + c`` rounded to the dtype), stated
next to it.
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.arithmetic import two_sum
from logitloss.testing.cross_entropy import cross_entropy as exact_cross_entropy
from logitloss.testing.tolerances import EPS

from .helpers.cross_entropy_checks import assert_loss_close, grad_tolerance, loss_tolerance
from .helpers.isas import SUPPORTED_ISAS, per_isa
from .helpers.libraries import require

hypothesis = require("hypothesis", module_level=True)
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

DTYPES = (np.float32, np.float64)
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
EPS64 = EPS[np.dtype(np.float64)]


class Problem:
    def __init__(self, x, target, weight, smoothing, kind):
        self.x, self.target, self.weight, self.smoothing, self.kind = x, target, weight, smoothing, kind

    def kwargs(self, reduction="none"):
        return dict(weight=self.weight, reduction=reduction, label_smoothing=self.smoothing)

    def coefficient_bound(self):
        """An upper bound of A = sum_c B_c per row (see logitloss.testing.cross_entropy)."""
        wmax = 1.0 if self.weight is None else float(np.max(self.weight.astype(np.float64), initial=0.0))
        if self.kind == "index":
            return np.full(self.x.shape[0], wmax)
        # sum_c w_c ((1 - eps) y_c + eps / C) <= wmax (sum_c y_c + eps)
        return wmax * (self.target.astype(np.float64).sum(axis=1) + self.smoothing)

    def __repr__(self):
        return (
            f"Problem(x={self.x.tolist()!r}, target={self.target.tolist()!r}, "
            f"weight={None if self.weight is None else self.weight.tolist()!r}, smoothing={self.smoothing!r}, "
            f"dtype={self.x.dtype})"
        )


@st.composite
def problems(draw, dtype, bound=1e3):
    """(N, C) logits in [-bound, bound] (index targets without smoothing: some -inf masks, never
    on the target), index targets (some ignored) or probability targets in [0, 1] summing to 1,
    optional positive weights, label smoothing in [0, 1]."""
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, 70))
    width = 32 if dtype == np.float32 else 64
    x = draw(
        hnp.arrays(dtype, (n, c), elements=st.floats(-bound, bound, width=width, allow_nan=False, allow_infinity=False))
    ).copy()
    kind = draw(st.sampled_from(["index", "probability"]))
    smoothing = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
    if kind == "index":
        target = draw(hnp.arrays(np.int64, n, elements=st.integers(0, c - 1)))
        ignored = draw(hnp.arrays(np.bool_, n))
        target = np.where(ignored, -100, target)
        if smoothing == 0.0:
            mask = draw(hnp.arrays(np.bool_, (n, c)))
            mask[np.arange(n), np.where(target >= 0, target, 0)] = False
            x[mask] = -np.inf
    else:
        raw = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(0.0, 1.0)))
        raw[:, 0] += 1e-3  # never an all-zero row
        target = (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)
    weighted = draw(st.booleans())
    weight = None
    if weighted:
        # Positive, normal weights: with a zero or subnormal sum of target weights the mean divides
        # by (nearly) 0 and torch's gradient is not finite either. Zero, tiny and huge weights have
        # their own tests in test_cross_entropy.py.
        weight = draw(hnp.arrays(dtype, c, elements=st.floats(2.0**-6, 4.0, width=width)))
    return Problem(x, target, weight, smoothing, kind)


@dtypes
@given(data=st.data())
def test_loss_is_non_negative(dtype, data):
    """Index targets and probability targets in [0, 1] with non-negative weights: every row's loss
    is a non-negative combination of L - z_c >= 0, so loss >= -tolerance (the tolerance is 0
    relative to |exact| for exact 0 rows, plus a subnormal ulp)."""
    problem = data.draw(problems(dtype))
    exact = exact_cross_entropy(problem.x, problem.target, **problem.kwargs())
    tol = loss_tolerance(exact)
    for name, loss in per_isa(lambda: logitloss.cross_entropy(problem.x, problem.target, **problem.kwargs())).items():
        loss64 = loss.astype(np.float64)
        assert not np.isnan(loss64).any(), f"{name}: nan loss {loss}"
        assert (loss64 >= -tol).all(), f"{name}: negative loss {loss}"
        assert_loss_close(loss, exact, what=name)


@dtypes
@given(data=st.data())
def test_gradient_rows_sum_to_zero(dtype, data):
    """sum_c d loss_row / d z_c = A sum_c p_c - sum_c B_c = 0 for every target kind, any weights and
    smoothing: within the sum of the row's per-element tolerances (+ the float64 summation)."""
    problem = data.draw(problems(dtype))
    exact = exact_cross_entropy(problem.x, problem.target, **problem.kwargs())
    bound = grad_tolerance(exact).sum(axis=1)
    for name, (_, grad) in per_isa(
        lambda: logitloss.cross_entropy(problem.x, problem.target, **problem.kwargs(), return_grad=True)
    ).items():
        g = grad.astype(np.float64)
        assert np.isfinite(g).all(), f"{name}: non-finite gradient {grad}"
        sums = g.sum(axis=1)
        allowed = bound + g.shape[1] * EPS64 * np.abs(g).sum(axis=1)
        assert (np.abs(sums) <= allowed).all(), f"{name}: row sums {sums}, allowed {allowed}"


@dtypes
@given(data=st.data())
def test_shift_invariance(dtype, data):
    """Adding a constant c_r to row r changes nothing but the rounding of x + c: with
    delta = fl(x + c) - (x + c) (exact), |loss(fl(x + c)) - loss(x)| <= tol + tol' +
    sum_i (|g_i| + 2 A max|delta|) |delta_i| (the Hessian's inf-norm is <= 2 A), and every gradient
    element moves by <= tol + tol' + 2 A max|delta|."""
    problem = data.draw(problems(dtype))
    n = problem.x.shape[0]
    width = 32 if dtype == np.float32 else 64
    c = data.draw(hnp.arrays(dtype, n, elements=st.floats(-1e3, 1e3, width=width)))
    x = problem.x
    with np.errstate(invalid="ignore"):
        shifted = (x + c[:, None]).astype(dtype)
        s, e = two_sum(x.astype(np.float64), np.broadcast_to(c[:, None].astype(np.float64), x.shape))
        if dtype == np.float32:
            delta = shifted.astype(np.float64) - (x.astype(np.float64) + c[:, None].astype(np.float64))
        else:
            delta = -e  # fl(x + c) = s exactly; x + c = s + e
    delta = np.where(np.isfinite(x), delta, 0.0)
    kwargs = problem.kwargs()
    exact = exact_cross_entropy(x, problem.target, **kwargs)
    exact_shifted = exact_cross_entropy(shifted, problem.target, **kwargs)
    A = problem.coefficient_bound()
    max_delta = np.abs(delta).max(axis=1)
    with np.errstate(invalid="ignore"):
        g_abs = np.where(np.isfinite(exact.grad), np.abs(exact.grad), 0.0)
        loss_bound = (
            loss_tolerance(exact)
            + loss_tolerance(exact_shifted)
            + ((g_abs + (2 * A * max_delta)[:, None]) * np.abs(delta)).sum(axis=1)
            + EPS64 * np.abs(exact.loss)
        )
        grad_bound = grad_tolerance(exact) + grad_tolerance(exact_shifted) + (2 * A * max_delta)[:, None]
    call = lambda z: logitloss.cross_entropy(z, problem.target, **kwargs, return_grad=True)  # noqa: E731
    plain = per_isa(lambda: call(x))
    moved = per_isa(lambda: call(shifted))
    for name in SUPPORTED_ISAS:
        loss, grad = plain[name]
        loss_s, grad_s = moved[name]
        difference = np.abs(loss_s.astype(np.float64) - loss.astype(np.float64))
        assert (difference <= loss_bound).all(), f"{name}: loss moved by {difference}, allowed {loss_bound}"
        gd = np.abs(grad_s.astype(np.float64) - grad.astype(np.float64))
        assert (gd <= grad_bound).all(), f"{name}: gradient moved by {gd.max()}, allowed {grad_bound.min()}"


@dtypes
@given(data=st.data())
def test_reductions_agree(dtype, data):
    """sum == sum of the 'none' losses and mean == sum / denominator, within the tolerances of the
    results compared (+ the float64 summation of the 'none' values)."""
    problem = data.draw(problems(dtype))
    exact_none = exact_cross_entropy(problem.x, problem.target, **problem.kwargs("none"))
    exact_sum = exact_cross_entropy(problem.x, problem.target, **problem.kwargs("sum"))
    exact_mean = exact_cross_entropy(problem.x, problem.target, **problem.kwargs("mean"))
    den = exact_mean.denominator
    for name in SUPPORTED_ISAS:
        with logitloss.use_isa(name):
            none = logitloss.cross_entropy(problem.x, problem.target, **problem.kwargs("none")).astype(np.float64)
            total = float(logitloss.cross_entropy(problem.x, problem.target, **problem.kwargs("sum")))
            mean = float(logitloss.cross_entropy(problem.x, problem.target, **problem.kwargs("mean")))
        if not np.isfinite(none).all():
            continue  # inf / nan rows: checked against the reference elsewhere
        bound = (
            loss_tolerance(exact_none).sum()
            + float(loss_tolerance(exact_sum))
            + none.size * EPS64 * np.abs(none).sum()
        )
        assert abs(total - none.sum()) <= bound, f"{name}: sum {total!r} vs sum(none) {none.sum()!r}"
        if den == 0:
            assert np.isnan(mean), f"{name}: mean over nothing {mean!r}"
        else:
            bound = float(loss_tolerance(exact_mean)) + float(loss_tolerance(exact_sum)) / den + EPS64 * abs(mean)
            assert abs(mean - total / den) <= bound, f"{name}: mean {mean!r} vs sum / {den} = {total / den!r}"
