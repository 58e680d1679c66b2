"""Reductions as rows: the reduced axes of an N-d array moved last and flattened, ``(..kept.., ..reduced..)``
-> ``(R, n)``, and back.  Every reference works on rows."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

__all__ = ["Rows", "broadcast_axes", "rows_of"]


class Rows(NamedTuple):
    perm: tuple
    kept_shape: tuple
    reduced_shape: tuple
    axes: tuple
    ndim: int

    def to_rows(self, x):
        moved = np.transpose(x, self.perm)
        rows = math.prod(self.kept_shape)
        return np.ascontiguousarray(moved).reshape(rows, math.prod(self.reduced_shape))

    def to_elements(self, rows_array):
        moved = rows_array.reshape(self.kept_shape + self.reduced_shape)
        return np.transpose(moved, np.argsort(self.perm))

    def to_reduced(self, per_row, keepdims):
        out = per_row.reshape(self.kept_shape)
        if keepdims:
            out = np.expand_dims(out, self.axes) if self.axes else out
        return out

    def per_row_to_elements(self, values):
        """A per-row quantity (the reduced shape, any keepdims) broadcast back to the element shape."""
        per_row = np.asarray(values).reshape(-1)
        return self.to_elements(np.repeat(per_row[:, None], math.prod(self.reduced_shape), axis=1))


def rows_of(shape, axis):
    """The :class:`Rows` of reducing an array of ``shape`` over ``axis`` (None: every axis)."""
    ndim = len(shape)
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = tuple(sorted(normalize_axis_tuple(axis, ndim)))
    kept = tuple(i for i in range(ndim) if i not in axes)
    perm = kept + axes
    return Rows(
        perm=perm,
        kept_shape=tuple(shape[i] for i in kept),
        reduced_shape=tuple(shape[i] for i in axes),
        axes=axes,
        ndim=ndim,
    )


def broadcast_axes(full_shape, shape):
    """The axes of ``full_shape`` along which an array of ``shape`` was broadcast to it (leading axes
    added and length-1 axes stretched): summing over them takes a gradient back to ``shape``."""
    added = len(full_shape) - len(shape)
    return tuple(
        i for i, n in enumerate(full_shape) if i < added or (shape[i - added] == 1 and n != 1)
    )
