"""kl_div_with_logits against an exact mpmath reference (logitloss.testing.divergence) and torch float64
autograd of ``F.kl_div(F.log_softmax(s / T), F.log_softmax(t / T), log_target=True)``: every reduction x
temperature x where x dtype x ISA, batches, strided operands and outputs, near-identical rows (KL 1e-12 in
float32, 1e-30 in float64), one-hot-like and masked teachers, +-3e38, edge rows; errors; inputs never
modified; thread count never changes a bit.

Tolerances, the bounds of docs/accuracy.md: the KL within 8 eps (of the compute dtype) relative, plus for
float64 data whose d = (t - s) / T is inexact the rounding of d (eps E_P|d| absolute); float16 adds the
final rounding (2^-11 relative). The gradient within 32 eps of (Q_c + P_c) / T times the reduction scale
(float16: plus its rounding, 2^-11 of that size).
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.divergence import kl_div_rows

from .helpers.assertions import assert_unchanged, snapshot
from .helpers.divergence_checks import (
    COMPUTE_EPS,
    DTYPES,
    FINAL_ROUNDING,
    REDUCTIONS,
    check_divergence_errors,
    reduce_exact,
)
from .helpers.libraries import require



def check(input, target, reduction="none", temperature=1.0, where=None, *, loss_slack=0.0):
    """Loss and gradient against the mpmath reference; returns (loss, grad)."""
    dtype = input.dtype.type
    before = snapshot(input, target, where)
    loss, grad = logitloss.kl_div_with_logits(input, target, reduction, temperature=temperature, where=where,
                                              return_grad=True)
    assert_unchanged(before, [input, target, where], "kl_div_with_logits")
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype and grad.shape == input.shape
    exact_rows, exact_grad, size = kl_div_rows(input, target, temperature)
    included = np.ones(input.shape[:-1], bool) if where is None else where
    exact = reduce_exact(exact_rows, reduction, included)
    eps, rounding = COMPUTE_EPS[dtype], FINAL_ROUNDING[dtype]
    with np.errstate(invalid="ignore"):
        tolerance = (8 * eps + rounding) * np.abs(exact) + loss_slack
    difference = np.abs(np.asarray(loss, np.float64) - exact)
    assert np.all((difference <= tolerance) | (np.asarray(loss, np.float64) == exact)), (
        f"loss {loss} exact {exact} difference / tolerance {np.max(difference / np.maximum(tolerance, 1e-300))}")
    count = np.count_nonzero(included)
    scale = (1.0 / count if reduction == "mean" and count else 1.0) / temperature
    weight = included[..., None] * scale
    grad_tolerance = (32 * eps + rounding) * size * weight + (2.0**-24 if dtype is np.float16 else 0.0)
    error = np.abs(grad.astype(np.float64) - exact_grad * weight)
    assert np.all(error <= grad_tolerance), f"gradient off by {np.max(error / np.maximum(grad_tolerance, 1e-300))}x"
    return loss, grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("masked_rows", [False, True])
def test_matches_exact(isa, dtype, reduction, temperature, masked_rows):
    rng = np.random.default_rng(7)
    input = (rng.standard_normal((3, 4, 37)) * 3).astype(dtype)
    target = (rng.standard_normal((3, 4, 37)) * 3).astype(dtype)
    where = rng.random((3, 4)) < 0.6 if masked_rows else None
    # float64 data: d = (t - s) / T is rounded once (eps |d| absolute), which the KL carries.
    slack = 4 * COMPUTE_EPS[dtype] * 40 if dtype is np.float64 else 0.0
    check(input, target, reduction, temperature, where, loss_slack=slack)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_matches_torch(isa, torch, dtype, reduction, temperature):
    """The torch composition in float64 (a second, independent formula; its own error is ~1e-16)."""
    functional = torch.nn.functional
    rng = np.random.default_rng(3)
    input = (rng.standard_normal((5, 2, 130)) * 4).astype(dtype)
    target = (rng.standard_normal((5, 2, 130)) * 4).astype(dtype)
    where = rng.random((5, 2)) < 0.7
    loss, grad = logitloss.kl_div_with_logits(input, target, reduction, temperature=temperature, where=where,
                                              return_grad=True)
    s = torch.tensor(input.astype(np.float64), requires_grad=True)
    t = torch.tensor(target.astype(np.float64))
    rows = functional.kl_div(functional.log_softmax(s / temperature, -1), functional.log_softmax(t / temperature, -1),
                             reduction="none", log_target=True).sum(-1) * torch.tensor(where)
    expected = rows if reduction == "none" else rows.sum() / (where.sum() if reduction == "mean" else 1)
    expected.sum().backward()
    tolerance = 1e-13 + (8 * COMPUTE_EPS[dtype] + FINAL_ROUNDING[dtype]) * np.abs(expected.detach().numpy())
    np.testing.assert_array_less(np.abs(np.asarray(loss, np.float64) - expected.detach().numpy()), tolerance * 1.0001)
    grad_tolerance = 1e-15 + (64 * COMPUTE_EPS[dtype] + FINAL_ROUNDING[dtype]) * np.abs(s.grad.numpy()).max()
    np.testing.assert_allclose(grad.astype(np.float64), s.grad.numpy(), rtol=0, atol=grad_tolerance)


@pytest.mark.parametrize("dtype, delta, temperature", [
    (np.float32, 1e-6, 1.0), (np.float32, 3e-7, 3.0), (np.float32, 1e-6, 0.25),
    (np.float64, 1e-15, 1.0), (np.float64, 1e-15, 0.5), (np.float64, 3e-16, 2.0),
])
def test_near_identical_rows_keep_relative_precision(isa, torch, dtype, delta, temperature):
    """Late in distillation: the KL is a tiny difference of large terms (1e-12 float32, 1e-30 float64).
    The textbook formula in the data type is off by thousands of eps (or returns 0 / negatives)."""
    rng = np.random.default_rng(11)
    input = (rng.standard_normal((8, 300)) * 3).astype(dtype)
    target = (input + rng.standard_normal(input.shape) * delta).astype(dtype)  # exact floats, t - s exact
    loss, _ = check(input, target, "none", temperature)
    exact = kl_div_rows(input, target, temperature)[0]
    assert np.all(exact < (1e-10 if dtype is np.float32 else 1e-28)) and np.all(exact > 0)
    functional = torch.nn.functional
    s, t = torch.tensor(input), torch.tensor(target)
    textbook = functional.kl_div(functional.log_softmax(s / temperature, -1),
                                 functional.log_softmax(t / temperature, -1), reduction="none",
                                 log_target=True).sum(-1).numpy()
    assert np.max(np.abs(textbook / exact - 1)) > 100 * COMPUTE_EPS[dtype]  # what the exact form buys


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_hot_like_and_masked_teachers(isa, dtype):
    rng = np.random.default_rng(5)
    input = (rng.standard_normal((6, 50)) * 2).astype(dtype)
    target = np.full((6, 50), -1e4, dtype)
    target[np.arange(6), rng.integers(0, 50, 6)] = 0  # P one-hot up to e^-1e4
    target[1, :10] = -np.inf  # masked in the teacher only: the student's mass there counts
    target[2, 20:] = -np.inf
    input[2, 30:] = -np.inf  # masked in both: adds nothing, no nan
    target[3] = rng.standard_normal(50) * 20  # P underflowing in most classes, Q not
    target[4, :] = -np.inf
    target[4, 7] = 5.0  # a single-class teacher
    target[5] = input[5] + np.where(np.arange(50) < 25, 0, -200).astype(dtype)  # half of P's mass removed
    loss, grad = check(input, target, "none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits(isa, dtype):
    big = 3e38
    input = np.array([[big, -big, 0.0, 1.0], [-big, big, -big, 0.0], [0.0, 1.0, 2.0, big]], dtype)
    target = np.array([[big, -big, 0.0, 2.0], [-big, big, big, 0.0], [big, 1.0, 2.0, 0.0]], dtype)
    loss, grad = check(input, target, "none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    huge = np.array([[1e4, 0.0, -1e4], [0.0, -1e4, 1e4]], dtype)
    check(huge, huge[::-1].copy(), "sum")  # KL ~ 2e4: the overflowing exp(a + u) path


def test_edge_rows():
    input = np.array([[0.0, 1.0], [-np.inf, -np.inf], [np.nan, 0.0], [0.0, -np.inf], [np.inf, 0.0]])
    target = np.array([[-np.inf, -np.inf], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    loss, grad = logitloss.kl_div_with_logits(input, target, "none", return_grad=True)
    # No finite max in a row: nan (torch); nan propagates; the teacher's mass where the student has none: inf.
    assert np.isnan(loss[0]) and np.isnan(loss[1]) and np.isnan(loss[2]) and np.isnan(loss[4])
    assert loss[3] == np.inf and np.all(np.isfinite(grad[3]))
    np.testing.assert_allclose(grad[3], [0.5, -0.5])  # Q = (1, 0), P = (1/2, 1/2)
    masked = logitloss.kl_div_with_logits(input, target, "sum", where=np.array([False, False, False, False, False]))
    assert masked == 0
    assert np.isnan(logitloss.kl_div_with_logits(input[:0], target[:0]))  # mean over no rows
    assert logitloss.kl_div_with_logits(input[:0], target[:0], "sum") == 0


def test_one_dimensional_input_and_scalar_results():
    s, t = np.array([0.5, -1.0, 2.0], np.float32), np.array([1.0, 0.0, 2.0], np.float32)
    value = logitloss.kl_div_with_logits(s, t, "none")
    assert isinstance(value, np.float32) and value == logitloss.kl_div_with_logits(s, t, "sum")
    assert value == logitloss.kl_div_with_logits(s[None], t[None])


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_operands_and_grad_out(isa, dtype):
    rng = np.random.default_rng(9)
    base_s = (rng.standard_normal((40, 6, 2)) * 3).astype(dtype)
    base_t = (rng.standard_normal((6, 80)) * 3).astype(dtype)
    input = base_s[:, :, 0].T  # (6, 40), classes strided
    target = base_t[:, ::2]
    loss, grad = check(input, target, "mean", 1.5)
    contiguous = logitloss.kl_div_with_logits(np.ascontiguousarray(input), np.ascontiguousarray(target), "mean",
                                              temperature=1.5, return_grad=True)
    assert loss == contiguous[0] and np.array_equal(grad, contiguous[1])
    out = np.full((40, 6), 7, dtype).T  # a strided gradient output
    result = logitloss.kl_div_with_logits(input, target, "mean", temperature=1.5, grad_out=out)
    assert result[1] is out and np.array_equal(out, grad)


def test_threads_do_not_change_results(restore_threads):
    rng = np.random.default_rng(2)
    input = rng.standard_normal((300, 2000)).astype(np.float32)
    target = rng.standard_normal((300, 2000)).astype(np.float32)
    logitloss.set_num_threads(1)
    one = logitloss.kl_div_with_logits(input, target, "none", return_grad=True)
    logitloss.set_num_threads(2)
    two = logitloss.kl_div_with_logits(input, target, "none", return_grad=True)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


def test_long_rows_match_exact(isa):
    """Rows longer than a vector block and with tails: 4099 classes, a few rows."""
    rng = np.random.default_rng(4)
    input = (rng.standard_normal((2, 4099)) * 2).astype(np.float32)
    target = (input + rng.standard_normal(input.shape) * 1e-3).astype(np.float32)
    check(input, target, "sum", 1.0)


def test_errors():
    check_divergence_errors(logitloss.kl_div_with_logits)


def test_bench_providers_compute_the_same_kl(torch):
    """The bench row kl_div_big times what it says: logitloss and torch agree on loss and gradient."""
    from logitloss.bench.divergence_providers import kl_div_providers, teacher_logits

    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 300)).astype(np.float32)
    providers, notes = kl_div_providers(x, teacher_logits(x), rng.integers(0, 300, 16))
    assert notes == []
    results = {provider.name: provider.fn() for provider in providers}
    ours, theirs = results["logitloss"], results["torch"]
    np.testing.assert_allclose(float(ours[0]), theirs[0], rtol=1e-5)
    np.testing.assert_allclose(ours[1], theirs[1].numpy(), rtol=0, atol=1e-7)
