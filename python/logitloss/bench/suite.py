"""A run's cases and targets: :func:`build_suite` expands the table of rows (:mod:`~logitloss.bench.rows`) and the
table of targets (:mod:`~logitloss.bench.targets`) for the full run or ``--quick``.

A :class:`Case` is one op on one input with its providers; a target is a ratio of two medians measured in the
same case (so interleaved, in one run) with a required bound.  All rows are float32 but the ``*_f64`` rows (full
run only).

Units (bytes moved per call, 1 GB = 1e9 bytes):

- logsumexp reads the logits once and writes one value per slice: ``x.nbytes + result.nbytes``;
  its roofline is the read bandwidth of the same array (``harness.Roofline.read_gbps``).
- softmax / log_softmax read the logits once and write a result of the same size: ``2 * x.nbytes``;
  their roofline is the copy bandwidth of the same array (``harness.Roofline.copy_gbps``, also 2 bytes per byte).

- cross_entropy forward + backward (mean reduction, class-index targets) reads the logits once and writes the
  gradient once: ``2 * x.nbytes`` against the copy roofline (the targets are not counted); forward only reads
  the logits once: ``x.nbytes`` against the read roofline.
- binary_cross_entropy_with_logits (mean reduction, float32 0 / 1 targets of the logits' shape) forward reads
  the logits and the targets: ``2 * x.nbytes`` against the read roofline; forward + backward also writes the
  gradient: ``3 * x.nbytes`` against the copy roofline (weight and pos_weight of shape (C,) are not counted).
- the backward rows (``*_backward``, :mod:`~logitloss.bench.backward_providers`): logsumexp_backward reads the
  logits and writes the gradient, ``2 * x.nbytes``; softmax_backward and log_softmax_backward read the forward
  output and the upstream gradient and write the gradient, ``3 * x.nbytes``; copy roofline.
- the memory rows (``*_memory``, :mod:`~logitloss.bench.memory_rows`) are no timing: peak extra resident memory
  of one call in a fresh subprocess per provider, as a multiple of the logits' size.

Non-last class axes: ``*_axis0`` times axis 0 of the transposed copy of the (4096, 32000) logits next to
logitloss's last-axis call on the same data; ``cross_entropy_class_axis_1`` takes (N, C, H, W) logits.

The ``out=`` targets compare logitloss writing into a preallocated buffer with torch as users call it (a
fresh output); torch with ``out=`` is reported alongside for information.  (At 1 thread torch with ``out=``
already runs at about half the copy roofline, so no kernel can be 5x faster than it.)

The width sweep (``sweep_*``) times logsumexp, softmax, log_softmax and cross_entropy forward + backward at every
width of ``SWEEP_WIDTHS`` on the same number of logits per cell.

``--quick`` uses 512 rows instead of 4096 for the (4096, 32000) rows (66 MB instead of 524 MB: still larger than
the caches), a smaller sweep, no thread rows, fewer repeats and shorter warm-ups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .harness import Roofline, Timing
from .row_builders import Build, cross_entropy, standard
from .rows import (
    BOTH,
    CELL_CAP_LOGITS,
    FULL,
    QUICK,
    ROWS,
    SHAPES,
    SWEEP,
    SWEEP_BASELINES,
    SWEEP_CROSS_ENTROPY,
    Row,
)
from .targets import TARGETS, Target

__all__ = ["Case", "CaseResult", "Suite", "build_suite"]


@dataclass
class Case:
    key: str
    op: str
    shape: tuple[int, ...]  # shape of the array passed to the op
    axis: int
    build: Build
    baseline: str = "logitloss"  # the "time / baseline" column is provider median / baseline median
    title: str = ""
    layout: str = "C-contiguous"
    roofline: str | None = None  # "read" or "copy": show GB/s and fraction of that roofline
    check: bool = True  # compare each provider's first result with the float64 reference
    repeats: int | None = None  # overrides the suite's repeats
    number: int | None = None  # forces calls per sample (1: single calls)
    busy_core: bool = False  # run with a busy process pinned to the other core
    threads: int | None = None  # None: the run's --threads; 0: each provider sets its own
    note: str = ""
    # A row that measures values instead of times: returns ({name: value}, notes); ``build`` is not called.
    values: Callable[[], tuple[dict[str, float], list[str]]] | None = None
    value_unit: str = ""
    dtype: str = "float32"  # of the logits
    own_inputs: bool = False  # no later row uses its inputs: the run drops the cached inputs before this row

    def bytes_per_call(self) -> int:
        count = int(np.prod(self.shape))
        size = np.dtype(self.dtype).itemsize
        if self.values is not None:
            return 0
        if self.op.startswith("linear_cross_entropy"):  # matrix products, compute-bound: no bytes model
            return 0
        if self.op == "logsumexp":
            reduced = count // self.shape[self.axis]
            return size * (count + reduced)
        if self.op in ("cross_entropy", "fit_temperature", "expected_calibration_error"):  # read the logits once
            # (fit_temperature: once per pass)
            return size * count
        if self.op == "binary_cross_entropy_with_logits":  # forward only: read the logits and the targets
            return size * 2 * count
        if self.op in ("kl_div_fwd_bwd", "jsd_fwd_bwd"):  # read the student's and the teacher's logits, write the gradient
            return size * 3 * count
        if self.op == "binary_cross_entropy_with_logits_fwd_bwd":  # and write the gradient
            return size * 3 * count
        if self.op == "logsumexp_backward":  # read the logits, write the gradient
            return size * 2 * count
        if self.op in ("softmax_backward", "log_softmax_backward"):  # read output and upstream, write the gradient
            return size * 3 * count
        return size * 2 * count  # softmax, log_softmax, cross_entropy_fwd_bwd


@dataclass
class CaseResult:
    case: Case
    timings: dict[str, Timing]
    notes: list[str] = field(default_factory=list)
    roofline: Roofline | None = None
    threads: int = 1
    load: str = "none"
    seconds: float = 0.0
    other_load_cores: float | None = None  # cores other processes kept busy while the row ran
    values: dict[str, float] = field(default_factory=dict)  # rows with ``Case.values``

    def gbps(self, provider: str) -> float | None:
        timing = self.timings.get(provider)
        if timing is None or self.case.roofline is None:
            return None
        return self.case.bytes_per_call() / timing.median / 1e9

    def roofline_gbps(self) -> float | None:
        if self.roofline is None or self.case.roofline is None:
            return None
        return self.roofline.read_gbps if self.case.roofline == "read" else self.roofline.copy_gbps

    def roofline_fraction(self, provider: str) -> float | None:
        gbps, roof = self.gbps(provider), self.roofline_gbps()
        return None if gbps is None or roof is None else gbps / roof

    def time_ratio(self, provider: str) -> float | None:
        baseline = self.timings.get(self.case.baseline)
        timing = self.timings.get(provider)
        return None if baseline is None or timing is None else timing.median / baseline.median


@dataclass
class Suite:
    cases: list[Case]
    targets: list[Target]
    quick: bool
    big_shape: tuple[int, int]
    notes: list[str]
    warmup_time: float = 0.2  # seconds of warm-up calls per provider and row (harness.measure)


def _shape(name: str, quick: bool) -> tuple[int, ...]:
    shape = SHAPES[name]
    return shape[0 if quick else 1] if isinstance(shape[0], tuple) else shape  # type: ignore[return-value]


def _fill(text: str, quick: bool) -> str:
    """``text`` with ``{big}``, ``{big transposed}``, ``{backward}`` ... replaced by the run's shapes."""
    for name in SHAPES:
        text = text.replace("{" + name + "}", str(_shape(name, quick)))
    return text


