"""fit_temperature: temperature scaling (Guo et al. 2017) by safeguarded Newton on log T."""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import ArrayLike

from ._objective import temperature_objective as _temperature_objective
from ._inputs import check_logits_labels, check_weight, nonfinite_logits_error

MAX_ITERATIONS = 200


class TemperatureAtBoundWarning(RuntimeWarning):
    """The NLL still decreases past a bound of `fit_temperature`'s search: the returned T is that bound,
    not an interior optimum (perfectly separable or constant data, or bounds too tight)."""


class Temperature(float):
    """The fitted temperature, a float with how it was found.

    Attributes
    ----------
    at_bound : {None, 'lower', 'upper'}
        None for an interior optimum; otherwise the bound the NLL decreases towards (the value is
        that bound, and a TemperatureAtBoundWarning was issued).
    nll : float
        The mean NLL of ``softmax(logits / T)`` at the returned T (for an interior T, from the Taylor
        expansion at the last point evaluated: about 1e-12 relative).
    iterations : int
        Objective evaluations over all the logits (each one pass). Inputs of more than 32768 rows
        first fit T roughly on a strided subsample of about 8192 rows (not counted): the full search
        then starts close to the optimum.
    """

    at_bound: str | None
    nll: float
    iterations: int

    def __new__(cls, value, *, at_bound, nll, iterations):
        self = super().__new__(cls, value)
        self.at_bound, self.nll, self.iterations = at_bound, nll, iterations
        return self

    def __repr__(self):
        where = "" if self.at_bound is None else f", at_bound={self.at_bound!r}"
        return f"Temperature({float(self)!r}{where}, nll={self.nll!r}, iterations={self.iterations})"


