"""Bad input to entropy_with_logits and perplexity: the right exception type and a message naming the argument,
on every SIMD target (the bad-call table of ``tests/helpers/bad_calls.py``); failed calls modify nothing."""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import logits

from .helpers.assertions import same_bits
from .helpers.bad_calls import arg, array_argument_cases, bad, check_raises, overlap, read_only

AxisError = np.exceptions.AxisError

X = logits((3, 4), np.float64, seed=0)
Y = np.array([0, 3, 1])

entropy = logitloss.entropy_with_logits

def overlapping_call():
    """grad_out a shifted view of the same memory as x (not x itself): the kernel would read what it wrote."""
    memory = np.zeros(13)
    x, grad_out = memory[:12].reshape(3, 4), memory[1:].reshape(3, 4)
    return entropy(x, grad_out=grad_out)


CASES = [
    *[bad(f"axis-out-of-range-{axis!r}", AxisError, r"\baxis\b", lambda axis=axis: entropy(X, axis=axis))
      for axis in (2, -3, (0, 2), 2**70)],
    *[bad(f"axis-repeated-{axis!r}", ValueError, arg("axis") + " has a repeated", lambda axis=axis: entropy(X, axis=axis))
      for axis in ((0, 0), (1, -1))],
    *[bad(f"axis-not-integer-{axis!r}", TypeError, arg("axis"), lambda axis=axis: entropy(X, axis=axis))
      for axis in (1.0, "0", (0, 1.0))],
    bad("empty-axis", ValueError, r"length 0 along `axis`", lambda: entropy(np.zeros((3, 0)))),
    bad("empty-axis-grad", ValueError, r"length 0 along `axis`", lambda: entropy(np.zeros((3, 0)), return_grad=True)),
    bad("return-grad-str", TypeError, arg("return_grad"), lambda: entropy(X, return_grad="yes")),
    bad("return-grad-array", TypeError, arg("return_grad"), lambda: entropy(X, return_grad=np.array([True, False]))),
    *array_argument_cases({"entropy-x": ("x", lambda v: entropy(v))}),
    bad("grad-out-shape", ValueError, arg("grad_out"), lambda: entropy(X, grad_out=np.empty((4, 3)))),
    bad("grad-out-dtype", TypeError, arg("grad_out"), lambda: entropy(X, grad_out=np.empty((3, 4), np.float32))),
    bad("grad-out-list", TypeError, arg("grad_out"), lambda: entropy(X, grad_out=[[0.0] * 4] * 3)),
    bad("grad-out-read-only", ValueError, arg("grad_out"), lambda: entropy(X, grad_out=read_only(np.empty((3, 4))))),
    bad("grad-out-overlaps-x", ValueError, overlap("grad_out", "x"), lambda: overlapping_call()),
    # perplexity: cross_entropy's checks, with its messages
    bad("perplexity-target-out-of-range", IndexError, r"Target 7 is out of bounds",
        lambda: logitloss.perplexity(X, np.array([0, 7, 1]))),
    bad("perplexity-weight-length", ValueError, arg("weight"), lambda: logitloss.perplexity(X, Y, weight=np.ones(3))),
    bad("perplexity-target-shape", ValueError, arg("target"), lambda: logitloss.perplexity(X, np.array([0, 1]))),
    bad("perplexity-complex", TypeError, arg("input"), lambda: logitloss.perplexity(X.astype(np.complex128), Y)),
]


@pytest.mark.parametrize("error, match, call", CASES)
def test_bad_calls(isa, error, match, call):
    before = X.copy()
    check_raises(error, match, call)
    assert same_bits(X, before)


def test_keyword_only_return_grad():
    with pytest.raises(TypeError):
        entropy(X, -1, True)  # noqa: the flag must be named
