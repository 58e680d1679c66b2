"""The SIMD targets: those this CPU runs, and every one logitloss knows."""

from __future__ import annotations

import logitloss

SUPPORTED_ISAS = tuple(logitloss.supported_isas())
KNOWN_ISAS = ("baseline", "avx2", "avx512", "neon")


def per_isa(call):
    """{target: call()} for every SIMD target this CPU supports."""
    results = {}
    for name in SUPPORTED_ISAS:
        with logitloss.use_isa(name):
            results[name] = call()
    return results
