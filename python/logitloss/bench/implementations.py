"""Each library's way of computing a kernel's value and gradient, for the safety and accuracy tables.

:func:`compute` returns ``(value, gradient)`` of one kernel (see :mod:`~logitloss.bench.verdicts` for what value
and gradient are) as one provider computes them, in the dtype of the input:

- ``logitloss``: the forward function and its gradient as the API offers it (``return_grad=True`` or the
  ``*_backward`` function on the forward output);
- ``numpy naive``: the textbook formulas without a shift: ``log(sum(exp(x)))``, ``exp(x) / sum(exp(x))``,
  ``log`` of that, ``-log(sigmoid(x))`` terms for binary cross-entropy;
- ``numpy stable``: the shifted forms of :mod:`~logitloss.bench.numpy_formulas` (as in the timing rows) and the
  gradients users write next to them (``exp(x - lse)``, ``1 / (1 + exp(-x)) - y``);
- ``scipy``: ``scipy.special.logsumexp / softmax / log_softmax``; SciPy has no gradients and no losses;
- ``torch``: the ``torch`` / ``torch.nn.functional`` function on ``torch.from_numpy(x)`` and autograd;
- ``jax``: ``jax.nn.logsumexp / softmax / log_softmax`` and the losses of :mod:`~logitloss.bench.jax_calls`
  (``log_softmax`` + ``take_along_axis``, ``log_sigmoid``), jitted, gradients by ``jax.vjp`` / ``value_and_grad``.

A provider without the kernel (or without the library) raises :class:`NotAvailable`; NumPy's floating-point
warnings are silenced (the tables report what comes out).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import jax_calls, numpy_formulas

__all__ = ["PROVIDERS", "NotAvailable", "compute"]

PROVIDERS = ("logitloss", "numpy naive", "numpy stable", "scipy", "torch", "jax")

Result = tuple[Any, Any]  # (value, gradient or None)


class NotAvailable(Exception):
    """The provider has no such kernel (or its library is not installed)."""


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise NotAvailable(f"{name} not installed") from error


def _onehot(x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The upstream gradient that picks each row's target entry (see verdicts.py)."""
    upstream = np.zeros_like(x)
    upstream[np.arange(x.shape[0]), targets] = 1
    return upstream


def _logitloss(kernel: str, x: np.ndarray, target: np.ndarray) -> Result:
    logitloss = _import("logitloss")
    if kernel == "logsumexp":
        return logitloss.logsumexp(x, axis=-1, return_grad=True)
    if kernel == "softmax":
        output = logitloss.softmax(x, axis=-1)
        return output, logitloss.softmax_backward(_onehot(x, target), output, axis=-1)
    if kernel == "log_softmax":
        output = logitloss.log_softmax(x, axis=-1)
        return output, logitloss.log_softmax_backward(_onehot(x, target), output, axis=-1)
    if kernel == "cross_entropy":
        return logitloss.cross_entropy(x, target, return_grad=True)
    return logitloss.binary_cross_entropy_with_logits(x, target, reduction="none", return_grad=True)


def _softmax_gradient(softmax: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    return softmax * (upstream - (upstream * softmax).sum(-1, keepdims=True))


def _log_softmax_gradient(softmax: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    return upstream - softmax * upstream.sum(-1, keepdims=True)


def _numpy_naive(kernel: str, x: np.ndarray, target: np.ndarray) -> Result:
    if kernel == "binary_cross_entropy_with_logits":
        p = 1 / (1 + np.exp(-x))
        return -(target * np.log(p) + (1 - target) * np.log(1 - p)), p - target
    exps = np.exp(x)
    softmax = exps / exps.sum(-1, keepdims=True)
    upstream = _onehot(x, target)
    if kernel == "logsumexp":
        return np.log(exps.sum(-1)), softmax
    if kernel == "softmax":
        return softmax, _softmax_gradient(softmax, upstream)
    if kernel == "log_softmax":
        return np.log(softmax), _log_softmax_gradient(softmax, upstream)
    rows = np.arange(x.shape[0])
    return -np.mean(np.log(softmax[rows, target])), (softmax - upstream) / x.shape[0]


def _numpy_stable(kernel: str, x: np.ndarray, target: np.ndarray) -> Result:
    if kernel == "binary_cross_entropy_with_logits":
        loss = np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))
        return loss, 1 / (1 + np.exp(-x)) - target
    if kernel == "cross_entropy":
        return numpy_formulas.numpy_cross_entropy_fwd_bwd(x, target)
    if kernel == "logsumexp":
        value = numpy_formulas.numpy_logsumexp(x, -1)
        return value, np.exp(x - value[:, None])
    softmax = numpy_formulas.numpy_softmax(x, -1)
    if kernel == "softmax":
        return softmax, _softmax_gradient(softmax, _onehot(x, target))
    return numpy_formulas.numpy_log_softmax(x, -1), _log_softmax_gradient(softmax, _onehot(x, target))


