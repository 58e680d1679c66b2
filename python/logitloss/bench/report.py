"""Writes a run as ``report.md``, a long-format ``results.csv`` (one line per row and provider, with the machine,
versions and thread count on every line), ``results.json`` (machine, config, rooflines, every sample, targets,
the safety and accuracy tables, notes), ``safety.md``, ``accuracy.md`` and the PNG plots of
:mod:`~logitloss.bench.plots` (when matplotlib is installed)."""

from __future__ import annotations

import csv
import json
import os
from typing import Any

import numpy as np

from .accuracy import accuracy_json, accuracy_markdown
from .harness import OTHER_LOAD_THRESHOLD_CORES
from .run import RunResult
from .safety import safety_json, safety_markdown
from .suite import CaseResult

__all__ = ["CSV_COLUMNS", "csv_rows", "header_lines", "markdown", "numerics_markdown", "results_json", "write_all"]

# machine and versions, repeated on every line so one CSV line (or a concatenation of runs) stands alone
_MACHINE_COLUMNS = ["cpu_model", "logical_cores", "logitloss_isa", "logitloss_version", "numpy_version",
                    "scipy_version", "torch_version", "jax_version"]
CSV_COLUMNS = [
    "timestamp_utc", "mode", "case", "op", "shape", "axis", "dtype", "layout", "threads", "load", "provider",
    "isa", "repeats", "calls_per_sample", "median_s", "min_s", "max_s", "bytes_per_call", "gbps",
    "roofline_kind", "roofline_gbps", "roofline_fraction", "time_over_baseline", "baseline", "other_load_cores",
    "value", "value_unit", *_MACHINE_COLUMNS,
]


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.3f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3f} ms"
    return f"{value * 1e6:.2f} us"


