"""The cross-entropy tests' checks: one call of ``logitloss.cross_entropy`` against the exact reference
(``logitloss.testing.cross_entropy``) within the table's cross-entropy bounds (8 eps of the loss's condition
scale, 8 eps normwise per row for the gradient)."""

from __future__ import annotations

import numpy as np

import logitloss
from logitloss.testing.cross_entropy import cross_entropy
from logitloss.testing.inputs import classes_of, index_targets, probability_targets, target_dtype_for
from logitloss.testing.tolerances import CROSS_ENTROPY, FORWARD, GRADIENT, bound, tolerance

from .assertions import assert_close_to_exact
from .loss_checks import assert_no_flush_to_zero, check_loss_and_gradient

LOSS_UNITS = bound(CROSS_ENTROPY, FORWARD).units

KINDS = ("index", "probability")


def kwargs_of(weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return dict(weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)


def make_targets(kind, shape, dtype, seed, ignore_index=-100):
    """Targets of one of the KINDS for logits of ``shape``: probability rows, or class indices in the
    seed-th integer dtype that holds the classes (some set to ``ignore_index``)."""
    if kind == "probability":
        return probability_targets(shape, dtype, seed)
    C = classes_of(shape)
    tdtype = target_dtype_for(seed, C, ignore_index)
    if len(shape) == 1:  # a 0-d target
        return np.asarray(np.random.default_rng(seed).integers(0, C)).astype(tdtype)
    return index_targets(shape, seed, ignore_index=ignore_index, dtype=tdtype)


def loss_tolerance(exact):
    """The loss's absolute tolerance (float64, the loss's shape)."""
    return tolerance(exact.dtype, exact.loss, exact.loss_scale, FORWARD, family=CROSS_ENTROPY)


def grad_tolerance(exact):
    """The gradient's absolute tolerance per element (float64, the input's shape)."""
    return tolerance(exact.dtype, exact.grad, exact.grad_scale, GRADIENT, family=CROSS_ENTROPY)


def assert_loss_close(actual, exact, what="loss"):
    """The loss within LOSS_UNITS of its condition scale (see the module docstring); below the
    normal range within one subnormal ulp and never 0 where the exact value rounds to nonzero."""
    dtype = exact.dtype
    if exact.reduced_overflow and np.asarray(actual) == np.inf:
        return 0.0
    worst = assert_close_to_exact(
        actual,
        exact.loss,
        dtype,
        exact.loss_scale,
        lo=exact.loss_lo,
        family=CROSS_ENTROPY,
        what=what,
    )
    assert_no_flush_to_zero(actual, exact.loss + exact.loss_lo, dtype, what)
    return worst


def assert_grad_close(actual, exact, what="gradient"):
    """The gradient normwise per row within GRADIENT_UNITS (see the module docstring)."""
    dtype = exact.dtype
    return assert_close_to_exact(
        actual,
        exact.grad,
        dtype,
        exact.grad_scale,
        lo=exact.grad_lo,
        direction=GRADIENT,
        family=CROSS_ENTROPY,
        what=what,
    )


def check_cross_entropy(
    input,
    target,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    *,
    what="cross_entropy",
):
    """Call ``logitloss.cross_entropy(..., return_grad=True)``; check kind, loss and gradient
    against the exact reference.  Returns (loss, grad, exact)."""
    exact = cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)
    result = logitloss.cross_entropy(
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        return_grad=True,
    )
    loss, grad = check_loss_and_gradient(result, input, exact, reduction, assert_loss_close, assert_grad_close, what)
    return loss, grad, exact
