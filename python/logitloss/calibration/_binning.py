"""calibration_curve and expected_calibration_error: per-bin confidence, accuracy and count."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import _confidences
from ._inputs import check_logits_labels

NORMS = ("l1", "l2", "max")
STRATEGIES = ("uniform", "quantile")
MODES = ("top-label", "classwise")


class CalibrationCurve(NamedTuple):
    """Per-bin statistics; empty bins have count 0 and nan confidence and accuracy. Shapes (n_bins,)
    and edges (n_bins + 1,); with ``mode="classwise"`` a leading class axis on all four."""

    confidence: np.ndarray
    """Mean confidence of the bin's samples (float64)."""
    accuracy: np.ndarray
    """Fraction of the bin's samples that are correct (the label, or for binary logits positive)."""
    count: np.ndarray
    """Number of samples in the bin (int64)."""
    edges: np.ndarray
    """Bin edges: bin k holds the confidences c with ``edges[k] < c <= edges[k + 1]`` (bin 0 also c = 0)."""


def calibration_curve(
    logits: ArrayLike, labels: ArrayLike, *, n_bins: int = 15, strategy: str = "uniform", mode: str = "top-label"
) -> CalibrationCurve:
    """Confidence, accuracy and count per confidence bin: the data of the reliability diagram and of ECE.

    Binning. Confidences are float64 (computed from the logits in float64 whatever their dtype).
    ``strategy="uniform"``: edges ``numpy.linspace(0, 1, n_bins + 1)``; ``"quantile"``: edges
    ``numpy.quantile(confidences, numpy.linspace(0, 1, n_bins + 1))`` (equal-mass bins; ties can leave
    bins empty). Bins are right-closed: bin k holds ``edges[k] < c <= edges[k + 1]``, bin 0 also
    ``c <= edges[0]``, so a confidence exactly on an edge belongs to the bin below it and 1.0 to the last
    bin — as Guo et al.'s code and ``sklearn.calibration.calibration_curve`` (``searchsorted(edges[1:-1],
    c, side="left")``, which is how it is computed here). torchmetrics' ``*_calibration_error`` uses
    left-closed bins (``bucketize(..., right=True) - 1``) with an extra bin for exactly 1.0; netcal bins
    with ``scipy.stats.binned_statistic_dd`` (left-closed, the last bin closed). They agree with these
    bins except for confidences exactly on an interior edge.

    Parameters
    ----------
    logits : array_like
        (N, C) logits with integer `labels` (N,), or binary (N,) logits with 0/1 labels.
    labels : array_like
        Integer labels (N,).
    n_bins : int, optional
        Number of bins (>= 1).
    strategy : {'uniform', 'quantile'}, optional
    mode : {'top-label', 'classwise'}, optional
        'top-label': confidence = max softmax probability, correct = (argmax == label).
        'classwise': for every class k, confidence = ``softmax(logits)[:, k]``, correct = (label == k);
        the arrays get a leading class axis. Ignored for binary logits, whose confidence is
        ``sigmoid(logits)`` (the positive class's probability) against ``label == 1``.

    Returns
    -------
    CalibrationCurve
        ``(confidence, accuracy, count, edges)``.

    Raises
    ------
    ValueError, IndexError, TypeError
        As :func:`fit_temperature`'s input checks, except that infinite logits are accepted where
        the confidence they give is defined (sigmoid(+-inf) = 1 / 0, -inf for a class that is not
        the row's maximum): ValueError only where it is nan; an unknown `strategy` / `mode`;
        `n_bins` < 1.

    Examples
    --------
    >>> import numpy as np
    >>> from logitloss.calibration import calibration_curve
    >>> # sigmoid: 0.5 (on the edge: bin (0, 0.5]), 0.88, 0.27, 0.95
    >>> curve = calibration_curve(np.array([0.0, 2.0, -1.0, 3.0]), np.array([0, 1, 1, 1]), n_bins=2)
    >>> curve.count, curve.accuracy
    (array([2, 2]), array([0.5, 1. ]))
    """
    logits, labels, binary = check_logits_labels(logits, labels)
    _check_options(n_bins, strategy, mode, "l1")
    if binary:
        confidence, correct = _confidences.binary(logits, labels)
    elif mode == "top-label":
        confidence, correct = _confidences.top_label(logits, labels)
    else:
        probabilities, onehot = _confidences.classwise(logits, labels)
        per_class = [_bin(probabilities[:, k], onehot[:, k], n_bins, strategy) for k in range(logits.shape[1])]
        return CalibrationCurve(*(np.stack(arrays) for arrays in zip(*per_class)))
    return _bin(confidence, correct, n_bins, strategy)


def expected_calibration_error(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    n_bins: int = 15,
    norm: str = "l1",
    strategy: str = "uniform",
    mode: str = "top-label",
) -> float:
    """Expected calibration error: the gap between confidence and accuracy over confidence bins.

    With bins as :func:`calibration_curve` (right-closed; see there), ``w_k = count_k / N`` and
    ``gap_k = |accuracy_k - confidence_k|`` over the non-empty bins:
    ``norm="l1"``: ``sum w_k gap_k`` (ECE, Guo et al.); ``"l2"``: ``sqrt(sum w_k gap_k^2)`` (as
    torchmetrics' ``norm="l2"``); ``"max"``: ``max gap_k`` (MCE). ``mode="classwise"``: the mean over
    classes of each class's error (Kull et al. 2019's classwise-ECE). For binary logits, ``sigmoid(x)``
    against ``label == 1``, as torchmetrics' ``binary_calibration_error``.

    Against torchmetrics: identical for confidences off the interior bin edges (its bins are left-closed;
    a confidence exactly on an edge lands one bin higher there). Against netcal's ``ECE``: equal-width
    bins too, left-closed (``scipy.stats.binned_statistic_dd``), so the same up to that edge convention.

    Parameters
    ----------
    logits, labels, n_bins, strategy, mode
        As :func:`calibration_curve`.
    norm : {'l1', 'l2', 'max'}, optional

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from logitloss.calibration import expected_calibration_error
    >>> logits = np.log([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    >>> round(expected_calibration_error(logits, np.array([0, 1, 1]), n_bins=10), 6)
    0.4
    """
    _check_options(n_bins, strategy, mode, norm)
    curve = calibration_curve(logits, labels, n_bins=n_bins, strategy=strategy, mode=mode)
    if curve.count.ndim == 2:
        return float(np.mean([_reduce(*per_class[:3], norm) for per_class in zip(*curve[:3])]))
    return _reduce(curve.confidence, curve.accuracy, curve.count, norm)


def _bin(confidence, correct, n_bins, strategy):
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1))
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(index, weights=correct.astype(np.float64), minlength=n_bins) / count
    return CalibrationCurve(mean_confidence, accuracy, count.astype(np.int64), edges)


def _reduce(confidence, accuracy, count, norm):
    kept = count > 0
    gap = np.abs(accuracy[kept] - confidence[kept])
    weight = count[kept] / count.sum()
    if norm == "l1":
        return float(weight @ gap)
    if norm == "l2":
        return float(np.sqrt(weight @ (gap * gap)))
    return float(gap.max())


def _check_options(n_bins, strategy, mode, norm):
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"`n_bins` must be an integer >= 1, got {n_bins!r}")
    for name, value, allowed in (("strategy", strategy, STRATEGIES), ("mode", mode, MODES), ("norm", norm, NORMS)):
        if value not in allowed:
            raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}")