def _optional(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def csv_rows(run: RunResult) -> list[dict[str, Any]]:
    machine = {column: run.machine.get(column, "") for column in _MACHINE_COLUMNS}
    rows = []
    for result in run.cases:
        case = result.case
        for name, timing in result.timings.items():
            rows.append({
                **machine,
                "timestamp_utc": run.machine["timestamp_utc"],
                "mode": run.config["mode"],
                "case": case.key,
                "op": case.op,
                "shape": _shape(case.shape),
                "axis": case.axis,
                "dtype": case.dtype,
                "layout": case.layout,
                "threads": timing.threads if timing.threads is not None else result.threads,
                "load": result.load,
                "provider": name,
                "isa": timing.isa,
                "repeats": len(timing.samples),
                "calls_per_sample": timing.number,
                "median_s": f"{timing.median:.9g}",
                "min_s": f"{timing.min:.9g}",
                "max_s": f"{timing.max:.9g}",
                "bytes_per_call": case.bytes_per_call(),
                "gbps": _optional(result.gbps(name), ".4g"),
                "roofline_kind": case.roofline or "",
                "roofline_gbps": _optional(result.roofline_gbps(), ".4g"),
                "roofline_fraction": _optional(result.roofline_fraction(name), ".4f"),
                "time_over_baseline": _optional(result.time_ratio(name), ".4f"),
                "baseline": case.baseline,
                "other_load_cores": _optional(result.other_load_cores, ".2f"),
                "value": "", "value_unit": "",
            })
        for name, value in result.values.items():  # rows of measured values (peak memory): no times
            row = dict.fromkeys(CSV_COLUMNS, "")
            row.update({
                **machine,
                "timestamp_utc": run.machine["timestamp_utc"], "mode": run.config["mode"], "case": case.key,
                "op": case.op, "shape": _shape(case.shape), "axis": case.axis, "dtype": case.dtype,
                "layout": case.layout, "threads": result.threads, "load": result.load, "provider": name,
                "other_load_cores": _optional(result.other_load_cores, ".2f"),
                "value": f"{value:.9g}", "value_unit": case.value_unit,
            })
            rows.append(row)
    return rows


def results_json(run: RunResult) -> dict[str, Any]:
    """The content of ``results.json``."""
    return {
        "machine": run.machine,
        "config": run.config,
        "units": {
            "time": "seconds per call",
            "bytes_per_call": "logsumexp: x.nbytes + result.nbytes; softmax, log_softmax, cross_entropy forward + "
                              "backward: 2 * x.nbytes; cross_entropy forward: x.nbytes; "
                              "binary_cross_entropy_with_logits forward: 2 * x.nbytes (logits and targets), forward + "
                              "backward: 3 * x.nbytes",
            "values": "peak extra resident bytes of one call in a subprocess: ru_maxrss after - "
                      "max(ru_maxrss, RSS) before",
            "gbps": "bytes_per_call / median / 1e9",
            "other_load_cores": "CPU seconds used by other processes during the row / wall seconds",
            "roofline": "read: x.nbytes / median of the faster of x.sum(), x.max(); "
                        "copy: 2 * x.nbytes / median of np.copyto",
        },
        "rooflines": [
            {"label": r.label, "nbytes": r.nbytes, "read_sum_gbps": r.read_sum_gbps,
             "read_max_gbps": r.read_max_gbps, "read_gbps": r.read_gbps, "copy_gbps": r.copy_gbps}
            for r in run.rooflines
        ],
        "cases": [
            {
                "case": r.case.key, "title": r.case.title, "op": r.case.op, "shape": list(r.case.shape),
                "axis": r.case.axis, "threads": r.threads, "load": r.load, "bytes_per_call": r.case.bytes_per_call(),
                "baseline": r.case.baseline, "seconds": r.seconds, "notes": r.notes,
                "other_load_cores": r.other_load_cores,
                "values": r.values, "value_unit": r.case.value_unit,
                "timings": [
                    {"provider": t.provider, "isa": t.isa,
                     "threads": t.threads if t.threads is not None else r.threads,
                     "calls_per_sample": t.number, "median_s": t.median, "min_s": t.min, "max_s": t.max,
                     "samples_s": t.samples,
                     "gbps": r.gbps(t.provider), "roofline_fraction": r.roofline_fraction(t.provider)}
                    for t in r.timings.values()
                ],
            }
            for r in run.cases
        ],
        "targets": [
            {"key": t.target.key, "description": t.target.description, "measured": t.measured,
             "required": t.target.requirement(), "status": t.status, "detail": t.detail}
            for t in run.targets
        ],
        "notes": run.notes,
        "safety": None if run.safety is None else safety_json(run.safety),
        "accuracy": None if run.accuracy is None else accuracy_json(run.accuracy),
    }


def _case_table(result: CaseResult) -> list[str]:
    case = result.case
    has_gbps = case.roofline is not None and result.roofline is not None
    header = ["provider", "ISA", "median", "min", "max", "calls/sample"]
    if has_gbps:
        header += ["GB/s", f"% of {case.roofline} roofline"]
    header += [f"time / {case.baseline}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, timing in result.timings.items():
        cells = [name, timing.isa or "", _seconds(timing.median), _seconds(timing.min), _seconds(timing.max),
                 str(timing.number)]
        if has_gbps:
            cells += [_optional(result.gbps(name), ".1f"), _optional(_percent(result.roofline_fraction(name)), ".0f")]
        cells += [_optional(result.time_ratio(name), ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _values_table(result: CaseResult) -> list[str]:
    """Measured values (peak memory): in MB when the unit is bytes, and as a multiple of the logits' size."""
    reference = result.values.get("logits")
    lines = ["| measurement | value | / logits' size |", "|---|---|---|"]
    for name, value in result.values.items():
        text = f"{value / 1e6:.1f} MB" if result.case.value_unit == "bytes" else f"{value:g}"
        ratio = f"{value / reference:.3f}x" if reference else ""
        lines.append(f"| {name} | {text} | {ratio} |")
    return lines


def _percent(value: float | None) -> float | None:
    return None if value is None else value * 100


def header_lines(run: RunResult) -> list[str]:
    """Command, machine and versions: the first lines of every markdown file of a run."""
    machine = run.machine
    libraries = ("logitloss", "numpy", "scipy", "torch", "jax")
    versions = ", ".join(f"{name} {machine.get(f'{name}_version')}" for name in libraries)
    return [
        f"- command: `{run.config['command']}` ({run.config['mode']}), {machine.get('timestamp_utc')}",
        f"- machine: {machine.get('cpu_model')}, {machine.get('logical_cores')} logical cores, logitloss ISA "
        f"**{machine.get('logitloss_isa')}**, {run.config['threads']} thread(s); {versions}",
    ]


def _files_section(run: RunResult) -> list[str]:
    lines = ["## Files of this run", ""]
    if run.safety is not None:
        lines.append("- `safety.md`: adversarial float16 / float32 / float64 inputs (+-1e4, +-3e38, +-1.7e308, -inf "
                     "masks, +inf, nan, float16 extremes, tiny exact losses, subnormal losses): value and gradient of "
                     "each provider right, nan, inf, 0 or wrong, against an exact mpmath reference")
    if run.accuracy is not None:
        lines.append("- `accuracy.md`: error in units of eps against the exact reference on random float32 and "
                     "float64 logits of spread 1, 10, 100 and several widths, per provider and kernel")
    lines += [
        "- `time_vs_width.png`, `roofline.png`, `memory.png`: plots of the rows below (`python "
        "bench/plot_results.py results.csv --out ratios.png` draws every row's ratios, and compares runs)",
        "- `results.csv` (one line per row and provider), `results.json` (also every sample and both tables)",
        "",
    ]
    return lines


def _providers_section(run: RunResult) -> list[str]:
    """Which peer libraries this run had: a missing one is skipped (its rows say so), never an error."""
    lines = ["## Providers", ""]
    for name, what in (("numpy", "NumPy stable (max-shifted) and NumPy naive (unshifted), as users write them"),
                       ("scipy", "scipy.special.logsumexp / softmax / log_softmax (no losses, no gradients)"),
                       ("torch", "torch CPU: torch.* and torch.nn.functional.*, autograd for gradients"),
                       ("jax", "jax CPU (1 thread, x64 enabled): jax.nn.*, losses as JAX users write them, jitted, "
                               "jax.vjp / value_and_grad for gradients")):
        version = str(run.machine.get(f"{name}_version", ""))
        state = f"{version}" if not version.startswith("not available") else f"**skipped** ({version})"
        lines.append(f"- {what}: {state}")
    every_isa = "" if run.suite.quick else (" and, in the `*_big` rows, forced to each ISA this CPU runs "
                                            f"({run.machine.get('logitloss_supported_isas', '?')})")
    lines.append(f"- logitloss {run.machine.get('logitloss_version')} on its chosen ISA{every_isa}")
    return lines + [""]


def _cells_section(run: RunResult) -> list[str]:
    """The cells (rows) this run measured, with their sizes."""
    lines = ["## Cells", "", "| row | op | shape | dtype | logits | MB of logits | providers |",
             "|---|---|---|---|---|---|---|"]
    for result in run.cases:
        case = result.case
        count = 1
        for n in case.shape:
            count *= n
        providers = len(result.timings) if result.timings else len([v for v in result.values if v != "logits"])
        lines.append(f"| `{case.key}` | {case.op} | {_shape(case.shape)} | {case.dtype} | {count:,} | "
                     f"{count * np.dtype(case.dtype).itemsize / 1e6:.1f} | {providers} |")
    return lines + [""]


def markdown(run: RunResult) -> str:
    machine, config = run.machine, run.config
    lines = [
        "# logitloss benchmark report",
        "",
        f"- command: `{config['command']}`",
        f"- mode: **{config['mode']}**, {config['repeats']} interleaved repeats per row (unless the row says "
        f"otherwise), {config['threads']} thread(s) for logitloss and torch (jax: 1), float32 unless the row says "
        "float64",
        f"- logitloss {machine.get('logitloss_version')} ISA **{machine.get('logitloss_isa')}** "
        f"(supported: {machine.get('logitloss_supported_isas', '?')}), {machine.get('timestamp_utc')}",
        "- every ratio below is a ratio of medians measured in this run, providers interleaved (each once per "
        "round, in a seeded shuffled order)",
        f"- each provider's first result was checked against the {config.get('check_reference')} "
        "(16 sampled slices, loose float32 tolerances); a mismatch is listed under its row as WRONG RESULT",
        "",
    ]
    lines += [f"> {note}" for note in run.suite.notes] + ([""] if run.suite.notes else [])
    busy = [r.case.key for r in run.cases
            if r.other_load_cores is not None and r.other_load_cores > OTHER_LOAD_THRESHOLD_CORES]
    if busy:
        lines += [
            f"> **Other processes kept more than {OTHER_LOAD_THRESHOLD_CORES} of a core busy during {len(busy)} of "
            f"{len(run.cases)} rows** ({', '.join(busy)}; see 'other load' under each row). Ratios between "
            "providers of a row stay fair (interleaved), absolute times and the thread rows do not.",
            "",
        ]
    lines += _files_section(run)
    lines += _providers_section(run)
    lines += ["## Targets", "", "| target | measured | required | result |", "|---|---|---|---|"]
    for target in run.targets:
        description = target.target.description + (f" ({target.detail})" if target.detail else "")
        lines.append(f"| {description} | {target.measured_text()} | {target.target.requirement()} | "
                     f"**{target.status}** |")
    lines += ["", "## Machine", "", "| key | value |", "|---|---|"]
    for key, value in machine.items():
        if key == "logitloss_config":
            continue
        lines.append(f"| {key} | {value} |")
    if machine.get("logitloss_config"):
        lines += ["", "```", str(machine["logitloss_config"]), "```"]
    lines += [
        "",
        "## Units and roofline",
        "",
        "- bytes moved per call: logsumexp reads the logits once and writes one value per slice "
        "(`x.nbytes + result.nbytes`); softmax and log_softmax read once and write once (`2 * x.nbytes`). "
        "GB/s = bytes per call / median / 1e9.",
        "- roofline of each row, measured on the row's own array and timed interleaved with the row's providers "
        "(same machine state), 1 thread: read = `x.nbytes` / median of the faster of `x.sum()` and `x.max()` "
        "(logsumexp rows); copy = `2 * x.nbytes` / median of `np.copyto(y, x)` (softmax rows).",
        "- cross_entropy (mean reduction, int64 class indices): forward + backward reads the logits once and "
        "writes the gradient once (`2 * x.nbytes`, copy roofline); forward only reads them once "
        "(`x.nbytes`, read roofline); targets are not counted.",
        "- backward rows (`*_backward_big`): logsumexp_backward reads the logits and writes the gradient "
        "(`2 * x.nbytes`); softmax_backward and log_softmax_backward read the forward output and the upstream "
        "gradient and write the gradient (`3 * x.nbytes`); copy roofline. cross_entropy of (N, C, H, W) logits "
        "counts as its (N, C) form (`2 * x.nbytes`).",
        "- binary_cross_entropy_with_logits (mean reduction, float targets of the logits' shape): forward reads "
        "logits and targets (`2 * x.nbytes`, read roofline); forward + backward also writes the gradient "
        "(`3 * x.nbytes`, copy roofline); weight and pos_weight of shape (C,) are not counted.",
        "",
        "| row (array) | MB | read GB/s (x.sum) | read GB/s (x.max) | copy GB/s |",
        "|---|---|---|---|---|",
    ]
    for roofline in run.rooflines:
        lines.append(f"| {roofline.label} | {roofline.nbytes / 1e6:.1f} | {roofline.read_sum_gbps:.1f} | "
                     f"{roofline.read_max_gbps:.1f} | {roofline.copy_gbps:.1f} |")
    lines += [""] + _cells_section(run) + ["## Rows", ""]
    for result in run.cases:
        case = result.case
        lines += [f"### {case.title or case.key}", ""]
        threads = str(result.threads) if result.threads else "per provider"
        moved = (f"{case.bytes_per_call() / 1e6:.3f} MB moved per call" if case.values is None
                 else f"measured values ({case.value_unit})")
        facts = [f"`{case.key}`", f"{_shape(case.shape)} {case.dtype}, axis={case.axis}", moved, f"threads: {threads}",
                 f"load: {result.load}", f"{result.seconds:.1f} s"]
        if result.other_load_cores is not None:
            facts.append(f"other load: {result.other_load_cores:.2f} cores")
        lines += ["; ".join(facts), ""]
        if case.note:
            lines += [case.note, ""]
        if result.timings:
            lines += _case_table(result) + [""]
        if result.values:
            lines += _values_table(result) + [""]
        lines += [f"- {note}" for note in result.notes] + ([""] if result.notes else [])
    if run.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in run.notes] + [""]
    return "\n".join(lines)


def numerics_markdown(run: RunResult) -> dict[str, str]:
    """``safety.md`` and ``accuracy.md`` of the run (those it made), by file name."""
    texts = {}
    if run.safety is not None:
        texts["safety.md"] = safety_markdown(run.safety, header_lines(run))
    if run.accuracy is not None:
        texts["accuracy.md"] = accuracy_markdown(run.accuracy, header_lines(run))
    return texts


def write_all(run: RunResult, directory: str) -> list[str]:
    """Writes every file of the run into ``directory``; returns their paths.  Plots are skipped with a note in
    ``run.notes`` (and in ``results.json``) when matplotlib is missing."""
    os.makedirs(directory, exist_ok=True)
    rows = csv_rows(run)
    paths: list[str] = []
    try:
        from .plots import write_plots

        paths += write_plots(rows, directory)
    except ImportError as error:
        run.notes.append(f"plots not drawn: {error} (install matplotlib, or logitloss[bench])")
    texts = {"report.md": markdown(run), **numerics_markdown(run)}
    for name, text in texts.items():
        paths.append(os.path.join(directory, name))
        with open(paths[-1], "w", encoding="utf-8") as handle:
            handle.write(text)
    paths.append(os.path.join(directory, "results.csv"))
    with open(paths[-1], "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    paths.append(os.path.join(directory, "results.json"))
    with open(paths[-1], "w", encoding="utf-8") as handle:
        json.dump(results_json(run), handle, indent=1, default=_json_default)
    return paths


def _json_default(value: Any) -> Any:
    """NumPy scalars in the tables as plain numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
