"""PNG plots of a run, from the long-format rows of ``results.csv`` (``report.csv_rows`` or the CSV files of
several runs; ``bench/plot_results.py`` is the command line for the latter).  Needs matplotlib.

- ``time_vs_width.png``: per op, nanoseconds per logit (median / elements) against the class-axis width C,
  one line per provider (the width-sweep rows ``sweep_*`` where the run has them, else every row of the op;
  binary cross-entropy, which has no class axis, is only in ``ratios.png``);
- ``roofline.png``: the same rows' fraction of the memory roofline measured in the row;
- ``memory.png``: peak extra memory of one call over the logits' size, per provider of each memory row;
- :func:`plot_ratios` (``bench/plot_results.py --out``, not drawn by the report: a few seconds for a full run):
  every row's providers as median time over the row's baseline (log scale), runs side by side;
- :func:`plot_history` (``bench/plot_results.py --history``): each performance target's measured value across the
  runs of the history CSV (:mod:`~logitloss.bench.history`), its bound as a line, one colour per machine.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

__all__ = ["FIGURES", "plot_history", "plot_memory", "plot_ratios", "plot_width", "write_plots"]

FIGURES = ("time_vs_width.png", "roofline.png", "memory.png")
Row = dict[str, Any]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _run_label(row: Row) -> str:
    return f"{row['timestamp_utc']} {row['mode']}"


def _elements(shape: str) -> int:
    return math.prod(int(n) for n in shape.split("x"))


def _width_rows(rows: list[Row]) -> dict[str, list[Row]]:
    """Timed rows per op: the sweep rows of an op where there are any, else all its rows."""
    by_op: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        # binary cross-entropy has no class axis: its rows are in ratios.png only
        if (row["median_s"] and not row["case"].startswith("threads_")
                and not row["op"].startswith("binary_cross_entropy")):
            by_op[row["op"]].append(row)
    chosen = {}
    for op, op_rows in by_op.items():
        sweep = [r for r in op_rows if r["case"].startswith("sweep_")]
        chosen[op] = sweep or op_rows
    return chosen


def _panels(plt: Any, count: int, title: str, height: float = 3.6) -> tuple[Any, list[Any]]:
    columns = min(2, max(1, count))
    lines = max(1, math.ceil(count / columns))
    figure, axes = plt.subplots(lines, columns, figsize=(6.5 * columns, height * lines), squeeze=False)
    figure.suptitle(title, fontsize=10)
    flat = list(axes.flat)
    for axis in flat[count:]:
        axis.set_visible(False)
    return figure, flat[:count]


_UNITS = {"time": "ns per logit", "roofline": "fraction of roofline"}


def _width_value(row: Row, quantity: str) -> float:
    if quantity == "time":
        return float(row["median_s"]) / _elements(row["shape"]) * 1e9
    return float(row["roofline_fraction"])


def _width_lines(axis: Any, lines: dict[str, list[tuple[int, float]]], quantity: str) -> None:
    """One line per provider against the width (the sweep); the roofline (1.0) as a horizontal line."""
    for index, (label, points) in enumerate(sorted(lines.items())):
        points.sort()
        style = "-" if "logitloss" in label else "--"
        axis.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", markersize=3,
                  label=label, color=f"C{index % 10}")
    axis.set_xscale("log")
    if quantity == "time":
        axis.set_yscale("log")
    else:
        axis.axhline(1.0, color="black", linewidth=0.6)
    axis.set_xlabel("width C (last axis)", fontsize=8)
    axis.set_ylabel(_UNITS[quantity], fontsize=8)
    axis.legend(fontsize=6)


def _mode_of(label: str) -> str:
    """The mode a provider's name ends with ("backward only", "forward + backward"), or ""."""
    return next((mode for mode in ("backward only", "forward + backward") if mode in label), "")


