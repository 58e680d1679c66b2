"""Hypothesis properties of kl_div_with_logits against the exact mpmath reference, on every ISA: the
bounds of docs/accuracy.md (the KL within 8 eps of the compute dtype relative of exact, plus for float64
data the rounding of d = (t - s) / T, eps E_P|d| absolute; the gradient within 32 eps of (Q_c + P_c) / T)
on drawn rows: any lengths (vector bodies and tails), teachers masked (-inf) in some classes, the
student masked where the teacher is too, temperatures, and near-identical rows whose KL is tiny.
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.divergence import kl_div_rows

from .helpers.isas import SUPPORTED_ISAS
from .helpers.libraries import require

hypothesis = require("hypothesis", module_level=True)
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

COMPUTE_EPS = {np.float32: 2.0**-24, np.float64: 2.0**-53}
# The bounds are relative where the results are normal numbers (docs/accuracy.md): a gradient element
# below 1.2e-38 in float32 is rounded into the subnormal grid (one spacing of it absolute), and a KL
# of 0 (a row and its shift) comes out as the rounding of double arithmetic on d's rounding, below
# the normal range.
SUBNORMAL_SPACING = {np.float32: 2.0**-149, np.float64: 2.0**-1074}
SMALLEST_NORMAL = {np.float32: 2.0**-126, np.float64: 2.0**-1022}
BOUNDS = [3.0, 30.0, 1e3]
isas = pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
dtypes = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
# float64 at powers of two: the kernel's 1 / T is rounded (a relative change of the temperature,
# docs/accuracy.md), which moves exp(x / T) by up to eps |x / T| / 2; float32 takes 1 / T to double's
# precision.
TEMPERATURES = {np.float32: [1.0, 0.5, 2.5, 0.3], np.float64: [1.0, 0.5, 2.0, 0.25]}


def logits(draw, dtype, n, bound):
    width = 32 if dtype == np.float32 else 64
    return draw(hnp.arrays(dtype, n, elements=st.floats(-bound, bound, width=width, allow_nan=False,
                                                        allow_infinity=False)))


@st.composite
def row_pairs(draw, dtype, max_size=70):
    """(input, target): finite logits up to +-bound; some teacher classes -inf (not all), some of those
    -inf in the student too."""
    n = draw(st.integers(1, max_size))
    bound = draw(st.sampled_from(BOUNDS))
    input, target = logits(draw, dtype, n, bound).copy(), logits(draw, dtype, n, bound).copy()
    masked = draw(hnp.arrays(np.bool_, n))
    masked[draw(st.integers(0, n - 1))] = False
    target[masked] = -np.inf
    input[masked & draw(hnp.arrays(np.bool_, n))] = -np.inf
    return input, target


@st.composite
def near_identical_pairs(draw, dtype, max_size=70):
    """(input, target) with target = input + a perturbation of a few ULP-sized steps and possibly a
    constant shift (the KL ignores it): exact floats, the KL down to ~1e-14 (float32) / 1e-30 (float64)."""
    n = draw(st.integers(2, max_size))
    input = logits(draw, dtype, n, draw(st.sampled_from([1.0, 10.0, 100.0])))
    scale = draw(st.sampled_from([1e-3, 1e-5, 1e-6] if dtype == np.float32 else [1e-8, 1e-12, 1e-15]))
    # Whole steps: a perturbation far below the logits' size (1e-81 next to 1) would be beyond the
    # reference's 80 digits.
    steps = draw(hnp.arrays(np.int64, n, elements=st.integers(-4, 4))).astype(np.float64)
    shift = draw(st.sampled_from([0.0, 0.5, -7.0]))
    target = (input.astype(np.float64) + shift + steps * scale * (1 + np.abs(input))).astype(dtype)
    return input, target


def check_exact(input, target, temperature, dtype):
    loss, grad = logitloss.kl_div_with_logits(input, target, "none", temperature=temperature, return_grad=True)
    exact, exact_grad, size = kl_div_rows(input[None], target[None], temperature)
    if abs(exact[0]) < 1e-30:  # beyond 80 digits' reach: as many as a KL of this size needs
        digits = 100 + 2 * int(-np.log10(max(abs(exact[0]), 1e-320)))
        exact, exact_grad, size = kl_div_rows(input[None], target[None], temperature, digits)
    exact, exact_grad, size = exact[0], exact_grad[0], size[0]
    eps = COMPUTE_EPS[dtype]
    slack = SMALLEST_NORMAL[dtype]
    if dtype == np.float64:  # the rounding of d = (t - s) / T, eps E_P|d| (docs/accuracy.md)
        both = np.isfinite(target) & np.isfinite(input)
        d = np.where(both, (np.where(both, target, 0) - np.where(both, input, 0)) / temperature, 0.0)
        slack += 4 * eps * float(np.max(np.abs(d)))
    if np.isinf(exact):
        assert float(loss) == np.inf, (loss, exact)
    else:
        assert abs(float(loss) - exact) <= 8 * eps * abs(exact) + slack, (float(loss), exact)
    # A gradient element whose value is subnormal comes from a subnormal exponential (half a subnormal ulp)
    # times the 1 / T in the scale, rounded once more (docs/accuracy.md).
    tolerance = 32 * eps * size / temperature + SUBNORMAL_SPACING[dtype] * (1 + 1 / temperature)
    assert np.all(np.abs(grad.astype(np.float64) - exact_grad / temperature) <= tolerance), (grad, exact_grad)


@isas
@dtypes
@given(data=st.data())
def test_matches_exact_on_drawn_rows(isa_name, dtype, data):
    input, target = data.draw(row_pairs(dtype))
    temperature = data.draw(st.sampled_from(TEMPERATURES[dtype]))
    with logitloss.use_isa(isa_name):
        check_exact(input, target, temperature, dtype)


@isas
@dtypes
@given(data=st.data())
def test_near_identical_rows_keep_relative_precision(isa_name, dtype, data):
    input, target = data.draw(near_identical_pairs(dtype))
    temperature = data.draw(st.sampled_from([1.0, 0.5, 2.0]))  # powers of two: d exact for float64 too
    with logitloss.use_isa(isa_name):
        check_exact(input, target, temperature, dtype)


# Rows that broke earlier versions of the float lanes (each a distinct failure): the student's mass
# inside P's support partly below the float exponentials' cutoff (a KL of 130 off by 0.035); lanes
# near the centre next to far ones (KLs of 1e-31 and 1e-32, 34 and 1853 eps off; 4e-54 returned as
# 2e-36); logits of very different size (0.5 - 5.7e-18 is not exact in double); the double lanes'
# subnormal student mass (a KL of 742 off by 0.04).
FOUND_ROWS = [
    ([23.0, -16.0, -17.0, -np.inf, -15.0], [-29.0, 21.0, -14.0, -np.inf, -20.0], 0.3),
    ([-84.04381, -260.24542], [-381.89578, -563.2671], 2.5),
    ([-107.89468, 893.4906, -102.29644], [98.16802, 296.7224, -263.4593], 2.5),
    ([556.7299, -43.879486], [73.394806, -245.84845], 2.5),
    ([5.729851e-18, 0.0], [0.5, 0.5], 1.0),
    ([442.0, 813.0], [347.0, -513.0], 0.5),
]


@isas
@dtypes
@pytest.mark.parametrize("input, target, temperature", FOUND_ROWS)
def test_rows_that_broke_earlier_kernels(isa_name, dtype, input, target, temperature):
    if dtype == np.float64 and temperature not in (1.0, 0.5):
        temperature = 0.5  # float64: a power of two (TEMPERATURES)
    with logitloss.use_isa(isa_name):
        check_exact(np.array(input, dtype), np.array(target, dtype), temperature, dtype)
