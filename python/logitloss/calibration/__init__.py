"""Calibration of classifiers' probabilities, in logits: temperature scaling, the expected calibration
error and the reliability diagram.

Maximising likelihood pushes probabilities towards 0 and 1: a model can be accurate and still
overconfident. `fit_temperature` finds the T that makes ``softmax(logits / T)`` calibrated on
held-out data (Guo et al. 2017); `expected_calibration_error` and `calibration_curve` measure the
gap between confidence and accuracy; `reliability_diagram` draws it (needs matplotlib: the ``plot``
extra). Binning conventions: docs/semantics.md, "Calibration".
"""

from ._binning import CalibrationCurve, calibration_curve, expected_calibration_error
from ._diagram import reliability_diagram
from ._temperature import Temperature, TemperatureAtBoundWarning, fit_temperature

__all__ = [
    "CalibrationCurve",
    "Temperature",
    "TemperatureAtBoundWarning",
    "calibration_curve",
    "expected_calibration_error",
    "fit_temperature",
    "reliability_diagram",
]
