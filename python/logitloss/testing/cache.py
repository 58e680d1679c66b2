"""Reference results cached by input content.

A test suite checks one input on every SIMD target and often from several test functions: the reference
(mpmath rows in particular) is computed once per input.  Unbounded on purpose for the suite (its inputs are
deterministic and few are large); a long-running caller with many large inputs (the benchmark's checks)
calls :func:`clear_cache` when it is done with them.  Cached arrays are read-only.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["cached", "clear_cache", "content_key"]

_CACHE: dict = {}


def content_key(*parts):
    """A key for ``parts``: arrays by dtype, shape and bytes, anything else by ``repr``."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str((part.dtype.str, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def cached(key, compute):
    """``compute()`` the first time ``key`` is seen, the same (read-only) result afterwards."""
    if key not in _CACHE:
        value = compute()
        for array in value if isinstance(value, tuple) else (value,):
            if isinstance(array, np.ndarray):
                array.setflags(write=False)
        _CACHE[key] = value
    return _CACHE[key]


def clear_cache():
    """Forget every cached reference result."""
    _CACHE.clear()
