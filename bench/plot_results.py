"""Plot ``results.csv`` files written by ``python -m logitloss.bench --out DIR``.

    python bench/plot_results.py DIR/results.csv [MORE.csv ...] --out plot.png
    python bench/plot_results.py DIR/results.csv [MORE.csv ...] --figures OUTDIR

``--out``: one panel per row (case); one line per provider from 1 to its median time over the row's baseline
(logitloss, or the 1-thread call in thread rows), log scale, so lines right of 1 are slower than the baseline.
Several CSV files (runs) are drawn side by side, labelled by their timestamp.  ``--figures``: the figures the
report draws (``logitloss.bench.plots``: time against width, roofline fraction, memory) for these runs.
Needs matplotlib.
"""

from __future__ import annotations

import argparse
import csv

from logitloss.bench.plots import plot_ratios, write_plots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="+", help="results.csv files")
    parser.add_argument("--out", default="bench-results.png", help="image to write (default bench-results.png)")
    parser.add_argument("--figures", metavar="DIR", help="write all the report's figures into DIR instead")
    args = parser.parse_args(argv)

    rows = []
    for path in args.csv:
        with open(path, encoding="utf-8", newline="") as handle:
            rows += list(csv.DictReader(handle))
    paths = write_plots(rows, args.figures) if args.figures else [plot_ratios(rows, args.out)]
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
