"""reliability_diagram: accuracy against confidence per bin, with matplotlib (the ``plot`` extra)."""

from __future__ import annotations

from numpy.typing import ArrayLike

from ._binning import _reduce, calibration_curve


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "logitloss.calibration.reliability_diagram needs matplotlib: pip install 'logitloss[plot]'"
        ) from exc
    return plt


def reliability_diagram(logits: ArrayLike, labels: ArrayLike, *, n_bins: int = 15, ax=None, label: str | None = None):
    """Draw the reliability diagram: accuracy per confidence bin against the diagonal.

    Bars of each non-empty bin's accuracy at the bin's position (the bins of :func:`calibration_curve`,
    uniform, top-label; binary logits: the positive class's probability against the label), the gap to
    the bin's mean confidence hatched, the diagonal (perfect calibration), and the fraction of samples
    per bin as a grey histogram along the bottom. The legend gives the ECE. Call it twice on one `ax`
    (before and after temperature scaling) to compare: each call draws in the next colour and half
    transparent. matplotlib is imported only here.

    Parameters
    ----------
    logits, labels, n_bins
        As :func:`calibration_curve`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure's axes by default.
    label : str, optional
        Legend text (the ECE is appended).

    Returns
    -------
    matplotlib.axes.Axes
        `ax`. Its ``containers`` hold the accuracy bars (labelled), the gaps and the histogram, in that
        order per call.

    Raises
    ------
    ImportError
        matplotlib is not installed (the ``plot`` extra).

    Examples
    --------
    >>> import numpy as np
    >>> from logitloss.calibration import fit_temperature, reliability_diagram
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, 2000)
    >>> logits = 4.0 * np.eye(3)[labels] + rng.normal(0, 2, (2000, 3))
    >>> ax = reliability_diagram(logits, labels, label="before")                      # doctest: +SKIP
    >>> ax = reliability_diagram(logits / fit_temperature(logits, labels), labels, ax=ax, label="after")  # doctest: +SKIP
    >>> ax.figure.savefig("reliability.png")                                           # doctest: +SKIP
    """
    plt = _pyplot()
    curve = calibration_curve(logits, labels, n_bins=n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    ece = _reduce(curve.confidence, curve.accuracy, curve.count, "l1")
    kept = curve.count > 0
    left, width = curve.edges[:-1][kept], (curve.edges[1:] - curve.edges[:-1])[kept]
    accuracy, confidence = curve.accuracy[kept], curve.confidence[kept]
    colour = ax._get_lines.get_next_color()
    text = f"ECE {ece:.4f}" if label is None else f"{label} (ECE {ece:.4f})"
    ax.bar(left, accuracy, width, align="edge", color=colour, alpha=0.5, edgecolor=colour, label=text)
    ax.bar(left, confidence - accuracy, width, bottom=accuracy, align="edge", fill=False, hatch="//",
           edgecolor=colour, linewidth=0.5)
    ax.bar(left, curve.count[kept] / curve.count.sum(), width, align="edge", color="0.4", alpha=0.25)
    ax.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy (bars), fraction of samples (grey)")
    ax.legend(loc="upper left")
    return ax
