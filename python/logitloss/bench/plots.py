"""PNG plots of a run, from the long-format rows of ``results.csv`` (``report.csv_rows`` or the CSV files of
several runs; ``bench/plot_results.py`` is the command line for the latter).  Needs matplotlib.

- ``time_vs_width.png``: per op, nanoseconds per logit (median / elements) against the class-axis width C,
  one line per provider (the width-sweep rows ``sweep_*`` where the run has them, else every row of the op;
  binary cross-entropy, which has no class axis, is only in ``ratios.png``);
- ``roofline.png``: the same rows' fraction of the memory roofline measured in the row;
- ``memory.png``: peak extra memory of one call over the logits' size, per provider of each memory row;
- :func:`plot_ratios` (``bench/plot_results.py --out``, not drawn by the report: a few seconds for a full run):
  every row's providers as median time over the row's baseline (log scale), runs side by side.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

__all__ = ["FIGURES", "plot_memory", "plot_ratios", "plot_width", "write_plots"]

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


def plot_width(rows: list[Row], path: str, *, quantity: str) -> str:
    """``quantity`` "time": ns per logit against width; "roofline": fraction of the row's roofline."""
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
            width = int(row["shape"].split("x")[-1])
            if quantity == "time":
                value = float(row["median_s"]) / _elements(row["shape"]) * 1e9
            else:
                value = float(row["roofline_fraction"])
            lines[label].append((width, value))
        for index, (label, points) in enumerate(sorted(lines.items())):
            points.sort()
            style = "-" if "logitloss" in label else "--"
            axis.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", markersize=3,
                      label=label, color=f"C{index % 10}")
        axis.set_xscale("log")
        if quantity == "time":
            axis.set_yscale("log")
            axis.set_ylabel("ns per logit", fontsize=8)
        else:
            axis.set_ylabel("fraction of roofline", fontsize=8)
            axis.axhline(1.0, color="black", linewidth=0.6)
        axis.set_xlabel("width C (last axis)", fontsize=8)
        axis.set_title(op, fontsize=9)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6)
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


def write_plots(rows: Iterable[Row], directory: str) -> list[str]:
    """All of :data:`FIGURES` into ``directory``; returns their paths."""
    rows = list(rows)
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, name) for name in FIGURES]
    plot_width(rows, paths[0], quantity="time")
    plot_width(rows, paths[1], quantity="roofline")
    plot_memory(rows, paths[2])
    return paths
