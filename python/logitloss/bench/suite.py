"""The benchmark rows of logitloss and the performance targets they prove.

A :class:`Case` is one op on one input with its providers; a :class:`Target` is a ratio of two medians
measured in the same case (so interleaved, in one run) with a required bound.  All rows are float32 but the
``*_f64`` rows (full run only).

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

``build_suite(quick)`` returns the cases and targets; ``--quick`` uses 512 rows instead of 4096 for the
(4096, 32000) rows (66 MB instead of 524 MB: still larger than the caches), a smaller sweep, no thread rows,
fewer repeats and shorter warm-ups.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from . import providers as _providers
from .providers import OPS
from .backward_providers import backward_providers
from .harness import Provider, Roofline, Timing
from .inputs import InputCache
from .memory_rows import memory_values
from .references import check_result

# A row during which other processes kept more than this many cores busy is flagged in the report.
OTHER_LOAD_THRESHOLD_CORES = 0.25

__all__ = [
    "OTHER_LOAD_THRESHOLD_CORES",
    "Case",
    "CaseResult",
    "Suite",
    "Target",
    "TargetResult",
    "build_suite",
    "evaluate_targets",
]


@dataclass
class Case:
    key: str
    op: str
    shape: tuple[int, ...]  # shape of the array passed to the op
    axis: int
    build: Callable[[InputCache], tuple[np.ndarray, list[Provider], list[str]]]
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
        if self.op == "logsumexp":
            reduced = count // self.shape[self.axis]
            return size * (count + reduced)
        if self.op == "cross_entropy":  # forward only: read the logits once
            return size * count
        if self.op == "binary_cross_entropy_with_logits":  # forward only: read the logits and the targets
            return size * 2 * count
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
class Target:
    key: str
    description: str
    case: str
    kind: str  # "ratio": median(numerator) / median(denominator); "roofline": fraction of roofline;
    #            "value": values[numerator] / values[denominator] of a values row
    numerator: str  # provider
    denominator: str = ""  # provider (ratio only)
    required: float = 1.0
    at_least: bool = True  # measured >= required (else <=)
    informational: bool = False  # reported, no requirement

    def requirement(self) -> str:
        if self.informational:
            return "(info)"
        unit = "%" if self.kind == "roofline" else "x"
        value = f"{self.required * 100:.0f}%" if unit == "%" else f"{self.required:g}x"
        return (">= " if self.at_least else "<= ") + value


@dataclass
class TargetResult:
    target: Target
    measured: float | None
    status: str  # PASS, FAIL, or "n/a (...)"
    detail: str = ""

    def measured_text(self) -> str:
        if self.measured is None:
            return "n/a"
        if self.target.kind == "roofline":
            return f"{self.measured * 100:.1f}%"
        if self.target.kind == "value":
            return f"{self.measured:.3f}x"
        return f"{self.measured:.2f}x"


@dataclass
class Suite:
    cases: list[Case]
    targets: list[Target]
    quick: bool
    big_shape: tuple[int, int]
    notes: list[str]
    warmup_time: float = 0.2  # seconds of warm-up calls per provider and row (harness.measure)


# --- case builders ----------------------------------------------------------------------------------------


def _standard(
    op: str, shape: tuple[int, ...], *, isas: bool, out: bool, in_place: bool = False,
    baselines: tuple[str, ...] = _providers.BASELINES, dtype: str = "float32",
) -> Callable[[InputCache], tuple[np.ndarray, list[Provider], list[str]]]:
    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        providers, notes = _providers.all_providers(op, x, -1, isas=isas, out=out, in_place=in_place,
                                                    baselines=baselines)
        return x, providers, notes

    return build


def _axis0(
    op: str, shape_last_axis: tuple[int, int], *, isas: bool = False,
) -> Callable[[InputCache], tuple[np.ndarray, list[Provider], list[str]]]:
    """``op`` over axis 0 of the transposed copy, with logitloss's last-axis call on the same data alongside
    (``out=`` buffers for softmax and log_softmax, so the two layouts time the kernel, not page faults)."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x_last = inputs.logits(shape_last_axis)
        x_first = inputs.logits_transposed(shape_last_axis)
        out = op != "logsumexp"
        providers, notes = _providers.logitloss_providers(op, x_first, 0, isas=isas, out=out)
        last, last_notes = _providers.logitloss_providers(op, x_last, -1, out=out, fresh=not out,
                                                          name="logitloss last axis")
        for provider in last:  # its result is the transpose of the row's: checked as such
            provider.check = lambda result: check_result(op, x_first, 0, np.asarray(result).T)
        providers += last
        notes += last_notes
        for baseline in ("torch", "jax", "numpy", "scipy"):
            more, more_notes = _providers.all_providers(op, x_first, 0, baselines=(baseline,))
            providers += [p for p in more if not p.name.startswith("logitloss")]
            notes += more_notes
        return x_first, providers, notes

    return build


