"""Exact references for the divergences between two softmax distributions (``kl_div_with_logits``):
mpmath at 80 digits from the logits as given (each float read exactly), so near-identical rows whose
KL is 1e-30 are resolved. Rows are short in the tests (the cost is per element).
"""

from __future__ import annotations

import math

import numpy as np


def _log_softmax(row, inverse_temperature, mp):
    values = [mp.mpf(float(v)) * inverse_temperature if math.isfinite(v) or v == -math.inf else mp.nan for v in row]
    finite = [v for v in values if mp.isfinite(v)]
    top = max(finite)
    total = mp.fsum(mp.exp(v - top) for v in finite)
    return [v - top - mp.log(total) if mp.isfinite(v) else v for v in values]


def kl_div_row(input_row, target_row, temperature=1.0, digits=80):
    """(KL(P || Q), gradient Q - P, size Q + P) of one row, P = softmax(target / T), Q = softmax(input / T):
    KL as a float64 (correctly rounded), the gradient and the size of its terms as float64 arrays (the
    gradient before its 1 / T and reduction scale). The row must have a finite max in both operands.
    The KL is a difference of terms of order 1: resolving a KL of 10^-k takes more than 2k digits."""
    import mpmath

    with mpmath.workdps(digits):
        inverse_temperature = 1 / mpmath.mpf(float(temperature))
        log_q = _log_softmax(np.asarray(input_row, np.float64), inverse_temperature, mpmath)
        log_p = _log_softmax(np.asarray(target_row, np.float64), inverse_temperature, mpmath)
        kl = mpmath.mpf(0)
        for lp, lq in zip(log_p, log_q):
            if lp == -mpmath.inf:
                continue
            kl += mpmath.inf if lq == -mpmath.inf else mpmath.exp(lp) * (lp - lq)
        q = [mpmath.exp(v) for v in log_q]
        p = [mpmath.exp(v) for v in log_p]
        gradient = np.array([float(a - b) for a, b in zip(q, p)])
        size = np.array([float(a + b) for a, b in zip(q, p)])
        return float(kl), gradient, size


def kl_div_rows(input, target, temperature=1.0, digits=80):
    """kl_div_row over the rows of (..., C) arrays: (losses of shape input.shape[:-1], gradients, sizes)."""
    input, target = np.asarray(input), np.asarray(target)
    classes = input.shape[-1]
    results = [kl_div_row(a, b, temperature, digits) for a, b in zip(input.reshape(-1, classes), target.reshape(-1, classes))]
    losses = np.array([r[0] for r in results]).reshape(input.shape[:-1])
    gradients = np.array([r[1] for r in results]).reshape(input.shape)
    sizes = np.array([r[2] for r in results]).reshape(input.shape)
    return losses, gradients, sizes
