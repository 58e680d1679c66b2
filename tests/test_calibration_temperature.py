"""fit_temperature: the optimum against a generic minimiser of the float64 NLL, the analytic
derivatives against the float64 reference, scikit-learn's temperature scaling, bounds, bad input."""

import math

import numpy as np
import pytest

from logitloss.calibration import Temperature, TemperatureAtBoundWarning, fit_temperature
from logitloss.calibration._temperature import _temperature_objective
from logitloss.testing import calibration as reference

from .helpers.assertions import assert_unchanged, snapshot
from .helpers.libraries import require


def overconfident(n, c, scale, dtype=np.float64, seed=0):
    """Logits of a noisy classifier scaled by `scale` (> 1: overconfident), and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = 3.0 * np.eye(c)[labels] + rng.normal(0.0, 1.5, (n, c))
    return (scale * logits).astype(dtype), labels


def brute_force_temperature(logits, labels, weight=None, bounds=(1e-2, 1e2)):
    optimize = require("scipy.optimize")
    result = optimize.minimize_scalar(
        lambda u: reference.temperature_nll(logits, labels, math.exp(u), weight),
        bounds=tuple(map(math.log, bounds)),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return math.exp(result.x)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(("n", "c", "scale"), [(3000, 10, 4.0), (500, 2, 0.3), (2000, 100, 1.0), (40, 1000, 7.0)])
def test_matches_a_generic_minimiser_of_the_float64_nll(dtype, n, c, scale):
    logits, labels = overconfident(n, c, scale, dtype)
    fitted = fit_temperature(logits, labels)
    assert isinstance(fitted, Temperature) and fitted.at_bound is None
    assert fitted == pytest.approx(brute_force_temperature(logits, labels), rel=1e-6)
    assert fitted.nll == pytest.approx(reference.temperature_nll(logits, labels, float(fitted)), rel=1e-11)


def test_rows_spanning_many_chunks_and_strided_logits():
    logits, labels = overconfident(20001, 7, 3.0, np.float32, seed=3)
    interleaved = np.full((20001, 14), np.nan, np.float32)  # the nan columns must never be read
    interleaved[:, ::2] = logits
    strided = interleaved[:, ::2]
    assert fit_temperature(strided, labels) == pytest.approx(brute_force_temperature(strided, labels), rel=1e-6)


@pytest.mark.parametrize("scale", [0.05, 1.0, 40.0])
def test_large_inputs_start_from_a_subsample_and_reach_the_same_optimum(scale):
    logits, labels = overconfident(40000, 4, scale, np.float32, seed=6)
    fitted = fit_temperature(logits, labels)
    assert fitted.iterations <= 4  # full passes after the warm start
    assert fitted == pytest.approx(brute_force_temperature(logits, labels), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("s", "classes"), [(0.05, 9), (0.7, 9), (1.0, 9), (3.0, 9), (0.7, 1001)])
def test_objective_and_derivatives_match_the_float64_reference(s, classes, dtype, isa):
    # One fused pass per row on each SIMD target; 1001 classes: vectors and a tail per row.
    logits, labels = overconfident(3000 if classes < 100 else 300, classes, 5.0, dtype, seed=1)
    nll, first, second = _temperature_objective(logits, labels, s)
    z = logits.astype(np.float64)
    p = reference.softmax64(s * z)
    mean = (p * z).sum(axis=1)
    assert nll == pytest.approx(reference.temperature_nll(z, labels, 1.0 / s), rel=1e-13)
    assert first == pytest.approx(np.mean(mean - z[np.arange(len(z)), labels]), rel=1e-11)
    assert second == pytest.approx(np.mean((p * (z - mean[:, None]) ** 2).sum(axis=1)), rel=1e-11)


def test_variance_of_concentrated_rows_keeps_its_digits():
    # p concentrated on one class: E[z^2] - E[z]^2 would cancel to noise; the centred sum does not.
    logits = np.array([[1000.0, 970.0, 960.0]])
    nll, first, second = _temperature_objective(logits, np.array([0]), 1.0)
    e1, e2 = math.exp(-30.0), math.exp(-40.0)
    total = 1.0 + e1 + e2
    assert nll == pytest.approx(math.log1p(e1 + e2), rel=1e-14)
    assert first == pytest.approx((-30.0 * e1 - 40.0 * e2) / total, rel=1e-13)
    mean = (-30.0 * e1 - 40.0 * e2) / total
    exact = (mean**2 + e1 * (-30.0 - mean) ** 2 + e2 * (-40.0 - mean) ** 2) / total
    assert second == pytest.approx(exact, rel=1e-12)


def test_masked_classes_take_no_probability(isa):
    # -inf logits (a masked vocabulary) are classes of probability 0: the objective of the rows
    # without them, never 0 * inf = nan.
    logits, labels = overconfident(500, 6, 3.0, np.float32, seed=7)
    masked = np.concatenate([logits, np.full((500, 3), -np.inf, np.float32)], axis=1)
    for s in (0.3, 1.0, 4.0):
        assert _temperature_objective(masked, labels, s) == pytest.approx(_temperature_objective(logits, labels, s), rel=1e-15)
    assert fit_temperature(masked, labels) == pytest.approx(fit_temperature(logits, labels), rel=1e-12)


def test_binary_logits_use_the_sigmoid():
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 2.0, 5000)
    labels = (rng.random(5000) < 1.0 / (1.0 + np.exp(-x / 2.5))).astype(np.int8)
    logits = x.astype(np.float32)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(2.5, rel=0.1)
    assert fitted == pytest.approx(brute_force_temperature(logits, labels), rel=1e-6)


def test_weights_are_repetitions():
    logits, labels = overconfident(400, 5, 2.0)
    counts = np.random.default_rng(4).integers(0, 4, 400)
    repeated = fit_temperature(np.repeat(logits, counts, axis=0), np.repeat(labels, counts))
    assert fit_temperature(logits, labels, weight=counts) == pytest.approx(repeated, rel=1e-9)
    assert fit_temperature(logits, labels, weight=counts) == pytest.approx(
        brute_force_temperature(logits, labels, counts), rel=1e-6
    )


@pytest.mark.parametrize("binary", [False, True])
def test_separable_data_run_to_the_lower_bound_and_say_so(binary):
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2 if binary else 4, 1000)
    logits = (2 * labels - 1) * rng.uniform(0.5, 3.0, 1000) if binary else 6.0 * np.eye(4)[labels] + rng.normal(0, 1, (1000, 4))
    with pytest.warns(TemperatureAtBoundWarning, match="lower bound"):
        fitted = fit_temperature(logits, labels, bounds=(0.05, 20.0))
    assert fitted.at_bound == "lower" and float(fitted) == pytest.approx(0.05, rel=1e-15)
    assert fitted.iterations <= 4


def test_an_optimum_beyond_the_upper_bound_is_reported():
    logits, labels = overconfident(1000, 5, 50.0)
    with pytest.warns(TemperatureAtBoundWarning, match="upper bound"):
        fitted = fit_temperature(logits, labels, bounds=(0.1, 2.0))
    assert fitted.at_bound == "upper" and float(fitted) == pytest.approx(2.0, rel=1e-15)


def test_agrees_with_scikit_learn_temperature_scaling():
    calibration = require("sklearn.calibration")
    frozen = require("sklearn.frozen")
    if "temperature" not in calibration.CalibratedClassifierCV._parameter_constraints["method"][0].options:
        pytest.skip("this scikit-learn has no CalibratedClassifierCV(method='temperature') (added in 1.8)")
    base = require("sklearn.base")

    class LogitsAsScores(base.ClassifierMixin, base.BaseEstimator):
        """A classifier whose decision_function returns its input: the features are the logits."""

        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def decision_function(self, X):
            return np.asarray(X)

        def predict(self, X):
            return np.asarray(X).argmax(axis=1)

    logits, labels = overconfident(3000, 6, 4.0)
    scorer = frozen.FrozenEstimator(LogitsAsScores().fit(logits, labels))
    calibrated = calibration.CalibratedClassifierCV(scorer, method="temperature").fit(logits, labels)
    # scikit-learn fits beta = 1 / T (it scales the logits by beta), by minimize_scalar on log beta.
    beta = float(calibrated.calibrated_classifiers_[0].calibrators[0].beta_)
    print(f"scikit-learn T = {1.0 / beta!r}, logitloss T = {float(fit_temperature(logits, labels))!r}")
    assert fit_temperature(logits, labels) == pytest.approx(1.0 / beta, rel=1e-6)


def _nan_logits():
    logits, labels = overconfident(50, 3, 1.0)
    logits[7, 1] = np.nan
    return logits, labels


def _inf_logits():
    logits, labels = overconfident(50, 3, 1.0)
    logits[3, labels[3]] = -np.inf
    return logits, labels


BAD = [
    ("nan logits", _nan_logits, {}, ValueError, "nan or inf"),
    ("inf logits", _inf_logits, {}, ValueError, "nan or inf"),
    ("label too large", lambda: (np.zeros((3, 4)), np.array([0, 4, 1])), {}, IndexError, r"in \[0, 4\), found 4"),
    ("negative label", lambda: (np.zeros((3, 4)), np.array([0, -1, 1])), {}, IndexError, "found -1"),
    ("binary label 2", lambda: (np.zeros(3), np.array([0, 2, 1])), {}, IndexError, "0 or 1"),
    ("lengths differ", lambda: (np.zeros((3, 4)), np.array([0, 1])), {}, ValueError, r"`labels` must have shape \(3,\)"),
    ("empty", lambda: (np.zeros((0, 4)), np.zeros(0, int)), {}, ValueError, "empty"),
    ("no classes", lambda: (np.zeros((3, 0)), np.zeros(3, int)), {}, ValueError, "no classes"),
    ("float labels", lambda: (np.zeros((3, 4)), np.zeros(3)), {}, TypeError, "`labels` must be integers"),
    ("integer logits", lambda: (np.zeros((3, 4), int), np.zeros(3, int)), {}, TypeError, "`logits` must be floating"),
    ("3-d logits", lambda: (np.zeros((3, 4, 2)), np.zeros(3, int)), {}, ValueError, r"\(N, C\)"),
    ("bounds reversed", lambda: (np.zeros((3, 4)), np.zeros(3, int)), {"bounds": (2.0, 1.0)}, ValueError, "`bounds`"),
    ("bound zero", lambda: (np.zeros((3, 4)), np.zeros(3, int)), {"bounds": (0.0, 1.0)}, ValueError, "`bounds`"),
    ("tol", lambda: (np.zeros((3, 4)), np.zeros(3, int)), {"tol": 0.0}, ValueError, "`tol`"),
    ("one bound", lambda: (np.zeros((3, 4)), np.zeros(3, int)), {"bounds": (1.0,)}, TypeError, "`bounds`"),
    ("bounds not numbers", lambda: (np.zeros((3, 4)), np.zeros(3, int)), {"bounds": ("a", 2.0)}, TypeError, "`bounds`"),
    ("tol a string", lambda: (np.zeros((3, 4)), np.zeros(3, int)), {"tol": "x"}, TypeError, "`tol`"),
    ("negative weight", lambda: (np.zeros((3, 4)), np.zeros(3, int)), {"weight": [1, -1, 1]}, ValueError, "`weight`"),
    ("zero weights", lambda: (np.zeros((3, 4)), np.zeros(3, int)), {"weight": [0, 0, 0]}, ValueError, "`weight`"),
    ("weight length", lambda: (np.zeros((3, 4)), np.zeros(3, int)), {"weight": [1, 1]}, ValueError, "`weight`"),
]


@pytest.mark.parametrize(("make", "options", "error", "match"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_raises_clearly_and_leaves_inputs_untouched(make, options, error, match):
    logits, labels = make()
    before = snapshot(logits, labels)
    with pytest.raises(error, match=match):
        fit_temperature(logits, labels, **options)
    assert_unchanged(before, snapshot(logits, labels), "inputs")