def _backward(op: str, shape: tuple[int, int]) -> Callable[[InputCache], tuple[np.ndarray, list[Provider], list[str]]]:
    """The backward modes of ``op`` over the last axis (``backward_providers``)."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape)
        providers, notes = backward_providers(op, x, -1)
        return x, providers, notes

    return build


def _cross_entropy_class_axis_1(
    shape: tuple[int, int, int, int],
) -> Callable[[InputCache], tuple[np.ndarray, list[Provider], list[str]]]:
    """cross_entropy of (N, C, H, W) logits, class axis 1, index targets (N, H, W): segmentation's layout."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        n, classes, height, width = shape
        x = inputs.logits(shape)
        y = inputs.targets(n * height * width, classes).reshape(n, height, width)
        providers, notes = _providers.cross_entropy_providers(
            x, y, variants=("logitloss", "logitloss grad_out=", "torch", "jax"))
        return x, providers, notes + ["numpy stable: not timed, its code here is for (N, C) logits"]

    return build


@contextlib.contextmanager
def _logitloss_threads(threads: int) -> Iterator[None]:
    import logitloss

    previous = logitloss.get_num_threads()
    logitloss.set_num_threads(threads)
    try:
        yield
    finally:
        logitloss.set_num_threads(previous)


def _thread_scaling(shape: tuple[int, int]) -> Callable[[InputCache], tuple[np.ndarray, list[Provider], list[str]]]:
    """logitloss logsumexp with 1 and with 2 threads; each sample is one call after one untimed call."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape)
        base, notes = _providers.logitloss_providers("logsumexp", x, -1)
        if not base:
            return x, [], notes
        try:
            import logitloss

            logitloss.get_num_threads()
        except Exception as error:
            return x, [], [f"logitloss.get_num_threads(): {type(error).__name__}: {error}; thread rows skipped"]
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if cores < 2:
            return x, [], [f"only {cores} core available; thread rows skipped"]
        fn = base[0].fn
        providers = [
            Provider(
                f"logitloss {n} thread{'s' if n > 1 else ''}",
                fn,
                context=lambda n=n: _logitloss_threads(n),
                setup=fn,
                isa=base[0].isa,
                threads=n,
            )
            for n in (1, 2)
        ]
        return x, providers, notes

    return build


def _cross_entropy(
    shape: tuple[int, int], *, backward: bool = True, variants: tuple[str, ...] = _providers.CROSS_ENTROPY_VARIANTS,
    options_variant: bool = False, dtype: str = "float32", probabilities: bool = False,
) -> Callable[[InputCache], tuple[np.ndarray, list[Provider], list[str]]]:
    """cross_entropy providers (``providers.cross_entropy_providers``) on ``shape``, class-index targets or
    (``probabilities``) probability targets of the logits' shape; ``options_variant`` adds ``logitloss grad_out=
    smoothing+weight`` (label_smoothing=0.1 and class weights, into a buffer)."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        y = inputs.probability_targets(*shape) if probabilities else inputs.targets(*shape)
        providers, notes = _providers.cross_entropy_providers(x, y, backward=backward, variants=variants)
        if options_variant:
            more, more_notes = _providers.cross_entropy_providers(
                x, y, variants=("logitloss grad_out=",), weight=inputs.class_weights(shape[1]),
                label_smoothing=0.1, suffix=" smoothing+weight")
            providers += more
            notes += more_notes
        return x, providers, notes

    return build


