"""Arrays with more axes than a call keeps in place (csrc/drivers/small_vector.h holds 8 per list
and moves to the heap beyond): shapes, strides and layouts of 9 to 14 axes, contiguous and strided,
against the exact references. Fewer-axis calls are covered everywhere else."""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import logits

from .helpers.binary_cross_entropy_checks import check_binary_cross_entropy
from .helpers.cross_entropy_checks import check_cross_entropy
from .helpers.softmax_family_checks import check_logsumexp, check_softmax

# 12 axes of lengths 1..3: 1296 elements, some axes of length 1 (dropped by the layout), the rest
# coalescing only partly once a view breaks the strides.
SHAPE = (2, 3, 1, 2, 3, 2, 1, 3, 2, 1, 3, 2)


def strided(x):
    """Every other element of the first axis of a doubled array: strides that do not chain."""
    doubled = np.repeat(x, 2, axis=0)
    return doubled[::2]


@pytest.mark.parametrize("view", ["contiguous", "strided", "reversed"])
@pytest.mark.parametrize("axis", [None, -1, 1, (0, 4, 7, 11), (1, 2, 3, 5, 6, 8, 9, 10)])
def test_logsumexp_and_softmax(isa, view, axis):
    x = logits(SHAPE, np.float64, seed=12, spread=5.0)
    x = {"contiguous": x, "strided": strided(x), "reversed": x[::-1, :, :, ::-1]}[view]
    assert x.ndim == 12
    check_logsumexp(x, axis=axis, what=f"logsumexp {view} axis={axis}")
    check_logsumexp(x, axis=axis, keepdims=True, what=f"logsumexp keepdims {view} axis={axis}")
    if not isinstance(axis, tuple):  # softmax takes an int or None
        check_softmax(x, axis=axis, what=f"softmax {view} axis={axis}")
        check_softmax(x, axis=axis, log=True, what=f"log_softmax {view} axis={axis}")


@pytest.mark.parametrize("axis", [-1, 0, (0, 5)])
def test_more_outer_axes_than_kept_in_place(isa, axis):
    """Fortran order: the 10 or 9 kept axes of an 11-axis array cannot merge, so the row walk's
    own lists (outer dims and their strides) hold more than 8 entries."""
    x = np.asfortranarray(logits((2,) * 11, np.float64, seed=11, spread=5.0))
    check_logsumexp(x, axis=axis, what=f"fortran logsumexp axis={axis}")
    if not isinstance(axis, tuple):
        check_softmax(x, axis=axis, what=f"fortran softmax axis={axis}")
        check_softmax(x, axis=axis, log=True, what=f"fortran log_softmax axis={axis}")


@pytest.mark.parametrize("ndim", [9, 14])
def test_cross_entropy(isa, ndim):
    shape = (3, 5) + (2,) * (ndim - 2)
    x = logits(shape, np.float32, seed=ndim, spread=3.0)
    target = np.random.default_rng(ndim).integers(0, 5, size=(3,) + (2,) * (ndim - 2))
    w = np.linspace(0.5, 1.5, 5).astype(np.float32)
    for reduction in ("none", "mean", "sum"):
        check_cross_entropy(x, target, weight=w, reduction=reduction, label_smoothing=0.1, what=f"{ndim}-d {reduction}")
    check_cross_entropy(strided(x), target, reduction="mean", what=f"{ndim}-d strided")


def test_binary_cross_entropy(isa):
    x = logits(SHAPE, np.float32, seed=3, spread=4.0)
    y = (np.random.default_rng(4).random(SHAPE) < 0.5).astype(np.float32)
    pos_weight = np.linspace(0.5, 2.0, SHAPE[-1]).astype(np.float32)
    check_binary_cross_entropy(x, y, pos_weight=pos_weight, reduction="none", what="12-d")
    check_binary_cross_entropy(strided(x), strided(y), reduction="sum", what="12-d strided")


def test_more_axes_than_kept_in_place_agree_with_fewer(isa):
    """The same numbers through a 12-axis and a 2-axis layout give the same bits."""
    x = logits(SHAPE, np.float32, seed=5, spread=4.0)
    flat = x.reshape(-1, SHAPE[-1])
    many = logitloss.log_softmax(x, axis=-1)
    few = logitloss.log_softmax(flat, axis=-1)
    np.testing.assert_array_equal(many.reshape(flat.shape), few)
