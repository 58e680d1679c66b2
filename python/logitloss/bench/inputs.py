"""Input makers shared by the CLI harness (``python -m logitloss.bench``) and the pytest-benchmark suites.

Logits are ``offset + spread * N(0, 1)`` drawn in float64 from ``np.random.default_rng(seed)`` and rounded
to the dtype: the same values as ``logits(shape, dtype, seed)`` of the test suite (``tests/inputs.py``), so
a benchmark input can be re-created in a test.  The draw is done in chunks (no float64 copy of a 524 MB
input), which gives the same stream as one draw.  ``spread = 4`` gives a range of about 36 between the largest
and smallest logit of a 32000-wide row, like the logits of a trained language model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_SEED", "DEFAULT_SPREAD", "InputCache", "make_logits", "make_logits_transposed"]

DEFAULT_SEED = 0
DEFAULT_SPREAD = 4.0
_CHUNK = 1 << 22  # elements drawn per step


def make_logits(
    shape: Sequence[int],
    dtype: np.dtype | type = np.float32,
    seed: int = DEFAULT_SEED,
    *,
    spread: float = DEFAULT_SPREAD,
    offset: float = 0.0,
) -> np.ndarray:
    """C-contiguous ``offset + spread * N(0, 1)`` of ``shape`` rounded to ``dtype`` (see the module doc)."""
    rng = np.random.default_rng(seed)
    result = np.empty(tuple(shape), dtype=dtype)
    flat = result.reshape(-1)
    for start in range(0, flat.size, _CHUNK):
        stop = min(start + _CHUNK, flat.size)
        flat[start:stop] = offset + spread * rng.standard_normal(stop - start)
    return result


def make_logits_transposed(shape: Sequence[int], dtype: np.dtype | type = np.float32, **kwargs: object) -> np.ndarray:
    """The logits of ``make_logits(shape)`` transposed and copied to C order, shape ``shape[::-1]``.

    Reducing this array over axis 0 gives the same numbers as reducing ``make_logits(shape)`` over the last
    axis, so the two layouts can be timed on the same data.
    """
    return np.ascontiguousarray(make_logits(shape, dtype, **kwargs).T)  # type: ignore[arg-type]


class InputCache:
    """Makes each input once per run (64M-element arrays take about a second to draw)."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[object, ...], np.ndarray] = {}

    def logits(self, shape: Sequence[int], dtype: np.dtype | type = np.float32) -> np.ndarray:
        key = ("logits", tuple(shape), np.dtype(dtype).str)
        if key not in self._arrays:
            self._arrays[key] = make_logits(shape, dtype)
        return self._arrays[key]

    def logits_transposed(self, shape: Sequence[int], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """C-contiguous copy of ``logits(shape).T``; see :func:`make_logits_transposed`."""
        key = ("transposed", tuple(shape), np.dtype(dtype).str)
        if key not in self._arrays:
            self._arrays[key] = np.ascontiguousarray(self.logits(shape, dtype).T)
        return self._arrays[key]

    def targets(self, rows: int, classes: int) -> np.ndarray:
        """int64 class indices, uniform in [0, classes), one per row (``default_rng(1)``); torch wants int64."""
        key = ("targets", rows, classes)
        if key not in self._arrays:
            self._arrays[key] = np.random.default_rng(1).integers(0, classes, rows, dtype=np.int64)
        return self._arrays[key]

    def class_weights(self, classes: int) -> np.ndarray:
        """float32 class weights, uniform in [0.5, 1.5) (``default_rng(2)``)."""
        key = ("class_weights", classes)
        if key not in self._arrays:
            self._arrays[key] = np.random.default_rng(2).uniform(0.5, 1.5, classes).astype(np.float32)
        return self._arrays[key]

    def probability_targets(self, rows: int, classes: int) -> np.ndarray:
        """float32 probability targets: rows of ``softmax(2 N(0, 1))`` (``default_rng(6)``), each summing to 1."""
        key = ("probability_targets", rows, classes)
        if key not in self._arrays:
            scores = 2.0 * np.random.default_rng(6).standard_normal((rows, classes))
            scores = np.exp(scores - scores.max(1, keepdims=True))
            self._arrays[key] = (scores / scores.sum(1, keepdims=True)).astype(np.float32)
        return self._arrays[key]

    def binary_targets(self, shape: Sequence[int]) -> np.ndarray:
        """float32 0 / 1 targets of ``shape``, each 1 with probability 1/2 (``default_rng(3)``)."""
        key = ("binary_targets", tuple(shape))
        if key not in self._arrays:
            self._arrays[key] = (np.random.default_rng(3).random(tuple(shape), dtype=np.float32) < 0.5).astype(
                np.float32)
        return self._arrays[key]

    def positive_weights(self, classes: int) -> np.ndarray:
        """float32 pos_weight, uniform in [1, 4) (``default_rng(4)``): positives rarer than negatives."""
        key = ("positive_weights", classes)
        if key not in self._arrays:
            self._arrays[key] = np.random.default_rng(4).uniform(1.0, 4.0, classes).astype(np.float32)
        return self._arrays[key]

    def clear(self) -> None:
        self._arrays.clear()
