"""The benchmark's history: one long-format CSV (the repository keeps ``bench/results/history.csv``) with the
headline rows of every run, one line per run, row and provider, so a reader (or ``bench/plot_results.py
--history``) follows each targeted ratio across runs, commits and machines.

Headline rows: for every performance target (:data:`~logitloss.bench.targets.TARGETS`), the providers it compares
in its row (median, min and max seconds per call, the fraction of the row's roofline where it has one; or the
value of a memory row).  ``python -m logitloss.bench --out DIR --history
CSV`` appends a run's lines (``results.json`` has every other number of the run).  ``commit`` is the commit whose
code was measured: ``git rev-parse`` of the working directory at run time (suffixed ``+changes`` when tracked
files differ from it), empty outside a checkout.
"""

from __future__ import annotations

import csv
import os
import subprocess
from collections import defaultdict
from typing import Any

from .targets import TARGETS

__all__ = ["HISTORY_COLUMNS", "append_history", "code_commit", "headline_providers", "history_rows"]

HISTORY_COLUMNS = ["date", "run", "commit", "machine", "isa", "logical_cores", "threads", "mode",
                   "logitloss_version", "row", "shape", "provider", "quantity", "median", "min", "max",
                   "roofline_fraction"]


def headline_providers() -> dict[str, set[str]]:
    """Row key -> the providers the targets compare in it (numerator, denominator)."""
    providers: dict[str, set[str]] = defaultdict(set)
    for target in TARGETS:
        providers[target.case] |= {name for name in (target.numerator, target.denominator) if name}
    return providers


def history_rows(results: dict[str, Any], run: str, commit: str | None = None) -> list[dict[str, Any]]:
    """The headline lines of one run from its ``results.json`` content (``report.results_json``); ``commit``
    defaults to the one the run recorded."""
    machine, config = results["machine"], results["config"]
    commit = config.get("commit", "") if commit is None else commit
    common = {
        "date": str(machine.get("timestamp_utc", ""))[:10], "run": run, "commit": commit,
        "machine": machine.get("cpu_model", ""), "isa": machine.get("logitloss_isa", ""),
        "logical_cores": machine.get("logical_cores", ""), "threads": config.get("threads", ""),
        "mode": config.get("mode", ""), "logitloss_version": machine.get("logitloss_version", ""),
    }
    wanted = headline_providers()
    rows = []
    for case in results.get("cases", []):
        names = wanted.get(case["case"], set())
        shape = "x".join(str(n) for n in case.get("shape", []))
        for timing in case.get("timings", []):
            if timing["provider"] in names:
                rows.append({**common, "row": case["case"], "shape": shape, "provider": timing["provider"],
                             "quantity": "seconds",
                             "median": f"{timing['median_s']:.6g}", "min": f"{timing['min_s']:.6g}",
                             "max": f"{timing['max_s']:.6g}",
                             "roofline_fraction": _number(timing.get("roofline_fraction"))})
        for name, value in (case.get("values") or {}).items():
            if name in names:
                rows.append({**common, "row": case["case"], "shape": shape, "provider": name,
                             "quantity": case.get("value_unit", ""),
                             "median": f"{value:.6g}", "min": "", "max": "", "roofline_fraction": ""})
    return rows


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def append_history(path: str, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to the CSV at ``path`` (with the header when the file is new)."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def code_commit() -> str:
    """The commit of the working directory's checkout (``+changes`` when tracked files differ), or ""."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+changes" if changed else "")