def _binary_cross_entropy(
    shape: tuple[int, ...], *, backward: bool = True,
    variants: tuple[str, ...] = _providers.BINARY_CROSS_ENTROPY_VARIANTS, weighted: bool = False,
    unweighted_variant: bool = False, dtype: str = "float32",
) -> Callable[[InputCache], tuple[np.ndarray, list[Provider], list[str]]]:
    """binary_cross_entropy_with_logits providers (``providers.binary_cross_entropy_providers``) on ``shape``
    with 0 / 1 targets; ``weighted``: ``weight`` and ``pos_weight`` of shape (C,) (the last axis) for every
    provider; ``unweighted_variant`` adds ``logitloss no weights`` (return_grad=True without them)."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        y = inputs.binary_targets(shape).astype(dtype, copy=False)
        weight = inputs.class_weights(shape[-1]) if weighted else None
        pos_weight = inputs.positive_weights(shape[-1]) if weighted else None
        providers, notes = _providers.binary_cross_entropy_providers(
            x, y, backward=backward, variants=variants, weight=weight, pos_weight=pos_weight)
        if unweighted_variant:
            more, more_notes = _providers.binary_cross_entropy_providers(x, y, variants=("logitloss",),
                                                                         suffix=" no weights")
            providers += more
            notes += more_notes
        return x, providers, notes

    return build


# The class-axis widths of the width sweep (classification to large language-model vocabularies) and the logits
# per sweep cell: full 2**24 (67 MB of float32: beyond the caches, far below the 2**27 cap of every cell),
# --quick 2**21 on fewer widths and ops.
SWEEP_WIDTHS = (10, 1000, 32000, 50257, 128256, 262144)
SWEEP_LOGITS = 2**24
QUICK_SWEEP_WIDTHS = (10, 32000, 262144)
QUICK_SWEEP_LOGITS = 2**21
CELL_CAP_LOGITS = 2**27


# NumPy naive is left out of the sweep (it costs what NumPy stable costs, and the sweep is the run's largest block).
_SWEEP_BASELINES = ("numpy", "scipy", "torch", "jax")


def _sweep_cases(quick: bool) -> list[Case]:
    """One row per op and width C, (SWEEP_LOGITS // C, C), logitloss (chosen ISA) against each peer, with the
    row's roofline: the data of ``time_vs_width.png`` and ``roofline.png``."""
    widths = QUICK_SWEEP_WIDTHS if quick else SWEEP_WIDTHS
    logits = QUICK_SWEEP_LOGITS if quick else SWEEP_LOGITS
    ops = ("logsumexp", "cross_entropy_fwd_bwd") if quick else ("logsumexp", "softmax", "log_softmax",
                                                                  "cross_entropy_fwd_bwd")
    cases = []
    for op in ops:
        for width in widths:
            shape = (max(1, logits // width), width)
            if op == "cross_entropy_fwd_bwd":
                build = _cross_entropy(shape, variants=("logitloss", "torch", "jax", "numpy stable"))
            else:
                build = _standard(op, shape, isas=False, out=False, baselines=_SWEEP_BASELINES)
            cases.append(Case(
                f"sweep_{op.removesuffix('_fwd_bwd')}_C{width}", op, shape, -1, build,
                title=f"width sweep: {op.replace('_fwd_bwd', ' forward + backward')} ({shape[0]}, {width})",
                roofline="read" if op == "logsumexp" else "copy", check=op != "cross_entropy_fwd_bwd",
                repeats=None if quick else 7, own_inputs=True,
            ))
    return cases


# --- the suite --------------------------------------------------------------------------------------------


def build_suite(quick: bool) -> Suite:
    rows = 512 if quick else 4096
    vocab = 32000
    big = (rows, vocab)
    mid = (8192, 1000)
    tiny = (32, 10)
    big_text = f"({rows}, {vocab})"
    every_isa = not quick  # logitloss forced to each ISA in the main rows: full run only
    backward_shape = mid if quick else big
    few_repeats = None if quick else 5  # rows of 7 or more providers of 524 MB each: the full run's time budget
    segmentation = (2, 150, 128, 128) if quick else (8, 150, 128, 128)  # ADE20K's 150 classes
    memory_shape = bce_memory_shape = (16384, 1024)  # 67 MB of float32: far above the noise of RSS
    memory_note = ("Peak extra resident memory of one call, each provider in a fresh subprocess (C++ allocations "
                   "count): ru_maxrss after the call - max(ru_maxrss, RSS) before it; the input is made in float32 "
                   "in the child, libraries warmed up on 8 rows (JAX: compiled for this shape ahead of time), "
                   "1 thread; a fresh result counts. `logits` = x.nbytes, the unit of the ratios.")
    notes: list[str] = [
        "Targets with out=: logitloss writing into a preallocated buffer vs torch called as users call it "
        "(fresh output); torch with out= as well is shown as (info).",
    ]
    if quick:
        notes.append(
            "--quick: the (4096, 32000) rows run at (512, 32000) and the (32000, 4096) row at (32000, 512) "
            "(66 MB instead of 524 MB, still beyond the caches), with fewer repeats and shorter warm-ups; "
            f"the width sweep covers C = {', '.join(map(str, QUICK_SWEEP_WIDTHS))} at {QUICK_SWEEP_LOGITS:,} logits "
            "per cell for logsumexp and cross_entropy only (in cache); one backward row (softmax, at (8192, 1000)); "
            "left out: the thread rows, logitloss forced to each ISA, the axis=0 rows (the class axis 1 of "
            "cross_entropy stays), the float64 rows and the memory rows but cross_entropy's."
        )
    else:
        notes.append(
            f"Width sweep (`sweep_*`): C = {', '.join(map(str, SWEEP_WIDTHS))} at {SWEEP_LOGITS:,} logits per cell "
            f"(rows = {SWEEP_LOGITS:,} // C), 7 repeats; every cell stays below {CELL_CAP_LOGITS:,} logits."
        )
    load = "with a busy process pinned to the other core"
    in_place_forward_note = ("`logitloss out=input`: written over a private copy of x, restored with np.copyto before "
                             "each sample (outside the timing). `logitloss`: a new result, in the previous sample's "
                             "dropped one (output reuse, the default); `logitloss reuse off`: in fresh pages, their "
                             "page faults timed, as torch's are.")
    cases = [
        Case("logsumexp_big", "logsumexp", big, -1, _standard("logsumexp", big, isas=every_isa, out=False),
             title=f"logsumexp {big_text}, axis=-1", roofline="read"),
        Case("logsumexp_mid", "logsumexp", mid, -1, _standard("logsumexp", mid, isas=every_isa, out=False),
             title="logsumexp (8192, 1000), axis=-1", roofline="read"),
        Case("logsumexp_tiny", "logsumexp", tiny, -1, _standard("logsumexp", tiny, isas=False, out=False),
             title="logsumexp (32, 10), axis=-1 (per-call time)"),
        Case("softmax_big", "softmax", big, -1, _standard("softmax", big, isas=every_isa, out=True, in_place=True),
             title=f"softmax {big_text}, axis=-1", roofline="copy", note=in_place_forward_note),
        Case("log_softmax_big", "log_softmax", big, -1,
             _standard("log_softmax", big, isas=every_isa, out=True, in_place=True),
             title=f"log_softmax {big_text}, axis=-1", roofline="copy", note=in_place_forward_note),
        Case("softmax_mid", "softmax", mid, -1, _standard("softmax", mid, isas=False, out=True),
             title="softmax (8192, 1000), axis=-1", roofline="copy"),
        Case("log_softmax_mid", "log_softmax", mid, -1, _standard("log_softmax", mid, isas=False, out=True),
             title="log_softmax (8192, 1000), axis=-1", roofline="copy"),
        Case("softmax_tiny", "softmax", tiny, -1, _standard("softmax", tiny, isas=False, out=False),
             title="softmax (32, 10), axis=-1 (per-call time)"),
        Case("log_softmax_tiny", "log_softmax", tiny, -1, _standard("log_softmax", tiny, isas=False, out=False),
             title="log_softmax (32, 10), axis=-1 (per-call time)"),
    ]
    cases += [  # --quick: the class axis 1 of cross_entropy stands for the non-last axes
        Case(f"{op}_axis0", op, big[::-1], 0, _axis0(op, big, isas=every_isa and op == "logsumexp"),
             title=f"{op} ({vocab}, {rows}), axis=0 (same data as {big_text}, axis=-1)",
             roofline="read" if op == "logsumexp" else "copy", repeats=few_repeats,
             note="" if op == "logsumexp" else "logitloss and its last-axis call with out= buffers; the other "
                                                "providers as users call them.")
        for op in (() if quick else _providers.OPS)
    ]
    cases += [
        Case(f"{op}_backward", f"{op}_backward", backward_shape, -1, _backward(op, backward_shape),
             title=f"{op} backward and forward + backward {backward_shape}, axis=-1", roofline="copy", check=False,
             repeats=few_repeats,
             baseline="logitloss backward only",
             note=("Upstream gradient: ones of the result's shape (the gradient of sum(logsumexp))"
                   if op == "logsumexp" else "Upstream gradient: N(0, 1) of x's shape") +
                  "; bytes moved are those of the backward pass alone (" +
                  ("reads x, writes the gradient" if op == "logsumexp" else "reads the forward output and the "
                   "upstream gradient, writes the gradient") + "). `backward only`: logitloss's "
                  f"`{op}_backward`, torch.autograd.grad on a prebuilt graph, the pullback of jax.vjp, NumPy's "
                  "formula; `forward + backward`: " + ("logitloss.logsumexp(x, return_grad=True), one fused pass"
                                                        if op == "logsumexp" else f"logitloss.{op} then "
                                                        f"logitloss.{op}_backward (no fused call)") +
                  ", torch's .backward(g), jax.vjp in one jitted function, NumPy's forward then its formula.")
        for op in (("softmax",) if quick else _providers.OPS)  # --quick: one backward row
    ]
    cases += [
        Case(f"{op}_memory", op, memory_shape, -1, lambda inputs: (np.empty(0), [], []),
             title=f"{op} ({memory_shape[0]}, {memory_shape[1]}), axis=-1: peak extra memory",
             values=memory_values(op, memory_shape), value_unit="bytes", check=False, note=memory_note)
        for op in (() if quick else _providers.OPS)  # a subprocess per provider: --quick measures cross_entropy
    ]
    inplace_note = ("`logitloss grad_out=input`: in place on a private copy of x, restored with np.copyto before "
                    "each call (outside the timing), so every call sees the original logits; single calls "
                    "(calls/sample = 1) for every provider of the row.")
    cases += [
        Case("cross_entropy_big", "cross_entropy_fwd_bwd", big, -1, _cross_entropy(big),
             title=f"cross_entropy forward + backward {big_text}" + (" (--quick; targets at (4096, 32000))"
                                                                     if quick else ""),
             roofline="copy", check=False, number=1, repeats=5 if quick else None,
             note=inplace_note + " `logitloss`: return_grad=True (a new gradient, in the previous sample's dropped one: "
                  "output reuse); `logitloss reuse off`: the same in fresh pages, their page faults timed; "
                  "`torch`: z = torch.from_numpy(x).requires_grad_(); F.cross_entropy(z, y).backward(); z.grad."),
        Case("cross_entropy_mid", "cross_entropy_fwd_bwd", mid, -1,
             _cross_entropy(mid, variants=("logitloss", "logitloss grad_out=", "torch", "jax", "numpy stable"),
                            options_variant=True),
             title="cross_entropy forward + backward (8192, 1000)", roofline="copy", check=False,
             note="`smoothing+weight`: label_smoothing=0.1 and class weights of shape (1000,), gradient into a "
                  "preallocated buffer like `logitloss grad_out=`."),
        Case("cross_entropy_mid_probabilities", "cross_entropy_fwd_bwd", mid, -1,
             _cross_entropy(mid, options_variant=True, probabilities=True),
             title="cross_entropy forward + backward (8192, 1000), probability targets", roofline="copy",
             check=False, number=1,
             note="Targets: float32 rows of probabilities of the logits' shape (softmax of 2 N(0, 1)); `numpy "
                  "stable`: -mean(sum(y * log_softmax)) and (softmax - y) / N; `smoothing+weight` as in the "
                  "(8192, 1000) index-target row. Bytes moved count the logits and the gradient only. "
                  + inplace_note),
        Case("cross_entropy_forward_big", "cross_entropy", big, -1,
             _cross_entropy(big, backward=False, variants=("logitloss", "torch", "jax", "numpy stable")),
             title=f"cross_entropy forward only {big_text}" + (" (--quick)" if quick else ""),
             roofline="read", check=False,
             note="`torch`: F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y)), no autograd."),
        Case("cross_entropy_tiny", "cross_entropy_fwd_bwd", tiny, -1,
             _cross_entropy(tiny, variants=("logitloss", "logitloss grad_out=", "torch", "jax", "numpy stable")),
             title="cross_entropy forward + backward (32, 10) (per-call time)", check=False),
        Case("cross_entropy_memory", "cross_entropy_fwd_bwd", big, -1, lambda inputs: (np.empty(0), [], []),
             title=f"cross_entropy forward + backward {big_text}: peak extra memory" +
                   (" (--quick)" if quick else ""),
             values=memory_values("cross_entropy", big), value_unit="bytes", check=False, note=memory_note),
        Case("cross_entropy_class_axis_1", "cross_entropy_fwd_bwd", segmentation, 1,
             _cross_entropy_class_axis_1(segmentation),
             title=f"cross_entropy forward + backward {segmentation}, class axis 1 (segmentation layout)",
             roofline="copy", check=False,
             note="Index targets (N, H, W); logitloss reduces the class axis in place (no transposed copy); torch "
                  "and jax take the same layout (jax: log_softmax(axis=1) and take_along_axis)."),
    ]
    bce_elements = (1_000_000,)
    multilabel = (4096, 1000)
    cases += [
        Case("bce_big", "binary_cross_entropy_with_logits_fwd_bwd", bce_elements, -1,
             _binary_cross_entropy(bce_elements),
             title="binary_cross_entropy_with_logits forward + backward (1000000,)", roofline="copy", check=False,
             number=1, repeats=41 if quick else 61,  # single calls of about a millisecond: many rounds
             note=inplace_note + " `logitloss`: return_grad=True; `torch`: z = "
             "torch.from_numpy(x).requires_grad_(); F.binary_cross_entropy_with_logits(z, y).backward(); z.grad; "
             "`numpy stable`: np.mean(np.maximum(x, 0) - x*y + np.log1p(np.exp(-np.abs(x)))) and "
             "(1 / (1 + np.exp(-x)) - y) / x.size."),
        Case("bce_forward_big", "binary_cross_entropy_with_logits", bce_elements, -1,
             _binary_cross_entropy(bce_elements, backward=False,
                                   variants=("logitloss", "torch", "jax", "numpy stable")),
             title="binary_cross_entropy_with_logits forward only (1000000,)", roofline="read", check=False,
             note="`torch`: F.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y)), no "
                  "autograd."),
        Case("bce_multilabel", "binary_cross_entropy_with_logits_fwd_bwd", multilabel, -1,
             _binary_cross_entropy(multilabel, weighted=True, unweighted_variant=True),
             title="binary_cross_entropy_with_logits forward + backward (4096, 1000), weight and pos_weight (1000,)",
             roofline="copy", check=False, number=1, repeats=7 if quick else 15,
             note=inplace_note + " Every provider gets weight (uniform [0.5, 1.5)) and pos_weight (uniform [1, 4)) of "
                  "shape (1000,) except `logitloss no weights` (return_grad=True without them)."),
        Case("bce_multilabel_forward", "binary_cross_entropy_with_logits", multilabel, -1,
             _binary_cross_entropy(multilabel, backward=False, weighted=True,
                                   variants=("logitloss", "torch", "jax", "numpy stable")),
             title="binary_cross_entropy_with_logits forward only (4096, 1000), weight and pos_weight (1000,)",
             roofline="read", check=False),
        Case("bce_tiny", "binary_cross_entropy_with_logits_fwd_bwd", (2,), -1,
             _binary_cross_entropy((2,), variants=("logitloss", "logitloss grad_out=", "torch", "jax", "numpy stable")),
             title="binary_cross_entropy_with_logits forward + backward (2,) (per-call time)", check=False),
    ]
    if not quick:  # --quick measures the memory of cross_entropy only (a subprocess per provider)
        cases.append(Case(
            "bce_memory", "binary_cross_entropy_with_logits_fwd_bwd", bce_memory_shape, -1,
            lambda inputs: (np.empty(0), [], []),
            title="binary_cross_entropy_with_logits forward + backward (16384, 1024): peak extra memory",
            values=memory_values("binary_cross_entropy_with_logits", bce_memory_shape), value_unit="bytes",
            check=False, note=memory_note + " Targets 0 / 1 float32."))
    if not quick:  # float64: the mid shape of each kernel
        cases += [
            Case(f"{op}_mid_f64", op, mid, -1, _standard(op, mid, isas=False, out=op != "logsumexp", dtype="float64"),
                 title=f"{op} (8192, 1000) float64, axis=-1", roofline="read" if op == "logsumexp" else "copy",
                 dtype="float64")
            for op in _providers.OPS
        ]
        cases.append(Case("cross_entropy_mid_f64", "cross_entropy_fwd_bwd", mid, -1,
                          _cross_entropy(mid, variants=("logitloss", "logitloss grad_out=", "torch", "jax",
                                                        "numpy stable"),
                                         dtype="float64"),
                          title="cross_entropy forward + backward (8192, 1000) float64", roofline="copy",
                          check=False, dtype="float64"))
        cases.append(Case("bce_big_f64", "binary_cross_entropy_with_logits_fwd_bwd", bce_elements, -1,
                          _binary_cross_entropy(bce_elements, dtype="float64",
                                                variants=("logitloss", "logitloss grad_out=", "torch", "jax",
                                                          "numpy stable")),
                          title="binary_cross_entropy_with_logits forward + backward (1000000,) float64",
                          roofline="copy", check=False, dtype="float64", number=1, repeats=31))
    # --quick leaves out the thread rows (about 10 s): they need many single calls to mean anything
    for shape, label in ((big, "big"), (mid, "mid")) if not quick else ():
        shape_text = f"({shape[0]}, {shape[1]})"
        cases.append(
            Case(f"threads_{label}_loaded", "logsumexp", shape, -1, _thread_scaling(shape),
                 baseline="logitloss 1 thread", title=f"threads: logsumexp {shape_text}, {load}",
                 roofline="read", repeats=21, number=1, busy_core=True, threads=0, check=False,
                 note="21 single calls per thread count, interleaved; each after one untimed call; "
                      "max = slowest call.")
        )
        cases.append(
            Case(f"threads_{label}_unloaded", "logsumexp", shape, -1, _thread_scaling(shape),
                 baseline="logitloss 1 thread", title=f"threads: logsumexp {shape_text}, no added load",
                 roofline="read", repeats=21, number=1, busy_core=False, threads=0, check=False,
                 note="21 single calls per thread count, interleaved; each after one untimed call.")
        )
    cases += _sweep_cases(quick)  # last: each sweep row drops the inputs of the rows before it

    targets = [
        Target("lse_big_vs_torch", f"logsumexp {big_text} axis=-1: speedup vs torch.logsumexp",
               "logsumexp_big", "ratio", "torch", "logitloss", 8.0),
        Target("lse_big_vs_scipy", f"logsumexp {big_text} axis=-1: speedup vs scipy.special.logsumexp",
               "logsumexp_big", "ratio", "scipy", "logitloss", 15.0),
        Target("lse_big_roofline", f"logsumexp {big_text} axis=-1: fraction of read bandwidth",
               "logsumexp_big", "roofline", "logitloss", "", 0.60),
        Target("lse_mid_vs_torch", "logsumexp (8192, 1000) axis=-1: speedup vs torch",
               "logsumexp_mid", "ratio", "torch", "logitloss", 3.0),
        Target("lse_axis0_vs_last", f"logsumexp axis=0 of ({vocab}, {rows}) / axis=-1 of {big_text}, same data",
               "logsumexp_axis0", "ratio", "logitloss", "logitloss last axis", 1.5, at_least=False),
        Target("lse_tiny_vs_torch", "logsumexp (32, 10) axis=-1: per-call speedup vs torch",
               "logsumexp_tiny", "ratio", "torch", "logitloss", 4.0),
        Target("softmax_big_new_result", f"softmax {big_text}: speedup vs torch, new results (logitloss's in the "
               "dropped result's memory, the default)", "softmax_big", "ratio", "torch", "logitloss", 3.0),
        Target("softmax_big_fresh_pages", f"softmax {big_text}: speedup vs torch, new results in fresh pages (logitloss's "
               "output reuse off)", "softmax_big", "ratio", "torch", "logitloss reuse off", informational=True),
        Target("softmax_big_out", f"softmax {big_text}: speedup of logitloss with out= vs torch (fresh output)",
               "softmax_big", "ratio", "torch", "logitloss out=", 5.0),
        Target("softmax_big_both_out", f"softmax {big_text}: speedup vs torch, both with out=",
               "softmax_big", "ratio", "torch out=", "logitloss out=", informational=True),
        Target("log_softmax_big_new_result", f"log_softmax {big_text}: speedup vs torch, new results (logitloss's in the "
               "dropped result's memory, the default)", "log_softmax_big", "ratio", "torch", "logitloss", 3.0),
        Target("log_softmax_big_fresh_pages", f"log_softmax {big_text}: speedup vs torch, new results in fresh pages (logitloss's "
               "output reuse off)", "log_softmax_big", "ratio", "torch", "logitloss reuse off", informational=True),
        Target("log_softmax_big_out", f"log_softmax {big_text}: speedup of logitloss with out= vs torch (fresh output)",
               "log_softmax_big", "ratio", "torch", "logitloss out=", 5.0),
        Target("log_softmax_big_both_out", f"log_softmax {big_text}: speedup vs torch, both with out=",
               "log_softmax_big", "ratio", "torch out=", "logitloss out=", informational=True),
        Target("threads_big_loaded", f"logsumexp {big_text}, other core busy: 2-thread / 1-thread median",
               "threads_big_loaded", "ratio", "logitloss 2 threads", "logitloss 1 thread", 1.10, at_least=False),
        Target("threads_mid_loaded", "logsumexp (8192, 1000), other core busy: 2-thread / 1-thread median",
               "threads_mid_loaded", "ratio", "logitloss 2 threads", "logitloss 1 thread", 1.10, at_least=False),
        Target("threads_big_speedup", f"logsumexp {big_text}, no added load: 2-thread speedup (1-thread / 2-thread)",
               "threads_big_unloaded", "ratio", "logitloss 1 thread", "logitloss 2 threads", informational=True),
        Target("threads_mid_speedup", "logsumexp (8192, 1000), no added load: 2-thread speedup (1-thread / 2-thread)",
               "threads_mid_unloaded", "ratio", "logitloss 1 thread", "logitloss 2 threads", informational=True),
        Target("ce_big_vs_torch", f"cross_entropy fwd+bwd {big_text}: speedup of return_grad=True vs torch "
               "training loop", "cross_entropy_big", "ratio", "torch", "logitloss", 10.0),
        Target("ce_big_fresh_pages_vs_torch", f"cross_entropy fwd+bwd {big_text}: speedup of return_grad=True with "
               "output reuse off vs torch training loop", "cross_entropy_big", "ratio", "torch", "logitloss reuse off",
               informational=True),
        Target("ce_big_vs_numpy", f"cross_entropy fwd+bwd {big_text}: speedup of return_grad=True vs NumPy stable",
               "cross_entropy_big", "ratio", "numpy stable", "logitloss", 3.0),
        Target("ce_big_out_roofline", f"cross_entropy fwd+bwd {big_text} grad_out= buffer: fraction of copy "
               "bandwidth", "cross_entropy_big", "roofline", "logitloss grad_out=", "", 0.50),
        Target("ce_big_inplace_vs_out", f"cross_entropy fwd+bwd {big_text}: grad_out=input time / grad_out= "
               "buffer time", "cross_entropy_big", "ratio", "logitloss grad_out=input", "logitloss grad_out=",
               1.0, at_least=False),
        Target("ce_big_inplace_roofline", f"cross_entropy fwd+bwd {big_text} grad_out=input: fraction of copy "
               "bandwidth", "cross_entropy_big", "roofline", "logitloss grad_out=input", informational=True),
        Target("ce_big_new_result_roofline", f"cross_entropy fwd+bwd {big_text} return_grad=True (a new gradient, "
               "output reuse): fraction of copy bandwidth", "cross_entropy_big", "roofline", "logitloss",
               informational=True),
        Target("ce_big_fresh_roofline", f"cross_entropy fwd+bwd {big_text} return_grad=True, output reuse off (fresh "
               "pages, page faults): fraction of copy bandwidth", "cross_entropy_big", "roofline", "logitloss reuse off",
               informational=True),
        Target("ce_big_backward_vs_fused", f"cross_entropy_backward(1.0, x, y) {big_text}: time / fused "
               "return_grad=True time", "cross_entropy_big", "ratio", "logitloss backward only", "logitloss",
               1.2, at_least=False),
        Target("ce_mid_vs_torch", "cross_entropy fwd+bwd (8192, 1000): speedup of return_grad=True vs torch",
               "cross_entropy_mid", "ratio", "torch", "logitloss", 5.0),
        Target("ce_mid_options", "cross_entropy fwd+bwd (8192, 1000), grad_out=: label_smoothing=0.1 + weight "
               "time / plain time", "cross_entropy_mid", "ratio", "logitloss grad_out= smoothing+weight",
               "logitloss grad_out=", 1.2, at_least=False),
        Target("ce_forward_big_vs_torch", f"cross_entropy forward {big_text}: speedup vs torch",
               "cross_entropy_forward_big", "ratio", "torch", "logitloss", 8.0),
        Target("ce_tiny_vs_torch", "cross_entropy fwd+bwd (32, 10): per-call speedup vs torch training loop",
               "cross_entropy_tiny", "ratio", "torch", "logitloss", 8.0),
        Target("ce_memory_fresh", f"cross_entropy fwd+bwd {big_text} return_grad=True: peak extra memory / "
               "logits' size", "cross_entropy_memory", "value", "logitloss return_grad=True", "logits",
               1.05, at_least=False),
        Target("ce_memory_inplace", f"cross_entropy fwd+bwd {big_text} grad_out=input: peak extra memory / "
               "logits' size", "cross_entropy_memory", "value", "logitloss grad_out=input", "logits",
               0.05, at_least=False),
        Target("ce_memory_torch", f"cross_entropy fwd+bwd {big_text} torch: peak extra memory / logits' size",
               "cross_entropy_memory", "value", "torch", "logits", informational=True),
        Target("bce_big_vs_torch", "binary_cross_entropy_with_logits fwd+bwd (1000000,): speedup of return_grad=True "
               "vs torch training loop", "bce_big", "ratio", "torch", "logitloss", 3.0),
        Target("bce_big_vs_numpy", "binary_cross_entropy_with_logits fwd+bwd (1000000,): speedup of return_grad=True "
               "vs NumPy stable", "bce_big", "ratio", "numpy stable", "logitloss", 6.0),
        Target("bce_big_inplace_vs_out", "binary_cross_entropy_with_logits fwd+bwd (1000000,): grad_out=input time / "
               "grad_out= buffer time", "bce_big", "ratio", "logitloss grad_out=input", "logitloss grad_out=",
               informational=True),
        Target("bce_big_backward_vs_fused", "binary_cross_entropy_with_logits_backward(1.0, x, y) (1000000,): time / "
               "fused return_grad=True time", "bce_big", "ratio", "logitloss backward only", "logitloss",
               informational=True),
        Target("bce_multilabel_vs_torch", "binary_cross_entropy_with_logits fwd+bwd (4096, 1000), weight + pos_weight "
               "(1000,): speedup of return_grad=True vs torch", "bce_multilabel", "ratio", "torch", "logitloss", 3.0),
        Target("bce_multilabel_options", "binary_cross_entropy_with_logits fwd+bwd (4096, 1000): weight + pos_weight "
               "time / no weights time", "bce_multilabel", "ratio", "logitloss", "logitloss no weights",
               informational=True),
        Target("bce_multilabel_forward_vs_torch", "binary_cross_entropy_with_logits forward (4096, 1000), weight + "
               "pos_weight: speedup vs torch", "bce_multilabel_forward", "ratio", "torch", "logitloss",
               informational=True),
        Target("bce_forward_big_vs_torch", "binary_cross_entropy_with_logits forward (1000000,): speedup vs torch",
               "bce_forward_big", "ratio", "torch", "logitloss", 3.0),
        Target("bce_tiny_vs_torch", "binary_cross_entropy_with_logits fwd+bwd (2,): per-call speedup vs torch "
               "training loop", "bce_tiny", "ratio", "torch", "logitloss", 8.0),
        Target("bce_memory_fresh", "binary_cross_entropy_with_logits fwd+bwd (16384, 1024) return_grad=True: peak "
               "extra memory / logits' size", "bce_memory", "value", "logitloss return_grad=True", "logits",
               informational=True),
        Target("bce_memory_inplace", "binary_cross_entropy_with_logits fwd+bwd (16384, 1024) grad_out=input: peak "
               "extra memory / logits' size", "bce_memory", "value", "logitloss grad_out=input", "logits",
               informational=True),
        Target("bce_memory_torch", "binary_cross_entropy_with_logits fwd+bwd (16384, 1024) torch: peak extra memory / "
               "logits' size", "bce_memory", "value", "torch", "logits", informational=True),
    ]
    targets += _peer_targets(big_text, f"{backward_shape}")
    assert all(np.prod(case.shape) <= CELL_CAP_LOGITS for case in cases)
    return Suite(cases, targets, quick, big, notes, warmup_time=0.05 if quick else 0.2)


def _peer_targets(big_text: str, backward_text: str) -> list[Target]:
    """Informational ratios of the rows that have no performance target of their own: JAX, the non-last axis
    of softmax and log_softmax, the backward modes, the class axis 1 of cross_entropy, the memory of the family."""
    targets = [
        Target(f"{key}_vs_jax", f"{title}: speedup of logitloss vs jax", case, "ratio", "jax", "logitloss",
               informational=True)
        for key, title, case in (
            ("lse_big", f"logsumexp {big_text}", "logsumexp_big"),
            ("softmax_big", f"softmax {big_text} (new results)", "softmax_big"),
            ("log_softmax_big", f"log_softmax {big_text} (new results)", "log_softmax_big"),
            ("ce_big", f"cross_entropy fwd+bwd {big_text}", "cross_entropy_big"),
            ("ce_tiny", "cross_entropy fwd+bwd (32, 10), per call", "cross_entropy_tiny"),
            ("bce_big", "binary_cross_entropy_with_logits fwd+bwd (1000000,)", "bce_big"),
        )
    ]
    for op in ("softmax", "log_softmax"):
        targets.append(Target(f"{op}_axis0_vs_last", f"{op} axis=0 / axis=-1 of the same data, both with out=",
                              f"{op}_axis0", "ratio", "logitloss out=", "logitloss last axis out=", 1.5,
                              at_least=False, informational=True))
    for op in OPS:
        targets += [
            Target(f"{op}_backward_vs_torch", f"{op}_backward {backward_text}: speedup vs torch.autograd.grad",
                   f"{op}_backward", "ratio", "torch backward only", "logitloss backward only",
                   informational=True),
            Target(f"{op}_fwd_bwd_vs_torch", f"{op} forward + backward {backward_text}: speedup vs torch "
                   ".backward()", f"{op}_backward", "ratio", "torch forward + backward",
                   "logitloss forward + backward", informational=True),
            Target(f"{op}_memory_fresh", f"{op} (16384, 1024): peak extra memory / logits' size",
                   f"{op}_memory", "value", "logitloss", "logits", informational=True),
        ]
    targets.append(Target("ce_class_axis_1_vs_torch", "cross_entropy fwd+bwd (N, C, H, W), class axis 1: speedup vs "
                          "torch", "cross_entropy_class_axis_1", "ratio", "torch", "logitloss", informational=True))
    return targets


def evaluate_targets(targets: list[Target], results: dict[str, CaseResult], threads: int) -> list[TargetResult]:
    evaluated: list[TargetResult] = []
    for target in targets:
        result = results.get(target.case)
        if result is None:
            evaluated.append(TargetResult(target, None, "n/a (row not run)"))
            continue
        if target.kind == "roofline":
            measured = result.roofline_fraction(target.numerator)
        elif target.kind == "value":
            numerator_value = result.values.get(target.numerator)
            denominator_value = result.values.get(target.denominator)
            measured = (None if numerator_value is None or not denominator_value
                        else numerator_value / denominator_value)
        else:
            numerator = result.timings.get(target.numerator)
            denominator = result.timings.get(target.denominator)
            measured = None if numerator is None or denominator is None else numerator.median / denominator.median
        if measured is None:
            evaluated.append(TargetResult(target, None, "n/a (provider missing, see notes)"))
            continue
        passed = measured >= target.required if target.at_least else measured <= target.required
        status = "info" if target.informational else ("PASS" if passed else "FAIL")
        detail = ""
        if result.case.threads is None and threads != 1:
            status += f" (run at {threads} threads; targets are defined at 1 thread)"
        if target.case.endswith("_loaded") and target.numerator in result.timings:
            slowest = result.timings[target.numerator].max
            single = result.timings[target.denominator].median
            detail = f"slowest 2-thread call {slowest * 1e3:.2f} ms = {slowest / single:.2f}x the 1-thread median"
        if result.other_load_cores is not None and result.other_load_cores > OTHER_LOAD_THRESHOLD_CORES:
            busy = f"other processes used {result.other_load_cores:.2f} cores meanwhile"
            detail = f"{detail}; {busy}" if detail else busy
        evaluated.append(TargetResult(target, measured, status, detail))
    return evaluated