def _width_bars(axis: Any, lines: dict[str, list[tuple[int, float]]], quantity: str) -> None:
    """One bar per provider, fastest (time) or closest to the roofline (1.0, a vertical line) first: the rows of a
    single shape."""
    sign = 1 if quantity == "time" else -1
    bars = sorted(((label, points[-1][1]) for label, points in lines.items()),
                  key=lambda item: (_mode_of(item[0]), sign * item[1]))
    labels, values = [b[0] for b in bars], [b[1] for b in bars]
    drawn = axis.barh(range(len(bars)), values, color=["C0" if "logitloss" in label else "C1" for label in labels])
    axis.bar_label(drawn, labels=[f"{v:.3g}" for v in values], fontsize=7, padding=2)
    axis.set_yticks(range(len(bars)), labels, fontsize=7)
    for index in range(1, len(bars)):  # a rule between the modes (backward only | forward + backward)
        if _mode_of(labels[index]) != _mode_of(labels[index - 1]):
            axis.axhline(index - 0.5, color="grey", linewidth=0.6)
    axis.invert_yaxis()
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if quantity == "time" and finite and max(finite) / min(finite) > 30:
        axis.set_xscale("log")
    axis.set_xlim(right=max(finite, default=1.0) * (3.0 if axis.get_xscale() == "log" else 1.2))
    if quantity != "time":
        axis.axvline(1.0, color="black", linewidth=0.6)
    axis.set_xlabel(_UNITS[quantity], fontsize=8)


