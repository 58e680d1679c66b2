"""contrastive_loss against torch float64 autograd of ``(F.cross_entropy(L, t) + F.cross_entropy(L.T, t)) / 2``
(CLIP) and of ``F.cross_entropy(L, t)`` (one-directional InfoNCE): every reduction x label smoothing x dtype x
ISA x symmetry, batches, strided logits, tiles of rows that do not divide N, extremes; errors; inputs
never modified.

Tolerance, a bound: each direction is the cross_entropy kernel (docs/accuracy.md: 8 eps of |loss| plus the
roundings of z - max, at most 8 eps of the row's spread), positions added in float64; the gradient is each
direction's (8 eps normwise per row, at most 1 in size per row before the scale) plus the rounding of their
sum and of the scale: 24 eps of the scale per element; float16 adds one float16 rounding per step (3).
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
import logitloss._contrastive as contrastive

from .helpers.assertions import assert_unchanged, snapshot
from .helpers.libraries import require

REDUCTIONS = ["mean", "sum", "none"]
DTYPES = [np.float16, np.float32, np.float64]
COMPUTE_EPS = {np.float16: 2.0**-23, np.float32: 2.0**-23, np.float64: 2.0**-52}


def torch_reference(logits, target, reduction, symmetric, label_smoothing):
    """float64 loss and gradient of the torch formula, over the last two axes of each batch."""
    torch = require("torch")
    functional = torch.nn.functional
    x = torch.tensor(np.asarray(logits, np.float64), requires_grad=True)
    columns = x.shape[-1]
    flat_target = torch.tensor(np.broadcast_to(target, x.shape[:-1]).reshape(-1).astype(np.int64))
    rows_loss = functional.cross_entropy(x.reshape(-1, columns), flat_target, reduction=reduction,
                                         label_smoothing=label_smoothing)
    loss = rows_loss
    if symmetric:
        transposed = x.transpose(-1, -2).reshape(-1, x.shape[-2])
        columns_loss = functional.cross_entropy(transposed, flat_target, reduction=reduction,
                                                label_smoothing=label_smoothing)
        loss = (rows_loss + columns_loss) / 2
    loss.sum().backward()
    value = loss.detach().numpy()
    return (value.reshape(x.shape[:-1]) if reduction == "none" else value), x.grad.numpy()


def check(logits, target, reduction="mean", symmetric=True, label_smoothing=0.0):
    dtype = logits.dtype.type
    before = snapshot(logits, target)
    loss, grad = logitloss.contrastive_loss(logits, target, reduction, symmetric=symmetric,
                                            label_smoothing=label_smoothing, return_grad=True)
    assert_unchanged(before, [logits, target], "contrastive_loss")
    expected_loss, expected_grad = torch_reference(logits, target, reduction, symmetric, label_smoothing)
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype and grad.shape == logits.shape
    eps = COMPUTE_EPS[dtype]
    rounding = 2.0**-11 if dtype is np.float16 else 0.0
    count = max(1, int(np.prod(logits.shape[:-1])))
    finite = np.where(np.isfinite(logits), np.abs(logits.astype(np.float64)), 0)  # nan / -inf: no spread
    spread = finite.max(initial=0.0)
    positions = count if reduction == "sum" else 1  # a sum carries every position's spread term
    tolerance = 16 * eps * (np.abs(expected_loss) + positions * spread) + rounding * np.abs(expected_loss)
    np.testing.assert_allclose(np.asarray(loss, np.float64), expected_loss, rtol=0, atol=np.nanmax(tolerance, initial=0),
                               equal_nan=True)
    scale = (0.5 if symmetric else 1.0) * (1.0 / count if reduction == "mean" else 1.0)
    grad_tolerance = (24 * eps + 3 * rounding) * 2 * scale
    np.testing.assert_allclose(grad.astype(np.float64), expected_grad, rtol=0, atol=grad_tolerance, equal_nan=True)
    return loss, grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matches_torch(isa, dtype, reduction, label_smoothing, symmetric):
    rng = np.random.default_rng(1)
    rows, columns = (37, 37) if symmetric else (23, 41)
    logits = (rng.standard_normal((rows, columns)) * 4).astype(dtype)
    target = rng.permutation(rows) if symmetric else rng.integers(0, columns, rows)
    check(logits, target, reduction, symmetric, label_smoothing)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_default_target_is_the_diagonal(reduction):
    logits = np.random.default_rng(2).standard_normal((9, 9))
    ours = logitloss.contrastive_loss(logits, reduction=reduction)
    explicit = logitloss.contrastive_loss(logits, np.arange(9), reduction)
    np.testing.assert_array_equal(ours, explicit)
    check(logits, np.arange(9), reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shared_target", [True, False])
def test_batches(reduction, shared_target):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2, 3, 6, 6)) * 3
    target = rng.permutation(6) if shared_target else np.argsort(rng.random((2, 3, 6)), axis=-1)
    check(logits, target, reduction)


@pytest.mark.parametrize("symmetric", [True, False])
def test_tiles_that_do_not_divide_the_rows(monkeypatch, symmetric):
    # 3 rows of 50 float64 per tile: 50 rows are 16 full tiles and one of 2
    monkeypatch.setattr(contrastive, "TILE_BYTES", 3 * 50 * 8)
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((50, 50)) * 5
    for reduction in REDUCTIONS:
        check(logits, rng.permutation(50), reduction, symmetric, 0.1)


def test_strided_logits(isa):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((40, 60)).astype(np.float32) * 3
    for logits in (base[::2, 1::3], base[:20, :20].T, np.asfortranarray(base[:30, :30])):
        check(logits, rng.permutation(logits.shape[0]), "mean")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits(isa, dtype):
    rng = np.random.default_rng(6)
    logits = (rng.standard_normal((16, 16)) * 1e4).astype(dtype)
    check(logits, np.arange(16), "none")
    masked = rng.standard_normal((16, 16)).astype(dtype)
    masked[rng.random((16, 16)) < 0.5] = -np.inf
    np.fill_diagonal(masked, 3.0)  # every row and column keeps its positive
    check(masked, np.arange(16), "sum", label_smoothing=0.0)
    confident = np.full((8, 8), -40.0, dtype)
    np.fill_diagonal(confident, 40.0)  # tiny losses keep their relative precision in both directions
    loss = logitloss.contrastive_loss(confident, reduction="none")
    exact = np.log1p(7 * np.exp(-80.0))
    np.testing.assert_allclose(loss.astype(np.float64), exact, rtol=16 * COMPUTE_EPS[dtype])


def test_nan_propagates_to_its_row_and_column():
    logits = np.random.default_rng(7).standard_normal((5, 5))
    logits[1, 3] = np.nan
    loss, grad = check(logits, np.arange(5), "none")
    assert np.isnan(loss[1]) and np.isnan(loss[3]) and np.isfinite(loss[[0, 2, 4]]).all()


def test_grad_out_and_no_gradient():
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((12, 12)).astype(np.float32)
    out = np.full_like(logits, np.nan)
    loss, grad = logitloss.contrastive_loss(logits, grad_out=out)
    assert grad is out
    expected_loss, expected_grad = logitloss.contrastive_loss(logits, return_grad=True)
    np.testing.assert_array_equal(out, expected_grad)
    assert loss == expected_loss == logitloss.contrastive_loss(logits)


def test_empty():
    assert np.isnan(logitloss.contrastive_loss(np.zeros((0, 0))))
    assert logitloss.contrastive_loss(np.zeros((0, 0)), reduction="sum") == 0
    loss, grad = logitloss.contrastive_loss(np.zeros((3, 0, 0), np.float32), reduction="none", return_grad=True)
    assert loss.shape == (3, 0) and grad.shape == (3, 0, 0)


BAD_CALLS = [
    (dict(logits=np.zeros(3)), ValueError, "shape"),
    (dict(logits=np.zeros((3, 4))), ValueError, "square"),
    (dict(logits=np.zeros((4, 3)), symmetric=False), ValueError, "N <= M"),
    (dict(logits=np.zeros((3, 3), np.int64)), TypeError, "logits"),
    (dict(logits=np.zeros((3, 3)), target=np.zeros(3)), TypeError, "target"),
    (dict(logits=np.zeros((3, 3)), target=np.zeros(4, int)), ValueError, "target"),
    (dict(logits=np.zeros((3, 3)), target=np.array([0, 1, 3])), IndexError, "outside"),
    (dict(logits=np.zeros((3, 3)), target=np.array([0, -100, 1])), IndexError, "outside"),
    (dict(logits=np.zeros((3, 3)), reduction="batchmean"), ValueError, "reduction"),
    (dict(logits=np.zeros((3, 3)), label_smoothing=1.5), ValueError, "label_smoothing"),
    (dict(logits=np.zeros((3, 3)), symmetric="yes"), TypeError, "symmetric"),
    (dict(logits=np.zeros((3, 3)), grad_out=np.zeros((3, 3), np.float32)), TypeError, "grad_out"),
    (dict(logits=np.zeros((3, 3)), grad_out=np.zeros((3, 4))), ValueError, "grad_out"),
]


@pytest.mark.parametrize("kwargs, error, words", BAD_CALLS)
def test_errors_name_the_argument(kwargs, error, words):
    before = snapshot(*kwargs.values())
    with pytest.raises(error, match=words):
        logitloss.contrastive_loss(**kwargs)
    assert_unchanged(before, list(kwargs.values()), "contrastive_loss")


def test_grad_out_read_only_or_overlapping():
    logits = np.zeros((3, 3))
    read_only = np.zeros((3, 3))
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        logitloss.contrastive_loss(logits, grad_out=read_only)
    with pytest.raises(ValueError, match="overlap"):
        logitloss.contrastive_loss(logits, grad_out=logits)
