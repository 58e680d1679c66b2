"""Dask-side argument handling shared by the functions: wrapping, axes, chunk alignment."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from .._bfloat16 import is_bfloat16

try:
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # NumPy < 2
    from numpy.core.numeric import normalize_axis_tuple


def as_dask(value: Any, name: str) -> da.Array:
    """A Dask array as it is; a NumPy array or array-like wrapped as one chunk (da.asarray)."""
    if isinstance(value, da.Array):
        return value
    try:
        array = np.asarray(value)
    except Exception as error:  # a ragged list, an object NumPy cannot hold
        raise TypeError(f"`{name}` must be a Dask array or array-like: {error}") from error
    return da.from_array(array, chunks=array.shape or ())


def like_input(value: Any, name: str, input: da.Array, axes: tuple[int, ...]) -> da.Array:
    """An argument that shares `input`'s axes `axes` (a target, a per-element weight): a Dask array
    must already be chunked as `input` along them (ValueError naming it otherwise: rechunking
    would move data between workers behind the caller's back); anything else is wrapped with
    those chunks."""
    shape = tuple(input.shape[axis] for axis in axes)
    if np.ndim(value) == len(axes) and np.shape(value) != shape:
        raise ValueError(f"`{name}` has shape {np.shape(value)}; it must match the input's shape {shape} on axes {axes}")
    if isinstance(value, da.Array):
        expected = tuple(input.chunks[axis] for axis in axes)
        if value.chunks != expected:
            raise ValueError(
                f"`{name}` is chunked as {value.chunks} but must be chunked like the input's axes {axes}, {expected} "
                f"(rechunk it, e.g. {name}.rechunk({expected}))"
            )
        return value
    array = np.asarray(value)
    if array.ndim != len(axes):
        return da.from_array(array, chunks=array.shape or ())  # the shape check that follows names it
    return da.from_array(array, chunks=tuple(input.chunks[axis] for axis in axes))


def reduced_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """SciPy's axis argument (None: all axes) as sorted non-negative axes; numpy's AxisError when
    out of range, ValueError when repeated."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (bool, np.bool_)) or not (
        isinstance(axis, (int, np.integer)) or all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis)
    ):
        raise TypeError(f"`axis` must be None, an int or a tuple of ints, got {axis!r}")
    return tuple(sorted(normalize_axis_tuple(axis, ndim, "axis")))


def floating_result_dtype(*dtypes: np.dtype) -> np.dtype:
    """numpy.result_type forced to floating (integers and bool give float64), SciPy's rule; bfloat16
    (ml_dtypes) stays bfloat16; complex and non-numeric dtypes raise TypeError."""
    for dtype in dtypes:
        if dtype.kind not in "biuf" and not is_bfloat16(dtype):
            raise TypeError(f"logitloss.dask takes real floating, integer or bool arrays, got {dtype}")
    result = np.result_type(*dtypes)
    return result if result.kind == "f" or is_bfloat16(result) else np.dtype(np.float64)
