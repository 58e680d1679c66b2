"""References for the benchmarks: the NumPy baseline as users write it, and a float64 sanity check.

Two kinds of reference live here.

1. ``numpy_logsumexp`` / ``numpy_softmax`` / ``numpy_log_softmax`` / ``numpy_cross_entropy*`` /
   ``numpy_binary_cross_entropy*``: the numerically stable NumPy code a user writes by hand (shift by the
   maximum, exponentiate, sum; ``max(x, 0) - x y + log1p(exp(-|x|))``), in the input's dtype.  This is the
   "NumPy stable" provider of the benchmark tables.  ``numpy_naive_*``: the textbook code without the shift
   (``log(sum(exp(x)))``, ``exp(x) / sum(exp(x))``, softmax then log), the "NumPy naive" provider.
2. The exact references of the test suite (``tests/reference.py``: float64 with the maximum pulled out and
   ``log1p``, SciPy's formula), used by :func:`check_result` to make sure every provider that is timed
   computes the right thing.  They are found next to the source tree (a checkout or an editable install),
   in ``./tests`` or in ``$LOGITLOSS_TESTS_DIR``; an installed wheel has no ``tests/``, and then the float64
   formulas ``reference_*`` below stand in.  :func:`reference_source` says which one a run used.
   The check has loose float32 tolerances on purpose (a wrong axis or a missing normalization fails it by
   orders of magnitude); accuracy in ULPs is the job of the test suite, not of the benchmarks.

Large inputs are checked on a sample of 16 slices (``check_result``), so the check costs milliseconds; the loss
checks (``cross_entropy_check``, ``binary_cross_entropy_check``) compute the whole loss in float64 and sample the
gradient.  The exact (mpmath) references of the safety and accuracy tables are in :mod:`~logitloss.bench.exact`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "CHECK_TOLERANCES",
    "check_result",
    "cross_entropy_check",
    "binary_cross_entropy_check",
    "numpy_binary_cross_entropy",
    "numpy_binary_cross_entropy_fwd_bwd",
    "numpy_cross_entropy",
    "numpy_cross_entropy_fwd_bwd",
    "numpy_log_softmax",
    "numpy_logsumexp",
    "numpy_naive_log_softmax",
    "numpy_naive_logsumexp",
    "numpy_naive_softmax",
    "numpy_softmax",
    "reference_log_softmax",
    "reference_logsumexp",
    "reference_softmax",
    "reference_source",
]


# --- 1. NumPy stable, as users write it -------------------------------------------------------------------


def numpy_logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``max + log(sum(exp(x - max)))`` along ``axis``, in ``x.dtype``."""
    x_max = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(x_max, axis=axis) + np.log(np.sum(np.exp(x - x_max), axis=axis))


def numpy_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``, in ``x.dtype``."""
    exp_shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return exp_shifted / np.sum(exp_shifted, axis=axis, keepdims=True)


def numpy_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``(x - max) - log(sum(exp(x - max)))`` along ``axis``, in ``x.dtype``."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def numpy_naive_logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(x)))``: overflows once a logit passes log(max) (88.7 in float32)."""
    return np.log(np.sum(np.exp(x), axis=axis))


def numpy_naive_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x) / sum(exp(x))``, unshifted."""
    exp = np.exp(x)
    return exp / np.sum(exp, axis=axis, keepdims=True)


def numpy_naive_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(softmax(x))``: the naive softmax, then its log (-inf where the softmax underflows)."""
    return np.log(numpy_naive_softmax(x, axis))


def numpy_cross_entropy(x: np.ndarray, y: np.ndarray) -> np.floating:
    """Mean cross-entropy of logits ``x`` (N, C) and class indices ``y`` (N,) or probability targets ``y`` (N, C),
    max-shifted, in ``x.dtype``."""
    x_max = x.max(1, keepdims=True)
    sums = np.exp(x - x_max).sum(1, keepdims=True)
    if y.shape == x.shape:  # probabilities: -sum_c y_c log_softmax_c
        return -np.mean((y * (x - x_max - np.log(sums))).sum(1))
    rows = np.arange(x.shape[0])
    return np.mean(np.log(sums[:, 0]) + x_max[:, 0] - x[rows, y])


