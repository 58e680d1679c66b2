"""The accuracy table (``accuracy.md``): error in units of eps against the exact reference on random logits.

Inputs, float32 and float64 (``logitloss.testing.inputs.logits``: ``spread * N(0, 1)`` rounded to the dtype; errors in units of
that dtype's eps): for each width C and spread, a few rows (few
for wide rows: the exact reference costs one mpmath ``exp`` per logit); targets are the row's largest logit for
even rows (confident-correct: tiny losses) and a uniform class for odd rows.  Values and gradients are compared
at up to ``COLUMNS`` sampled columns per row (the target's and the largest logit's among them) with
:func:`~logitloss.bench.verdicts.error_units`: ``|result - exact| / (eps * S)``, the condition-scaled error
``docs/accuracy.md`` bounds by 4 (values) and 8 (gradients).  Binary cross-entropy: ``spread * N(0, 1)`` logits with 0 / 1
targets, per element (reduction "none").

Each cell shows the largest error over the sampled elements, value / gradient; above the bound in bold; NaN,
inf where a provider returns one for a finite exact value.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import verdicts as _exact
from .implementations import PROVIDERS, NotAvailable, compute
from logitloss.testing.inputs import coin_flip_targets, logits

__all__ = ["AccuracyCell", "AccuracyResult", "accuracy_json", "accuracy_markdown", "plan", "run_accuracy"]

SPREADS = (1.0, 10.0, 100.0)
DTYPES = ("float32", "float64")
COLUMNS = 256
BCE = "binary_cross_entropy_with_logits"


def plan(quick: bool, dtype: str = "float32") -> dict[int, int]:
    """Rows per width: about 4000 (quick 1500) logits per width and spread, at least one row; --quick checks
    float64 at C = 10 only (the mpmath reference costs one exp per logit)."""
    if quick:
        return {10: 64, 1000: 4, 32000: 1} if dtype == "float32" else {10: 64}
    return {10: 256, 1000: 16, 32000: 2, 128256: 1}


def _bce_elements(quick: bool) -> int:
    return 1024 if quick else 4096


@dataclass
class AccuracyCell:
    kernel: str
    provider: str
    width: int  # classes; elements for binary cross-entropy
    spread: float
    dtype: str
    value: float | str  # largest error in eps units, or "NaN" / "inf" / "n/a" / "error"
    gradient: float | str | None  # None: the provider computes no gradient


@dataclass
class AccuracyResult:
    cells: list[AccuracyCell]
    widths: dict[int, int]
    bce_elements: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def _largest(
    got: Any, reference: np.ndarray, scale: np.ndarray, dtype: np.dtype, pick: Callable[[Any], Any]
) -> float | str:
    """The largest error in eps units of ``pick(got)`` against the reference; "NaN" / "inf" if it returns one where
    the reference is finite."""
    actual = np.asarray(pick(np.asarray(got))).astype(np.float64)
    expected = np.asarray(reference, dtype=np.float64)
    finite = np.isfinite(expected)
    if (np.isnan(actual) & finite).any():
        return "NaN"
    if (np.isinf(actual) & finite).any():
        return "inf"
    return float(np.max(_exact.error_units(actual, expected, scale, dtype), initial=0.0))


def _cells(
    kernel: str, x: np.ndarray, target: np.ndarray, reference: _exact.Exact, width: int, spread: float,
    pick_value: Callable[[Any], Any], pick_gradient: Callable[[Any], Any], notes: list[str],
) -> list[AccuracyCell]:
    cells = []
    for provider in PROVIDERS:
        try:
            value, gradient = compute(kernel, provider, x, target)
        except NotAvailable:
            cells.append(AccuracyCell(kernel, provider, width, spread, x.dtype.name, "n/a", None))
            continue
        except Exception as error:
            notes.append(f"{kernel}, {provider}, width {width}, spread {spread:g}: {type(error).__name__}: {error}")
            cells.append(AccuracyCell(kernel, provider, width, spread, x.dtype.name, "error", None))
            continue
        value_error = _largest(value, reference.value, reference.value_scale, x.dtype, pick_value)
        gradient_error = (None if gradient is None else
                          _largest(gradient, reference.gradient, reference.gradient_scale, x.dtype, pick_gradient))
        cells.append(AccuracyCell(kernel, provider, width, spread, x.dtype.name, value_error, gradient_error))
    return cells


def _family_inputs(width: int, rows: int, spread: float, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, targets (argmax on even rows, uniform on odd rows) and the sampled columns per row."""
    x = logits((rows, width), np.dtype(dtype), seed=7, spread=spread)
    rng = np.random.default_rng(8)
    targets = np.where(np.arange(rows) % 2 == 0, x.argmax(axis=1), rng.integers(0, width, rows)).astype(np.int64)
    base = np.unique(np.linspace(0, width - 1, min(width, COLUMNS - 2)).astype(np.int64))
    columns = [np.unique(np.concatenate([base, [targets[r], x[r].argmax()]]))[:COLUMNS] for r in range(rows)]
    size = max(len(c) for c in columns)
    # pad to one length with repeats of the first column (a repeated column is compared twice: harmless)
    return x, targets, np.array([np.concatenate([c, np.full(size - len(c), c[0])]) for c in columns])


