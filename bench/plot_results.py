"""Plot ``results.csv`` files written by ``python -m logitloss.bench --out DIR``, or the history of the runs.

    python bench/plot_results.py DIR/results.csv [MORE.csv ...] --out plot.png
    python bench/plot_results.py DIR/results.csv [MORE.csv ...] --figures OUTDIR
    python bench/plot_results.py --history bench/results/history.csv --out history.png [--informational]

``--out``: one panel per row (case); one line per provider from 1 to its median time over the row's baseline
(logitloss, or the 1-thread call in thread rows), log scale, so lines right of 1 are slower than the baseline.
Several CSV files (runs) are drawn side by side, labelled by their timestamp.  ``--figures``: the figures the
report draws (``logitloss.bench.plots``: time against width, roofline fraction, memory) for these runs.
``--history``: each performance target's value in every run of the history CSV (``logitloss.bench.history``:
the headline rows every run appends with ``--history``), its bound dashed, one colour per machine;
``--informational`` adds the targets without a bound.  Needs matplotlib.
"""

from __future__ import annotations

import argparse
import csv

from logitloss.bench.plots import plot_history, plot_ratios, write_plots


def _read(paths: list[str]) -> list[dict[str, str]]:
    rows = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="*", help="results.csv files")
    parser.add_argument("--out", default="bench-results.png", help="image to write (default bench-results.png)")
    parser.add_argument("--figures", metavar="DIR", help="write all the report's figures into DIR instead")
    parser.add_argument("--history", metavar="CSV", help="plot the targets across the runs of this history CSV")
    parser.add_argument("--informational", action="store_true", help="with --history: targets without a bound too")
    args = parser.parse_args(argv)
    if bool(args.history) == bool(args.csv):
        parser.error("give results.csv files or --history CSV")

    if args.history:
        paths = [plot_history(_read([args.history]), args.out, informational=args.informational)]
    elif args.figures:
        paths = write_plots(_read(args.csv), args.figures)
    else:
        paths = [plot_ratios(_read(args.csv), args.out)]
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