def numpy_cross_entropy_fwd_bwd(x: np.ndarray, y: np.ndarray) -> tuple[np.floating, np.ndarray]:
    """Mean cross-entropy and its gradient ``(softmax(x) - onehot(y)) / N``, the stable NumPy code users write::

        m = x.max(1, keepdims=True); e = np.exp(x - m); s = e.sum(1, keepdims=True)
        loss = np.mean(np.log(s[:, 0]) + m[:, 0] - x[r, y]); e /= s; e[r, y] -= 1; e /= N

    With probability targets ``y`` of ``x``'s shape (rows summing to 1): ``-mean(sum(y * log_softmax))`` and
    ``(softmax(x) - y) / N``.
    """
    n = x.shape[0]
    x_max = x.max(1, keepdims=True)
    exp_shifted = np.exp(x - x_max)
    sums = exp_shifted.sum(1, keepdims=True)
    if y.shape == x.shape:
        loss = -np.mean((y * (x - x_max - np.log(sums))).sum(1))
        exp_shifted /= sums
        exp_shifted -= y
        exp_shifted /= n
        return loss, exp_shifted
    rows = np.arange(n)
    loss = np.mean(np.log(sums[:, 0]) + x_max[:, 0] - x[rows, y])
    exp_shifted /= sums
    exp_shifted[rows, y] -= 1
    exp_shifted /= n
    return loss, exp_shifted


def numpy_binary_cross_entropy(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, pos_weight: np.ndarray | None = None
) -> np.floating:
    """Mean binary cross-entropy with logits, the stable form users write (in ``x.dtype``)::

        np.mean(np.maximum(x, 0) - x*y + np.log1p(np.exp(-np.abs(x))))

    With ``pos_weight`` the positive term is weighted (``(1 - y) x + (1 + (pw - 1) y) softplus(-x)``, softplus
    written the same stable way); ``weight`` multiplies each element.
    """
    softplus_minus_x = np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))
    if pos_weight is None:
        losses = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    else:
        losses = (1 - y) * x + (1 + (pos_weight - 1) * y) * softplus_minus_x
    if weight is not None:
        losses = losses * weight
    return np.mean(losses)


def numpy_binary_cross_entropy_fwd_bwd(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, pos_weight: np.ndarray | None = None
) -> tuple[np.floating, np.ndarray]:
    """:func:`numpy_binary_cross_entropy` and its gradient as users write it: ``(1 / (1 + np.exp(-x)) - y) / x.size``
    (with ``pos_weight``: ``((1 + (pw - 1) y) sigmoid(x) - pw y) / x.size``; times ``weight``)."""
    loss = numpy_binary_cross_entropy(x, y, weight, pos_weight)
    sigmoid = 1 / (1 + np.exp(-x))
    if pos_weight is None:
        gradient = (sigmoid - y) / x.size
    else:
        gradient = ((1 + (pos_weight - 1) * y) * sigmoid - pos_weight * y) / x.size
    if weight is not None:
        gradient *= weight
    return loss, gradient


# --- 2. float64 references and the sanity check -----------------------------------------------------------


def reference_logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return numpy_logsumexp(np.asarray(x, dtype=np.float64), axis)


def reference_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return numpy_softmax(np.asarray(x, dtype=np.float64), axis)


def reference_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return numpy_log_softmax(np.asarray(x, dtype=np.float64), axis)


_FALLBACK = {
    "logsumexp": reference_logsumexp,
    "softmax": reference_softmax,
    "log_softmax": reference_log_softmax,
}
_TESTS_REFERENCE: list[ModuleType | None] = []  # loaded once: [module] or [None]


def _tests_reference() -> ModuleType | None:
    """The test suite's ``reference`` module, or None where there is no ``tests/reference.py``."""
    if _TESTS_REFERENCE:
        return _TESTS_REFERENCE[0]
    candidates = [os.environ.get("LOGITLOSS_TESTS_DIR", ""), Path(__file__).resolve().parents[3] / "tests",
                  Path.cwd() / "tests"]
    module = None
    for directory in candidates:
        path = Path(directory) / "reference.py" if directory else None
        if path is None or not path.is_file():
            continue
        try:
            spec = importlib.util.spec_from_file_location("_logitloss_tests_reference", path)
            if spec is None or spec.loader is None:
                continue
            candidate = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(candidate)
        except Exception:
            continue
        if callable(getattr(candidate, "logsumexp", None)) and callable(getattr(candidate, "softmax", None)):
            module = candidate
            break
    _TESTS_REFERENCE.append(module)
    return module


