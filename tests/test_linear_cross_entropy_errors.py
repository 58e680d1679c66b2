"""Bad input to linear_cross_entropy: the right exception type and a message naming the argument, raised before
any work (an out-of-range target is found before the first matrix product), inputs left alone."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import logitloss

from .helpers.assertions import assert_unchanged, snapshot
from .helpers.bad_calls import arg, array_argument_cases, bad, check_raises

X = np.zeros((3, 4), np.float32)  # (N, D)
W = np.zeros((5, 4), np.float32)  # (V, D)
T = np.array([0, 4, -100])
B = np.zeros(5, np.float32)

lce = logitloss.linear_cross_entropy

CASES = array_argument_cases({
    "input": ("input", lambda v: lce(v, W[:, :3], T)),
    "linear_weight": ("linear_weight", lambda v: lce(X[:, :3], v, T)),
    "linear_bias": ("linear_bias", lambda v: lce(X, W, T, linear_bias=v)),
    "weight": ("weight", lambda v: lce(X, W, T, weight=v)),
    "target": ("target", lambda v: lce(X, W, v)),
})
CASES += [
    bad("input-integer", TypeError, arg("input"), partial(lce, X.astype(np.int64), W, T)),
    bad("input-0d", ValueError, arg("input"), partial(lce, np.float32(1), W, T)),
    bad("features-mismatch", ValueError, arg("input") + r" has 3 features", partial(lce, X[:, :3], W, T)),
    bad("weight-1d", ValueError, arg("linear_weight"), partial(lce, X, W[0], T)),
    bad("weight-3d", ValueError, arg("linear_weight"), partial(lce, X, W[None], T)),
    bad("no-classes", ValueError, arg("linear_weight"), partial(lce, X, W[:0], np.array([-100, -100, -100]))),
    bad("bias-length", ValueError, arg("linear_bias"), partial(lce, X, W, T, linear_bias=B[:4])),
    bad("class-weight-length", ValueError, arg("weight"), partial(lce, X, W, T, weight=B[:4])),
    bad("target-short", ValueError, arg("target"), partial(lce, X, W, T[:2])),
    bad("target-column", ValueError, arg("target"), partial(lce, X, W, T[:, None])),
    bad("target-float", TypeError, arg("target") + " holds class indices", partial(lce, X, W, T.astype(np.float32))),
    bad("target-too-large", IndexError, r"Target 5 is out of bounds", partial(lce, X, W, np.array([0, 5, 1]))),
    bad("target-negative", IndexError, r"Target -1 is out of bounds", partial(lce, X, W, np.array([0, -1, 1]))),
    bad("target-ignore-other", IndexError, r"Target -100 is out of bounds",
        partial(lce, X, W, T, ignore_index=3, return_grad=True)),
    bad("reduction", ValueError, arg("reduction"), partial(lce, X, W, T, reduction="avg")),
    bad("reduction-none-object", ValueError, arg("reduction"), partial(lce, X, W, T, reduction=None)),
    bad("label_smoothing-range", ValueError, arg("label_smoothing"), partial(lce, X, W, T, label_smoothing=1.5)),
    bad("label_smoothing-nan", ValueError, arg("label_smoothing"), partial(lce, X, W, T, label_smoothing=float("nan"))),
    bad("label_smoothing-str", TypeError, arg("label_smoothing"), partial(lce, X, W, T, label_smoothing="0.1")),
    bad("label_smoothing-complex", TypeError, arg("label_smoothing"), partial(lce, X, W, T, label_smoothing=0.1j)),
    bad("label_smoothing-bool", TypeError, arg("label_smoothing"), partial(lce, X, W, T, label_smoothing=True)),
    bad("label_smoothing-array", TypeError, arg("label_smoothing"),
        partial(lce, X, W, T, label_smoothing=np.array([0.1, 0.2]))),
    bad("ignore_index-float", TypeError, arg("ignore_index"), partial(lce, X, W, T, ignore_index=1.5)),
    bad("ignore_index-bool", TypeError, arg("ignore_index"), partial(lce, X, W, T, ignore_index=True)),
    bad("return_grad", TypeError, arg("return_grad"), partial(lce, X, W, T, return_grad="yes")),
    bad("chunk_size-zero", ValueError, arg("chunk_size"), partial(lce, X, W, T, chunk_size=0)),
    bad("chunk_size-float", TypeError, arg("chunk_size"), partial(lce, X, W, T, chunk_size=2.0)),
]


@pytest.mark.parametrize("error, match, call", CASES)
def test_bad_call(error, match, call):
    check_raises(error, match, call)


def test_failed_calls_leave_inputs_alone():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    w = np.ones((5, 4), np.float32)
    t = np.array([0, 9, 1])
    before = snapshot(x, w, t)
    with pytest.raises(IndexError):
        lce(x, w, t, return_grad=True, chunk_size=1)
    assert_unchanged(before, [x, w, t], "linear_cross_entropy")
