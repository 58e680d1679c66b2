"""Reference libraries (torch, SciPy, mpmath, hypothesis ...): import one or skip, or fail in CI."""

from __future__ import annotations

import importlib
import os

import pytest

# CI sets it: a missing reference library fails the test instead of skipping it, so an accuracy
# test is never skipped silently where it must run.
REQUIRE_REFERENCES = os.environ.get("LOGITLOSS_REQUIRE_REFERENCES") == "1"
# Libraries exempt from that requirement on a platform that cannot have them, by top-level name
# (the aarch64 CI stage: LOGITLOSS_OPTIONAL_REFERENCES=torch, no torch wheel for arm64 there).
OPTIONAL_REFERENCES = {name.strip() for name in os.environ.get("LOGITLOSS_OPTIONAL_REFERENCES", "").split(",")} - {""}

# Libraries the references of logitloss.testing import on demand (mpmath for float64 results).
REFERENCE_LIBRARIES = ("mpmath",)


def missing(message, *, name="", module_level=False):
    """Skip the test for a missing reference library `name` (fail under LOGITLOSS_REQUIRE_REFERENCES=1,
    unless the library is named in LOGITLOSS_OPTIONAL_REFERENCES)."""
    if REQUIRE_REFERENCES and name.split(".")[0] not in OPTIONAL_REFERENCES:
        pytest.fail(message + " (LOGITLOSS_REQUIRE_REFERENCES=1)", pytrace=False)
    pytest.skip(message, allow_module_level=module_level)


def require(modname, *, module_level=False):
    """Import a reference library or skip the test (see :func:`missing`)."""
    try:
        return importlib.import_module(modname)
    except ImportError as exc:
        missing(f"reference library {modname!r} is not importable: {exc}", name=modname, module_level=module_level)
