"""The benchmark's sanity checks: each provider's first result against the float64 references of
:mod:`logitloss.testing`, before it is timed.

The references run in float64 with care (``method="float64"``: no mpmath, whatever the dtype), and the
tolerances are loose on purpose: a wrong axis, a missing normalization or a wrong target fails by orders of
magnitude; accuracy in ulps is the job of the test suite and of the accuracy table.  Large inputs are checked on
16 sampled slices (the family, the gradients), so a check costs milliseconds; the loss checks compute the whole
loss (a mean over every row), in chunks, once per row of the benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from logitloss.testing.binary_cross_entropy import binary_cross_entropy as exact_binary_cross_entropy
from logitloss.testing.cache import clear_cache
from logitloss.testing.cross_entropy import cross_entropy as exact_cross_entropy
from logitloss.testing.softmax_family import (
    log_softmax_backward as exact_log_softmax_backward,
    logsumexp as exact_logsumexp,
    softmax as exact_softmax,
    softmax_backward as exact_softmax_backward,
)

__all__ = [
    "CHECK_TOLERANCES",
    "LOSS_TOLERANCES",
    "REFERENCE_SOURCE",
    "binary_cross_entropy_check",
    "check_result",
    "cross_entropy_check",
    "gradient_check",
]

REFERENCE_SOURCE = "float64 references of logitloss.testing (float64 with care, no mpmath)"
METHOD = "float64"

# (rtol, atol) per op for float32 results of inputs from ``logitloss.testing.inputs.logits``.
CHECK_TOLERANCES: dict[str, tuple[float, float]] = {
    "logsumexp": (1e-5, 1e-5),
    "softmax": (1e-4, 1e-8),
    "log_softmax": (1e-5, 1e-4),
}
# The losses: relative for the loss; relative plus a floor of 1e-6 of the largest sampled |gradient|.
LOSS_TOLERANCES = {"loss": 1e-5, "grad": 1e-4, "grad_floor": 1e-6}
_SLICES = 16
_CHUNK_ELEMENTS = 1 << 20  # the whole-loss references are computed this many elements at a time

Check = Callable[[Any], "str | None"]


def _sampled(count: int, samples: int = _SLICES) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, min(samples, count)).astype(np.intp))


def _family_reference(op: str, rows: np.ndarray) -> np.ndarray:
    """float64 reference of ``op`` over the last axis of the 2-D ``rows``."""
    if op == "logsumexp":
        return np.asarray(exact_logsumexp(rows, axis=-1, method=METHOD).value)
    exact = exact_softmax(rows, axis=-1, method=METHOD)
    return np.asarray(exact.softmax if op == "softmax" else exact.log_softmax)


def check_result(op: str, x: np.ndarray, axis: int, result: Any) -> str | None:
    """Compare ``result`` of ``op(x, axis)`` (a NumPy array or scalar, or anything ``np.asarray`` takes, e.g. a
    torch tensor) with the float64 reference on 16 sampled slices.  None when it matches, otherwise a one-line
    description of the mismatch."""
    rtol, atol = CHECK_TOLERANCES[op]
    result = np.asarray(result)
    axis = axis % x.ndim
    kept_shape = x.shape[:axis] + x.shape[axis + 1 :]
    expected_shape = kept_shape if op == "logsumexp" else x.shape
    if result.shape != expected_shape:
        return f"shape {result.shape}, expected {expected_shape}"
    # Slice j is x[k_0, .., k_{axis-1}, :, k_{axis+1}, ..] for 16 kept indices k spread over the array.
    picked = _sampled(int(np.prod(kept_shape)))
    kept_indices = np.unravel_index(picked, kept_shape) if kept_shape else ()
    slices = []
    for j in range(picked.size):
        index = [int(k[j]) for k in kept_indices]
        slices.append(tuple(index[:axis]) + (slice(None),) + tuple(index[axis:]))
    expected = _family_reference(op, np.stack([x[index] for index in slices]))
    if op == "logsumexp":
        got = np.array([result[index[:axis] + index[axis + 1 :]] for index in slices], dtype=np.float64)
    else:
        got = np.stack([result[index] for index in slices]).astype(np.float64)
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        error = np.abs(got - expected)
        worst = np.unravel_index(np.argmax(error - rtol * np.abs(expected)), error.shape)
        return (f"mismatch vs float64 reference: got {got[worst]!r}, expected {expected[worst]!r} "
                f"(rtol={rtol}, atol={atol})")
    return None


def gradient_check(op: str, x: np.ndarray, g: np.ndarray, axis: int = -1) -> Check:
    """A check for ``harness.Provider.check`` of the backward modes: ``result`` is the gradient of ``op`` at ``x``
    with upstream ``g``, or (forward, gradient); compared with the float64 reference at 16 sampled rows."""
    axis = axis % x.ndim
    rows = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
    upstream = np.moveaxis(g, axis, -1).reshape(-1, x.shape[axis]) if op != "logsumexp" else g.reshape(-1)
    picked = _sampled(rows.shape[0])
    x_rows, g_rows = rows[picked], upstream[picked]
    if op == "logsumexp":
        expected = exact_logsumexp(x_rows, axis=-1, grad_output=g_rows, method=METHOD).grad
    else:
        forward = exact_softmax(x_rows, axis=-1, method=METHOD)
        if op == "softmax":
            expected = exact_softmax_backward(g_rows, forward.softmax, axis=-1, method=METHOD).value
        else:
            expected = exact_log_softmax_backward(g_rows, forward.log_softmax, axis=-1, method=METHOD).value

    def check(result: Any) -> str | None:
        gradient = np.asarray(result[1] if isinstance(result, (tuple, list)) else result)
        if gradient.shape != x.shape:
            return f"gradient shape {gradient.shape}, expected {x.shape}"
        got = np.moveaxis(gradient, axis, -1).reshape(-1, x.shape[axis])[picked].astype(np.float64)
        return _compare_gradient(got, expected, "sampled row/column")

    return check


def _compare_gradient(got: np.ndarray, expected: np.ndarray, where: str) -> str | None:
    floor = LOSS_TOLERANCES["grad_floor"] * float(np.abs(expected).max(initial=0.0))
    if np.allclose(got, expected, rtol=LOSS_TOLERANCES["grad"], atol=floor):
        return None
    worst = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
    return f"gradient {got[worst]!r}, expected {expected[worst]!r} at {where} {worst}"


def _loss_check(reference: Callable[[], dict[str, Any]], shape: tuple[int, ...], grad: bool,
                gradient_at: Callable[[np.ndarray], np.ndarray], where: str) -> Check:
    """A check of ``result``: the loss (``grad=False``), ``(loss, gradient)`` (or ``(loss, gradient, hessian)``,
    return_hessian=True: the Hessian is checked by the test suite, not here), or the gradient alone (the backward
    functions); ``reference()`` gives the mean loss and the gradient at the sampled positions, ``gradient_at``
    picks those positions of a gradient."""

    def check(result: Any) -> str | None:
        expected = reference()
        if grad and isinstance(result, np.ndarray) and result.shape == shape:
            loss, gradient = None, result
        elif grad:
            if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
                return f"expected (loss, gradient), got {type(result).__name__}"
            loss, gradient = result[:2]
        else:
            loss, gradient = result, None
        if loss is not None:
            value = float(np.asarray(loss))
            if not abs(value - expected["loss"]) <= LOSS_TOLERANCES["loss"] * abs(expected["loss"]):
                return f"loss {value!r}, expected {expected['loss']!r} (rtol={LOSS_TOLERANCES['loss']})"
        if gradient is None:
            return None
        gradient = np.asarray(gradient)
        if gradient.shape != shape:
            return f"gradient shape {gradient.shape}, expected {shape}"
        return _compare_gradient(gradient_at(gradient).astype(np.float64), expected["grad"], where)

    return check


def cross_entropy_check(x: np.ndarray, y: np.ndarray, *, weight: np.ndarray | None = None,
                        label_smoothing: float = 0.0, grad: bool = True) -> Check:
    """A check for ``harness.Provider.check`` of the mean cross-entropy of ``x`` (N, C) with targets ``y`` (class
    indices (N,) or probabilities (N, C)): the whole loss, and the gradient at 16 sampled rows.  The reference is
    computed at the first call, then kept.  ``x`` must stay the pristine input (providers writing the gradient in
    place use their own copy).  Logits (N, C, d1, ...) with class axis 1 are checked as their rows
    (N * d1 * ..., C)."""
    if x.ndim > 2:
        return _class_axis_1_check(x, y, weight, label_smoothing, grad)
    kept: dict[str, Any] = {}
    picked = _sampled(x.shape[0])
    options = dict(weight=weight, label_smoothing=label_smoothing, method=METHOD)

    def reference() -> dict[str, Any]:
        if not kept:
            total, denominator = 0.0, 0.0
            step = max(1, _CHUNK_ELEMENTS // max(1, x.shape[1]))
            for start in range(0, x.shape[0], step):
                part = exact_cross_entropy(x[start : start + step], y[start : start + step], **options)
                if part.denominator:
                    total += float(part.loss) * part.denominator
                    denominator += part.denominator
                clear_cache()  # chunks of a 524 MB input: nothing to keep
            sampled = exact_cross_entropy(x[picked], y[picked], reduction="sum", **options)
            kept.update(loss=total / denominator, grad=np.asarray(sampled.grad) / denominator)
            clear_cache()
        return kept

    return _loss_check(reference, x.shape, grad, lambda gradient: gradient[picked], "sampled row/class")


def _class_axis_1_check(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, label_smoothing: float,
                        grad: bool) -> Check:
    """:func:`cross_entropy_check` of (N, C, d1, ...) logits: the mean over positions is the mean over the rows of
    the class axis moved last, and so is each gradient entry."""
    classes = x.shape[1]

    def rows(array: Any) -> np.ndarray:
        return np.moveaxis(np.asarray(array), 1, -1).reshape(-1, classes)

    targets = rows(y) if y.shape == x.shape else np.asarray(y).reshape(-1)
    rows_check = cross_entropy_check(rows(x), targets, weight=weight, label_smoothing=label_smoothing, grad=grad)

    def check(result: Any) -> str | None:
        if grad and isinstance(result, np.ndarray) and result.shape == x.shape:
            return rows_check(rows(result))
        if grad and isinstance(result, (tuple, list)) and len(result) == 2 and np.shape(result[1]) == x.shape:
            return rows_check((result[0], rows(result[1])))
        return rows_check(result)  # a loss alone, or a malformed result the 2-D check describes

    return check


def binary_cross_entropy_check(x: np.ndarray, y: np.ndarray, *, weight: np.ndarray | None = None,
                               pos_weight: np.ndarray | None = None, grad: bool = True) -> Check:
    """A check for ``harness.Provider.check`` of the mean binary cross-entropy with logits ``x`` and targets ``y``
    (``weight`` / ``pos_weight`` broadcast to ``x``): the whole loss and the gradient at 4096 sampled elements,
    with the tolerances of the cross-entropy check.  The reference is computed at the first call, then kept;
    ``x`` must stay the pristine input."""
    kept: dict[str, Any] = {}
    picked = _sampled(x.size, 4096)

    def flat(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else np.broadcast_to(values, x.shape).reshape(-1)

    def elements(part: slice | np.ndarray) -> tuple[Any, ...]:
        operands = (flat(x), flat(y), flat(weight), flat(pos_weight))
        return tuple(None if values is None else values[part] for values in operands)

    def reference() -> dict[str, Any]:
        if not kept:
            total = 0.0
            for start in range(0, x.size, _CHUNK_ELEMENTS):
                xs, ys, ws, pws = elements(slice(start, start + _CHUNK_ELEMENTS))
                total += float(exact_binary_cross_entropy(xs, ys, ws, "sum", pws, method=METHOD).loss)
                clear_cache()
            xs, ys, ws, pws = elements(picked)
            sampled = exact_binary_cross_entropy(xs, ys, ws, "sum", pws, method=METHOD)
            kept.update(loss=total / x.size, grad=np.asarray(sampled.grad) / x.size)
            clear_cache()
        return kept

    return _loss_check(reference, x.shape, grad, lambda gradient: gradient.reshape(-1)[picked], "element")