def reference_source() -> str:
    module = _tests_reference()
    if module is not None:
        return f"test suite reference {module.__file__}"
    return "logitloss.bench.references float64 formulas (tests/reference.py not found)"


def _reference(op: str, rows: np.ndarray) -> np.ndarray:
    """float64 reference of ``op`` over the last axis of the 2-D ``rows``."""
    module = _tests_reference()
    # The test suite's reference takes float64 inputs to mpmath through the suite's conftest, which only a
    # pytest run provides; float64 formulas are many orders below the check's tolerances for them anyway.
    if module is None or rows.dtype == np.float64:
        return np.asarray(_FALLBACK[op](rows, -1), dtype=np.float64)
    if op == "logsumexp":
        return np.asarray(module.logsumexp(rows, axis=-1).value, dtype=np.float64)
    exact = module.softmax(rows, axis=-1)
    return np.asarray(exact.softmax if op == "softmax" else exact.log_softmax, dtype=np.float64)


# (rtol, atol) per op for float32 results of inputs from ``inputs.make_logits``; loose on purpose (see above).
CHECK_TOLERANCES: dict[str, tuple[float, float]] = {
    "logsumexp": (1e-5, 1e-5),
    "softmax": (1e-4, 1e-8),
    "log_softmax": (1e-5, 1e-4),
}

_CHECK_SLICES = 16


def check_result(op: str, x: np.ndarray, axis: int, result: Any) -> str | None:
    """Compare ``result`` of ``op(x, axis)`` with the float64 reference on 16 sampled slices.

    ``result`` may be a NumPy array, a NumPy scalar or anything ``np.asarray`` takes (a torch tensor).
    Returns ``None`` when it matches, otherwise a one-line description of the mismatch.  The check uses the
    test suite's reference where it is found (see the module doc).
    """
    rtol, atol = CHECK_TOLERANCES[op]
    result = np.asarray(result)
    axis = axis % x.ndim
    kept_shape = x.shape[:axis] + x.shape[axis + 1 :]
    expected_shape = kept_shape if op == "logsumexp" else x.shape
    if result.shape != expected_shape:
        return f"shape {result.shape}, expected {expected_shape}"
    # Slice j is x[k_0, .., k_{axis-1}, :, k_{axis+1}, ..] for 16 kept indices k spread over the array.
    count = int(np.prod(kept_shape))
    picked = np.unique(np.linspace(0, count - 1, min(_CHECK_SLICES, count)).astype(np.intp))
    kept_indices = np.unravel_index(picked, kept_shape) if kept_shape else ()
    slices = []
    for j in range(picked.size):
        index = [int(k[j]) for k in kept_indices]
        slices.append(tuple(index[:axis]) + (slice(None),) + tuple(index[axis:]))
    rows = np.stack([x[index] for index in slices])
    expected = _reference(op, rows)
    if op == "logsumexp":
        got = np.array([result[index[:axis] + index[axis + 1 :]] for index in slices], dtype=np.float64)
    else:
        got = np.stack([result[index] for index in slices]).astype(np.float64)
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        error = np.abs(got - expected)
        worst = np.unravel_index(np.argmax(error - rtol * np.abs(expected)), error.shape)
        return (
            f"mismatch vs float64 reference: got {got[worst]!r}, expected {expected[worst]!r} "
            f"(rtol={rtol}, atol={atol})"
        )
    return None


# --- 3. cross-entropy check (float64, torch semantics, reduction="mean", index targets) --------------------

# loss: relative; gradient: relative plus an absolute floor of 1e-6 of the largest |gradient| of the sampled rows.
CROSS_ENTROPY_TOLERANCES = {"loss": 1e-5, "grad": 1e-4, "grad_floor": 1e-6}
_CHUNK_ELEMENTS = 1 << 20  # the float64 references are computed this many elements at a time


