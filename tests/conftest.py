"""Shared fixtures: one run per ISA this CPU supports, reference libraries, thread restore."""

from __future__ import annotations

import os

import pytest

import logitloss

from .helpers.isas import SUPPORTED_ISAS
from .helpers.libraries import REFERENCE_LIBRARIES, missing, require


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A reference of logitloss.testing that needs a missing library (mpmath for float64 results) skips
    the test, as ``require`` does (fails it under LOGITLOSS_REQUIRE_REFERENCES=1)."""
    try:
        return (yield)
    except ImportError as error:
        if error.name not in REFERENCE_LIBRARIES:
            raise
        missing(f"reference library {error.name!r} is not importable: {error}", name=error.name)


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


@pytest.fixture(scope="module")
def torch_single_threaded():
    """torch on one thread while a module runs: its tiny-tensor calls are ~10x slower when its pool
    competes with ours for the cores (results do not depend on it)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
except ImportError:  # the property tests report it through require()
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
