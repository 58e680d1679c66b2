"""Exact references for the divergences between two softmax distributions (``kl_div_with_logits``,
``jsd_with_logits``):
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


def jsd_row(input_row, target_row, beta, temperature=1.0):
    """(loss, gradient, size) of Liger's generalized JSD of one row, as kl_div_row: P = softmax(target / T),
    Q = softmax(input / T), M = beta P + (1 - beta) Q; beta = 0 is KL(P || Q), beta = 1 is KL(Q || P), in
    between beta KL(P || M) + (1 - beta) KL(Q || M). The gradient with respect to `input` before its 1 / T
    and reduction scale: Q - P (beta = 0), Q (log(Q / M) - KL(Q || M)) times 1 - beta (0 < beta < 1, M = P at
    beta = 1); size: the size of its terms, (1 - beta) Q_c (|log(Q_c / M_c)| + E_Q|log(Q / M)|) (the mean
    KL(Q || M) = E_Q[log(Q / M)] is a sum of such terms). The row must have a finite max in both operands."""
    import mpmath

    if beta == 0:
        return kl_div_row(input_row, target_row, temperature)
    with mpmath.workdps(80):
        inverse_temperature = 1 / mpmath.mpf(float(temperature))
        log_q = _log_softmax(np.asarray(input_row, np.float64), inverse_temperature, mpmath)
        log_p = _log_softmax(np.asarray(target_row, np.float64), inverse_temperature, mpmath)
        beta = mpmath.mpf(float(beta))
        complement = 1 - beta
        loss, log_ratios = mpmath.mpf(0), []
        for lp, lq in zip(log_p, log_q):
            p, q = mpmath.exp(lp), mpmath.exp(lq)
            if beta == 1:
                log_m = lp
            elif p == 0 and q == 0:
                log_ratios.append(mpmath.mpf(0))
                continue
            else:
                log_m = mpmath.log(beta * p + complement * q)
            log_ratio = lq - log_m if q > 0 else mpmath.mpf(0)
            log_ratios.append(log_ratio)
            if beta == 1:
                if q > 0:
                    loss += mpmath.inf if lp == -mpmath.inf else q * log_ratio
            else:
                if p > 0:
                    loss += beta * p * (lp - log_m)
                if q > 0:
                    loss += complement * q * log_ratio
        q = [mpmath.exp(v) for v in log_q]
        factor = 1 if beta == 1 else complement
        if loss == mpmath.inf:
            nan = np.full(len(q), np.nan)
            return math.inf, nan, nan
        mean = mpmath.fsum(a * b for a, b in zip(q, log_ratios))
        gradient = np.array([float(factor * a * (b - mean)) for a, b in zip(q, log_ratios)])
        spread = mpmath.fsum(a * abs(b) for a, b in zip(q, log_ratios))  # the mean's terms: E_Q|log(Q / M)|
        size = np.array([float(factor * a * (abs(b) + spread)) for a, b in zip(q, log_ratios)])
        return float(loss), gradient, size


def jsd_rows(input, target, beta, temperature=1.0):
    """jsd_row over the rows of (..., C) arrays: (losses of shape input.shape[:-1], gradients, sizes)."""
    input, target = np.asarray(input), np.asarray(target)
    classes = input.shape[-1]
    rows = zip(input.reshape(-1, classes), target.reshape(-1, classes))
    results = [jsd_row(a, b, beta, temperature) for a, b in rows]
    losses = np.array([r[0] for r in results]).reshape(input.shape[:-1])
    gradients = np.array([r[1] for r in results]).reshape(input.shape)
    sizes = np.array([r[2] for r in results]).reshape(input.shape)
    return losses, gradients, sizes
