"""Plot ``results.csv`` files written by ``python -m logitloss.bench --out DIR``.

    python bench/plot_results.py DIR/results.csv [MORE.csv ...] --out plot.png

One panel per row (case); one line per provider from 1 to its median time over the row's baseline (logitloss,
or the 1-thread call in thread rows), log scale, so lines right of 1 are slower than the baseline.  Several CSV files
(runs) are drawn side by side, labelled by their timestamp.  Needs matplotlib.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="+", help="results.csv files")
    parser.add_argument("--out", default="bench-results.png", help="image to write (default bench-results.png)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    # case -> provider -> run -> time over baseline
    values: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    runs: list[str] = []
    titles: dict[str, str] = {}
    for path in args.csv:
        with open(path, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                run = f"{row['timestamp_utc']} {row['mode']}"
                if run not in runs:
                    runs.append(run)
                if row["time_over_baseline"]:
                    values[row["case"]][row["provider"]][run] = float(row["time_over_baseline"])
                    titles[row["case"]] = (f"{row['case']}: {row['op']} {row['shape']} axis={row['axis']}, "
                                           f"load {row['load']} (vs {row['baseline']})")

    cases = list(values)
    columns = 2
    rows = math.ceil(len(cases) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 2.6 * rows), squeeze=False)
    for axis, case in zip(axes.flat, cases):
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
    for axis in list(axes.flat)[len(cases):]:
        axis.set_visible(False)
    if len(runs) > 1:
        axes.flat[0].legend(fontsize=6)
    figure.supxlabel("median time / baseline median (log scale; > 1 is slower than the baseline)")
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
