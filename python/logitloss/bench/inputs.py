"""The inputs of a benchmark run, each made once (64M-element arrays take about a second to draw) from the
generators of :mod:`logitloss.testing.inputs`, so a benchmark input can be re-created in a test: logits
``4 N(0, 1)`` (seed 0), class indices (seed 1), class weights uniform in [0.5, 1.5) (seed 2), 0 / 1 targets
(seed 3), pos_weight uniform in [1, 4) (seed 4: positives rarer than negatives), probability targets (seed 6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from logitloss.testing import inputs as generators

__all__ = ["InputCache"]


class InputCache:
    """Makes each input once per run; :meth:`clear` drops them (a row that no later row shares)."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[object, ...], np.ndarray] = {}

    def _kept(self, key: tuple[object, ...], make: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._arrays:
            self._arrays[key] = make()
        return self._arrays[key]

    def logits(self, shape: Sequence[int], dtype: np.dtype | type | str = np.float32) -> np.ndarray:
        shape = tuple(shape)
        return self._kept(("logits", shape, np.dtype(dtype).str), lambda: generators.logits(shape, dtype))

    def logits_transposed(self, shape: Sequence[int], dtype: np.dtype | type | str = np.float32) -> np.ndarray:
        """C-contiguous copy of ``logits(shape).T``: axis 0 of it holds the rows of ``logits(shape)``."""
        shape = tuple(shape)
        return self._kept(("transposed", shape, np.dtype(dtype).str),
                          lambda: np.ascontiguousarray(self.logits(shape, dtype).T))

    def targets(self, rows: int, classes: int) -> np.ndarray:
        """int64 class indices, uniform in [0, classes), one per row (torch wants int64)."""
        return self._kept(("targets", rows, classes),
                          lambda: generators.index_targets((rows, classes), seed=1, ignored=0))

    def class_weights(self, classes: int) -> np.ndarray:
        return self._kept(("class_weights", classes),
                          lambda: generators.class_weights(classes, np.float32, 2, low=0.5, high=1.5))

    def probability_targets(self, rows: int, classes: int) -> np.ndarray:
        """float32 rows of ``softmax(2 N(0, 1))``, each summing to 1."""
        return self._kept(("probability_targets", rows, classes),
                          lambda: generators.probability_targets((rows, classes), np.float32, 6, one_hot_first=False))

    def binary_targets(self, shape: Sequence[int]) -> np.ndarray:
        """float32 0 / 1 targets of ``shape``, each 1 with probability 1/2."""
        shape = tuple(shape)
        return self._kept(("binary_targets", shape), lambda: generators.coin_flip_targets(shape, np.float32, 3))

    def positive_weights(self, classes: int) -> np.ndarray:
        return self._kept(("positive_weights", classes),
                          lambda: generators.positive_weights(classes, np.float32, 4, low=1.0, high=4.0))

    def clear(self) -> None:
        self._arrays.clear()