def _scipy(kernel: str, x: np.ndarray, target: np.ndarray) -> Result:
    special = _import("scipy.special")
    if kernel not in ("logsumexp", "softmax", "log_softmax"):
        raise NotAvailable(f"scipy.special has no {kernel}")
    return getattr(special, kernel)(x, axis=-1), None


def _torch(kernel: str, x: np.ndarray, target: np.ndarray) -> Result:
    torch = _import("torch")
    functional = torch.nn.functional
    z = torch.from_numpy(np.array(x)).requires_grad_()
    if kernel == "logsumexp":
        value = torch.logsumexp(z, -1)
        value.sum().backward()
    elif kernel in ("softmax", "log_softmax"):
        value = getattr(torch, kernel)(z, -1)
        value.backward(torch.from_numpy(_onehot(x, target)))
    elif kernel == "cross_entropy":
        value = functional.cross_entropy(z, torch.from_numpy(target))
        value.backward()
    else:
        value = functional.binary_cross_entropy_with_logits(z, torch.from_numpy(target), reduction="none")
        value.sum().backward()
    return value.detach().numpy(), z.grad.numpy()


def _jax(kernel: str, x: np.ndarray, target: np.ndarray) -> Result:
    jax, note = jax_calls.load_jax()
    if jax is None:
        raise NotAvailable(note or "jax not installed")
    if kernel == "binary_cross_entropy_with_logits":
        losses, gradient = jax_calls.binary_cross_entropy_elements()(x, target)
        return np.asarray(losses), np.asarray(gradient)
    # The tables ask for the four kernels of one input in a row: computed together (one compilation), kept for
    # the next three calls.
    key = (x.dtype.str, x.shape, x.tobytes(), target.tobytes())
    if key not in _JAX_FAMILY_RESULTS:
        _JAX_FAMILY_RESULTS.clear()
        results = jax_calls.softmax_family_with_gradients()(x, _onehot(x, target), target)
        _JAX_FAMILY_RESULTS[key] = {name: (np.asarray(value), np.asarray(gradient))
                                    for name, (value, gradient) in results.items()}
    return _JAX_FAMILY_RESULTS[key][kernel]


_JAX_FAMILY_RESULTS: dict[tuple[Any, ...], dict[str, Result]] = {}


_PROVIDERS: dict[str, Callable[[str, np.ndarray, np.ndarray], Result]] = {
    "logitloss": _logitloss,
    "numpy naive": _numpy_naive,
    "numpy stable": _numpy_stable,
    "scipy": _scipy,
    "torch": _torch,
    "jax": _jax,
}


def compute(kernel: str, provider: str, x: np.ndarray, target: np.ndarray) -> Result:
    """``(value, gradient)`` of ``kernel`` on ``x`` (2-D, class axis last; any shape for binary cross-entropy)
    with ``target`` (int64 class per row; for binary cross-entropy targets of ``x``'s shape and dtype) as
    ``provider`` computes them; the gradient is None where the provider has none.  Raises NotAvailable."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _PROVIDERS[provider](kernel, x, target)
