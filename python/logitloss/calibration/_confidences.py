"""Confidences and correctness from logits, in float64, chunked (the binned quantities of ECE)."""

from __future__ import annotations

import numpy as np

from .. import _softmax_family
from ._inputs import nonfinite_logits_error, row_chunks


def top_label(logits, labels):
    """``(confidence, correct)``: max softmax probability per row, float64, and whether the argmax
    (the first on ties, as NumPy and torch) is the label. The confidence is ``exp(max - lse)`` with lse
    from the kernel in float64, so it is 1.0 only when the other classes' mass is below half an ulp."""
    n = logits.shape[0]
    confidence = np.empty(n)
    correct = np.empty(n, bool)
    for chunk in row_chunks(*logits.shape):
        z = logits[chunk].astype(np.float64)
        with np.errstate(invalid="ignore"):
            confidence[chunk] = _top_confidence(z)
        correct[chunk] = z.argmax(axis=1) == labels[chunk]
    _check_finite(confidence)
    return confidence, correct


def _top_confidence(z):
    return np.exp(z.max(axis=1) - _softmax_family.logsumexp(z, axis=1))


def classwise(logits, labels):
    """``(probabilities, onehot)``: every class's softmax probability, float64 (N, C), and whether it is
    the label. Materialises (N, C) float64."""
    probabilities = np.empty(logits.shape)
    for chunk in row_chunks(*logits.shape):
        _softmax_family.softmax(logits[chunk].astype(np.float64), axis=1, out=probabilities[chunk])
    _check_finite(probabilities)
    onehot = np.zeros(logits.shape, bool)
    onehot[np.arange(logits.shape[0]), labels] = True
    return probabilities, onehot


def binary(logits, labels):
    """``(sigmoid(x), label == 1)``: the positive class's probability, float64, as scikit-learn's
    calibration_curve and torchmetrics' binary_calibration_error bin it."""
    x = logits.astype(np.float64)
    # sigmoid without overflow: e^-|x| never exceeds 1.
    q = np.exp(-np.abs(x))
    probability = np.where(x >= 0, 1.0 / (1.0 + q), q / (1.0 + q))
    _check_finite(probability)
    return probability, labels == 1


def _check_finite(values):
    # Reached after nan / inf - inf in the arithmetic above produced nan: raise, with the reason.
    if not np.all(np.isfinite(values)):
        raise nonfinite_logits_error()
