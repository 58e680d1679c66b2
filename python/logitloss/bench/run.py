"""Runs a :class:`~logitloss.bench.suite.Suite`: thread setup, rooflines, busy core, progress display; then the
safety and accuracy tables (:mod:`~logitloss.bench.safety`, :mod:`~logitloss.bench.accuracy`)."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from . import harness
from .accuracy import AccuracyResult, run_accuracy
from .checks import REFERENCE_SOURCE, check_result
from .harness import OTHER_LOAD_THRESHOLD_CORES, Roofline
from .history import code_commit
from .inputs import InputCache
from .safety import SafetyResult, run_safety
from .suite import Case, CaseResult, Suite
from .targets import TargetResult, evaluate_targets

__all__ = ["RunResult", "run_suite"]


@dataclass
class RunResult:
    suite: Suite
    machine: dict[str, Any]
    config: dict[str, Any]
    cases: list[CaseResult]
    rooflines: list[Roofline]
    targets: list[TargetResult]
    notes: list[str] = field(default_factory=list)
    safety: SafetyResult | None = None
    accuracy: AccuracyResult | None = None


class _Progress:
    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total, self.index = stream, total, 0

    def start(self, title: str) -> float:
        self.index += 1
        self.stream.write(f"[{self.index:2d}/{self.total}] {title} ")
        self.stream.flush()
        return time.perf_counter()

    def tick(self, text: str = ".") -> None:
        self.stream.write(text)
        self.stream.flush()

    def done(self, started: float, extra: str = "") -> float:
        seconds = time.perf_counter() - started
        self.stream.write(f" {seconds:.1f} s{extra}\n")
        self.stream.flush()
        return seconds


def _busy_core_index() -> int:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    return cores[-1]


def run_suite(
    suite: Suite,
    *,
    threads: int = 1,
    repeats: int | None = None,
    only: list[str] | None = None,
    stream: TextIO = sys.stderr,
    command: str = "",
    wait_quiet: float = 0.0,
    numerics: bool = True,
) -> RunResult:
    """Run the cases of ``suite`` whose key matches one of the ``only`` glob patterns (all if None), then (if
    ``numerics``) the safety and accuracy tables, which ``only`` does not filter.

    ``wait_quiet > 0``: before each row wait up to that many seconds for other processes to leave the CPU
    (at most ``OTHER_LOAD_THRESHOLD_CORES`` over a 1-second sample).
    """
    repeats = repeats if repeats is not None else (3 if suite.quick else 11)
    cases = [c for c in suite.cases if not only or any(fnmatch.fnmatch(c.key, p) for p in only)]
    notes = harness.set_threads(threads)
    machine = harness.machine_info(threads)
    config = {
        "mode": "quick" if suite.quick else "full",
        "threads": threads,
        "repeats": repeats,
        "command": command,
        "commit": code_commit(),
        "cases": [c.key for c in cases],
        "check_reference": REFERENCE_SOURCE,
        "wait_quiet_seconds": wait_quiet,
        "warmup_seconds": suite.warmup_time,
    }
    inputs = InputCache()
    results: list[CaseResult] = []
    progress = _Progress(stream, len(cases) + (2 if numerics else 0))
    stream.write(
        f"logitloss bench ({config['mode']}): {len(cases)} rows, {repeats} interleaved repeats, "
        f"{threads} thread(s), ISA {machine.get('logitloss_isa')}\n"
    )
    for case in cases:
        if case.own_inputs:
            inputs.clear()
        started = progress.start(case.title or case.key)
        waited = ""
        if wait_quiet > 0:
            seconds, cores = harness.wait_for_quiet(OTHER_LOAD_THRESHOLD_CORES, wait_quiet)
            if seconds > 1.5:
                gave_up = cores is not None and cores > OTHER_LOAD_THRESHOLD_CORES
                waited = f"waited {seconds:.0f} s for a quiet CPU" + (" (gave up)" if gave_up else "")
                progress.tick(f"({waited}) ")
        result = _run_case(case, inputs, threads, repeats, progress, suite.warmup_time)
        if waited:
            result.notes.append(waited)
        load = "" if result.other_load_cores is None else f", other processes {result.other_load_cores:.2f} cores"
        result.seconds = progress.done(started, f" ({len(result.timings)} providers{load})")
        results.append(result)
    by_key = {r.case.key: r for r in results}
    targets = evaluate_targets([t for t in suite.targets if t.case in by_key], by_key, threads)
    rooflines = [r.roofline for r in results if r.roofline is not None]
    inputs.clear()
    safety = accuracy = None
    if numerics:
        started = progress.start("safety table: adversarial inputs x kernels x providers vs mpmath")
        safety = run_safety(on_entry=lambda _: progress.tick())
        progress.done(started)
        started = progress.start("accuracy table: random logits vs mpmath")
        accuracy = run_accuracy(suite.quick, on_step=lambda _: progress.tick())
        progress.done(started)
    return RunResult(suite, machine, config, results, rooflines, targets, notes, safety, accuracy)


def _run_case(
    case: Case,
    inputs: InputCache,
    threads: int,
    repeats: int,
    progress: _Progress,
    warmup_time: float,
) -> CaseResult:
    notes: list[str] = []
    case_threads = threads if case.threads is None else case.threads
    if case.values is not None:  # a row of measured values (peak memory), not of times
        meter = harness.CpuLoadMeter()
        with meter:
            try:
                values, value_notes = case.values()
            except Exception as error:
                return CaseResult(case, {}, [f"row not measured: {type(error).__name__}: {error}"],
                                  threads=case_threads)
        progress.tick()
        return CaseResult(case, {}, notes + value_notes, threads=case_threads, other_load_cores=meter.cores,
                          values=values)
    try:
        x, providers, build_notes = case.build(inputs)
    except Exception as error:
        return CaseResult(case, {}, [f"row not built: {type(error).__name__}: {error}"], threads=case_threads)
    notes += build_notes
    if not providers:
        return CaseResult(case, {}, notes, None, threads=case_threads)
    # The roofline probes of this row's array run interleaved with its providers: same machine state.
    probes = harness.roofline_providers(x) if case.roofline is not None else []
    check = (lambda result: check_result(case.op, x, case.axis, result)) if case.check else None
    load = "none"
    busy: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if case.busy_core:
        core = _busy_core_index()
        busy = harness.busy_core(core)
        load = f"busy process pinned to core {core}"
    meter = harness.CpuLoadMeter()
    with meter, busy:
        timings = harness.measure(
            providers + probes,
            repeats=case.repeats or repeats,
            number=case.number,
            warmup_time=warmup_time,
            check=check,
            notes=notes,
            on_round=lambda _: progress.tick(),
        )
    label = f"{case.key} {tuple(x.shape)}"
    roofline = harness.roofline_from_timings(timings, x.nbytes, label) if probes else None
    # The busy-core process is ours (a child): CpuLoadMeter counts it as our own time, not as other load.
    return CaseResult(case, timings, notes, roofline, threads=case_threads, load=load,
                      other_load_cores=meter.cores)
