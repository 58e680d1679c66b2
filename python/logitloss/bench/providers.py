"""Providers: the timed calls of each library for one op on one input, built outside the timing.

Every factory returns ``(providers, notes)``.  A library or function that is missing gives no provider and a
note ("torch: not installed"), never an error, so the harness runs wherever only some baselines exist.

Names used in the tables:

- ``logitloss``: the ISA logitloss chose for this CPU; ``logitloss[isa]``: forced with ``logitloss.use_isa``
  (entered around each sample, outside the timed loop).
- ``... out=``: the result written into a preallocated buffer (``out=`` of logitloss and torch), so no
  page faults of a fresh result are timed.
- ``numpy stable``: the max-shifted NumPy code users write (``references.numpy_*``).
- ``scipy``: ``scipy.special.logsumexp / softmax / log_softmax``.
- ``torch``: ``torch.logsumexp / softmax / log_softmax`` on ``torch.from_numpy(x)`` (made outside the timing);
  its thread count is set by the harness (``torch.set_num_threads``).

Cross-entropy providers (:func:`cross_entropy_providers`, mean reduction, class-index targets ``y``):

- forward + backward: ``logitloss`` = ``cross_entropy(x, y, return_grad=True)`` (a fresh gradient, its page
  faults timed); ``logitloss grad_out=`` = into a preallocated buffer; ``logitloss grad_out=input`` = in
  place on a private copy of ``x`` that ``setup`` restores with ``np.copyto`` before each sample (outside the
  timing; rows using it time single calls so every call sees the original logits); ``logitloss backward only``
  = ``cross_entropy_backward(1.0, x, y)``; ``torch`` = the training-loop form
  ``z = torch.from_numpy(x).requires_grad_(); F.cross_entropy(z, torch.from_numpy(y)).backward(); z.grad``;
  ``numpy stable`` = ``references.numpy_cross_entropy_fwd_bwd``.
- forward only: ``logitloss`` = ``cross_entropy(x, y)``; ``torch`` =
  ``F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y))``; ``numpy stable``.

Each carries its own check (``references.cross_entropy_check``) against float64 on the pristine ``x``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from . import references
from .harness import Provider

__all__ = [
    "OPS",
    "CROSS_ENTROPY_VARIANTS",
    "all_providers",
    "cross_entropy_providers",
    "logitloss_providers",
    "numpy_providers",
    "scipy_providers",
    "torch_providers",
]

OPS = ("logsumexp", "softmax", "log_softmax")
_OUT_OPS = ("softmax", "log_softmax")

Built = tuple[list[Provider], list[str]]


def _import(name: str) -> tuple[Any, str | None]:
    try:
        return importlib.import_module(name), None
    except Exception as error:
        return None, f"{name}: not available ({type(error).__name__}: {error}); its rows are skipped"


def logitloss_providers(
    op: str,
    x: np.ndarray,
    axis: int,
    *,
    fresh: bool = True,
    out: bool = False,
    isas: bool = False,
    name: str = "logitloss",
) -> Built:
    """logitloss with the chosen ISA (``fresh`` result and/or ``out=``), plus each supported ISA if ``isas``.

    The per-ISA providers use ``out=`` when ``out`` is set (they measure the kernel, not the allocator).
    """
    module, note = _import("logitloss")
    if module is None:
        return [], [note or "logitloss: not available"]
    function = getattr(module, op, None)
    if function is None:
        return [], [f"logitloss.{op}: not available in logitloss {getattr(module, '__version__', '?')}"]
    chosen = _safe(lambda: module.get_isa(), "")
    providers: list[Provider] = []
    notes: list[str] = []
    buffer = np.empty_like(x) if out and op in _OUT_OPS else None

    def fresh_call() -> Any:
        return function(x, axis=axis)

    def out_call() -> Any:
        function(x, axis=axis, out=buffer)
        return buffer

    if fresh or buffer is None:
        providers.append(Provider(name, fresh_call, isa=chosen))
    if buffer is not None:
        providers.append(Provider(f"{name} out=", out_call, isa=chosen))
    if isas:
        supported = _safe(lambda: list(module.supported_isas()), [])
        use_isa = getattr(module, "use_isa", None)
        if not supported or use_isa is None:
            notes.append("logitloss: supported_isas()/use_isa() not available; per-ISA rows skipped")
        for isa in supported:
            call = out_call if buffer is not None else fresh_call
            suffix = " out=" if buffer is not None else ""
            providers.append(
                Provider(f"{name}[{isa}]{suffix}", call, context=lambda isa=isa: use_isa(isa), isa=isa)
            )
    return providers, notes


def numpy_providers(op: str, x: np.ndarray, axis: int) -> Built:
    function: Callable[[np.ndarray, int], np.ndarray] = getattr(references, f"numpy_{op}")
    return [Provider("numpy stable", lambda: function(x, axis))], []


def scipy_providers(op: str, x: np.ndarray, axis: int) -> Built:
    special, note = _import("scipy.special")
    if special is None:
        return [], [note or "scipy: not available"]
    function = getattr(special, op, None)
    if function is None:
        return [], [f"scipy.special.{op}: not available"]
    return [Provider("scipy", lambda: function(x, axis=axis))], []


def torch_providers(op: str, x: np.ndarray, axis: int, *, fresh: bool = True, out: bool = False) -> Built:
    torch, note = _import("torch")
    if torch is None:
        return [], [note or "torch: not installed"]
    tensor = torch.from_numpy(x)
    function = getattr(torch, op)
    providers: list[Provider] = []
    if fresh or op not in _OUT_OPS:
        providers.append(Provider("torch", lambda: function(tensor, dim=axis)))
    if out and op in _OUT_OPS:
        buffer = torch.empty_like(tensor)

        def out_call() -> Any:
            function(tensor, axis, out=buffer)
            return buffer

        providers.append(Provider("torch out=", out_call))
    return providers, []


def all_providers(
    op: str,
    x: np.ndarray,
    axis: int,
    *,
    isas: bool = False,
    out: bool = False,
    baselines: tuple[str, ...] = ("numpy", "scipy", "torch"),
) -> Built:
    """logitloss (chosen ISA; each ISA if ``isas``; ``out=`` variants if ``out``) and the named baselines."""
    providers, notes = logitloss_providers(op, x, axis, out=out, isas=isas)
    factories: dict[str, Callable[[], Built]] = {
        "numpy": lambda: numpy_providers(op, x, axis),
        "scipy": lambda: scipy_providers(op, x, axis),
        "torch": lambda: torch_providers(op, x, axis, out=out),
    }
    for baseline in baselines:
        more, more_notes = factories[baseline]()
        providers += more
        notes += more_notes
    return providers, notes


CROSS_ENTROPY_VARIANTS = ("logitloss", "logitloss grad_out=", "logitloss grad_out=input", "logitloss backward only",
                          "torch", "numpy stable")


def cross_entropy_providers(
    x: np.ndarray,
    y: np.ndarray,
    *,
    backward: bool = True,
    variants: tuple[str, ...] = CROSS_ENTROPY_VARIANTS,
    weight: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    suffix: str = "",
) -> Built:
    """Cross-entropy providers named in ``variants`` (see the module doc), forward + backward if ``backward``.

    ``weight`` / ``label_smoothing`` are passed to every provider; ``suffix`` is appended to each name.
    """
    check = references.cross_entropy_check(x, y, weight=weight, label_smoothing=label_smoothing, grad=backward)
    options: dict[str, Any] = {}
    if weight is not None:
        options["weight"] = weight
    if label_smoothing:
        options["label_smoothing"] = label_smoothing
    providers: list[Provider] = []
    notes: list[str] = []
    wanted = set(variants)
    module, note = _import("logitloss")
    if module is None:
        notes.append(note or "logitloss: not available")
    elif getattr(module, "cross_entropy", None) is None:
        notes.append(f"logitloss.cross_entropy: not available in logitloss {getattr(module, '__version__', '?')}")
    else:
        chosen = _safe(lambda: module.get_isa(), "")
        cross_entropy = module.cross_entropy
        if not backward:
            if "logitloss" in wanted:
                providers.append(Provider("logitloss" + suffix, lambda: cross_entropy(x, y, **options),
                                          isa=chosen, check=check))
        else:
            if "logitloss" in wanted:
                providers.append(Provider("logitloss" + suffix,
                                          lambda: cross_entropy(x, y, return_grad=True, **options),
                                          isa=chosen, check=check))
            if "logitloss grad_out=" in wanted:
                buffer = np.empty_like(x)
                buffer.fill(0)  # fault the pages in before timing
                providers.append(Provider("logitloss grad_out=" + suffix,
                                          lambda: cross_entropy(x, y, grad_out=buffer, **options),
                                          isa=chosen, check=check))
            if "logitloss grad_out=input" in wanted:
                work = x.copy()
                providers.append(Provider("logitloss grad_out=input" + suffix,
                                          lambda: cross_entropy(work, y, grad_out=work, **options),
                                          setup=lambda: np.copyto(work, x), isa=chosen, check=check))
            if "logitloss backward only" in wanted:
                backward_function = getattr(module, "cross_entropy_backward", None)
                if backward_function is None:
                    notes.append("logitloss.cross_entropy_backward: not available")
                else:
                    providers.append(Provider("logitloss backward only" + suffix,
                                              lambda: backward_function(1.0, x, y, **options), isa=chosen,
                                              check=check))
    if "torch" in wanted:
        torch, note = _import("torch")
        if torch is None:
            notes.append(note or "torch: not installed")
        else:
            functional = torch.nn.functional
            torch_options = dict(options)
            if weight is not None:
                torch_options["weight"] = torch.from_numpy(weight)

            def torch_fwd_bwd() -> Any:
                z = torch.from_numpy(x).requires_grad_()
                loss = functional.cross_entropy(z, torch.from_numpy(y), **torch_options)
                loss.backward()
                return loss.detach(), z.grad

            def torch_forward() -> Any:
                return functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), **torch_options)

            providers.append(Provider("torch" + suffix, torch_fwd_bwd if backward else torch_forward, check=check))
    if "numpy stable" in wanted and weight is None and not label_smoothing:
        if backward:
            providers.append(Provider("numpy stable" + suffix,
                                      lambda: references.numpy_cross_entropy_fwd_bwd(x, y), check=check))
        else:
            providers.append(Provider("numpy stable" + suffix,
                                      lambda: references.numpy_cross_entropy(x, y), check=check))
    return providers, notes


def _safe(function: Callable[[], Any], default: Any) -> Any:
    try:
        return function()
    except Exception:
        return default
