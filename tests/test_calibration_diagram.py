"""reliability_diagram on the Agg backend: the bars are the calibration curve's; matplotlib optional."""

import sys

import numpy as np
import pytest

from logitloss.calibration import calibration_curve, expected_calibration_error, fit_temperature, reliability_diagram

from .helpers.libraries import require


@pytest.fixture
def pyplot():
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def overconfident(n=3000, c=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    return 4.0 * (np.eye(c)[labels] + rng.normal(0.0, 0.7, (n, c))), labels


@pytest.mark.parametrize("n_bins", [5, 15])
def test_bar_heights_are_the_accuracy_gap_and_sample_fraction(pyplot, n_bins):
    logits, labels = overconfident()
    ax = reliability_diagram(logits, labels, n_bins=n_bins, label="model")
    curve = calibration_curve(logits, labels, n_bins=n_bins)
    kept = curve.count > 0
    accuracy_bars, gap_bars, histogram = ax.containers
    np.testing.assert_allclose([bar.get_height() for bar in accuracy_bars], curve.accuracy[kept], rtol=1e-15)
    np.testing.assert_allclose([bar.get_x() for bar in accuracy_bars], curve.edges[:-1][kept], rtol=1e-15)
    np.testing.assert_allclose([bar.get_width() for bar in accuracy_bars], 1.0 / n_bins, rtol=1e-12)
    np.testing.assert_allclose([bar.get_y() + bar.get_height() for bar in gap_bars], curve.confidence[kept], rtol=1e-15)
    np.testing.assert_allclose([bar.get_height() for bar in histogram], curve.count[kept] / len(labels), rtol=1e-15)
    ece = expected_calibration_error(logits, labels, n_bins=n_bins)
    assert ax.get_legend().get_texts()[0].get_text() == f"model (ECE {ece:.4f})"
    ax.figure.canvas.draw()  # renders


def test_two_calls_on_one_axes_compare_before_and_after(pyplot, tmp_path):
    logits, labels = overconfident()
    ax = reliability_diagram(logits, labels, label="before")
    temperature = fit_temperature(logits, labels)
    assert reliability_diagram(logits / temperature, labels, ax=ax, label="after") is ax
    before, after = ax.containers[0], ax.containers[3]
    assert before.patches[0].get_facecolor() != after.patches[0].get_facecolor()
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0].startswith("before (ECE") and texts[1].startswith("after (ECE")
    ax.figure.savefig(tmp_path / "diagram.png")
    assert (tmp_path / "diagram.png").stat().st_size > 1000


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"logitloss\[plot\]"):
        reliability_diagram(np.zeros((2, 3)), np.array([0, 1]))


def test_importing_the_calibration_module_does_not_import_matplotlib():
    import subprocess

    code = "import sys, logitloss.calibration; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