def fit_temperature(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    bounds: tuple[float, float] = (1e-2, 1e2),
    tol: float = 1e-8,
) -> Temperature:
    """The temperature ``T > 0`` minimising the mean NLL of ``softmax(logits / T)`` (Guo et al. 2017).

    Fit it on held-out data, then divide the logits by it. The NLL is convex in ``s = 1/T`` with
    ``NLL'(s) = mean(E_p[z] - z_y)`` and ``NLL''(s) = mean(Var_p[z])`` (p = softmax(s z)), so its
    derivative in ``u = log T`` changes sign once: the search is Newton on u with these analytic
    derivatives, kept inside a bracket where the derivative changes sign and falling back to
    bisection when a Newton step leaves it. No finite differences, no generic optimiser. Each step is
    one fused pass over the logits, in double precision (extra memory: 24 bytes per row).

    Parameters
    ----------
    logits : array_like
        Finite logits (or -inf for masked classes, never at the label), float16/32/64: (N, C) with
        integer `labels` (N,) in [0, C), or binary (N,)
        with 0/1 `labels` (the sigmoid of ``logits / T`` is then the positive class's probability).
    labels : array_like
        Integer class indices (N,).
    weight : array_like, optional
        Per-sample weights (N,), >= 0: the weighted mean NLL is minimised.
    bounds : (float, float), optional
        ``0 < lower < upper``: the search interval for T.
    tol : float, optional
        Stop when a step in ``log T`` is below `tol` (T to about `tol` relative).

    Returns
    -------
    Temperature
        A float subclass with attributes ``at_bound`` (None, 'lower' or 'upper'), ``nll`` and
        ``iterations``. When the NLL decreases all the way to a bound (perfectly separable data:
        T -> 0), the bound is returned with ``at_bound`` set and a :class:`TemperatureAtBoundWarning`.

    Raises
    ------
    ValueError
        nan or inf in `logits`, empty input, `labels` of the wrong length, bad `weight`, `bounds` or `tol`.
    IndexError
        A label out of range.
    TypeError
        Non-floating logits, non-integer labels.

    Examples
    --------
    >>> import numpy as np
    >>> from logitloss.calibration import fit_temperature
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, 2000)
    >>> logits = 3.0 * (4.0 * np.eye(3)[labels] + rng.normal(0, 2, (2000, 3)))   # overconfident scores
    >>> T = fit_temperature(logits, labels)
    >>> round(float(T), 4), T.at_bound
    (3.1318, None)
    """
    logits, labels, _ = check_logits_labels(logits, labels)
    weight = check_weight(weight, logits.shape[0])
    try:
        lower, upper = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise TypeError(f"`bounds` must be a pair of numbers (lower, upper), got {bounds!r}") from None
    if not (0.0 < lower < upper < math.inf):
        raise ValueError(f"`bounds` must satisfy 0 < lower < upper < inf, got {bounds!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)):
        raise TypeError(f"`tol` must be a number, got {type(tol).__name__}")
    if not (tol > 0.0):
        raise ValueError(f"`tol` must be positive, got {tol!r}")
    lo, hi = math.log(lower), math.log(upper)
    start = _warm_start(logits, labels, weight, lo, hi)
    fitted = _search(logits, labels, weight, lo, hi, float(tol), start)
    if fitted.at_bound is not None:
        warnings.warn(
            f"fit_temperature: the NLL still decreases at the {fitted.at_bound} bound T = {float(fitted):.6g}; "
            f"returning the bound (at_bound={fitted.at_bound!r}). Perfectly separable data have no finite optimum; "
            "widen `bounds` to search further.",
            TemperatureAtBoundWarning,
            stacklevel=2,
        )
    return fitted


# Inputs of more rows than this start the full search from T fitted (to 1e-3) on every k-th row, about
# SUBSAMPLE_ROWS of them: the statistical error of that T is ~1/sqrt(rows), so two or three full
# Newton steps (quadratic convergence) finish the job instead of five to seven from T = 1. Only the
# start changes: the search and its bracket are the same, so the result does not depend on it.
SUBSAMPLE_ROWS = 8192


def _warm_start(logits, labels, weight, lo, hi):
    step = logits.shape[0] // SUBSAMPLE_ROWS
    if step < 4:
        return min(max(0.0, lo), hi)  # T = 1: the logits as they are
    rows = slice(None, None, step)
    sub_weight = None if weight is None else weight[rows]
    if sub_weight is not None and not np.any(sub_weight > 0):
        return min(max(0.0, lo), hi)
    start = _search(logits[rows], labels[rows], sub_weight, lo, hi, 1e-3, min(max(0.0, lo), hi))
    return math.log(float(start))


def _evaluate(logits, labels, weight, u):
    """NLL and its first two derivatives in u = log T (s = e^-u: dNLL/du = -s NLL'(s),
    d2NLL/du2 = s^2 NLL''(s) + s NLL'(s))."""
    s = math.exp(-u)
    nll, first, second = _temperature_objective(logits, labels, s, weight)
    if not (math.isfinite(nll) and math.isfinite(first) and math.isfinite(second)):
        raise nonfinite_logits_error()
    return nll, -s * first, s * s * second + s * first


def _search(logits, labels, weight, lo, hi, tol, start):
    """Safeguarded Newton on u = log T in [lo, hi]. Invariant: the minimiser lies in [a, b]; a bound
    is returned only after the derivative evaluated there points outwards."""
    a, b = lo, hi
    u = start
    evaluated = set()
    previous_step = 0.0
    for iteration in range(1, MAX_ITERATIONS + 1):
        nll, grad, curvature = _evaluate(logits, labels, weight, u)
        evaluated.add(u)
        # At a bound, a zero derivative counts as pointing outwards: past the bound the NLL has
        # underflowed to a constant (separable data), it does not increase.
        if u == lo and grad >= 0.0:
            return Temperature(math.exp(lo), at_bound="lower", nll=nll, iterations=iteration)
        if u == hi and grad <= 0.0:
            return Temperature(math.exp(hi), at_bound="upper", nll=nll, iterations=iteration)
        if grad == 0.0 and nll == 0.0:
            # Every row's loss underflowed: all are confidently correct, and in exact arithmetic
            # the NLL still decreases towards T = 0.
            grad = math.inf
        elif grad == 0.0:
            return Temperature(math.exp(u), at_bound=None, nll=nll, iterations=iteration)
        if grad > 0.0:  # the NLL decreases towards smaller T
            b = u
        else:
            a = u
        step = -grad / curvature if curvature > 0.0 else math.nan
        target = u + step
        if a <= target <= b and (abs(step) <= tol or _next_step_below(step, previous_step, tol)):
            # Converged. The NLL at `target` from its Taylor expansion at `u` (error O(step^3)): no extra pass.
            at_target = nll + step * grad + 0.5 * curvature * step * step
            return Temperature(math.exp(target), at_bound=None, nll=at_target, iterations=iteration)
        # Newton converging quadratically at least halves its step; a step in the same direction and
        # not half the previous one is creeping (the NLL flattening towards a bound on separable data,
        # where Newton on log T moves ~0.1 per pass): take the safeguard below instead.
        creeping = step * previous_step > 0.0 and abs(step) > 0.5 * abs(previous_step)
        if creeping or not (a < target < b):
            # Try a bound the bracket still reaches, once, when heading that way (separable data end
            # there in two or three passes); otherwise bisect the bracket.
            if grad > 0.0 and a == lo and lo not in evaluated:
                target = lo
            elif grad < 0.0 and b == hi and hi not in evaluated:
                target = hi
            else:
                target = 0.5 * (a + b)
        if target not in (lo, hi) and b - a <= tol:
            return Temperature(math.exp(target), at_bound=None, nll=nll, iterations=iteration)
        previous_step = target - u
        u = target
    raise RuntimeError(f"fit_temperature did not converge in {MAX_ITERATIONS} iterations")


def _next_step_below(step, previous_step, tol):
    """Whether Newton, converging quadratically (step ~ K previous_step^2), leaves an error below tol / 10
    after this step: saves the pass that would only confirm it. Needs the step to have shrunk at least
    tenfold (in the quadratic regime), so that K is measured, not guessed."""
    if previous_step == 0.0 or abs(step) > 0.1 * abs(previous_step):
        return False
    k = abs(step) / (previous_step * previous_step)
    return k * step * step <= 0.1 * tol