def plot_width(rows: list[Row], path: str, *, quantity: str) -> str:
    """``quantity`` "time": ns per logit against width; "roofline": fraction of the row's roofline.  An op
    measured at one width only (no sweep: its backward rows, cross_entropy forward) gets bars, one per provider."""
    plt = _pyplot()
    by_op = _width_rows(rows)
    if quantity == "roofline":
        by_op = {op: [r for r in op_rows if r["roofline_fraction"]] for op, op_rows in by_op.items()}
        by_op = {op: op_rows for op, op_rows in by_op.items() if op_rows}
    runs = sorted({_run_label(r) for op_rows in by_op.values() for r in op_rows})
    title = ("time per logit against the class-axis width (median; lower is faster)" if quantity == "time"
             else "fraction of the memory roofline measured in the same row (higher is better)")
    figure, axes = _panels(plt, max(1, len(by_op)), title)
    if not by_op:
        axes[0].text(0.5, 0.5, "no rows for this plot in this run", ha="center", va="center")
        axes[0].set_axis_off()
    for axis, (op, op_rows) in zip(axes, sorted(by_op.items())):
        lines: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for row in op_rows:
            label = row["provider"] + (f" {row['dtype']}" if row.get("dtype", "float32") != "float32" else "")
            label += f" ({_run_label(row)})" if len(runs) > 1 else ""
            lines[label].append((int(row["shape"].split("x")[-1]), _width_value(row, quantity)))
        shapes = sorted({row["shape"] for row in op_rows})
        if len({width for points in lines.values() for width, _ in points}) > 1:
            _width_lines(axis, lines, quantity)
            axis.set_title(op, fontsize=9)
        else:
            _width_bars(axis, lines, quantity)
            axis.set_title(f"{op}, {' and '.join(shapes)} (one shape: no sweep)", fontsize=9)
        axis.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_memory(rows: list[Row], path: str) -> str:
    """Peak extra memory over the logits' size per provider, one group of bars per memory row."""
    plt = _pyplot()
    cases: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row["value"] and row["value_unit"] == "bytes":
            cases[f"{row['case']} {row['shape']} ({_run_label(row)})"][row["provider"]] = float(row["value"])
    figure, axes = _panels(plt, max(1, len(cases)), "peak extra resident memory of one call "
                           "(subprocess), over the logits' size")
    if not cases:
        axes[0].text(0.5, 0.5, "no memory rows in this run", ha="center", va="center")
        axes[0].set_axis_off()
    for axis, (case, values) in zip(axes, sorted(cases.items())):
        logits = values.get("logits", values.get("gradient"))  # "gradient": runs before the family's memory rows
        providers = [p for p in values if p not in ("logits", "gradient")]
        ratios = [values[p] / logits if logits else float("nan") for p in providers]
        bars = axis.barh(range(len(providers)), ratios, color=["C0" if "logitloss" in p else "C1" for p in providers])
        axis.bar_label(bars, labels=[f"{max(r, 0.0):.2f}x" for r in ratios], fontsize=7)  # -0.00x is noise
        axis.set_yticks(range(len(providers)), providers, fontsize=7)
        axis.axvline(1.0, color="black", linewidth=0.6)
        axis.set_xlabel("peak extra memory / logits' size", fontsize=8)
        axis.set_title(case, fontsize=8)
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_ratios(rows: list[Row], path: str) -> str:
    """One panel per row (case); one line per provider from 1 to its median time over the row's baseline, log
    scale, so lines right of 1 are slower than the baseline.  Runs side by side, labelled by timestamp."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    values: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    runs: list[str] = []
    titles: dict[str, str] = {}
    for row in rows:
        run = _run_label(row)
        if run not in runs:
            runs.append(run)
        if row["time_over_baseline"]:
            values[row["case"]][row["provider"]][run] = float(row["time_over_baseline"])
            titles[row["case"]] = (f"{row['case']}: {row['op']} {row['shape']} axis={row['axis']}, "
                                   f"load {row['load']} (vs {row['baseline']})")
    cases = list(values)
    figure, axes = _panels(plt, max(1, len(cases)), "median time / baseline median (log scale; > 1 is slower "
                           "than the baseline)", height=2.6)
    for axis, case in zip(axes, cases):
        providers = list(values[case])
        height = 0.8 / max(1, len(runs))  # vertical offset between runs
        for index, run in enumerate(runs):
            positions = [p + index * height for p in range(len(providers))]
            ratios = [values[case][p].get(run, float("nan")) for p in providers]
            line = axis.hlines(positions, 1.0, ratios, linewidth=3, label=run, color=f"C{index}")
            axis.plot(ratios, positions, "o", markersize=4, color=line.get_color()[0])
        axis.set_yticks([p + 0.4 - height / 2 for p in range(len(providers))], providers, fontsize=7)
        axis.set_xscale("log")
        finite = [v for p in providers for v in values[case][p].values() if math.isfinite(v) and v > 0]
        axis.set_xlim(min([0.5, *finite]) * 0.8, max([2.0, *finite]) * 1.25)
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.tick_params(labelsize=7)
        axis.axvline(1.0, color="black", linewidth=0.8)
        axis.set_title(titles[case], fontsize=8)
        axis.invert_yaxis()
    if len(runs) > 1:
        axes[0].legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _target_value(target: Any, row: dict[str, Row]) -> float | None:
    """A target's measured value from one run's history lines of its row (provider -> line)."""
    numerator, denominator = row.get(target.numerator), row.get(target.denominator)
    if numerator is None:
        return None
    if target.kind == "roofline":
        return float(numerator["roofline_fraction"]) if numerator.get("roofline_fraction") else None
    if denominator is None or not float(denominator["median"]):
        return None
    return float(numerator["median"]) / float(denominator["median"])


def plot_history(rows: list[Row], path: str, *, informational: bool = False) -> str:
    """One panel per target (``informational``: also those without a bound) with data: its value in each run of
    the history (in the order of the CSV), the bound as a dashed line, one colour per machine (CPU model and ISA)."""
    from .targets import TARGETS

    plt = _pyplot()
    runs = list(dict.fromkeys(row["run"] for row in rows))
    lines: dict[tuple[str, str], dict[str, Row]] = defaultdict(dict)  # (run, row) -> provider -> line
    machines: dict[str, str] = {}
    for row in rows:
        lines[(row["run"], row["row"])][row["provider"]] = row
        machines[row["run"]] = f"{row['machine']} {row['isa']}"
    panels = []
    for target in TARGETS:
        if target.informational and not informational:
            continue
        values = {run: _target_value(target, lines.get((run, target.case), {})) for run in runs}
        if any(value is not None for value in values.values()):
            panels.append((target, values))
    figure, axes = _panels(plt, max(1, len(panels)), "performance targets across the runs of the history "
                           "(dashed: the bound)", height=2.8)
    colours = {machine: f"C{index}" for index, machine in enumerate(dict.fromkeys(machines.values()))}
    for axis, (target, values) in zip(axes, panels):
        for machine, colour in colours.items():
            points = [(index, value) for index, (run, value) in enumerate(values.items())
                      if value is not None and machines[run] == machine]
            axis.plot([p[0] for p in points], [p[1] for p in points], "o-", color=colour, markersize=4, label=machine)
        if not target.informational:
            axis.axhline(target.required, color="black", linestyle="--", linewidth=0.8)
        axis.set_xticks(range(len(runs)), [run.removeprefix("2026-") for run in runs], rotation=60, fontsize=6)
        axis.set_title(f"{target.key} ({target.requirement()})", fontsize=8)
        axis.tick_params(axis="y", labelsize=7)
    if panels:
        axes[0].legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_plots(rows: Iterable[Row], directory: str) -> list[str]:
    """All of :data:`FIGURES` into ``directory``; returns their paths."""
    rows = list(rows)
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, name) for name in FIGURES]
    plot_width(rows, paths[0], quantity="time")
    plot_width(rows, paths[1], quantity="roofline")
    plot_memory(rows, paths[2])
    return paths
