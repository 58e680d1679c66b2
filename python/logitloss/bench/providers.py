"""Providers: the timed calls of each library for one op on one input, built outside the timing.

Every factory returns ``(providers, notes)``.  A library or function that is missing gives no provider and a
note ("torch: not installed"), never an error, so the harness runs wherever only some baselines exist.

Names used in the tables:

- ``logitloss``: the ISA logitloss chose for this CPU; ``logitloss[isa]``: forced with ``logitloss.use_isa``
  (entered around each sample, outside the timed loop).
- ``logitloss``: a new result; from 32 MiB on it is placed in the memory of the previous sample's dropped
  result (``logitloss.set_output_reuse``), as in a loop. ``logitloss reuse off``: the same call with output
  reuse off, so every result is in fresh pages and their page faults are timed (torch's results always are).
- ``... out=``: the result written into a preallocated buffer (``out=`` of logitloss and torch), so no
  page faults of a fresh result are timed; ``logitloss out=input``: softmax / log_softmax written over their
  input (a private copy of ``x`` that ``setup`` restores before each sample, outside the timing).
- ``numpy stable``: the max-shifted NumPy code users write (``numpy_formulas.numpy_*``); ``numpy naive``: the
  textbook code without the shift (``numpy_formulas.numpy_naive_*``: ``log(sum(exp(x)))``, ``exp(x) / sum``, the log
  of that softmax).
- ``scipy``: ``scipy.special.logsumexp / softmax / log_softmax``.
- ``torch``: ``torch.logsumexp / softmax / log_softmax`` on ``torch.from_numpy(x)`` (made outside the timing);
  its thread count is set by the harness (``torch.set_num_threads``).
- ``jax``: ``jax.nn.logsumexp / softmax / log_softmax`` jitted (:mod:`~logitloss.bench.jax_calls`: CPU, one
  thread) on ``jax.device_put(x)`` (made outside the timing), each call waited for (``block_until_ready``).

Cross-entropy providers (:func:`cross_entropy_providers`, mean reduction, class-index targets ``y``):

- forward + backward: ``logitloss`` = ``cross_entropy(x, y, return_grad=True)`` (a new gradient: in the
  previous sample's dropped one from 32 MiB on, see ``logitloss reuse off`` above); ``logitloss reuse off`` = the
  same with every gradient in fresh pages (page faults timed); ``logitloss grad_out=`` = into a preallocated buffer; ``logitloss grad_out=input`` = in
  place on a private copy of ``x`` that ``setup`` restores with ``np.copyto`` before each sample (outside the
  timing; rows using it time single calls so every call sees the original logits); ``logitloss backward only``
  = ``cross_entropy_backward(1.0, x, y)``; ``torch`` = the training-loop form
  ``z = torch.from_numpy(x).requires_grad_(); F.cross_entropy(z, torch.from_numpy(y)).backward(); z.grad``;
  ``numpy stable`` = ``numpy_formulas.numpy_cross_entropy_fwd_bwd``; ``jax`` = ``jax.value_and_grad`` of
  ``-mean(take_along_axis(log_softmax(x), y[:, None], -1))``, jitted (``jax_calls.cross_entropy``).
- forward only: ``logitloss`` = ``cross_entropy(x, y)``; ``torch`` =
  ``F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y))``; ``numpy stable``; ``jax`` (no gradient).

Binary cross-entropy providers (:func:`binary_cross_entropy_providers`, mean reduction, float targets ``y`` of
``x``'s shape, optional ``weight`` and ``pos_weight``): the same variants with
``binary_cross_entropy_with_logits`` / ``..._backward`` and ``F.binary_cross_entropy_with_logits``; ``numpy
stable`` = ``numpy_formulas.numpy_binary_cross_entropy_fwd_bwd`` (``np.mean(np.maximum(x, 0) - x*y +
np.log1p(np.exp(-np.abs(x))))`` and ``(1 / (1 + np.exp(-x)) - y) / x.size``); ``jax`` = optax's formula written
inline with ``jax.nn.log_sigmoid`` (``jax_calls.binary_cross_entropy``).

Each carries its own check (``checks.cross_entropy_check`` / ``binary_cross_entropy_check``) against the float64
references on the pristine ``x``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import checks, jax_calls, numpy_formulas
from .harness import Provider

__all__ = [
    "OPS",
    "BINARY_CROSS_ENTROPY_VARIANTS",
    "CROSS_ENTROPY_VARIANTS",
    "all_providers",
    "binary_cross_entropy_providers",
    "cross_entropy_providers",
    "jax_providers",
    "logitloss_providers",
    "numpy_naive_providers",
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


REUSABLE_BYTES = 32 * 2**20  # results this large reuse dropped results' memory (logitloss.set_output_reuse)


@contextlib.contextmanager
def _output_reuse_off(module: Any) -> Iterator[None]:
    """Output reuse off around a sample (idle buffers stay, for the providers that reuse them)."""
    previous = module.get_output_reuse()
    module.set_output_reuse(False)
    try:
        yield
    finally:
        module.set_output_reuse(previous)


def logitloss_providers(
    op: str,
    x: np.ndarray,
    axis: int,
    *,
    fresh: bool = True,
    out: bool = False,
    isas: bool = False,
    in_place: bool = False,
    name: str = "logitloss",
) -> Built:
    """logitloss with the chosen ISA (``fresh`` result and/or ``out=``; ``out=input`` if ``in_place``), plus each
    supported ISA if ``isas``.

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
    if fresh and buffer is not None and x.nbytes >= REUSABLE_BYTES and hasattr(module, "set_output_reuse"):
        providers.append(Provider(f"{name} reuse off", fresh_call, context=lambda: _output_reuse_off(module),
                                  isa=chosen))
    if buffer is not None:
        providers.append(Provider(f"{name} out=", out_call, isa=chosen))
    if in_place and op in _OUT_OPS:
        work = x.copy()

        def in_place_call() -> Any:
            return function(work, axis=axis, out=work)

        # Restored before each sample; a sample of several calls applies the op to its own output from the
        # second call on: the same work on values of the same range (a rows' softmax is in [0, 1]).
        providers.append(Provider(f"{name} out=input", in_place_call, setup=lambda: np.copyto(work, x), isa=chosen))
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
    function: Callable[[np.ndarray, int], np.ndarray] = getattr(numpy_formulas, f"numpy_{op}")
    return [Provider("numpy stable", lambda: function(x, axis))], []


