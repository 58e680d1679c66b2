"""How a row of the benchmark table (:mod:`~logitloss.bench.rows`) gets its providers.

Each builder here is named in the table with its options (``standard(out=True)``, ``cross_entropy(backward=False)``
...) and, given the row's op, shape, dtype and run mode, returns what the row's :class:`~logitloss.bench.suite.Case`
needs: ``build`` (inputs -> the array timed, its providers, notes) or, for the memory rows, ``values``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import providers as _providers
from .backward_providers import backward_providers
from .bfloat16_providers import bfloat16_providers
from .calibration_providers import calibrated_targets, ece_providers, temperature_providers
from .contrastive_providers import contrastive_providers
from .divergence_providers import jsd_providers, kl_div_providers, teacher_logits
from .checks import check_result
from .entropy_providers import entropy_providers
from .harness import Provider
from .inputs import InputCache
from .logit_option_providers import logit_option_providers
from .linear_head import LINEAR_HEAD_VARIANTS, linear_head_memory_values, linear_head_providers
from .memory_rows import memory_values

__all__ = [
    "Builder",
    "axis0",
    "backward",
    "bfloat16",
    "binary_cross_entropy",
    "calibration",
    "class_axis_1",
    "cross_entropy",
    "entropy",
    "linear_head",
    "linear_head_memory",
    "memory",
    "standard",
    "thread_scaling",
]

Build = Callable[[InputCache], tuple[np.ndarray, list[Provider], list[str]]]
# (op, shape, dtype, quick) -> keyword arguments of the Case: "build", or "values" and "value_unit"
Builder = Callable[[str, tuple[int, ...], str, bool], dict[str, Any]]


def _builder(function: Callable[..., dict[str, Any]]) -> Callable[..., Builder]:
    """``function(op, shape, dtype, quick, **options)`` as ``name(**options)`` for the table."""

    @functools.wraps(function)
    def with_options(**options: Any) -> Builder:
        return functools.partial(function, **options)

    return with_options


@_builder
def standard(op: str, shape: tuple[int, ...], dtype: str, quick: bool, *, isas: bool = False, out: bool = False,
             in_place: bool = False, baselines: tuple[str, ...] = _providers.BASELINES) -> dict[str, Any]:
    """logitloss (``isas``: also forced to each ISA, full run only; ``out=`` buffers, ``out=input``) and the
    ``baselines`` over the last axis."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        providers, notes = _providers.all_providers(op, x, -1, isas=isas and not quick, out=out, in_place=in_place,
                                                     baselines=baselines)
        return x, providers, notes

    return {"build": build}


@_builder
def axis0(op: str, shape: tuple[int, ...], dtype: str, quick: bool, *, isas: bool = False) -> dict[str, Any]:
    """``op`` over axis 0 of the transposed copy of ``logits(shape[::-1])``, with logitloss's last-axis call on the
    same data alongside (``out=`` buffers for softmax and log_softmax, so the two layouts time the kernel, not page
    faults)."""
    shape_last_axis = shape[::-1]

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x_last = inputs.logits(shape_last_axis)
        x_first = inputs.logits_transposed(shape_last_axis)
        out = op != "logsumexp"
        providers, notes = _providers.logitloss_providers(op, x_first, 0, isas=isas and not quick, out=out)
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

    return {"build": build}


@_builder
def backward(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """The backward modes of ``op`` (``op`` is ``<family op>_backward``) over the last axis."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape)
        providers, notes = backward_providers(op.removesuffix("_backward"), x, -1)
        return x, providers, notes

    return {"build": build}


@_builder
def memory(op: str, shape: tuple[int, ...], dtype: str, quick: bool, *, kernel: str | None = None) -> dict[str, Any]:
    """Peak extra memory of one call of ``kernel`` (default: the op) per provider, each in a fresh subprocess."""
    return {"build": lambda inputs: (np.empty(0), [], []), "values": memory_values(kernel or op, shape),
            "value_unit": "bytes"}


@_builder
def cross_entropy(op: str, shape: tuple[int, ...], dtype: str, quick: bool, *, backward: bool = True,
                  variants: tuple[str, ...] = _providers.CROSS_ENTROPY_VARIANTS, options_variant: bool = False,
                  probabilities: bool = False) -> dict[str, Any]:
    """cross_entropy providers on (N, C) logits, class-index targets or (``probabilities``) probability targets of
    the logits' shape; ``options_variant`` adds ``logitloss grad_out= smoothing+weight`` (label_smoothing=0.1 and
    class weights, into a buffer)."""

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

    return {"build": build}


@_builder
def bfloat16(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """logsumexp (axis -1) or cross_entropy fwd+bwd on bfloat16 logits against float32 logits of the same values
    and torch on the same bfloat16 memory."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        y = inputs.targets(*shape) if op != "logsumexp" else None
        providers, notes = bfloat16_providers(op, x, y)
        return x, providers, notes

    return {"build": build}


