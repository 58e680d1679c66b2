"""Brute-force float64 references for ``logitloss.calibration``: every definition written out
directly (one loop per bin, the right-closed rule as an inequality), independent of the binning
code it checks, and the temperature-scaling NLL for a generic 1-D minimiser.

Confidences come from SciPy-free float64 formulas (``exp(z - max) / sum``): a few eps relative,
far below any bin width; inputs that put a confidence exactly on an edge use logits whose
softmax is exact in float64 (equal logits over a power-of-two count of classes, -inf masks).
"""

from __future__ import annotations

import numpy as np


def softmax64(logits):
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid64(logits):
    x = np.asarray(logits, np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def confidences(logits, labels, mode="top-label"):
    """``(confidence, correct)`` per sample (top-label, binary) or per sample and class (classwise)."""
    labels = np.asarray(labels)
    if np.ndim(logits) == 1:
        return sigmoid64(logits), labels == 1
    p = softmax64(logits)
    if mode == "classwise":
        return p, labels[:, None] == np.arange(p.shape[1])
    return p.max(axis=1), p.argmax(axis=1) == labels


def edges(confidence, n_bins, strategy="uniform"):
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    return np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1))


def bins(confidence, correct, bin_edges):
    """``(mean confidence, accuracy, count)`` per bin, bin k holding ``edges[k] < c <= edges[k + 1]``
    (bin 0 also everything at or below ``edges[0]``, the last also anything above its top edge)."""
    n_bins = len(bin_edges) - 1
    mean, accuracy, count = np.full(n_bins, np.nan), np.full(n_bins, np.nan), np.zeros(n_bins, np.int64)
    for k in range(n_bins):
        inside = np.ones(confidence.shape, bool)
        if k > 0:
            inside &= confidence > bin_edges[k]
        if k < n_bins - 1:
            inside &= confidence <= bin_edges[k + 1]
        count[k] = inside.sum()
        if count[k]:
            mean[k] = confidence[inside].mean()
            accuracy[k] = correct[inside].mean()
    return mean, accuracy, count


def calibration_error(confidence, correct, bin_edges, norm="l1"):
    mean, accuracy, count = bins(confidence, correct, bin_edges)
    gaps = [abs(a - c) for a, c, n in zip(accuracy, mean, count) if n]
    weights = [n / count.sum() for n in count if n]
    if norm == "l1":
        return sum(w * g for w, g in zip(weights, gaps))
    if norm == "l2":
        return np.sqrt(sum(w * g * g for w, g in zip(weights, gaps)))
    return max(gaps)


def expected_calibration_error(logits, labels, n_bins=15, norm="l1", strategy="uniform", mode="top-label"):
    confidence, correct = confidences(logits, labels, mode)
    if confidence.ndim == 2:
        return np.mean([
            calibration_error(confidence[:, k], correct[:, k], edges(confidence[:, k], n_bins, strategy), norm)
            for k in range(confidence.shape[1])
        ])
    return calibration_error(confidence, correct, edges(confidence, n_bins, strategy), norm)


def temperature_nll(logits, labels, temperature, weight=None):
    """Mean NLL of ``softmax(logits / T)`` (or ``sigmoid`` for 1-D logits), float64, max-shifted."""
    z = np.asarray(logits, np.float64) / temperature
    labels = np.asarray(labels)
    if z.ndim == 1:
        # softplus(z) - y z, as |z| terms: no overflow.
        per_row = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))) - labels * z
    else:
        top = z.max(axis=1)
        per_row = top + np.log(np.exp(z - top[:, None]).sum(axis=1)) - z[np.arange(len(z)), labels]
    return np.average(per_row, weights=weight)
