"""Peak extra memory of one call, per provider, for every kernel: the values of the ``*_memory`` rows.

Each provider's call runs in a fresh subprocess (:func:`~logitloss.bench.harness.measure_peak_memory`: ``ru_maxrss``
after the call - max(``ru_maxrss``, RSS) before it), so C++ allocations count like NumPy's, torch's and XLA's.
The same method for every provider, logitloss included:

1. the child makes the float32 logits (and the targets of a loss) in their dtype, without larger temporaries;
2. it warms the library up on 8 rows (thread pools, dispatch tables; JAX compiles the call for the measured shape
   ahead of time, ``jit(...).lower(...).compile()``, as a training loop has done by its second step) and moves
   the inputs to the library (``torch.from_numpy``, ``jax.device_put``) outside the measurement;
3. it runs the measured call once, keeping its result alive: a fresh result counts, as it does for a caller.

Values are bytes; the row's ``logits`` value is ``x.nbytes``, the unit of the report's ratios.  Calls:

- logsumexp / softmax / log_softmax (axis -1): ``logitloss`` (a fresh result), ``logitloss out=input`` (softmax,
  log_softmax), ``logitloss return_grad=True`` (logsumexp: value and gradient), ``numpy stable``, ``numpy naive``,
  ``scipy``, ``torch``, ``jax``;
- cross_entropy / binary_cross_entropy_with_logits, forward + backward: ``logitloss return_grad=True``,
  ``logitloss grad_out=input``, ``torch`` (``.backward()``), ``jax`` (``value_and_grad``), ``numpy stable``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from .harness import measure_peak_memory

__all__ = ["memory_calls", "memory_values"]

FAMILY = ("logsumexp", "softmax", "log_softmax")

_SETUP = """
import numpy as np
import logitloss
from logitloss.bench import numpy_formulas
logitloss.set_num_threads(1)
x = np.random.default_rng(0).standard_normal(({rows}, {classes}), dtype=np.float32)
{targets}
report["logits_bytes"] = x.nbytes
small_x = np.ascontiguousarray(x[:8])
{prepare}
"""

# Targets made without a temporary larger than what is kept (see harness.measure_peak_memory).
_TARGETS = {
    "cross_entropy": "y = np.random.default_rng(1).integers(0, {classes}, {rows}, dtype=np.int64)",
    "binary_cross_entropy_with_logits": "y = np.random.default_rng(1).standard_normal(({rows}, {classes}), "
                                        "dtype=np.float32)\nnp.heaviside(y, np.float32(0), out=y)",
}
_NUMPY_LOSS = {
    "cross_entropy": "numpy_formulas.numpy_cross_entropy_fwd_bwd",
    "binary_cross_entropy_with_logits": "numpy_formulas.numpy_binary_cross_entropy_fwd_bwd",
}
_TORCH = "import torch\nimport torch.nn.functional as F\ntorch.set_num_threads(1)\n"
_JAX = "from logitloss.bench import jax_calls\njax, _ = jax_calls.load_jax()\nxj = jax.device_put(x)\n"
_JAX_LOSS = {  # the jitted loss with its gradient, and its arguments
    "cross_entropy": ("jax_calls.cross_entropy(-1, True)", "xj, yj"),
    "binary_cross_entropy_with_logits": ("jax_calls.binary_cross_entropy(True)", "xj, yj, None, None"),
}
# The library each provider needs beyond NumPy and logitloss: without it the provider is skipped with a note.
_LIBRARY = {"scipy": "scipy", "torch": "torch", "jax": "jax"}


def _family_calls(op: str) -> dict[str, tuple[str, str]]:
    calls = {
        "logitloss": (f"logitloss.{op}(small_x, axis=-1)", f"result = logitloss.{op}(x, axis=-1)"),
    }
    if op == "logsumexp":
        calls["logitloss return_grad=True"] = ("logitloss.logsumexp(small_x, axis=-1, return_grad=True)",
                                               "result = logitloss.logsumexp(x, axis=-1, return_grad=True)")
    else:
        calls["logitloss out=input"] = (f"logitloss.{op}(small_x, axis=-1, out=small_x)",
                                        f"result = logitloss.{op}(x, axis=-1, out=x)")
    calls.update({
        "numpy stable": (f"numpy_formulas.numpy_{op}(small_x, -1)", f"result = numpy_formulas.numpy_{op}(x, -1)"),
        "numpy naive": (f"numpy_formulas.numpy_naive_{op}(small_x, -1)", f"result = numpy_formulas.numpy_naive_{op}(x, -1)"),
        "scipy": (f"import scipy.special\nscipy.special.{op}(small_x, axis=-1)",
                  f"result = scipy.special.{op}(x, axis=-1)"),
        "torch": (_TORCH + f"torch.{op}(torch.from_numpy(small_x), -1)\ntx = torch.from_numpy(x)",
                  f"result = torch.{op}(tx, -1)"),
        "jax": (_JAX + f"compiled = jax_calls.forward('{op}', -1).lower(xj).compile()",
                "result = jax_calls.ready(compiled(xj))"),
    })
    return calls


def _loss_calls(op: str) -> dict[str, tuple[str, str]]:
    numpy_loss = _NUMPY_LOSS[op]
    jax_loss, jax_arguments = _JAX_LOSS[op]
    return {
        "logitloss return_grad=True": (f"logitloss.{op}(small_x, small_y, return_grad=True)",
                                       f"loss, gradient = logitloss.{op}(x, y, return_grad=True)"),
        "logitloss grad_out=input": (f"logitloss.{op}(small_x, small_y, grad_out=small_x)",
                                     f"loss, gradient = logitloss.{op}(x, y, grad_out=x)"),
        "torch": (
            _TORCH + "z = torch.from_numpy(small_x).requires_grad_()\n"
                     f"F.{op}(z, torch.from_numpy(small_y)).backward()\n"
                     "tx, ty = torch.from_numpy(x), torch.from_numpy(y)",
            f"z = tx.requires_grad_(); F.{op}(z, ty).backward(); gradient = z.grad",
        ),
        "jax": (_JAX + f"yj = jax.device_put(y)\ncompiled = {jax_loss}.lower({jax_arguments}).compile()",
                f"loss, gradient = jax_calls.ready(compiled({jax_arguments}))"),
        "numpy stable": (f"{numpy_loss}(small_x, small_y)", f"loss, gradient = {numpy_loss}(x, y)"),
    }


def memory_calls(op: str) -> dict[str, tuple[str, str]]:
    """provider -> (preparation after the inputs exist, the measured call) of ``op`` (see the module doc)."""
    return _family_calls(op) if op in FAMILY else _loss_calls(op)


def memory_values(
    op: str, shape: tuple[int, int], only: tuple[str, ...] | None = None,
) -> Callable[[], tuple[dict[str, float], list[str]]]:
    """The ``Case.values`` of a memory row: ``({"logits": x.nbytes, provider: peak extra bytes, ...}, notes)``
    for every provider of :func:`memory_calls` (or those named in ``only``); a provider whose library is missing
    or whose child fails gives a note instead of a value."""

    def values() -> tuple[dict[str, float], list[str]]:
        measured: dict[str, float] = {}
        notes: list[str] = []
        rows, classes = shape
        targets = _TARGETS[op].format(rows=rows, classes=classes) if op in _TARGETS else ""
        small_targets = "small_y = np.ascontiguousarray(y[:8])\n" if op in _TARGETS else ""
        for name, (prepare, call) in memory_calls(op).items():
            if only is not None and name not in only:
                continue
            library = _LIBRARY.get(name)
            if library is not None and importlib.util.find_spec(library) is None:
                notes.append(f"{name}: not measured, {library} is not installed")
                continue
            setup = _SETUP.format(rows=rows, classes=classes, targets=targets, prepare=small_targets + prepare)
            try:
                peak = measure_peak_memory(setup, call, label=name)
            except Exception as error:
                notes.append(f"{name}: not measured, {type(error).__name__}: {error}")
                continue
            measured["logits"] = float(peak.report["logits_bytes"])
            measured[name] = float(peak.peak_extra)
            notes.append(f"{name}: RSS before {peak.rss_before / 1e6:.1f} MB, peak before "
                         f"{peak.maxrss_before / 1e6:.1f} MB, peak after {peak.maxrss_after / 1e6:.1f} MB")
        return measured, notes

    return values