def numpy_naive_providers(op: str, x: np.ndarray, axis: int) -> Built:
    function: Callable[[np.ndarray, int], np.ndarray] = getattr(numpy_formulas, f"numpy_naive_{op}")
    return [Provider("numpy naive", lambda: function(x, axis))], []


def jax_providers(op: str, x: np.ndarray, axis: int) -> Built:
    """``jax.nn.<op>`` jitted on a JAX copy of ``x`` (see the module doc); none, with a note, without JAX."""
    jax, note = jax_calls.load_jax()
    if jax is None:
        return [], [note or "jax: not available"]
    array = jax.device_put(x)
    function = jax_calls.forward(op, axis)
    return [Provider("jax", lambda: jax_calls.ready(function(array)))], []


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


BASELINES = ("numpy", "numpy naive", "scipy", "torch", "jax")


def all_providers(
    op: str,
    x: np.ndarray,
    axis: int,
    *,
    isas: bool = False,
    out: bool = False,
    in_place: bool = False,
    baselines: tuple[str, ...] = BASELINES,
) -> Built:
    """logitloss (chosen ISA; each ISA if ``isas``; ``out=`` variants if ``out``; ``out=input`` if ``in_place``)
    and the named baselines (of ``BASELINES``)."""
    providers, notes = logitloss_providers(op, x, axis, out=out, isas=isas, in_place=in_place)
    factories: dict[str, Callable[[], Built]] = {
        "numpy": lambda: numpy_providers(op, x, axis),
        "numpy naive": lambda: numpy_naive_providers(op, x, axis),
        "scipy": lambda: scipy_providers(op, x, axis),
        "torch": lambda: torch_providers(op, x, axis, out=out),
        "jax": lambda: jax_providers(op, x, axis),
    }
    for baseline in baselines:
        more, more_notes = factories[baseline]()
        providers += more
        notes += more_notes
    return providers, notes


CROSS_ENTROPY_VARIANTS = ("logitloss", "logitloss reuse off", "logitloss grad_out=", "logitloss grad_out=input",
                          "logitloss backward only", "logitloss.torch", "torch", "jax", "numpy stable")
