"""Hypothesis properties of binary_cross_entropy_with_logits, each within the tolerances of the
results involved (``logitloss.testing.binary_cross_entropy``), on every ISA this CPU supports (looped
inside each example, so the reference is computed once per example).

Logits cover the dtype's whole range (subnormals, huge values, and where stated +-inf); targets
lie in [0, 1]; weight and pos_weight are non-negative, per element or scalar -- the domain of the
spec's accuracy bound.
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.binary_cross_entropy import REDUCTIONS, binary_cross_entropy as exact_binary_cross_entropy
from logitloss.testing.tolerances import rounded_range, to_float64

from .helpers.assertions import check_special_values
from .helpers.binary_cross_entropy_checks import (
    assert_grad_close,
    check_binary_cross_entropy,
    grad_tolerance,
    loss_tolerance,
)
from .helpers.isas import SUPPORTED_ISAS, per_isa
from .helpers.libraries import require

hypothesis = require("hypothesis", module_level=True)
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

DTYPES = (np.float16, np.float32, np.float64)
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
WIDTH = {np.dtype(np.float16): 16, np.dtype(np.float32): 32, np.dtype(np.float64): 64}


class Problem:
    def __init__(self, x, y, weight, pos_weight):
        self.x, self.y, self.weight, self.pos_weight = x, y, weight, pos_weight

    def kwargs(self, reduction="none"):
        return dict(weight=self.weight, reduction=reduction, pos_weight=self.pos_weight)

    def __repr__(self):
        def show(a):
            return None if a is None else np.asarray(a).tolist()

        return (
            f"Problem(x={show(self.x)!r}, y={show(self.y)!r}, weight={show(self.weight)!r}, "
            f"pos_weight={show(self.pos_weight)!r}, dtype={self.x.dtype})"
        )


def non_negative_operand(draw, n, dtype):
    """None, a scalar or a per-element array of values 0 or in [2**-8, 4].  (Subnormal and tiny
    operands make pw * y underflow next to a huge |x|: test_tiny_factor_products.)"""
    kind = draw(st.sampled_from(["none", "scalar", "array"]))
    if kind == "none":
        return None
    shape = () if kind == "scalar" else (n,)
    values = st.one_of(st.just(0.0), st.floats(2.0**-8, 4.0, width=WIDTH[np.dtype(dtype)]))
    return draw(hnp.arrays(dtype, shape, elements=values))


@st.composite
def problems(draw, dtype, *, infinities=False, grid_targets=False, pos_weight=True):
    """n in [1, 40] logits over the whole range of ``dtype`` (+-inf too with ``infinities``),
    targets in [0, 1] (multiples of 1/64 with ``grid_targets``, so that 1 - y is exact too),
    optional non-negative weight and pos_weight."""
    n = draw(st.integers(1, 40))
    width = WIDTH[np.dtype(dtype)]
    x = draw(hnp.arrays(dtype, n, elements=st.floats(allow_nan=False, allow_infinity=infinities, width=width)))
    if grid_targets:
        y = (draw(hnp.arrays(np.int64, n, elements=st.integers(0, 64))) / 64.0).astype(dtype)
    else:
        # Targets are 0 or normal, and at least 2^16 times the smallest normal of the compute
        # dtype (float32 for float16): a smaller target makes its products with the logit, the
        # weight and the pos_weight (each >= 2^-8) subnormal and rounded more than once (outside
        # the spec's one-rounding subnormal bound; docs/accuracy.md lists it as a limit: y = 2^-126,
        # pw = 2^-8, w = 2.75 at x = -101 is off by 1.05x it).
        compute = np.float32 if np.dtype(dtype) == np.float16 else dtype
        smallest_target = max(float(np.finfo(dtype).smallest_normal),
                              float(np.finfo(compute).smallest_normal) * 2.0**16)
        targets = st.floats(smallest_target, 1.0, width=width)
        y = draw(hnp.arrays(dtype, n, elements=st.one_of(st.sampled_from([0.0, 1.0]), targets)))
    weight = non_negative_operand(draw, n, dtype)
    pw = non_negative_operand(draw, n, dtype) if pos_weight else None
    return Problem(x, y, weight, pw)


@dtypes
@given(data=st.data())
def test_accuracy_bound(dtype, data):
    """Every reduction's loss within 4 eps relative of the exact value (one subnormal ulp below the
    normal range, never 0 where it rounds to nonzero), the gradient within its 8 eps, and the
    backward with a random upstream likewise."""
    problem = data.draw(problems(dtype))
    # upstream gradients 0 or of magnitude in [2**-10, 4]: a subnormal upstream makes the product
    # of three factors subnormal, rounded more than once (no spec'd bound; the table's one
    # subnormal ulp is for results computed in one rounding)
    magnitudes = st.floats(2.0**-10, 4.0, width=WIDTH[np.dtype(dtype)])
    upstream_values = st.one_of(st.just(0.0), magnitudes, magnitudes.map(lambda v: -v))
    upstream = data.draw(hnp.arrays(dtype, problem.x.shape, elements=upstream_values))
    for name in SUPPORTED_ISAS:
        with logitloss.use_isa(name):
            for reduction in REDUCTIONS:
                check_binary_cross_entropy(
                    problem.x, problem.y, **problem.kwargs(reduction), what=f"{name} {reduction}"
                )
            exact = exact_binary_cross_entropy(problem.x, problem.y, **problem.kwargs(), grad_output=upstream)
            got = logitloss.binary_cross_entropy_with_logits_backward(
                upstream, problem.x, problem.y, **problem.kwargs()
            )
            assert_grad_close(got, exact, what=f"{name} backward")


@dtypes
@given(data=st.data())
def test_finite_wherever_exact_is_finite(dtype, data):
    """Logits including +-inf and the dtype's extremes: the loss is finite exactly where the exact
    loss rounds to a finite number of the dtype (+inf where it overflows or is +inf), never nan;
    the gradient is always finite."""
    problem = data.draw(problems(dtype, infinities=True))
    exact = exact_binary_cross_entropy(problem.x, problem.y, **problem.kwargs())
    expected = rounded_range(exact.loss + exact.loss_lo, exact.dtype)
    if np.isnan(expected).any():
        # 0 weight times an infinite loss: nan, as torch (0 * inf); not this property's business
        return
    for name, (loss, grad) in per_isa(
        lambda: logitloss.binary_cross_entropy_with_logits(problem.x, problem.y, **problem.kwargs(), return_grad=True)
    ).items():
        check_special_values(to_float64(loss), expected, f"{name} loss")
        assert np.isfinite(grad).all(), f"{name}: non-finite gradient {grad}"


@dtypes
@given(data=st.data())
def test_loss_is_non_negative(dtype, data):
    """y in [0, 1], weights >= 0: every term is non-negative, so every loss (and the mean and the
    sum) is >= 0 -- exactly, rounding cannot change a sign."""
    problem = data.draw(problems(dtype, infinities=True))
    for name in SUPPORTED_ISAS:
        with logitloss.use_isa(name):
            for reduction in REDUCTIONS:
                with np.errstate(invalid="ignore"):
                    loss = to_float64(
                        logitloss.binary_cross_entropy_with_logits(problem.x, problem.y, **problem.kwargs(reduction))
                    )
                    negative = loss < 0
                assert not negative.any(), f"{name} {reduction}: negative loss {loss[negative] if loss.ndim else loss}"


@dtypes
@given(data=st.data())
def test_symmetry_under_label_flip(dtype, data):
    """Without pos_weight, bce(x, y) = bce(-x, 1 - y) and the gradients are opposite: both
    within the tolerance of the same exact value, so within the sum of the two tolerances."""
    problem = data.draw(problems(dtype, infinities=True, grid_targets=True, pos_weight=False))
    if problem.weight is not None and (np.asarray(problem.weight) == 0).any() and np.isinf(problem.x).any():
        problem.weight = None  # 0 * inf: nan by torch's arithmetic, the limit by ours: unspecified
    flipped_y = (1.0 - problem.y.astype(np.float64)).astype(dtype)  # exact: y is a multiple of 1/64
    for reduction in REDUCTIONS:
        kwargs = problem.kwargs(reduction)
        exact = exact_binary_cross_entropy(problem.x, problem.y, **kwargs)
        exact_flipped = exact_binary_cross_entropy(-problem.x, flipped_y, **kwargs)
        loss_bound = loss_tolerance(exact) + loss_tolerance(exact_flipped)
        grad_bound = grad_tolerance(exact) + grad_tolerance(exact_flipped)

        def both(kwargs=kwargs):
            call = logitloss.binary_cross_entropy_with_logits
            plain = call(problem.x, problem.y, **kwargs, return_grad=True)
            return plain, call(-problem.x, flipped_y, **kwargs, return_grad=True)

        for name, ((loss, grad), (loss_f, grad_f)) in per_isa(both).items():
            loss64, flipped64 = to_float64(loss), to_float64(loss_f)
            check_special_values(flipped64, loss64, f"{name} {reduction}: flipped vs plain")
            with np.errstate(invalid="ignore"):
                finite = np.isfinite(loss64)  # inf and nan: the same on both sides (checked above)
                close = np.abs(loss64 - flipped64) <= loss_bound
            assert (close | ~finite).all(), f"{name} {reduction}: {loss!r} vs flipped {loss_f!r}, allowed {loss_bound}"
            gd = np.abs(to_float64(grad) + to_float64(grad_f))
            assert (gd <= grad_bound).all(), (
                f"{name} {reduction}: gradient {grad} vs flipped {grad_f}, allowed {grad_bound}"
            )
