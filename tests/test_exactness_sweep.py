"""Every kernel on rows spanning the whole finite range of its dtype, every dtype, every ISA target.

The rows (``logitloss.testing.inputs.whole_range_rows``, seeded): magnitudes log-uniform from the
smallest subnormal to the largest finite, both signs; mixed with -inf; ties at the max; ``x - max``
overflowing to -inf; one entry dominating so that its log_softmax, or the loss with it as the target,
is far below eps; differences around exp's underflow threshold; tiny entries; and the row the range
defect was found on (float32 ``[3e38, 2.9e38, 1e38]``).  Rows of 11 and 37 entries (a whole vector and
a masked tail on every target) and a few of 2100 (past one 2048-element chunk).

Pass, against the exact references (``logitloss.testing``: mpmath for float64 results, float64 with
care for float16 / float32 ones): no nan or inf where the exact result is finite (and the same
infinities where it is not); an exact 0 wherever the exact result rounds to 0 in the result dtype;
the bounds of ``logitloss.testing.tolerances`` (docs/accuracy.md) everywhere else.  Each test runs
every row set and reports all that fail, so a failure says how widespread it is.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import (
    binary_targets,
    class_weights,
    probability_targets,
    whole_range_rows,
    whole_range_values,
)
from logitloss.testing.tolerances import SMALLEST_SUBNORMAL, to_float64

from .helpers.binary_cross_entropy_checks import check_binary_cross_entropy
from .helpers.cross_entropy_checks import check_cross_entropy
from .helpers.marks import dtypes
from .helpers.softmax_family_checks import (
    check_backward,
    check_logsumexp,
    check_lse_backward,
    check_softmax,
    exact_forward_output,
)

LENGTHS = (11, 37)
LONG_LENGTH = 2100  # past one chunk (kRowChunk = 2048 elements)
LONG_SETS = ("whole range", "dominant entry", "differences overflow")


@functools.lru_cache(maxsize=None)
def row_sets(dtype):
    """(name, rows) pairs of every length; the long rows only two of a few sets (their float64 references
    take mpmath time)."""
    sets = []
    for n in LENGTHS:
        for name, rows in whole_range_rows(dtype, seed=1800 + n, n=n).items():
            sets.append((f"{name}, n={n}", rows))
    for name, rows in whole_range_rows(dtype, seed=1800 + LONG_LENGTH, n=LONG_LENGTH).items():
        if name in LONG_SETS:
            sets.append((f"{name}, n={LONG_LENGTH}", np.ascontiguousarray(rows[:2])))
    return tuple(sets)


def assert_zero_where_exact_rounds_to_zero(actual, exact, lo, dtype, what):
    """Where ``exact + lo`` is below half the smallest subnormal of ``dtype`` in magnitude (it rounds to
    0), the result is 0: never a stale tiny value."""
    exact_total = np.asarray(exact, dtype=np.float64) + (0.0 if lo is None else np.asarray(lo, dtype=np.float64))
    rounds_to_zero = np.abs(exact_total) < SMALLEST_SUBNORMAL[np.dtype(dtype)] / 2
    actual64 = to_float64(actual)
    wrong = rounds_to_zero & (actual64 != 0)
    if wrong.any():
        where = np.argwhere(wrong)[:3]
        raise AssertionError(
            f"{what}: {int(wrong.sum())} elements not 0 where the exact result rounds to 0, e.g. at "
            f"{where.tolist()}: {[actual64[tuple(i)] for i in where]}"
        )


def seed_of(rows):
    return int(rows.shape[1] * 7 + rows.shape[0])


def check_logsumexp_rows(rows, dtype):
    _, exact = check_logsumexp(rows, axis=-1)
    result = logitloss.logsumexp(rows, axis=-1, return_grad=True)
    assert_zero_where_exact_rounds_to_zero(result[1], exact.grad, exact.grad_lo, dtype, "logsumexp gradient")
    rng = np.random.default_rng(seed_of(rows))
    b = whole_range_values(rng, dtype, rows.shape, low=2.0**-8, high=2.0**8, signed=False)
    check_logsumexp(rows, axis=-1, b=b, what="logsumexp with b")


def check_logsumexp_backward_rows(rows, dtype):
    g = whole_range_values(np.random.default_rng(seed_of(rows)), dtype, rows.shape[:1])
    check_lse_backward(g, rows, axis=-1)


def check_softmax_rows(rows, dtype, log):
    out, exact = check_softmax(rows, axis=-1, log=log)
    if log:
        assert_zero_where_exact_rounds_to_zero(out, exact.log_softmax, exact.log_softmax_lo, dtype, "log_softmax")
    else:
        assert_zero_where_exact_rounds_to_zero(out, exact.softmax, exact.softmax_lo, dtype, "softmax")


def check_backward_rows(rows, dtype, kind):
    """grad_output over the whole range too, and near the largest finite with both signs: sums of it
    (and of it times the output) beyond the dtype, g - sum(g * output) beyond it while the result is not."""
    output = exact_forward_output(kind, rows, -1)
    rng = np.random.default_rng(seed_of(rows))
    top = float(np.finfo(dtype).max)
    for g in (whole_range_values(rng, dtype, rows.shape), whole_range_values(rng, dtype, rows.shape, low=top / 2)):
        check_backward(kind, g, output, axis=-1)


def index_targets_at(rows, seed):
    """Per row: the row's argmax (a dominant row's loss is far below eps) or, every other row, a random class."""
    rng = np.random.default_rng(seed)
    targets = np.argmax(rows, axis=1)
    random_rows = np.arange(rows.shape[0]) % 2 == 1
    return np.where(random_rows, rng.integers(0, rows.shape[1], rows.shape[0]), targets).astype(np.int64)


def check_loss_rows(result_and_exact, dtype, what):
    loss, grad, exact = result_and_exact
    assert_zero_where_exact_rounds_to_zero(loss, exact.loss, getattr(exact, "loss_lo", None), dtype, f"{what} loss")
    assert_zero_where_exact_rounds_to_zero(grad, exact.grad, getattr(exact, "grad_lo", None), dtype, f"{what} gradient")


def check_cross_entropy_index_rows(rows, dtype):
    targets = index_targets_at(rows, seed_of(rows))
    check_loss_rows(check_cross_entropy(rows, targets, reduction="none"), dtype, "cross_entropy")
    check_cross_entropy(rows, targets, reduction="sum", what="cross_entropy sum")


def check_cross_entropy_probability_rows(rows, dtype):
    targets = probability_targets(rows.shape, dtype, seed_of(rows))
    check_loss_rows(check_cross_entropy(rows, targets, reduction="none"), dtype, "cross_entropy (probabilities)")


def check_cross_entropy_smoothing_rows(rows, dtype):
    targets = index_targets_at(rows, seed_of(rows) + 1)
    weight = class_weights(rows.shape[1], dtype, seed_of(rows))
    result = check_cross_entropy(rows, targets, weight=weight, label_smoothing=0.125, reduction="none")
    check_loss_rows(result, dtype, "cross_entropy (weights, label smoothing)")
    check_cross_entropy(rows, targets, weight=weight, label_smoothing=0.125, what="cross_entropy smoothed mean")


def check_binary_cross_entropy_rows(rows, dtype):
    """The rows as elementwise logits; pos_weight per class, moderate and then over the whole positive range."""
    rng = np.random.default_rng(seed_of(rows))
    targets = binary_targets(rows.shape, dtype, seed_of(rows))
    for pos_weight in (
        whole_range_values(rng, dtype, rows.shape[1:], low=2.0**-10, high=2.0**10, signed=False),
        whole_range_values(rng, dtype, rows.shape[1:], signed=False),
    ):
        result = check_binary_cross_entropy(rows, targets, reduction="none", pos_weight=pos_weight)
        check_loss_rows(result, dtype, "binary_cross_entropy_with_logits")


KERNELS = {
    "logsumexp": check_logsumexp_rows,
    "logsumexp_backward": check_logsumexp_backward_rows,
    "softmax": lambda rows, dtype: check_softmax_rows(rows, dtype, log=False),
    "log_softmax": lambda rows, dtype: check_softmax_rows(rows, dtype, log=True),
    "softmax_backward": lambda rows, dtype: check_backward_rows(rows, dtype, "softmax"),
    "log_softmax_backward": lambda rows, dtype: check_backward_rows(rows, dtype, "log_softmax"),
    "cross_entropy index": check_cross_entropy_index_rows,
    "cross_entropy probability": check_cross_entropy_probability_rows,
    "cross_entropy weights smoothing": check_cross_entropy_smoothing_rows,
    "binary_cross_entropy pos_weight": check_binary_cross_entropy_rows,
}


@dtypes
@pytest.mark.parametrize("kernel", tuple(KERNELS))
def test_whole_range(isa, dtype, kernel):
    failures = []
    sets = row_sets(dtype)
    with np.errstate(all="ignore"):
        for name, rows in sets:
            try:
                KERNELS[kernel](rows, np.dtype(dtype))
            except AssertionError as error:
                failures.append(f"  {name}: {str(error).splitlines()[0][:400]}")
    assert not failures, f"{kernel}, {np.dtype(dtype).name}, {isa}: {len(failures)} of {len(sets)} row sets fail\n" + (
        "\n".join(failures)
    )
