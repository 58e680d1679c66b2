"""jsd_with_logits against an exact mpmath reference (logitloss.testing.divergence.jsd_rows) and torch float64
autograd of Liger-Kernel's formula (two log_softmax, M = lerp(Q, P, beta), beta kl(log M, log P) + (1 - beta)
kl(log M, log Q); kl(log P, log Q) at beta = 1, kl(log Q, log P) at beta = 0): every beta in {0, 0.1, 0.5, 0.9,
1} x reduction x temperature x where x dtype x ISA, batches, strided operands and outputs, near-identical
rows (JSD 1e-13 in float32, 1e-31 in float64), one-hot-like and masked teachers and students, +-3e38, edge
rows; errors; inputs never modified; thread count never changes a bit.

Tolerances, the bounds of docs/accuracy.md: the loss within 16 eps (of the compute dtype) relative, plus for
float64 data whose d = (t - s) / T is inexact the rounding of d (eps |d_c| per class, times the loss's
sensitivity to it, the gradient's size); float16 adds the final rounding (2^-11 relative). The gradient
within 32 eps of its size (1 - beta) Q_c (|log(Q_c / M_c)| + E_Q|log(Q / M)|) / T times the reduction scale,
plus its rounding into the data type's subnormals (float16: plus its rounding).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import logitloss
from logitloss.testing.divergence import jsd_rows

from .helpers.assertions import assert_unchanged, snapshot
from .helpers.divergence_checks import (
    COMPUTE_EPS,
    DTYPES,
    FINAL_ROUNDING,
    REDUCTIONS,
    check_divergence_errors,
    reduce_exact,
)

BETAS = [0.0, 0.1, 0.5, 0.9, 1.0]


def difference_rounding(input, target, temperature, size):
    """Per row, the loss's error from rounding d = (t - s) / T in float64: eps |d_c| times the sensitivity
    of the loss to d_c (at most the gradient's size per class, times T)."""
    with np.errstate(invalid="ignore"):
        d = np.abs((target.astype(np.float64) - input.astype(np.float64)) / temperature)
        return 4 * 2.0**-53 * np.nansum(np.where(np.isfinite(d), d, 0.0) * size, axis=-1)


def check(input, target, beta, reduction="none", temperature=1.0, where=None, *, inexact_differences=False):
    """Loss and gradient against the mpmath reference; returns (loss, grad)."""
    dtype = input.dtype.type
    before = snapshot(input, target, where)
    loss, grad = logitloss.jsd_with_logits(input, target, beta, reduction, temperature=temperature, where=where,
                                           return_grad=True)
    assert_unchanged(before, [input, target, where], "jsd_with_logits")
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype and grad.shape == input.shape
    exact_rows, exact_grad, size = jsd_rows(input, target, beta, temperature)
    included = np.ones(input.shape[:-1], bool) if where is None else where
    exact = reduce_exact(exact_rows, reduction, included)
    slack = 0.0
    if inexact_differences:
        slack = reduce_exact(difference_rounding(input, target, temperature, size), reduction, included)
    eps, rounding = COMPUTE_EPS[dtype], FINAL_ROUNDING[dtype]
    with np.errstate(invalid="ignore"):
        tolerance = (16 * eps + rounding) * np.abs(exact) + slack
    value = np.asarray(loss, np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf where both are +inf
        difference = np.abs(value - exact)
    assert np.all((difference <= tolerance) | (value == exact)), (
        f"beta {beta}: loss {loss} exact {exact} difference / tolerance "
        f"{np.max(difference / np.maximum(tolerance, 1e-300))}")
    count = np.count_nonzero(included)
    scale = (1.0 / count if reduction == "mean" and count else 1.0) / temperature
    weight = included[..., None] * scale
    # beta = 1 with student mass off the teacher's support: the loss +inf, the gradient nan (torch's autograd).
    undefined = np.isnan(exact_grad) & included[..., None]
    assert np.all(np.isnan(grad[undefined]))
    exact_grad, size = np.where(undefined, 0.0, exact_grad), np.where(undefined, 0.0, size)
    # plus the rounding of the result into the data type's subnormals (float16's, in its own terms, 2^-24)
    subnormal = 2.0**-24 if dtype is np.float16 else float(np.finfo(dtype).smallest_subnormal)
    grad_tolerance = (32 * eps + rounding) * size * weight + subnormal
    error = np.abs(np.where(undefined, 0.0, grad.astype(np.float64)) - exact_grad * weight)
    assert np.all(error <= grad_tolerance), (
        f"beta {beta}: gradient off by {np.max(error / np.maximum(grad_tolerance, 1e-300))}x")
    return loss, grad


def torch_jsd(torch, input, target, beta, temperature):
    """Liger's formula in torch float64 per row, and the student's logits (requiring grad)."""
    functional = torch.nn.functional
    s = torch.tensor(input.astype(np.float64), requires_grad=True)
    t = torch.tensor(target.astype(np.float64))
    log_q, log_p = functional.log_softmax(s / temperature, -1), functional.log_softmax(t / temperature, -1)

    def kl(log_input, log_target):
        return functional.kl_div(log_input, log_target, reduction="none", log_target=True).sum(-1)

    if beta == 0:
        rows = kl(log_q, log_p)
    elif beta == 1:
        rows = kl(log_p, log_q)
    else:
        log_m = torch.lerp(log_q.exp(), log_p.exp(), beta).log()
        rows = beta * kl(log_m, log_p) + (1 - beta) * kl(log_m, log_q)
    return rows, s


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("masked_rows", [False, True])
def test_matches_exact(isa, beta, dtype, reduction, temperature, masked_rows):
    rng = np.random.default_rng(7)
    input = (rng.standard_normal((3, 4, 37)) * 3).astype(dtype)
    target = (rng.standard_normal((3, 4, 37)) * 3).astype(dtype)
    where = rng.random((3, 4)) < 0.6 if masked_rows else None
    check(input, target, beta, reduction, temperature, where, inexact_differences=dtype is np.float64)


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_matches_torch(isa, torch, beta, dtype, reduction, temperature):
    """Liger's formula in torch float64 with autograd (independent of the mpmath reference; its own error
    is ~1e-16 absolute)."""
    rng = np.random.default_rng(3)
    input = (rng.standard_normal((5, 2, 130)) * 4).astype(dtype)
    target = (rng.standard_normal((5, 2, 130)) * 4).astype(dtype)
    where = rng.random((5, 2)) < 0.7
    loss, grad = logitloss.jsd_with_logits(input, target, beta, reduction, temperature=temperature, where=where,
                                           return_grad=True)
    rows, s = torch_jsd(torch, input, target, beta, temperature)
    rows = rows * torch.tensor(where)
    expected = rows if reduction == "none" else rows.sum() / (where.sum() if reduction == "mean" else 1)
    expected.sum().backward()
    expected = expected.detach().numpy()
    tolerance = 1e-13 + (16 * COMPUTE_EPS[dtype] + FINAL_ROUNDING[dtype]) * np.abs(expected)
    np.testing.assert_array_less(np.abs(np.asarray(loss, np.float64) - expected), tolerance * 1.0001)
    grad_tolerance = 1e-15 + (64 * COMPUTE_EPS[dtype] + FINAL_ROUNDING[dtype]) * np.abs(s.grad.numpy()).max()
    np.testing.assert_allclose(grad.astype(np.float64), s.grad.numpy(), rtol=0, atol=grad_tolerance)


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("dtype, delta, temperature", [
    (np.float32, 1e-6, 1.0), (np.float32, 3e-7, 3.0), (np.float32, 1e-6, 0.25),
    (np.float64, 1e-15, 1.0), (np.float64, 1e-15, 0.5), (np.float64, 3e-16, 2.0),
])
def test_near_identical_rows_keep_relative_precision(isa, torch, beta, dtype, delta, temperature):
    """Late in distillation the JSD is a tiny difference of large terms (1e-13 float32, 1e-31 float64); the
    textbook formula in the data type is off by far more than its eps (or returns 0 / negatives)."""
    rng = np.random.default_rng(11)
    input = (rng.standard_normal((8, 300)) * 3).astype(dtype)
    target = (input + rng.standard_normal(input.shape) * delta).astype(dtype)  # exact floats, t - s exact
    check(input, target, beta, "none", temperature)
    exact = jsd_rows(input, target, beta, temperature)[0]
    assert np.all(exact < (1e-11 if dtype is np.float32 else 1e-28)) and np.all(exact > 0)
    textbook = torch_jsd(torch, input, target, beta, temperature)[0] if dtype is np.float64 else None
    if textbook is None:
        import torch as torch_module

        with torch_module.no_grad():
            functional = torch_module.nn.functional
            log_q = functional.log_softmax(torch_module.tensor(input) / temperature, -1)
            log_p = functional.log_softmax(torch_module.tensor(target) / temperature, -1)
            m = torch_module.lerp(log_q.exp(), log_p.exp(), beta).log()
            textbook = (beta * functional.kl_div(m, log_p, reduction="none", log_target=True).sum(-1)
                        + (1 - beta) * functional.kl_div(m, log_q, reduction="none", log_target=True).sum(-1))
    textbook = textbook.detach().numpy()
    assert np.max(np.abs(textbook / exact - 1)) > 100 * COMPUTE_EPS[dtype]  # what the exact form buys


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_hot_like_and_masked_teachers(isa, beta, dtype):
    rng = np.random.default_rng(5)
    input = (rng.standard_normal((7, 50)) * 2).astype(dtype)
    target = np.full((7, 50), -1e4, dtype)
    target[np.arange(7), rng.integers(0, 50, 7)] = 0  # P one-hot up to e^-1e4
    target[2, 20:] = -np.inf
    input[2, 20:] = -np.inf  # masked in both: adds nothing, no nan
    target[3] = rng.standard_normal(50) * 20  # P underflowing in most classes, Q not
    target[4, :] = -np.inf
    target[4, 7] = 5.0  # a single-class teacher
    target[5] = input[5] + np.where(np.arange(50) < 25, 0, -200).astype(dtype)  # half of P's mass removed
    input[6, :10] = -np.inf  # the student masked where the teacher has mass (the textbook rows)
    target[6] = rng.standard_normal(50).astype(dtype)
    loss, grad = check(input, target, beta, "none")
    if beta == 1:  # KL(Q || P) is +inf where Q has mass on a -inf teacher class (row 4), ~1e4 where P is e^-1e4
        assert loss[4] == np.inf and np.all(np.isfinite(np.delete(loss, 4))) and loss[0] > 9000
    elif beta == 0:  # KL(P || Q) is +inf where P has mass off Q's support (row 6)
        assert loss[6] == np.inf and np.all(np.isfinite(loss[:6])) and np.all(np.isfinite(grad))
    else:
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_classes_and_student_mass_off_the_teacher(isa, beta, dtype):
    """-inf in the teacher only: the student's mass there is b log(1 / b) per unit (0 < beta < 1)."""
    rng = np.random.default_rng(12)
    input = (rng.standard_normal((4, 40)) * 2).astype(dtype)
    target = (input + rng.standard_normal(input.shape) * 0.1).astype(dtype)
    target[:, :5] = -np.inf
    input[1, :5] = -np.inf  # both masked there: exactly the unmasked divergence
    loss, _ = check(input, target, beta, "none", 1.5)
    assert np.isfinite(loss[1]) and (loss[0] == np.inf) == (beta == 1)


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits(isa, beta, dtype):
    big = 3e38
    input = np.array([[big, -big, 0.0, 1.0], [-big, big, -big, 0.0], [0.0, 1.0, 2.0, -big]], dtype)
    target = np.array([[big, -big, 0.0, 2.0], [-big, big, big, 0.0], [big, 1.0, 2.0, 0.0]], dtype)
    loss, grad = check(input, target, beta, "none")
    if 0 < beta < 1:
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    huge = np.array([[1e4, 0.0, -1e4], [0.0, -1e4, 1e4]], dtype)
    check(huge, huge[::-1].copy(), beta, "sum")  # far apart: the textbook rows
    if dtype is np.float64:
        # P_c = e^-740 > 0 where Q_c ~ 1: r_c = Q_c / P_c overflows double (the terms from the masses).
        # And P_c = e^-712, subnormal, where Q_c = e^-3: r_c ~ e^709 finite (the masses too).
        input = np.array([[0.0, 0.0, 1.0], [0.0, 3.0, -2.0], [0.0, -3.0, 1.0]])
        target = np.array([[0.0, -740.0, 1.0], [-741.0, 3.0, -2.0], [0.0, -712.0, 1.0]])
        check(input, target, beta, "none")


@pytest.mark.parametrize("beta", [1e-12, 1e-6, 1 - 1e-9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_betas_near_the_ends(isa, beta, dtype):
    """A tiny b = 1 - beta or beta: log(b) from log1p(-beta), and no masses' form where x = b w is small."""
    rng = np.random.default_rng(14)
    input = (rng.standard_normal((4, 29)) * 2).astype(dtype)
    target = (rng.standard_normal((4, 29)) * 2).astype(dtype)
    target[1] = (input[1] + rng.standard_normal(29) * 1e-3).astype(dtype)
    target[2, :4] = -np.inf  # student mass off the teacher's support
    target[3, 5] = input[3, 5] - 600  # P_c far below Q_c
    check(input, target, beta, "none", 0.5)


def test_edge_rows():
    input = np.array([[0.0, 1.0], [-np.inf, -np.inf], [np.nan, 0.0], [0.0, -np.inf], [np.inf, 0.0]])
    target = np.array([[-np.inf, -np.inf], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    for beta in BETAS:
        loss, grad = logitloss.jsd_with_logits(input, target, beta, "none", return_grad=True)
        # No finite max in a row: nan (torch, the KL's rule); nan propagates.
        assert np.isnan(loss[0]) and np.isnan(loss[1]) and np.isnan(loss[2]) and np.isnan(loss[4])
        assert np.all(np.isnan(grad[[0, 1, 2, 4]]))
        # Q = (1, 0), P = (1/2, 1/2): finite in between, the forward KL infinite at 0, the reverse log 2.
        b = 1 - beta
        if beta == 0:
            expected = np.inf
        elif beta == 1:
            expected = np.log(2)
        else:
            m0, m1 = beta / 2 + b, beta / 2
            expected = beta * (0.5 * np.log(0.5 / m0) + 0.5 * np.log(0.5 / m1)) + b * np.log(1 / m0)
        np.testing.assert_allclose(loss[3], expected, rtol=1e-15)
        assert np.all(np.isfinite(grad[3]))
    masked = logitloss.jsd_with_logits(input, target, 0.5, "sum", where=np.zeros(5, bool))
    assert masked == 0
    assert np.isnan(logitloss.jsd_with_logits(input[:0], target[:0]))  # mean over no rows
    assert logitloss.jsd_with_logits(input[:0], target[:0], 0.5, "sum") == 0


def test_beta_zero_is_the_kl_and_beta_one_the_reverse_kl():
    rng = np.random.default_rng(13)
    s, t = rng.standard_normal((6, 33)), rng.standard_normal((6, 33))
    forward = logitloss.jsd_with_logits(s, t, 0.0, "none", temperature=1.7, return_grad=True)
    kl = logitloss.kl_div_with_logits(s, t, "none", temperature=1.7, return_grad=True)
    assert np.array_equal(forward[0], kl[0]) and np.array_equal(forward[1], kl[1])
    reverse = logitloss.jsd_with_logits(s, t, 1.0, "none")
    np.testing.assert_allclose(reverse, logitloss.kl_div_with_logits(t, s, "none"), rtol=1e-14)


def test_one_dimensional_input_and_scalar_results():
    s, t = np.array([0.5, -1.0, 2.0], np.float32), np.array([1.0, 0.0, 2.0], np.float32)
    value = logitloss.jsd_with_logits(s, t, 0.3, "none")
    assert isinstance(value, np.float32) and value == logitloss.jsd_with_logits(s, t, 0.3, "sum")
    assert value == logitloss.jsd_with_logits(s[None], t[None], 0.3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_operands_and_grad_out(isa, dtype):
    rng = np.random.default_rng(9)
    base_s = (rng.standard_normal((40, 6, 2)) * 3).astype(dtype)
    base_t = (rng.standard_normal((6, 80)) * 3).astype(dtype)
    input = base_s[:, :, 0].T  # (6, 40), classes strided
    target = base_t[:, ::2]
    loss, grad = check(input, target, 0.7, "mean", 1.5, inexact_differences=dtype is np.float64)
    contiguous = logitloss.jsd_with_logits(np.ascontiguousarray(input), np.ascontiguousarray(target), 0.7, "mean",
                                           temperature=1.5, return_grad=True)
    assert loss == contiguous[0] and np.array_equal(grad, contiguous[1])
    out = np.full((40, 6), 7, dtype).T  # a strided gradient output
    result = logitloss.jsd_with_logits(input, target, 0.7, "mean", temperature=1.5, grad_out=out)
    assert result[1] is out and np.array_equal(out, grad)


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_threads_do_not_change_results(restore_threads, beta):
    rng = np.random.default_rng(2)
    input = rng.standard_normal((300, 2000)).astype(np.float32)
    target = rng.standard_normal((300, 2000)).astype(np.float32)
    logitloss.set_num_threads(1)
    one = logitloss.jsd_with_logits(input, target, beta, "none", return_grad=True)
    logitloss.set_num_threads(2)
    two = logitloss.jsd_with_logits(input, target, beta, "none", return_grad=True)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0])
def test_long_rows_match_exact(isa, beta):
    """Rows longer than a vector block and with tails: 4099 classes, a few rows."""
    rng = np.random.default_rng(4)
    input = (rng.standard_normal((2, 4099)) * 2).astype(np.float32)
    target = (input + rng.standard_normal(input.shape) * 1e-3).astype(np.float32)
    check(input, target, beta, "sum", 1.0)


def test_errors():
    s = np.zeros((2, 3), np.float32)
    for bad in (-0.1, 1.5, np.inf, -np.inf, np.nan):
        with pytest.raises(ValueError, match="`beta`"):
            logitloss.jsd_with_logits(s, s, bad)
    for bad in ("0.5", None, True, np.array([0.5])):
        with pytest.raises(TypeError, match="`beta`"):
            logitloss.jsd_with_logits(s, s, bad)
    check_divergence_errors(functools.partial(logitloss.jsd_with_logits, beta=0.5))


def test_bench_providers_compute_the_same_jsd(torch):
    """The bench row jsd_big times what it says: logitloss and torch agree on loss and gradient."""
    from logitloss.bench.divergence_providers import jsd_providers, teacher_logits

    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 300)).astype(np.float32)
    providers, notes = jsd_providers(x, teacher_logits(x))
    assert notes == []
    results = {provider.name: provider.fn() for provider in providers}
    ours, theirs = results["logitloss"], results["torch"]
    np.testing.assert_allclose(float(ours[0]), float(theirs[0]), rtol=1e-5)
    np.testing.assert_allclose(ours[1], theirs[1].numpy(), rtol=0, atol=1e-8)
