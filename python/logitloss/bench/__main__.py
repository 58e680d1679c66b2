"""``python -m logitloss.bench [--quick] [--threads N] [--out DIR] [--only PATTERN ...]``

Runs the benchmark rows of logitloss against NumPy, SciPy and torch, then the safety and accuracy tables against
the exact references of ``logitloss.testing``; prints ``report.md``, ``safety.md`` and ``accuracy.md`` (or writes them, the PNG plots,
``results.csv`` and ``results.json`` into ``--out``) and exits 0 whether targets pass or not (``--strict``: exit
1 when a target fails).  Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from .history import append_history, history_rows
from .report import markdown, numerics_markdown, results_json, write_all
from .run import run_suite
from .suite import build_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logitloss.bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true",
                        help="smaller (512, 32000) instead of (4096, 32000) rows, a smaller width sweep, 3 repeats, "
                             "no thread rows: under a minute")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for logitloss and torch in the main rows (default 1; the targets assume 1)")
    parser.add_argument("--out", metavar="DIR", help="write report.md, safety.md, accuracy.md, the PNG plots, "
                        "results.csv and results.json here")
    parser.add_argument("--history", metavar="CSV", help="append this run's headline rows (the providers each target "
                        "compares) to CSV, e.g. bench/results/history.csv (the run is named after --out)")
    parser.add_argument("--repeats", type=int, help="interleaved repeats per row (default 11, --quick 3)")
    parser.add_argument("--only", nargs="+", metavar="PATTERN",
                        help="run only the rows whose key matches one of these globs (see --list)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each row wait up to SECONDS for other processes to leave the CPU "
                             "(for shared machines; each row reports the load it ran under either way)")
    parser.add_argument("--timing-only", action="store_true",
                        help="skip the safety and accuracy tables (they run whatever --only selects)")
    parser.add_argument("--list", action="store_true", help="list the row keys and targets, then exit")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target fails")
    parser.add_argument("--dask", action="store_true",
                        help="only the logitloss.dask rows (bench/dask_rows.py): a LocalCluster of 2 processes, "
                             "(8192, 128256) float32 logits, about 17 GB of memory; writes dask.md into --out")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")

    if args.dask:
        from .dask_rows import run_dask_rows

        section = run_dask_rows(repeats=args.repeats or 3)
        if args.out:
            import pathlib

            pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
            (pathlib.Path(args.out) / "dask.md").write_text(section)
        print(section)
        return 0

    suite = build_suite(quick=args.quick)
    if args.list:
        for case in suite.cases:
            print(f"{case.key:28s} {'x'.join(map(str, case.shape)):>14s}  {case.title}")
        print()
        for target in suite.targets:
            print(f"{target.key:28s} {target.requirement():8s} {target.description}")
        return 0

    arguments = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python -m logitloss.bench", *(shlex.quote(a) for a in arguments)])
    run = run_suite(suite, threads=args.threads, repeats=args.repeats, only=args.only, command=command,
                    wait_quiet=args.wait_quiet, numerics=not args.timing_only)
    if args.out:
        for path in write_all(run, args.out):
            print(f"wrote {path}", file=sys.stderr)
    else:
        print("\n\n".join([markdown(run), *numerics_markdown(run).values()]))
    if args.history:
        name = os.path.basename(os.path.normpath(args.out)) if args.out else run.machine["timestamp_utc"]
        append_history(args.history, history_rows(results_json(run), name))
        print(f"appended to {args.history}", file=sys.stderr)
    summary = ", ".join(f"{t.target.key} {t.measured_text()} {t.status.split()[0]}" for t in run.targets)
    print(f"targets: {summary or 'none run'}", file=sys.stderr)
    failed = any(t.status.startswith("FAIL") for t in run.targets)
    return 1 if (args.strict and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