def _cross_entropy_coefficients(
    z: np.ndarray, y: np.ndarray, weight: np.ndarray | None, label_smoothing: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float64 ``(loss_row, row_weight, A * p - B, B)`` of the rows ``z`` (see ``tests/reference_cross_entropy``):
    ``B_c = (1 - eps) w_y [c == y] + (eps / C) w_c``, ``loss_row = sum_c B_c (L - z_c)``, gradient ``A p - B``.
    Probability targets ``y`` (of ``z``'s shape): ``B_c = w_c ((1 - eps) y_c + eps / C)`` and row weight 1 (the
    mean divides by the number of positions)."""
    classes = z.shape[1]
    rows = np.arange(z.shape[0])
    w = np.ones(classes) if weight is None else np.asarray(weight, dtype=np.float64)
    if y.shape == z.shape:
        coefficients = w * ((1.0 - label_smoothing) * np.asarray(y, dtype=np.float64) + label_smoothing / classes)
        row_weights = np.ones(z.shape[0])
    else:
        coefficients = np.broadcast_to((label_smoothing / classes) * w, z.shape).copy()
        coefficients[rows, y] += (1.0 - label_smoothing) * w[y]
        row_weights = w[y]
    z_max = z.max(1, keepdims=True)
    exp_shifted = np.exp(z - z_max)
    sums = exp_shifted.sum(1, keepdims=True)
    lse = z_max + np.log(sums)
    loss_rows = (coefficients * (lse - z)).sum(1)
    grad_rows = coefficients.sum(1, keepdims=True) * (exp_shifted / sums) - coefficients
    return loss_rows, row_weights, grad_rows, coefficients


def cross_entropy_check(
    x: np.ndarray,
    y: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    grad: bool = True,
) -> Callable[[Any], str | None]:
    """A check for ``harness.Provider.check``: ``result`` is the loss (``grad=False``) or ``(loss, gradient)``
    (or the gradient alone, as ``cross_entropy_backward`` returns it) of mean cross-entropy over ``x`` (N, C)
    with targets ``y`` (class indices (N,) or probabilities (N, C)); compared with float64 on the full loss and
    on 16 sampled gradient rows.  The reference is computed at the first call (in chunks of rows), then cached.

    ``x`` must stay the pristine input: providers writing the gradient in place use their own copy.  Logits
    (N, C, d1, ...) with class axis 1 (index targets (N, d1, ...)) are checked as their (N * d1 * ..., C) rows.
    """
    if x.ndim > 2:
        return _class_axis_1_check(x, y, weight, label_smoothing, grad)
    cache: dict[str, Any] = {}
    picked = np.unique(np.linspace(0, x.shape[0] - 1, min(_CHECK_SLICES, x.shape[0])).astype(np.intp))

    def reference() -> dict[str, Any]:
        if not cache:
            loss_sum, denominator = 0.0, 0.0
            step = max(1, _CHUNK_ELEMENTS // x.shape[1])  # about 8 MB of float64 per chunk
            for start in range(0, x.shape[0], step):
                z = np.asarray(x[start : start + step], dtype=np.float64)
                loss_rows, row_weights, _, _ = _cross_entropy_coefficients(z, y[start : start + step], weight,
                                                                            label_smoothing)
                loss_sum += float(loss_rows.sum())
                denominator += float(row_weights.sum())
            _, _, grad_rows, _ = _cross_entropy_coefficients(np.asarray(x[picked], dtype=np.float64), y[picked],
                                                             weight, label_smoothing)
            cache.update(loss=loss_sum / denominator, grad=grad_rows / denominator)
        return cache

    def check(result: Any) -> str | None:
        expected = reference()
        if grad and isinstance(result, np.ndarray) and result.shape == x.shape:
            loss, gradient = None, result  # cross_entropy_backward: the gradient alone
        elif grad:
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                return f"expected (loss, gradient), got {type(result).__name__}"
            loss, gradient = result
        else:
            loss, gradient = result, None
        loss = expected["loss"] if loss is None else float(np.asarray(loss))
        if not abs(loss - expected["loss"]) <= CROSS_ENTROPY_TOLERANCES["loss"] * abs(expected["loss"]):
            return f"loss {loss!r}, expected {expected['loss']!r} (rtol={CROSS_ENTROPY_TOLERANCES['loss']})"
        if gradient is None:
            return None
        gradient = np.asarray(gradient)
        if gradient.shape != x.shape:
            return f"gradient shape {gradient.shape}, expected {x.shape}"
        got = gradient[picked].astype(np.float64)
        floor = CROSS_ENTROPY_TOLERANCES["grad_floor"] * float(np.abs(expected["grad"]).max())
        if not np.allclose(got, expected["grad"], rtol=CROSS_ENTROPY_TOLERANCES["grad"], atol=floor):
            error = np.abs(got - expected["grad"])
            worst = np.unravel_index(np.argmax(error), error.shape)
            return f"gradient {got[worst]!r}, expected {expected['grad'][worst]!r} at sampled row/class {worst}"
        return None

    return check


def _class_axis_1_check(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, label_smoothing: float, grad: bool
) -> Callable[[Any], str | None]:
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


# --- 4. binary cross-entropy check (float64, torch semantics, reduction="mean") ----------------------------


def _binary_cross_entropy_terms(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, pos_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """float64 per-element loss ``w ((1 - y) sp(x) + pw y sp(-x))`` and gradient ``w ((1 - y) s(x) - pw y s(-x))``
    (``sp`` softplus, ``s`` sigmoid, both from ``exp(-|x|)``)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    decay = np.exp(-np.abs(x))
    softplus_abs = np.log1p(decay)
    softplus_plus, softplus_minus = np.maximum(x, 0) + softplus_abs, np.maximum(-x, 0) + softplus_abs
    sigmoid_plus = np.where(x >= 0, 1, decay) / (1 + decay)
    sigmoid_minus = np.where(x >= 0, decay, 1) / (1 + decay)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    loss = w * ((1 - y) * softplus_plus + pw * y * softplus_minus)
    gradient = w * ((1 - y) * sigmoid_plus - pw * y * sigmoid_minus)
    return loss, gradient


def binary_cross_entropy_check(
    x: np.ndarray,
    y: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    pos_weight: np.ndarray | None = None,
    grad: bool = True,
) -> Callable[[Any], str | None]:
    """A check for ``harness.Provider.check`` of mean binary cross-entropy with logits ``x`` and targets ``y``
    (``weight`` / ``pos_weight`` broadcast to ``x``): ``result`` is the loss (``grad=False``), ``(loss, gradient)``
    or the gradient alone (the backward function).  Compared with float64 on the full loss and on 4096 sampled
    gradient elements, with the tolerances of the cross-entropy check.  The reference is computed at the first
    call (in chunks), then cached.  ``x`` must stay the pristine input.
    """
    cache: dict[str, Any] = {}
    picked = np.unique(np.linspace(0, x.size - 1, min(4096, x.size)).astype(np.intp))

    def broadcast(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else np.broadcast_to(values, x.shape).reshape(-1)

    def reference() -> dict[str, Any]:
        if not cache:
            flat_x, flat_y = x.reshape(-1), y.reshape(-1)
            flat_w, flat_pw = broadcast(weight), broadcast(pos_weight)
            total = 0.0
            for start in range(0, x.size, _CHUNK_ELEMENTS):
                part = slice(start, start + _CHUNK_ELEMENTS)
                loss, _ = _binary_cross_entropy_terms(flat_x[part], flat_y[part],
                                                      None if flat_w is None else flat_w[part],
                                                      None if flat_pw is None else flat_pw[part])
                total += float(loss.sum())
            _, gradient = _binary_cross_entropy_terms(flat_x[picked], flat_y[picked],
                                                      None if flat_w is None else flat_w[picked],
                                                      None if flat_pw is None else flat_pw[picked])
            cache.update(loss=total / x.size, grad=gradient / x.size)
        return cache

    def check(result: Any) -> str | None:
        expected = reference()
        loss_tolerance, grad_tolerance = CROSS_ENTROPY_TOLERANCES["loss"], CROSS_ENTROPY_TOLERANCES["grad"]
        if grad and isinstance(result, np.ndarray) and result.shape == x.shape:
            loss, gradient = None, result  # the backward function: the gradient alone
        elif grad:
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                return f"expected (loss, gradient), got {type(result).__name__}"
            loss, gradient = result
        else:
            loss, gradient = result, None
        if loss is not None:
            value = float(np.asarray(loss))
            if not abs(value - expected["loss"]) <= loss_tolerance * abs(expected["loss"]):
                return f"loss {value!r}, expected {expected['loss']!r} (rtol={loss_tolerance})"
        if gradient is None:
            return None
        gradient = np.asarray(gradient)
        if gradient.shape != x.shape:
            return f"gradient shape {gradient.shape}, expected {x.shape}"
        got = gradient.reshape(-1)[picked].astype(np.float64)
        floor = CROSS_ENTROPY_TOLERANCES["grad_floor"] * float(np.abs(expected["grad"]).max())
        if not np.allclose(got, expected["grad"], rtol=grad_tolerance, atol=floor):
            worst = int(np.argmax(np.abs(got - expected["grad"])))
            return f"gradient {got[worst]!r}, expected {expected['grad'][worst]!r} at element {int(picked[worst])}"
        return None

    return check