def _at_columns(array: Any, columns: np.ndarray) -> Any:
    """``array[r, columns[r]]`` for every row r: the sampled columns of a (rows, C) result."""
    return array[np.arange(columns.shape[0])[:, None], columns]


def run_accuracy(quick: bool, on_step: Callable[[str], None] | None = None) -> AccuracyResult:
    started = time.perf_counter()
    widths = plan(quick)
    cells: list[AccuracyCell] = []
    notes: list[str] = []
    try:
        import mpmath  # noqa: F401  (the exact reference)
    except ImportError as error:
        return AccuracyResult([], widths, 0, 0.0, [f"accuracy table not made: {error}"])
    for dtype in DTYPES:
        for width, rows in plan(quick, dtype).items():
            for spread in SPREADS:
                x, targets, columns = _family_inputs(width, rows, spread, dtype)
                references = _exact.softmax_family_exact(x, targets, columns)
                per_column = functools.partial(_at_columns, columns=columns)
                for kernel, reference in references.items():
                    pick_value = per_column if kernel in ("softmax", "log_softmax") else (lambda array: array)
                    cells += _cells(kernel, x, targets, reference, width, spread, pick_value, per_column, notes)
                if on_step is not None:
                    on_step(f"{dtype} C={width} spread {spread:g}")
    elements = _bce_elements(quick)
    for dtype in DTYPES:
        for spread in SPREADS:
            x = logits((elements,), np.dtype(dtype), seed=9, spread=spread)
            y = coin_flip_targets(elements, dtype, seed=10)
            reference = _exact.binary_cross_entropy_exact(x, y)
            cells += _cells(BCE, x, y, reference, elements, spread, lambda array: array, lambda array: array, notes)
        if on_step is not None:
            on_step(f"{dtype} binary cross-entropy")
    return AccuracyResult(cells, widths, elements, time.perf_counter() - started, notes)


def _text(error: float | str | None, bound: float) -> str:
    if error is None:
        return "—"
    if isinstance(error, str):
        return error
    text = f"{error:.2g}" if error < 100 else f"{error:.1e}"
    return f"**{text}**" if error > bound else text


def accuracy_markdown(result: AccuracyResult, header: list[str]) -> str:
    lines = [
        "# logitloss accuracy table: random logits",
        "",
        *header,
        "",
        "Largest error over the sampled elements, **value / gradient**, in units of the input dtype's eps (float32 "
        f"{float(np.finfo(np.float32).eps):.3g}, float64 {float(np.finfo(np.float64).eps):.3g}) times the condition "
        "scale S (S = |exact| where the problem is well "
        "conditioned, so these are ulps there; see `logitloss/bench/verdicts.py`), against the exact references of "
        f"`logitloss.testing`. The bounds (`docs/accuracy.md`): {_exact.UNITS['value']:g} for values, {_exact.UNITS['gradient']:g} for gradients; "
        "larger errors in bold. `—`: the provider computes no gradient; `n/a`: no such function.",
        "",
        "Inputs: float32 and float64 `spread * N(0, 1)` logits; rows per width "
        + ", ".join(f"C = {width}: {rows}" for width, rows in result.widths.items())
        + f" (up to {COLUMNS} sampled columns per row, the target's and the largest logit's among them); targets "
        "the largest logit on even rows (confident-correct: tiny losses), uniform on odd rows. Value and gradient "
        "as in `safety.md`. Binary cross-entropy: "
        f"{result.bce_elements} elements per spread, targets 0 / 1, reduction `none`.",
    ]
    for kernel in _exact.KERNELS:
        mine = [c for c in result.cells if c.kernel == kernel]
        if not mine:
            continue
        lines += ["", f"## {kernel}", "", "| dtype | C | spread | " + " | ".join(PROVIDERS) + " |",
                  "|---|---|---|" + "---|" * len(PROVIDERS)]
        keys = sorted({(c.dtype, c.width, c.spread) for c in mine})
        for dtype, width, spread in keys:
            cells = {c.provider: c for c in mine if (c.dtype, c.width, c.spread) == (dtype, width, spread)}
            texts = []
            for provider in PROVIDERS:
                cell = cells.get(provider)
                if cell is None or cell.value in ("n/a", "error"):
                    texts.append("" if cell is None else str(cell.value))
                    continue
                texts.append(f"{_text(cell.value, _exact.UNITS['value'])} / "
                             f"{_text(cell.gradient, _exact.UNITS['gradient'])}")
            label = f"{width} elements" if kernel == BCE else str(width)
            lines.append(f"| {dtype} | {label} | {spread:g} | " + " | ".join(texts) + " |")
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def accuracy_json(result: AccuracyResult) -> dict[str, Any]:
    return {
        "seconds": result.seconds,
        "units": "largest |result - exact| / (eps(dtype) * condition scale) over the sampled elements",
        "rows_per_width": {str(k): v for k, v in result.widths.items()},
        "bce_elements": result.bce_elements,
        "cells": [{"kernel": c.kernel, "provider": c.provider, "width": c.width, "spread": c.spread,
                   "dtype": c.dtype, "value": c.value, "gradient": c.gradient} for c in result.cells],
        "notes": result.notes,
    }
