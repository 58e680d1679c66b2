"""Shared fixtures: one run per ISA this CPU supports, reference libraries, thread restore."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

# The helper modules (reference.py, tolerances.py, inputs.py) live next to the tests and are
# imported by plain name, whatever pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import logitloss  # noqa: E402

SUPPORTED_ISAS = tuple(logitloss.supported_isas())
KNOWN_ISAS = ("baseline", "avx2", "avx512", "neon")

REQUIRE_REFERENCES = os.environ.get("LOGITLOSS_REQUIRE_REFERENCES") == "1"
# Libraries exempt from that requirement on a platform that cannot have them, by top-level name
# (the aarch64 CI stage: LOGITLOSS_OPTIONAL_REFERENCES=torch, no torch wheel for arm64 here).
OPTIONAL_REFERENCES = {name.strip() for name in os.environ.get("LOGITLOSS_OPTIONAL_REFERENCES", "").split(",")} - {""}


def require(modname, *, module_level=False):
    """Import a reference library (torch, scipy, mpmath, hypothesis ...) or skip the test.

    With ``LOGITLOSS_REQUIRE_REFERENCES=1`` (CI sets it) a missing library FAILS the test instead,
    so an accuracy test is never skipped silently where it must run; a library named in
    ``LOGITLOSS_OPTIONAL_REFERENCES`` (comma-separated) still skips.
    """
    try:
        return importlib.import_module(modname)
    except ImportError as exc:
        message = f"reference library {modname!r} is not importable: {exc}"
        if REQUIRE_REFERENCES and modname.split(".")[0] not in OPTIONAL_REFERENCES:
            pytest.fail(message + " (LOGITLOSS_REQUIRE_REFERENCES=1)", pytrace=False)
        pytest.skip(message, allow_module_level=module_level)


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Run the test once per ISA this CPU supports, with the kernels switched to it."""
    name = request.param
    with logitloss.use_isa(name):
        assert logitloss.get_isa() == name
        yield name


@pytest.fixture
def restore_threads():
    """Restore the thread count a test changes."""
    before = logitloss.get_num_threads()
    yield before
    logitloss.set_num_threads(before)


@pytest.fixture(scope="session")
def scipy_special():
    return require("scipy.special")


@pytest.fixture(scope="session")
def torch():
    return require("torch")


@pytest.fixture(scope="session")
def mpmath():
    return require("mpmath")


# ---- hypothesis profile: no example database on disk, reproducible in CI ---------------------
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "logitloss",
        deadline=None,
        database=None,
        max_examples=60,
        derandomize=os.environ.get("CI") == "true",
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=True,
    )
    # For emulated runs (.ci/aarch64: `--hypothesis-profile=logitloss-quick`, which the plugin loads
    # after this file): the same properties on fewer examples.
    settings.register_profile("logitloss-quick", settings.get_profile("logitloss"), max_examples=10)
    settings.load_profile("logitloss")
except ImportError:  # test_properties.py reports it through require()
    pass


# ---- max ULP report of the math helper sweep --------------------------------------------------
ULP_REPORT = pytest.StashKey[dict]()


def pytest_configure(config):
    config.stash[ULP_REPORT] = {}


@pytest.fixture
def ulp_report(request):
    """dict (isa, func, dtype) -> max ULP error; printed in the terminal summary."""
    return request.config.stash[ULP_REPORT]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    report = config.stash.get(ULP_REPORT, {})
    if not report:
        return
    terminalreporter.section("logitloss exp/log/log1p helpers: max ULP error (bound 2)")
    for (isa_name, func, dtype), (worst, count, where) in sorted(report.items()):
        terminalreporter.write_line(
            f"{isa_name:>9} {func:>6} {dtype:>8}: max {worst:.3f} ULP over {count} inputs (worst at x={where!r})"
        )
