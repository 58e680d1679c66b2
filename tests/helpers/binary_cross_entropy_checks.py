"""The binary cross-entropy tests' checks: one call of ``logitloss.binary_cross_entropy_with_logits`` against
the exact reference (``logitloss.testing.binary_cross_entropy``) within the table's bounds (4 eps of the loss's
condition scale, plain relative in [0, 1]; 8 eps per gradient element)."""

from __future__ import annotations

import numpy as np

import logitloss
from logitloss.testing.binary_cross_entropy import binary_cross_entropy
from logitloss.testing.tolerances import BINARY_CROSS_ENTROPY, FORWARD, GRADIENT, tolerance

from .assertions import assert_close_to_exact
from .loss_checks import assert_no_flush_to_zero, check_loss_and_gradient


def loss_tolerance(exact):
    """The loss's absolute tolerance (float64, the loss's shape)."""
    return tolerance(exact.dtype, exact.loss, exact.loss_scale, FORWARD, family=BINARY_CROSS_ENTROPY)


def grad_tolerance(exact):
    """The gradient's absolute tolerance per element (float64, the input's shape)."""
    return tolerance(exact.dtype, exact.grad, exact.grad_scale, GRADIENT, family=BINARY_CROSS_ENTROPY)


def assert_loss_close(actual, exact, what="loss"):
    """Within LOSS_UNITS eps of the loss's condition scale (plain relative in the spec's domain);
    below the normal range within one subnormal ulp and never 0 where the exact value rounds to
    nonzero."""
    if exact.reduced_overflow and np.asarray(actual) == np.inf:
        return 0.0
    worst = assert_close_to_exact(
        actual, exact.loss, exact.dtype, exact.loss_scale, lo=exact.loss_lo, family=BINARY_CROSS_ENTROPY, what=what
    )
    if exact.loss.ndim == 0 and exact.element_loss.size > 1:
        # A reduction adds the per-element losses as computed, each rounded to the compute dtype
        # (as torch's loss.sum() does): when every one of them rounds to 0, so may their sum.
        compute = np.float32 if np.dtype(exact.dtype).itemsize <= 4 else np.float64
        with np.errstate(under="ignore", over="ignore"):
            if not np.any(exact.element_loss.astype(compute) != 0):
                return worst
    assert_no_flush_to_zero(actual, exact.loss + exact.loss_lo, exact.dtype, what)
    return worst


def assert_grad_close(actual, exact, what="gradient"):
    """Within GRADIENT_UNITS eps of each element's condition scale; never 0 where the exact value
    rounds to nonzero."""
    worst = assert_close_to_exact(
        actual, exact.grad, exact.dtype, exact.grad_scale, lo=exact.grad_lo, direction=GRADIENT,
        family=BINARY_CROSS_ENTROPY, what=what,
    )
    # Where the exact gradient is below its own tolerance (sigmoid(x) - y cancelling, e.g. x ~ 0
    # with y = 1/2) a computed 0 is within it; elsewhere 0 must not replace a nonzero value.
    exact_grad = exact.grad + exact.grad_lo
    significant = np.abs(exact_grad) > grad_tolerance(exact)
    assert_no_flush_to_zero(np.where(significant, actual, 1.0), np.where(significant, exact_grad, 1.0), exact.dtype, what)
    return worst


def check_binary_cross_entropy(input, target, weight=None, reduction="mean", pos_weight=None, *, what="bce"):
    """Call ``logitloss.binary_cross_entropy_with_logits(..., return_grad=True)``; check return kind,
    dtype, loss and gradient against the exact reference.  Returns (loss, grad, exact)."""
    exact = binary_cross_entropy(input, target, weight, reduction, pos_weight)
    result = logitloss.binary_cross_entropy_with_logits(
        input, target, weight=weight, reduction=reduction, pos_weight=pos_weight, return_grad=True
    )
    loss, grad = check_loss_and_gradient(result, input, exact, reduction, assert_loss_close, assert_grad_close, what)
    return loss, grad, exact