@_builder
def entropy(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """entropy_with_logits over the last axis of (N, C) logits, forward + backward and forward only, and torch's."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        providers, notes = entropy_providers(x)
        return x, providers, notes

    return {"build": build}


@_builder
def logit_options(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """cross_entropy fwd+bwd with softcap, z_loss and temperature against the plain call and torch's composition."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        providers, notes = logit_option_providers(x, inputs.targets(*shape))
        return x, providers, notes

    return {"build": build}


@_builder
def class_axis_1(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """cross_entropy of (N, C, H, W) logits, class axis 1, index targets (N, H, W): segmentation's layout."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        n, classes, height, width = shape
        x = inputs.logits(shape)
        y = inputs.targets(n * height * width, classes).reshape(n, height, width)
        providers, notes = _providers.cross_entropy_providers(
            x, y, variants=("logitloss", "logitloss grad_out=", "torch", "jax"))
        return x, providers, notes + ["numpy stable: not timed, its code here is for (N, C) logits"]

    return {"build": build}


@_builder
def binary_cross_entropy(op: str, shape: tuple[int, ...], dtype: str, quick: bool, *, backward: bool = True,
                         variants: tuple[str, ...] = _providers.BINARY_CROSS_ENTROPY_VARIANTS, weighted: bool = False,
                         unweighted_variant: bool = False) -> dict[str, Any]:
    """binary_cross_entropy_with_logits providers on ``shape`` with 0 / 1 targets; ``weighted``: ``weight`` and
    ``pos_weight`` of shape (C,) (the last axis) for every provider; ``unweighted_variant`` adds ``logitloss no
    weights`` (return_grad=True without them)."""

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

    return {"build": build}


@_builder
def calibration(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """``fit_temperature`` or ``expected_calibration_error`` (the op) on (N, C) logits with labels that are the
    argmax for 60% of the rows (an interior optimum)."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        y = calibrated_targets(x)
        providers, notes = (temperature_providers if op == "fit_temperature" else ece_providers)(x, y)
        return x, providers, notes

    return {"build": build}


@contextlib.contextmanager
def _logitloss_threads(threads: int) -> Iterator[None]:
    import logitloss

    previous = logitloss.get_num_threads()
    logitloss.set_num_threads(threads)
    try:
        yield
    finally:
        logitloss.set_num_threads(previous)


@_builder
def thread_scaling(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """logitloss ``op`` with 1 and with 2 threads; each sample is one call after one untimed call."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape)
        base, notes = _providers.logitloss_providers(op, x, -1)
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
            Provider(f"logitloss {n} thread{'s' if n > 1 else ''}", fn, context=lambda n=n: _logitloss_threads(n),
                     setup=fn, isa=base[0].isa, threads=n)
            for n in (1, 2)
        ]
        return x, providers, notes

    return {"build": build}


@_builder
def linear_head(op: str, shape: tuple[int, ...], dtype: str, quick: bool, *, classes: int, backward: bool = True,
                variants: tuple[str, ...] = LINEAR_HEAD_VARIANTS, threads: bool = False) -> dict[str, Any]:
    """linear_cross_entropy of hidden states ``shape`` = (N, D) and a head (``classes``, D) scaled by D^-1/2 (logits
    of spread about 1), class-index targets; ``threads``: logitloss at 1 and at 2 threads instead of ``variants``."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        rows, features = shape
        x = inputs.logits(shape, dtype)
        w = inputs.logits((classes, features), dtype) * np.asarray(features ** -0.5, dtype)
        y = inputs.targets(rows, classes)
        if not threads:
            providers, notes = linear_head_providers(x, w, y, backward=backward, variants=variants)
            return x, providers, notes
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if cores < 2:
            return x, [], [f"only {cores} core available; thread rows skipped"]
        base, notes = linear_head_providers(x, w, y, backward=backward, variants=("logitloss",))
        fn = base[0].fn
        providers = [Provider(f"logitloss {n} thread{'s' if n > 1 else ''}", fn, context=lambda n=n: _logitloss_threads(n),
                              threads=n, checked=False) for n in (1, 2)]
        try:
            import threadpoolctl  # noqa: F401
        except ImportError:
            notes.append("threadpoolctl is not installed: the BLAS ran at its own thread count in both")
        return x, providers, notes

    return {"build": build}


@_builder
def linear_head_memory(op: str, shape: tuple[int, ...], dtype: str, quick: bool, *, classes: int,
                       row_counts: tuple[int, ...]) -> dict[str, Any]:
    """Peak extra memory of linear_cross_entropy fwd+bwd and torch's plain path at each N of ``row_counts``, D =
    ``shape[1]``, each in a fresh subprocess."""
    return {"build": lambda inputs: (np.empty(0), [], []),
            "values": linear_head_memory_values(row_counts, shape[1], classes), "value_unit": "bytes"}


@_builder
def contrastive(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """contrastive_loss (CLIP, symmetric) of a square similarity matrix ``shape``, positives on the diagonal."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        providers, notes = contrastive_providers(x)
        return x, providers, notes

    return {"build": build}



@_builder
def kl_divergence(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """kl_div_with_logits of the student logits ``shape`` toward a nearby teacher (distillation)."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        providers, notes = kl_div_providers(x, teacher_logits(x), inputs.targets(shape[0], shape[1]))
        return x, providers, notes

    return {"build": build}


@_builder
def jensen_shannon(op: str, shape: tuple[int, ...], dtype: str, quick: bool) -> dict[str, Any]:
    """jsd_with_logits (beta = 0.5) of the student logits ``shape`` toward a nearby teacher."""

    def build(inputs: InputCache) -> tuple[np.ndarray, list[Provider], list[str]]:
        x = inputs.logits(shape, dtype)
        providers, notes = jsd_providers(x, teacher_logits(x))
        return x, providers, notes

    return {"build": build}
