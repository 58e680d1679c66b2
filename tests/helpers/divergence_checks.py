"""Checks shared by the divergences of logits (kl_div_with_logits, jsd_with_logits)."""

from __future__ import annotations

import numpy as np
import pytest

REDUCTIONS = ["mean", "sum", "none"]
DTYPES = [np.float16, np.float32, np.float64]
COMPUTE_EPS = {np.float16: 2.0**-24, np.float32: 2.0**-24, np.float64: 2.0**-53}
FINAL_ROUNDING = {np.float16: 2.0**-11, np.float32: 0.0, np.float64: 0.0}


def reduce_exact(losses, reduction, included):
    """The exact per-row losses reduced as the divergences reduce them (rows outside `included` add nothing)."""
    if reduction == "none":
        return np.where(included, losses, 0.0)
    total = np.sum(np.where(included, losses, 0.0))
    return total if reduction == "sum" else total / np.count_nonzero(included)


def check_divergence_errors(divergence):
    """The argument errors every divergence of two logit arrays raises, each naming its argument:
    ``divergence(input, target, **options)`` with the divergence's own parameters already bound."""
    s = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="`target`"):
        divergence(s, np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="`target`"):
        divergence(s, np.zeros((2, 3)))
    with pytest.raises(TypeError, match="`input`"):
        divergence(np.zeros((2, 3), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="`reduction`"):
        divergence(s, s, reduction="batchmean")
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="`temperature`"):
            divergence(s, s, temperature=bad)
    with pytest.raises(TypeError, match="`temperature`"):
        divergence(s, s, temperature="1")
    with pytest.raises(ValueError, match="`where`"):
        divergence(s, s, where=np.ones(3, bool))
    with pytest.raises(TypeError, match="`where`"):
        divergence(s, s, where=np.ones(2))
    with pytest.raises(ValueError, match="`input`"):
        divergence(np.zeros((2, 0), np.float32), np.zeros((2, 0), np.float32))
    with pytest.raises(TypeError, match="`grad_out`"):
        divergence(s, s, grad_out=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="`grad_out`"):
        divergence(s, s, grad_out=np.zeros((3, 2), np.float32))
    readonly = np.zeros((2, 3), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="`grad_out`"):
        divergence(s, np.ones((2, 3), np.float32), grad_out=readonly)
    with pytest.raises(ValueError, match="`grad_out`"):
        divergence(s, np.ones((2, 3), np.float32), grad_out=s)
