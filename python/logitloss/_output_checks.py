"""Checks of a caller's output buffer for the functions written in Python over the kernels (the
bindings check theirs in C++, csrc/bindings/output_buffers.cpp)."""

from __future__ import annotations

import numpy as np


def check_grad_out(grad_out, like: np.ndarray, like_name: str, *read: tuple[str, np.ndarray]) -> None:
    """`grad_out` must be a writable NumPy array of `like`'s shape and dtype, overlapping none of the
    arrays the call reads (`like` and the named `read` ones): the call reads them after writing."""
    if not isinstance(grad_out, np.ndarray):
        raise TypeError(f"`grad_out` must be a NumPy array, got {type(grad_out).__name__}")
    if grad_out.dtype != like.dtype:
        raise TypeError(f"`grad_out` must have the dtype of `{like_name}` {like.dtype}, got {grad_out.dtype}")
    if grad_out.shape != like.shape:
        raise ValueError(f"`grad_out` must have the shape of `{like_name}` {like.shape}, got {grad_out.shape}")
    if not grad_out.flags.writeable:
        raise ValueError("`grad_out` is read-only")
    for name, array in ((like_name, like), *read):
        if np.shares_memory(grad_out, array):
            raise ValueError(f"`grad_out` must not overlap `{name}` (the call reads it after writing the gradient)")
