"""The seeded differential fuzz (tests/fuzz/differential.py) as part of the suite: a child process
(so a crash is caught and names its case), bounded in time, comparing shapes and values of every
output against the exact references, and reaching the cases issue 18 reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 18
CASES = 1500
SECONDS = 40  # the child stops drawing new cases after this; the whole test stays under 60 s


def test_differential_fuzz():
    child = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.differential", "--seed", str(SEED), "--cases", str(CASES),
         "--seconds", str(SECONDS)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    last_case = (child.stderr.strip().splitlines() or ["(none)"])[-1]
    assert child.stdout.strip(), f"the fuzz child printed no summary (exit {child.returncode}); last {last_case}\n" \
                                 f"{child.stderr[-3000:]}"
    assert child.returncode in (0, 1), f"the fuzz child crashed (exit {child.returncode}) at {last_case}\n" \
                                       f"{child.stderr[-3000:]}"
    summary = json.loads(child.stdout.strip().splitlines()[-1])
    missed = [feature for feature, count in summary["reached"].items() if count == 0]
    assert not missed, f"the fuzz did not reach {missed} (seed {SEED})"
    assert summary["cases"] >= 100, f"only {summary['cases']} cases in {SECONDS} s"
    failures = "\n".join(f"- {f['case']}: {f['error']}" for f in summary["failures"])
    assert summary["failed"] == 0, f"{summary['failed']} of {summary['cases']} cases failed (seed {SEED}):\n{failures}"
