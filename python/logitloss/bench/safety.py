"""The underflow / overflow table (``safety.md``): a fixed catalogue of adversarial inputs, and for each provider and
kernel whether the value and the gradient are right.

Each entry of :data:`CATALOGUE` is a small input (rows of logits with a target class per row, or logits and
targets of binary cross-entropy) in float32, float64 or float16: the float32 entries, float64 copies of those whose
values mean the same in float64 (masks, infinities, nan, moderate and confident rows), and float64's own extremes
(logits near its maximum, losses that are normal or subnormal only in float64).  Every provider of :mod:`~logitloss.bench.implementations`
computes every kernel it has on it; :func:`~logitloss.bench.verdicts.judge` compares value and gradient with the exact
reference (:mod:`~logitloss.bench.verdicts`, from :mod:`logitloss.testing`): within the bounds of
``docs/accuracy.md`` (4 eps for values, 8 eps for gradients, times the condition scale), or nan, inf, 0 where the exact value is a nonzero number of the dtype, or
wrong.  The catalogue is fixed so that runs, machines and versions compare cell by cell.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import verdicts as _exact
from .implementations import PROVIDERS, NotAvailable, compute

__all__ = ["CATALOGUE", "Entry", "SafetyCell", "SafetyResult", "run_safety", "safety_json", "safety_markdown"]

BCE = "binary_cross_entropy_with_logits"
_INF, _NAN = float("inf"), float("nan")


@dataclass(frozen=True)
class Entry:
    """An adversarial input: ``x`` (rows for the softmax family, a vector for binary cross-entropy) and
    ``target`` (one class per row, or the binary targets)."""

    name: str
    description: str
    dtype: str
    x: tuple[Any, ...]
    target: tuple[Any, ...]
    binary: bool = False  # binary cross-entropy only (else the four softmax-family kernels)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        x = np.array(self.x, dtype=self.dtype)
        target = np.array(self.target, dtype=self.dtype if self.binary else np.int64)
        return x, target

    def kernels(self) -> tuple[str, ...]:
        return (BCE,) if self.binary else _exact.FAMILY_KERNELS


def _wide_confident_row(classes: int = 32000) -> tuple[float, ...]:
    """A language-model row: the target logit 0, the others 20 + 2 N(0, 1) below it (float32 values)."""
    rest = (-20.0 + 2.0 * np.random.default_rng(5).standard_normal(classes - 1)).astype(np.float32)
    return (0.0, *(float(v) for v in rest))


CATALOGUE: tuple[Entry, ...] = (
    Entry("moderate", "control: moderate logits, two rows", "float32",
          ((1.0, 2.0, 3.0, 4.0), (0.5, -1.0, 2.0, 0.0)), (3, 0)),
    Entry("+-1e4", "logits of +-1e4: a row at the top and a row at the bottom of the range", "float32",
          ((1e4, 9998.0, -1e4, 0.0), (-1e4, -9999.0, -9998.0, -1e4)), (1, 2)),
    Entry("+-3e38", "logits near the float32 maximum: x - max overflows to -inf", "float32",
          ((3e38, -3e38, 3e38, 0.0), (-3e38, -3e38, -3e38, -3e38)), (0, 1)),
    Entry("-inf mask", "masked classes (-inf) in a row", "float32",
          ((0.0, -_INF, 2.0, -_INF, 1.0, -_INF),), (2,)),
    Entry("all -inf row", "a fully masked row next to an ordinary one (expected: -inf logsumexp, nan elsewhere)",
          "float32", ((-_INF, -_INF, -_INF), (0.0, 1.0, 2.0)), (0, 2)),
    Entry("+inf", "a +inf logit (expected: +inf logsumexp; nan, as torch and SciPy, or the limit elsewhere)",
          "float32",
          ((_INF, 1.0, 0.0), (0.0, 1.0, 2.0)), (1, 2)),
    Entry("nan", "a nan logit (expected: nan in its row)", "float32", ((_NAN, 1.0, 0.0), (0.0, 1.0, 2.0)), (1, 2)),
    Entry("float16 +-65504", "float16 extremes: +-65504 (the float16 maximum)", "float16",
          ((65504.0, -65504.0, 0.0, 65504.0),), (0,)),
    Entry("float16 confident", "float16 confident-correct rows: losses 1.0e-3 and 1.4e-4 (normal float16)",
          "float16", ((0.0, -8.0, -8.0, -8.0), (10.0, 0.0, 0.0, 0.0)), (0, 0)),
    Entry("confident", "confident-correct rows with tiny exact losses 1.3e-17 and 4.2e-11", "float32",
          ((0.0, -40.0, -40.0, -40.0), (25.0, 0.0, 0.0, 0.0)), (0, 0)),
    Entry("confident 32000", "a confident-correct 32000-class row (target about 20 above the others): loss 5.0e-4, a "
          "sum of 31999 tiny terms", "float32", (_wide_confident_row(),), (0,)),
    Entry("bce moderate", "control: moderate logits, soft and hard targets", "float32",
          (-2.0, 0.0, 0.0, 3.0), (0.0, 1.0, 0.25, 1.0), binary=True),
    Entry("bce x=-40, y=0", "tiny exact losses: x = -40, y = 0 and x = 40, y = 1 (4.2e-18); x = +-20 (2.1e-9)",
          "float32", (-40.0, 40.0, 20.0, -20.0), (0.0, 1.0, 1.0, 0.0), binary=True),
    Entry("bce x=-88.8", "subnormal float32 losses: x = -88.8, y = 0 (2.7e-39), x = -100 (3.7e-44); x = -104 "
          "rounds to 0", "float32", (-88.8, 88.8, -100.0, -104.0), (0.0, 1.0, 0.0, 0.0), binary=True),
    Entry("bce +-1e4", "logits of +-1e4, right and wrong targets", "float32",
          (1e4, -1e4, 1e4, -1e4), (1.0, 0.0, 0.0, 1.0), binary=True),
    Entry("bce +-3e38", "logits near the float32 maximum, right and wrong targets", "float32",
          (3e38, -3e38, 3e38, -3e38), (1.0, 0.0, 0.0, 1.0), binary=True),
    Entry("bce soft", "soft targets at large |x|: loss 25 = |x| / 2 + log1p(exp(-50))", "float32",
          (50.0, -50.0), (0.5, 0.5), binary=True),
    Entry("bce +-inf", "infinite logits (limits: loss 0, 0, inf, inf; gradient 0, 0, 1, -1)", "float32",
          (_INF, -_INF, _INF, -_INF), (1.0, 0.0, 0.0, 1.0), binary=True),
    Entry("bce nan", "a nan logit next to an ordinary one (expected: nan there only)", "float32",
          (_NAN, 0.0), (0.0, 1.0), binary=True),
    Entry("bce float16", "float16 extremes +-65504, and x = -8 / -12, y = 0 (3.4e-4 normal, 6.1e-6 subnormal)",
          "float16", (65504.0, -65504.0, -8.0, 8.0, -12.0), (1.0, 0.0, 0.0, 1.0, 0.0), binary=True),
)

# float32 entries whose values mean the same in float64 (not the ones defined by float32's range)
_SAME_IN_FLOAT64 = ("moderate", "-inf mask", "all -inf row", "+inf", "nan", "confident", "confident 32000",
                    "bce moderate", "bce x=-40, y=0", "bce +-inf", "bce nan")
_FLOAT64_BIG = 1.7e308  # near the float64 maximum (1.798e308): x - max overflows to -inf

CATALOGUE += tuple(
    Entry(f"{entry.name} (float64)", entry.description, "float64", entry.x, entry.target, entry.binary)
    for entry in CATALOGUE if entry.name in _SAME_IN_FLOAT64
) + (
    Entry("float64 +-1.7e308", "logits near the float64 maximum: x - max overflows to -inf", "float64",
          ((_FLOAT64_BIG, -_FLOAT64_BIG, _FLOAT64_BIG, 0.0), (-_FLOAT64_BIG,) * 4), (0, 1)),
    Entry("float64 confident", "confident-correct rows with losses 3e^-700 = 2.9e-304 (normal) and 3e^-740 = "
          "1.2e-321 (subnormal in float64, 0 in float32)", "float64",
          ((0.0, -700.0, -700.0, -700.0), (0.0, -740.0, -740.0, -740.0)), (0, 0)),
    Entry("bce float64 tiny", "x = -700, y = 0 (9.9e-305), x = 740, y = 1 (4.2e-322, subnormal), x = -746, y = 0 "
          "(rounds to 0)", "float64", (-700.0, 740.0, -746.0), (0.0, 1.0, 0.0), binary=True),
    Entry("bce float64 +-1.7e308", "logits near the float64 maximum, right and wrong targets", "float64",
          (_FLOAT64_BIG, -_FLOAT64_BIG, _FLOAT64_BIG, -_FLOAT64_BIG), (1.0, 0.0, 0.0, 1.0), binary=True),
)


@dataclass
class SafetyCell:
    entry: str
    kernel: str
    provider: str
    value: _exact.Verdict
    gradient: _exact.Verdict | None  # None: the provider computes no gradient

    def text(self) -> str:
        if self.value.status in ("n/a", "error"):
            return self.value.text()
        gradient = "—" if self.gradient is None else self.gradient.text()
        return f"{self.value.text()} / {gradient}"


@dataclass
class SafetyResult:
    cells: list[SafetyCell]
    seconds: float
    notes: list[str] = field(default_factory=list)


def _exact_results(entry: Entry, x: np.ndarray, target: np.ndarray) -> dict[str, _exact.Exact]:
    if entry.binary:
        reference = _exact.binary_cross_entropy_exact(x, target)
        return {BCE: reference}
    return _exact.softmax_family_exact(x, target)


def _verdicts(kernel: str, provider: str, x: np.ndarray, target: np.ndarray,
              reference: _exact.Exact) -> tuple[_exact.Verdict, _exact.Verdict | None]:
    try:
        value, gradient = compute(kernel, provider, x, target)
    except NotAvailable as error:
        return _exact.Verdict("n/a", detail=str(error)), None
    except Exception as error:  # a provider that rejects the input is reported, never fatal
        return _exact.Verdict("error", detail=f"{type(error).__name__}: {error}"), None
    limit = reference.limit
    value_verdict = _exact.judge(value, reference.value, reference.value_scale, x.dtype, _exact.UNITS["value"],
                                 None if limit is None else (limit.value, limit.value_scale))
    if gradient is None:
        return value_verdict, None
    gradient_verdict = _exact.judge(gradient, reference.gradient, reference.gradient_scale, x.dtype,
                                    _exact.UNITS["gradient"],
                                    None if limit is None else (limit.gradient, limit.gradient_scale))
    return value_verdict, gradient_verdict


def run_safety(on_entry: Callable[[str], None] | None = None) -> SafetyResult:
    """Every catalogue entry x kernel x provider; ``on_entry(name)`` after each entry (progress)."""
    started = time.perf_counter()
    cells: list[SafetyCell] = []
    notes: list[str] = []
    for entry in CATALOGUE:
        x, target = entry.arrays()
        try:
            references = _exact_results(entry, x, target)
        except ImportError as error:
            return SafetyResult([], time.perf_counter() - started, [f"safety table not made: {error}"])
        for kernel in entry.kernels():
            for provider in PROVIDERS:
                value, gradient = _verdicts(kernel, provider, x, target, references[kernel])
                cells.append(SafetyCell(entry.name, kernel, provider, value, gradient))
                if value.status == "error":
                    notes.append(f"{entry.name}, {kernel}, {provider}: raised {value.detail}")
        if on_entry is not None:
            on_entry(entry.name)
    return SafetyResult(cells, time.perf_counter() - started, notes)


def _summary(result: SafetyResult) -> list[str]:
    """Per provider and kernel: how many entries have a right value and gradient."""
    lines = ["| kernel | " + " | ".join(PROVIDERS) + " |", "|---|" + "---|" * len(PROVIDERS)]
    for kernel in _exact.KERNELS:
        cells = []
        for provider in PROVIDERS:
            mine = [c for c in result.cells if c.kernel == kernel and c.provider == provider]
            judged = [c for c in mine if c.value.status not in ("n/a", "error")]
            if not judged:
                cells.append("n/a" if all(c.value.status == "n/a" for c in mine) else "error")
                continue
            values = sum(c.value.status == "ok" for c in judged)
            gradients = [c.gradient for c in judged if c.gradient is not None]
            text = f"{values}/{len(judged)}"
            text += f" / {sum(g.status == 'ok' for g in gradients)}/{len(gradients)}" if gradients else " / —"
            cells.append(text)
        lines.append(f"| {kernel} | " + " | ".join(cells) + " |")
    return lines


def safety_markdown(result: SafetyResult, header: list[str]) -> str:
    """``safety.md``: the rule, a summary per provider and kernel, then one table per kernel."""
    eps16, eps32, eps64 = (float(np.finfo(dtype).eps) for dtype in (np.float16, np.float32, np.float64))
    lines = [
        "# logitloss safety table: adversarial inputs",
        "",
        *header,
        "",
        "Each cell: **value / gradient** of one provider on one catalogue entry, against the exact references of "
        f"`logitloss.testing` (mpmath at {_exact.MP_DPS} digits for float64 entries, float64 with care for the "
        "others). `ok`: within the bound of `docs/accuracy.md`, |result - exact| <= units * eps * S + one "
        f"subnormal ulp where the exact value is subnormal, with units = {_exact.UNITS['value']:g} for values and "
        f"{_exact.UNITS['gradient']:g} for gradients, eps of the input's dtype (float16 {eps16:.3g}, float32 "
        f"{eps32:.3g}, float64 {eps64:.3g}) and S the condition scale (S = |exact| where the problem is well conditioned; see "
        "`logitloss/bench/verdicts.py`). `NaN` / `inf`: a nan / an infinity where the exact value is finite (or a "
        "different infinity); `0 (lost)`: 0 where the exact value is a nonzero number of the dtype (underflow, or "
        "absorbed next to a larger term); `wrong (k eps)`: a finite number k eps * S away; `wrong (not NaN)`: a "
        "number where the convention is nan; `—`: the provider computes no gradient; `n/a`: no such function.",
        "",
        "What value and gradient are: logsumexp, its gradient softmax; softmax and log_softmax, the gradient "
        "of the target entry of each row (`*_backward` with a one-hot upstream in logitloss, `.backward(onehot)` "
        "in torch); cross_entropy, the mean loss over the rows with class-index targets and its gradient; binary "
        "cross-entropy with logits, reduction `none` (per element) and the gradient of the sum. NumPy naive: "
        "`log(sum(exp(x)))`, `exp(x) / sum(exp(x))` and `-log(sigmoid)` forms; NumPy stable: the max-shifted "
        "forms and `max(x, 0) - x*y + log1p(exp(-|x|))`.",
        "",
        "## Summary: entries right (value / gradient) per provider",
        "",
        *_summary(result),
        "",
        "## Catalogue",
        "",
        "| entry | dtype | what |",
        "|---|---|---|",
    ]
    lines += [f"| {entry.name} | {entry.dtype} | {entry.description} |" for entry in CATALOGUE]
    for kernel in _exact.KERNELS:
        lines += ["", f"## {kernel}", "", "| entry | " + " | ".join(PROVIDERS) + " |",
                  "|---|" + "---|" * len(PROVIDERS)]
        for entry in CATALOGUE:
            if kernel not in entry.kernels():
                continue
            cells = {c.provider: c.text() for c in result.cells if c.entry == entry.name and c.kernel == kernel}
            lines.append(f"| {entry.name} | " + " | ".join(cells.get(p, "") for p in PROVIDERS) + " |")
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def safety_json(result: SafetyResult) -> dict[str, Any]:
    def verdict(v: _exact.Verdict | None) -> dict[str, Any] | None:
        if v is None:
            return None
        return {"status": v.status, "worst_eps_units": v.worst_units if np.isfinite(v.worst_units) else None,
                "detail": v.detail}

    return {
        "seconds": result.seconds,
        "units": dict(_exact.UNITS),
        "catalogue": [{"name": e.name, "description": e.description, "dtype": e.dtype, "binary": e.binary}
                      for e in CATALOGUE],
        "cells": [{"entry": c.entry, "kernel": c.kernel, "provider": c.provider, "value": verdict(c.value),
                   "gradient": verdict(c.gradient)} for c in result.cells],
        "notes": result.notes,
    }
