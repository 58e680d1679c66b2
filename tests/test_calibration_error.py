"""calibration_curve and expected_calibration_error against a brute-force float64 implementation
(right-closed bins, confidences exactly on edges and at 1.0), torchmetrics and scikit-learn."""

import numpy as np
import pytest

from logitloss.calibration import calibration_curve, expected_calibration_error
from logitloss.testing import calibration as reference

from .helpers.assertions import assert_unchanged, snapshot
from .helpers.libraries import require

NORMS = ["l1", "l2", "max"]


def noisy(n, c, scale=3.0, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = scale * (np.eye(c)[labels] + rng.normal(0.0, 0.8, (n, c)))
    return logits.astype(dtype), labels


def on_the_edges():
    """Rows whose top-label confidence is exactly 1/4, 1/2, 1 (equal logits over 4, 2, 1 classes, the
    rest -inf; and a gap no float64 softmax resolves), so bins of width 1/4 and 1/8 see confidences
    on their edges, plus confidences strictly inside bins."""
    inf = np.inf
    rows = [
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, -inf, -inf],
        [0.0, -inf, -inf, -inf],
        [800.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [2.0, 1.0, 0.0, -1.0],
        [0.0, 0.0, 0.0, 0.0],
        [-inf, 0.0, 0.0, -inf],
    ]
    logits = np.array(rows)
    labels = np.array([0, 1, 0, 0, 2, 0, 3, 1])
    return logits, labels


@pytest.mark.parametrize("n_bins", [1, 2, 4, 8, 15])
@pytest.mark.parametrize("norm", NORMS)
def test_confidences_on_bin_edges_fall_in_the_bin_below(n_bins, norm):
    logits, labels = on_the_edges()
    confidence, correct = reference.confidences(logits, labels)
    assert set(confidence) >= {0.25, 0.5, 1.0}
    curve = calibration_curve(logits, labels, n_bins=n_bins)
    mean, accuracy, count = reference.bins(confidence, correct, np.linspace(0, 1, n_bins + 1))
    np.testing.assert_array_equal(curve.count, count)
    np.testing.assert_allclose(curve.confidence, mean, rtol=1e-15)
    np.testing.assert_array_equal(curve.accuracy, accuracy)
    assert expected_calibration_error(logits, labels, n_bins=n_bins, norm=norm) == pytest.approx(
        reference.calibration_error(confidence, correct, np.linspace(0, 1, n_bins + 1), norm), rel=1e-14, abs=1e-16
    )


def test_edge_bins_explicitly():
    logits, labels = on_the_edges()
    curve = calibration_curve(logits, labels, n_bins=4)
    # 0.25 (x2) -> bin 0 (0, 1/4]; 0.5 (x2) -> bin 1 (1/4, 1/2]; 1.0 (x2) -> bin 3 (3/4, 1];
    # [1, 0, 0, 0] -> 0.475 bin 1; [2, 1, 0, -1] -> 0.644 bin 2.
    np.testing.assert_array_equal(curve.count, [2, 3, 1, 2])


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("mode", ["top-label", "classwise"])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_matches_the_brute_force_reference(strategy, mode, norm, dtype):
    logits, labels = noisy(3001, 7, dtype=dtype, seed=1)
    ours = expected_calibration_error(logits, labels, n_bins=12, norm=norm, strategy=strategy, mode=mode)
    exact = reference.expected_calibration_error(logits, labels, 12, norm, strategy, mode)
    assert ours == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_binary_logits_match_scikit_learn_calibration_curve(strategy):
    calibration = require("sklearn.calibration")
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 3.0, 4000).astype(np.float32)
    labels = (rng.random(4000) < 1.0 / (1.0 + np.exp(-x / 2.0))).astype(np.int64)
    curve = calibration_curve(x, labels, n_bins=10, strategy=strategy)
    prob_true, prob_pred = calibration.calibration_curve(labels, reference.sigmoid64(x), n_bins=10, strategy=strategy)
    kept = curve.count > 0
    np.testing.assert_allclose(curve.accuracy[kept], prob_true, rtol=1e-14)
    np.testing.assert_allclose(curve.confidence[kept], prob_pred, rtol=1e-12)