BINARY_CROSS_ENTROPY_VARIANTS = CROSS_ENTROPY_VARIANTS


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

    ``x`` is (N, C) or, class axis 1, (N, C, d1, ...) with ``y`` (N, d1, ...) as torch takes it.
    ``weight`` / ``label_smoothing`` are passed to every provider; ``suffix`` is appended to each name.
    NumPy stable and JAX have neither option (they are left out when one is given); NumPy stable is 2-D only.
    """
    options: dict[str, Any] = {}
    if weight is not None:
        options["weight"] = weight
    if label_smoothing:
        options["label_smoothing"] = label_smoothing
    plain = weight is None and not label_smoothing
    numpy_plain = plain and x.ndim == 2
    check = checks.cross_entropy_check(x, y, weight=weight, label_smoothing=label_smoothing, grad=backward)
    return _loss_providers(
        "cross_entropy", x, y, options,
        check=check,
        numpy_forward=(lambda: numpy_formulas.numpy_cross_entropy(x, y)) if numpy_plain else None,
        numpy_fwd_bwd=(lambda: numpy_formulas.numpy_cross_entropy_fwd_bwd(x, y)) if numpy_plain else None,
        jax_loss=(lambda jax_x, jax_y: jax_calls.cross_entropy(1 if x.ndim > 2 else -1, backward)(jax_x, jax_y))
        if plain else None,
        backward=backward, variants=variants, suffix=suffix,
    )


def binary_cross_entropy_providers(
    x: np.ndarray,
    y: np.ndarray,
    *,
    backward: bool = True,
    variants: tuple[str, ...] = BINARY_CROSS_ENTROPY_VARIANTS,
    weight: np.ndarray | None = None,
    pos_weight: np.ndarray | None = None,
    suffix: str = "",
) -> Built:
    """binary_cross_entropy_with_logits providers (mean reduction, targets ``y`` of ``x``'s shape) named in
    ``variants``, as :func:`cross_entropy_providers`; ``weight`` and ``pos_weight`` go to every provider (NumPy
    stable included: ``numpy_formulas.numpy_binary_cross_entropy*``)."""
    options = {name: value for name, value in (("weight", weight), ("pos_weight", pos_weight)) if value is not None}
    return _loss_providers(
        "binary_cross_entropy_with_logits", x, y, options,
        check=checks.binary_cross_entropy_check(x, y, weight=weight, pos_weight=pos_weight, grad=backward),
        numpy_forward=lambda: numpy_formulas.numpy_binary_cross_entropy(x, y, weight, pos_weight),
        numpy_fwd_bwd=lambda: numpy_formulas.numpy_binary_cross_entropy_fwd_bwd(x, y, weight, pos_weight),
        jax_loss=lambda jax_x, jax_y, **jax_options: jax_calls.binary_cross_entropy(backward)(
            jax_x, jax_y, jax_options.get("weight"), jax_options.get("pos_weight")),
        backward=backward, variants=variants, suffix=suffix,
    )


def _loss_providers(
    op: str,
    x: np.ndarray,
    y: np.ndarray,
    options: dict[str, Any],
    *,
    check: Callable[[Any], str | None],
    numpy_forward: Callable[[], Any] | None,
    numpy_fwd_bwd: Callable[[], Any] | None,
    jax_loss: Callable[..., Any] | None,
    backward: bool,
    variants: tuple[str, ...],
    suffix: str,
) -> Built:
    """The providers of a loss ``op(input, target, **options)`` of logitloss (``op`` and ``op + "_backward"``)
    and of ``torch.nn.functional.op``, and NumPy stable and ``jax_loss(x, y, **options)`` (on JAX arrays) where
    given; see the module doc for the variants.

    NumPy array options are passed to torch as tensors (``torch.from_numpy``, made outside the timing).
    """
    providers: list[Provider] = []
    notes: list[str] = []
    wanted = set(variants)
    module, note = _import("logitloss")
    function = getattr(module, op, None) if module is not None else None
    if module is None:
        notes.append(note or "logitloss: not available")
    elif function is None:
        notes.append(f"logitloss.{op}: not available in logitloss {getattr(module, '__version__', '?')}")
    else:
        chosen = _safe(lambda: module.get_isa(), "")

        def add(name: str, call: Callable[[], Any], setup: Callable[[], Any] | None = None,
                context: Callable[[], Any] | None = None) -> None:
            if name in wanted:
                providers.append(Provider(name + suffix, call, setup=setup, context=context, isa=chosen, check=check))

        if not backward:
            add("logitloss", lambda: function(x, y, **options))
        else:
            add("logitloss", lambda: function(x, y, return_grad=True, **options))
            if x.nbytes >= REUSABLE_BYTES and hasattr(module, "set_output_reuse"):
                add("logitloss reuse off", lambda: function(x, y, return_grad=True, **options),
                    context=lambda: _output_reuse_off(module))
            if "logitloss grad_out=" in wanted:
                buffer = np.empty_like(x)
                buffer.fill(0)  # fault the pages in before timing
                add("logitloss grad_out=", lambda: function(x, y, grad_out=buffer, **options))
            if "logitloss grad_out=input" in wanted:
                work = x.copy()
                add("logitloss grad_out=input", lambda: function(work, y, grad_out=work, **options),
                    setup=lambda: np.copyto(work, x))
            add("logitloss return_hessian=True", lambda: function(x, y, return_hessian=True, **options))
            if "logitloss grad_out= hessian_out=" in wanted:
                grad_buffer, hessian_buffer = np.zeros_like(x), np.zeros_like(x)  # pages faulted in before timing
                add("logitloss grad_out= hessian_out=",
                    lambda: function(x, y, grad_out=grad_buffer, hessian_out=hessian_buffer, **options))
            if "logitloss backward only" in wanted:
                backward_function = getattr(module, op + "_backward", None)
                if backward_function is None:
                    notes.append(f"logitloss.{op}_backward: not available")
                else:
                    add("logitloss backward only", lambda: backward_function(1.0, x, y, **options))
    if "torch" in wanted:
        torch, note = _import("torch")
        if torch is None:
            notes.append(note or "torch: not installed")
        else:
            torch_function = getattr(torch.nn.functional, op)
            torch_options = {name: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                             for name, value in options.items()}
            target = torch.from_numpy(y)

            def torch_fwd_bwd() -> Any:
                z = torch.from_numpy(x).requires_grad_()
                loss = torch_function(z, target, **torch_options)
                loss.backward()
                return loss.detach(), z.grad

            def torch_forward() -> Any:
                return torch_function(torch.from_numpy(x), target, **torch_options)

            providers.append(Provider("torch" + suffix, torch_fwd_bwd if backward else torch_forward, check=check))
            adapter, adapter_note = _import("logitloss.torch") if "logitloss.torch" in wanted else (None, None)
            if adapter is not None:
                providers.append(Provider("logitloss.torch" + suffix, _torch_training_step(
                    getattr(adapter, op), torch, x, target, torch_options, backward), check=check))
            elif adapter_note:
                notes.append(adapter_note)
    if "jax" in wanted and jax_loss is not None:
        jax, note = jax_calls.load_jax()
        if jax is None:
            notes.append(note or "jax: not available")
        else:
            jax_x, jax_y = jax.device_put(x), jax.device_put(y)
            jax_options = {name: jax.device_put(value) if isinstance(value, np.ndarray) else value
                           for name, value in options.items()}
            providers.append(Provider("jax" + suffix, lambda: jax_calls.ready(jax_loss(jax_x, jax_y, **jax_options)),
                                      check=check))
    numpy_call = numpy_fwd_bwd if backward else numpy_forward
    if "numpy stable" in wanted and numpy_call is not None:
        providers.append(Provider("numpy stable" + suffix, numpy_call, check=check))
    return providers, notes


def _torch_training_step(function: Callable[..., Any], torch: Any, x: np.ndarray, target: Any,
                         options: dict[str, Any], backward: bool) -> Callable[[], Any]:
    """The torch provider's call with ``logitloss.torch``'s function in place of torch's: a leaf tensor on x's
    memory, the loss, ``.backward()``, its ``.grad`` (the loss part of a training step)."""

    def step() -> Any:
        z = torch.from_numpy(x).requires_grad_()
        loss = function(z, target, **options)
        loss.backward()
        return loss.detach(), z.grad

    return step if backward else (lambda: function(torch.from_numpy(x), target, **options))


def _safe(function: Callable[[], Any], default: Any) -> Any:
    try:
        return function()
    except Exception:
        return default
