"""bfloat16 (``ml_dtypes.bfloat16``) arguments of the functions written in Python over the kernels (KL
divergence, the contrastive loss, the linear head's cross-entropy): computed on float32 copies, every floating
result rounded once to bfloat16 when that is the result dtype (``numpy.result_type`` of the floating arguments).
The dtype is recognised by its properties: logitloss never imports ml_dtypes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["any_bfloat16", "is_bfloat16", "through_float32"]


def is_bfloat16(dtype: np.dtype) -> bool:
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16"


def any_bfloat16(*values: Any) -> bool:
    return any(isinstance(value, np.ndarray) and is_bfloat16(value.dtype) for value in values)


def _widened(value: Any) -> Any:
    return value.astype(np.float32) if isinstance(value, np.ndarray) and is_bfloat16(value.dtype) else value


def _rounded(value: Any, dtype: np.dtype) -> Any:
    if isinstance(value, tuple):
        return tuple(_rounded(item, dtype) for item in value)
    if isinstance(value, (np.ndarray, np.floating)) and np.asarray(value).dtype.kind == "f":
        with np.errstate(over="ignore"):  # beyond bfloat16's range is +-inf, as the exact value rounds
            rounded = np.asarray(value).astype(dtype)
        return rounded[()] if rounded.ndim == 0 else rounded
    return value


def through_float32(function: Callable[..., Any], arrays: tuple[Any, ...], keywords: dict[str, Any],
                    grad_out: np.ndarray | None = None) -> Any:
    """``function(*arrays, **keywords)`` with bfloat16 arrays as float32 copies; results rounded once to the
    result dtype when it is bfloat16. ``grad_out`` (the caller's gradient buffer): filled from the float32
    call's gradient, rounded to its dtype, and returned in the gradient's place."""
    floating = [value.dtype for value in (*arrays, *keywords.values())
                if isinstance(value, np.ndarray) and (value.dtype.kind == "f" or is_bfloat16(value.dtype))]
    result_dtype = np.result_type(*floating)
    widened = {name: _widened(value) for name, value in keywords.items()}
    if grad_out is not None:
        widened["return_grad"] = True
    result = function(*(_widened(value) for value in arrays), **widened)
    if is_bfloat16(result_dtype):
        result = _rounded(result, result_dtype)
    if grad_out is not None:
        loss, grad = result
        with np.errstate(over="ignore"):
            np.copyto(grad_out, grad, casting="unsafe")
        result = (loss, grad_out)
    return result
