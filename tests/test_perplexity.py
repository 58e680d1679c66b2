"""perplexity: torch's exp(F.cross_entropy(...)) with its denominators (weights, ignore_index, probability
targets, K-dim), the all-ignored batch (nan, as torch), and the README's accumulation over batches."""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import class_weights, index_targets, logits, probability_targets
from logitloss.testing.tolerances import EPS

from .helpers.marks import dtypes


def torch_perplexity(torch, x, target, weight=None, ignore_index=-100):
    """torch.exp(F.cross_entropy(...)) in float64."""
    t = torch.from_numpy(np.asarray(x, np.float64))
    y = torch.from_numpy(np.asarray(target, np.float64 if np.asarray(target).dtype.kind == "f" else np.int64))
    w = None if weight is None else torch.from_numpy(np.asarray(weight, np.float64))
    return float(torch.exp(torch.nn.functional.cross_entropy(t, y, weight=w, ignore_index=ignore_index)))


def assert_close_perplexity(ours, expected, dtype, what):
    """exp(L) within (8 |L| + 2) eps relative: the loss's 8 eps relative moved through exp, and exp's rounding."""
    assert np.asarray(ours).dtype == np.dtype(dtype), what
    if expected > float(np.finfo(dtype).max):  # float16: beyond 65504 the perplexity is inf (documented)
        assert np.isinf(ours), f"{what}: {ours}, torch {expected} (beyond the dtype's range)"
        return
    if np.isnan(expected):
        assert np.isnan(ours), f"{what}: {ours}, torch nan"
        return
    loss = np.log(expected)
    tolerance = (8 * abs(loss) + 2) * EPS[np.dtype(dtype)] * expected
    assert abs(float(ours) - expected) <= tolerance, f"{what}: {float(ours)!r} vs torch {expected!r}"


@dtypes
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("shape", [(37, 11), (8, 300), (4, 7, 5)], ids=str)
def test_matches_torch(isa, dtype, weighted, shape, torch):
    x = logits(shape, dtype, seed=sum(shape))
    y = index_targets(shape, seed=3, ignored=0.25)
    w = class_weights(shape[1], dtype, seed=4) if weighted else None
    assert_close_perplexity(logitloss.perplexity(x, y, weight=w), torch_perplexity(torch, x, y, w), dtype, "index")


@dtypes
def test_ignore_index_as_a_class_and_probability_targets(isa, dtype, torch):
    x = logits((20, 9), dtype, seed=9)
    y = np.random.default_rng(1).integers(0, 9, 20)
    assert_close_perplexity(logitloss.perplexity(x, y, ignore_index=4), torch_perplexity(torch, x, y, ignore_index=4),
                            dtype, "ignore_index=4")
    p = probability_targets((20, 9), dtype, seed=2)
    assert_close_perplexity(logitloss.perplexity(x, p), torch_perplexity(torch, x, p), dtype, "probabilities")


@dtypes
def test_all_ignored_batch_is_nan_like_torch(isa, dtype, torch):
    x = logits((5, 4), dtype, seed=5)
    y = np.full(5, -100)
    assert np.isnan(torch_perplexity(torch, x, y))
    result = logitloss.perplexity(x, y)
    assert np.isnan(result) and np.asarray(result).dtype == np.dtype(dtype)


def test_confident_model_has_perplexity_near_one(isa):
    x = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0]], np.float64)
    exact = 1.0 + 2.0 * np.exp(-10.0)  # exp(log1p(2 e^-10)): the mean loss of both rows
    assert abs(float(logitloss.perplexity(x, np.array([0, 1]))) - exact) <= 2 * EPS[np.dtype(np.float64)]


def test_accumulating_over_batches(isa):
    """The README's recipe: sum the losses and the denominators, exp at the end, equals one call on all rows."""
    x = logits((300, 50), np.float64, seed=50)
    y = index_targets((300, 50), seed=7, ignored=0.2)
    w = class_weights(50, np.float64, seed=8)
    total_loss = total_weight = 0.0
    for start in range(0, 300, 64):
        xb, yb = x[start:start + 64], y[start:start + 64]
        total_loss += float(logitloss.cross_entropy(xb, yb, weight=w, reduction="sum"))
        kept = yb != -100
        total_weight += float(w[yb[kept]].sum())
    np.testing.assert_allclose(np.exp(total_loss / total_weight), logitloss.perplexity(x, y, weight=w), rtol=1e-13)