def _case(row: Row, quick: bool) -> Case:
    shape = _shape(row.shape, quick)
    repeats = row.repeats[0 if quick else 1] if isinstance(row.repeats, tuple) else row.repeats
    made = row.build(row.op, shape, row.dtype, quick)
    return Case(row.key, row.op, shape, row.axis, made["build"], baseline=row.baseline,
                title=_fill(row.title.replace("{shape}", str(shape)), quick) + (row.quick_title if quick else ""),
                roofline=row.roofline, check=row.check, repeats=repeats, number=row.number, busy_core=row.busy_core,
                threads=row.threads, note=row.note, values=made.get("values"), value_unit=made.get("value_unit", ""),
                dtype=row.dtype)


def _sweep_cases(quick: bool) -> list[Case]:
    """One row per op and width C, (SWEEP.logits // C, C), logitloss (chosen ISA) against each peer, with the
    row's roofline: the data of ``time_vs_width.png`` and ``roofline.png``.  Each drops the inputs of the rows
    before it."""
    mode = 0 if quick else 1
    cases = []
    for op in SWEEP.ops[mode]:
        for width in SWEEP.widths[mode]:
            shape = (max(1, SWEEP.logits[mode] // width), width)
            if op == "cross_entropy_fwd_bwd":
                build = cross_entropy(variants=SWEEP_CROSS_ENTROPY)
            else:
                build = standard(baselines=SWEEP_BASELINES)
            name = op.replace("_fwd_bwd", " forward + backward")
            cases.append(Case(
                f"sweep_{op.removesuffix('_fwd_bwd')}_C{width}", op, shape, -1, build(op, shape, "float32", quick)["build"],
                title=f"width sweep: {name} {shape}", roofline="read" if op == "logsumexp" else "copy",
                check=op != "cross_entropy_fwd_bwd", repeats=SWEEP.repeats[mode], own_inputs=True))
    return cases


def _notes(quick: bool) -> list[str]:
    notes = ["Targets with out=: logitloss writing into a preallocated buffer vs torch called as users call it "
             "(fresh output); torch with out= as well is shown as (info)."]
    widths, logits = SWEEP.widths[0 if quick else 1], SWEEP.logits[0 if quick else 1]
    if quick:
        notes.append(
            "--quick: the (4096, 32000) rows run at (512, 32000) and the (32000, 4096) row at (32000, 512) "
            "(66 MB instead of 524 MB, still beyond the caches), with fewer repeats and shorter warm-ups; "
            f"the width sweep covers C = {', '.join(map(str, widths))} at {logits:,} logits "
            "per cell for logsumexp and cross_entropy only (in cache); one backward row (softmax, at (8192, 1000)); "
            "left out: the thread rows, logitloss forced to each ISA, the axis=0 rows (the class axis 1 of "
            "cross_entropy stays), the float64 rows and the memory rows but cross_entropy's.")
    else:
        notes.append(f"Width sweep (`sweep_*`): C = {', '.join(map(str, widths))} at {logits:,} logits per cell "
                     f"(rows = {logits:,} // C), 7 repeats; every cell stays below {CELL_CAP_LOGITS:,} logits.")
    return notes


def build_suite(quick: bool) -> Suite:
    """The cases (the rows of the table that belong to this mode, then the width sweep) and the targets."""
    mode = QUICK if quick else FULL
    cases = [_case(row, quick) for row in ROWS if row.modes in (BOTH, mode)]
    cases += _sweep_cases(quick)  # last: each sweep row drops the inputs of the rows before it
    assert all(np.prod(case.shape) <= CELL_CAP_LOGITS for case in cases)
    targets = [Target(**{**target.__dict__, "description": _fill(target.description, quick)}) for target in TARGETS]
    return Suite(cases, targets, quick, _shape("big", quick), _notes(quick), warmup_time=0.05 if quick else 0.2)
