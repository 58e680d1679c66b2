"""``import logitloss`` loads the runtime package only: not the references of ``logitloss.testing``, not the
benchmark, not their optional libraries; and neither of them reads anything from the test suite's folder."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import logitloss

_LOADED = ("import json, sys, logitloss\n"
           "print(json.dumps(sorted(name for name in sys.modules)))")


def test_import_loads_the_runtime_only(tmp_path):
    completed = subprocess.run([sys.executable, "-c", _LOADED], capture_output=True, text=True, timeout=120,
                               cwd=tmp_path, check=True)
    loaded = set(json.loads(completed.stdout))
    ours = {name for name in loaded if name.startswith("logitloss")}
    assert not {name for name in ours if name.startswith(("logitloss.testing", "logitloss.bench"))}, ours
    assert not loaded & {"mpmath", "scipy", "torch", "matplotlib", "jax", "ml_dtypes"}, loaded & {"mpmath", "scipy", "torch"}


def test_package_does_not_reach_into_tests():
    """No source file of the installed package names the test suite's folder or reads files next to it."""
    package = pathlib.Path(logitloss.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for needle in ("LOGITLOSS_TESTS_DIR", "spec_from_file_location", '"tests"', "'tests'", "tests/"):
            assert needle not in text, f"{path.relative_to(package)} contains {needle!r}"