@pytest.mark.parametrize("norm", NORMS)
def test_multiclass_matches_torchmetrics(norm):
    torch = require("torch")
    functional = require("torchmetrics.functional.classification")
    logits, labels = noisy(5000, 10, seed=3)
    probabilities = reference.softmax64(logits)
    # Continuous random confidences are never exactly on an edge, where torchmetrics' left-closed
    # bins differ from these right-closed ones.
    theirs = functional.multiclass_calibration_error(
        torch.from_numpy(probabilities), torch.from_numpy(labels), num_classes=10, n_bins=15, norm=norm
    )
    assert expected_calibration_error(logits, labels, norm=norm) == pytest.approx(float(theirs), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("norm", NORMS)
def test_binary_matches_torchmetrics(norm):
    torch = require("torch")
    functional = require("torchmetrics.functional.classification")
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 2.0, 5000)
    labels = (rng.random(5000) < 0.5 * (1.0 + np.tanh(x / 3.0))).astype(np.int64)
    theirs = functional.binary_calibration_error(
        torch.from_numpy(reference.sigmoid64(x)), torch.from_numpy(labels), n_bins=10, norm=norm
    )
    assert expected_calibration_error(x, labels, n_bins=10, norm=norm) == pytest.approx(float(theirs), rel=1e-6, abs=1e-7)


def test_torchmetrics_differs_exactly_on_an_edge():
    """The documented difference: a confidence of exactly 0.5 is in bin (0.25, 0.5] here, in [0.5, 0.75)
    with the 0.6 one there."""
    torch = require("torch")
    functional = require("torchmetrics.functional.classification")
    logits, labels = np.array([[0.0, 0.0], [np.log(1.5), 0.0]]), np.array([0, 1])
    confidence = reference.softmax64(logits).max(axis=1)
    ours = expected_calibration_error(logits, labels, n_bins=4)
    theirs = float(functional.multiclass_calibration_error(
        torch.from_numpy(reference.softmax64(logits)), torch.from_numpy(labels), num_classes=2, n_bins=4
    ))
    # Here: two bins, gaps |1 - 0.5| and |0 - 0.6|; there: one bin, |0.5 - mean(0.5, 0.6)|.
    assert ours == pytest.approx(0.5 * (1.0 - confidence[0]) + 0.5 * confidence[1], rel=1e-14)
    assert theirs == pytest.approx(abs(0.5 - confidence.mean()), rel=1e-6)


def test_empty_bins_are_nan_with_zero_count():
    curve = calibration_curve(np.array([[5.0, 0.0], [6.0, 0.0]]), np.array([0, 0]), n_bins=10)
    assert list(curve.count) == [0] * 9 + [2]
    assert np.isnan(curve.confidence[:9]).all() and np.isnan(curve.accuracy[:9]).all()


def test_classwise_curve_has_a_class_axis():
    logits, labels = noisy(500, 3)
    curve = calibration_curve(logits, labels, n_bins=5, mode="classwise", strategy="quantile")
    assert curve.count.shape == (3, 5) and curve.edges.shape == (3, 6)
    assert (curve.count.sum(axis=1) == 500).all()


BAD = [
    ("norm", {"norm": "l3"}, ValueError, "`norm`"),
    ("strategy", {"strategy": "log"}, ValueError, "`strategy`"),
    ("mode", {"mode": "all"}, ValueError, "`mode`"),
    ("zero bins", {"n_bins": 0}, ValueError, "`n_bins`"),
    ("float bins", {"n_bins": 2.5}, ValueError, "`n_bins`"),
]


@pytest.mark.parametrize(("options", "error", "match"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_options(options, error, match):
    logits, labels = noisy(20, 3)
    with pytest.raises(error, match=match):
        expected_calibration_error(logits, labels, **options)


@pytest.mark.parametrize("function", [calibration_curve, expected_calibration_error])
@pytest.mark.parametrize(
    ("logits", "labels", "error", "match"),
    [
        (np.array([[0.0, np.nan]]), np.array([0]), ValueError, "nan or inf"),
        (np.array([[0.0, np.inf]]), np.array([0]), ValueError, "nan or inf"),
        (np.array([np.nan, 1.0]), np.array([0, 1]), ValueError, "nan or inf"),
        (np.zeros((2, 3)), np.array([0, 3]), IndexError, "found 3"),
        (np.zeros((2, 3)), np.array([0]), ValueError, "`labels` must have shape"),
        (np.zeros((0, 3)), np.zeros(0, int), ValueError, "empty"),
    ],
    ids=["nan", "inf", "binary nan", "label range", "lengths", "empty"],
)
def test_bad_input_raises_clearly_and_leaves_inputs_untouched(function, logits, labels, error, match):
    before = snapshot(logits, labels)
    with pytest.raises(error, match=match):
        function(logits, labels)
    assert_unchanged(before, snapshot(logits, labels), "inputs")
