"""Providers of the backward modes of logsumexp, softmax and log_softmax: the backward pass alone, and the
forward and backward passes together, of each library, on one input and one upstream gradient.

The upstream gradient ``g`` is what a training step hands down: for logsumexp ones of the result's shape (the
gradient of ``sum(logsumexp(x))``, what ``logsumexp(..., return_grad=True)`` returns), for softmax and
log_softmax ``N(0, 1)`` of ``x``'s shape (``default_rng(11)``).  Names in the tables:

- ``logitloss backward only``: ``logsumexp_backward(g, x, result=lse)``, ``softmax_backward(g, p)``,
  ``log_softmax_backward(g, log_p)`` on the forward result computed outside the timing;
- ``logitloss forward + backward``: ``logsumexp(x, return_grad=True)`` (one fused pass); softmax and log_softmax
  have no fused call: the forward, then its ``*_backward``;
- ``torch backward only``: ``torch.autograd.grad(y, z, g, retain_graph=True)`` on a graph built outside the
  timing; ``torch forward + backward``: ``z = torch.from_numpy(x).requires_grad_(); f(z).backward(g); z.grad``;
- ``jax backward only``: the pullback of ``jax.vjp`` applied to ``g``; ``jax forward + backward``: both in one
  jitted function (:mod:`~logitloss.bench.jax_calls`);
- ``numpy stable backward only``: ``exp(x - lse) g``, ``p (g - sum(g p))``, ``g - exp(log_p) sum(g)``;
  ``numpy stable forward + backward``: the stable forward of :mod:`~logitloss.bench.numpy_formulas`, then that.

Every provider's gradient is checked against the float64 references on 16 sampled rows
(:func:`~logitloss.bench.checks.gradient_check`).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from . import jax_calls, numpy_formulas
from .checks import gradient_check
from .harness import Provider

__all__ = ["backward_providers", "upstream_gradient"]

Built = tuple[list[Provider], list[str]]


def upstream_gradient(op: str, x: np.ndarray, axis: int) -> np.ndarray:
    """The ``g`` of the module doc, in ``x.dtype``."""
    if op == "logsumexp":
        return np.ones(np.delete(x.shape, axis % x.ndim), dtype=x.dtype)
    return np.random.default_rng(11).standard_normal(x.shape).astype(x.dtype)


def _numpy_backward(op: str, x: np.ndarray, forward: np.ndarray, g: np.ndarray, axis: int) -> np.ndarray:
    """The backward formula users write next to the stable forward (``forward`` = lse, p or log_p)."""
    if op == "logsumexp":
        return np.exp(x - np.expand_dims(forward, axis)) * np.expand_dims(g, axis)
    if op == "softmax":
        return forward * (g - np.sum(g * forward, axis=axis, keepdims=True))
    return g - np.exp(forward) * np.sum(g, axis=axis, keepdims=True)


def _import(name: str) -> tuple[Any, str | None]:
    try:
        return importlib.import_module(name), None
    except Exception as error:
        return None, f"{name}: not available ({type(error).__name__}: {error}); its rows are skipped"


def _logitloss(op: str, x: np.ndarray, g: np.ndarray, axis: int) -> Built:
    logitloss, note = _import("logitloss")
    if logitloss is None:
        return [], [note or "logitloss: not available"]
    forward, backward = getattr(logitloss, op), getattr(logitloss, f"{op}_backward")
    isa = logitloss.get_isa()
    if op == "logsumexp":
        lse = forward(x, axis=axis)
        return [
            Provider("logitloss backward only", lambda: backward(g, x, axis=axis, result=lse), isa=isa),
            Provider("logitloss forward + backward", lambda: forward(x, axis=axis, return_grad=True), isa=isa),
        ], []
    output = forward(x, axis=axis)

    def forward_backward() -> Any:
        fresh = forward(x, axis=axis)
        return fresh, backward(g, fresh, axis=axis)

    return [
        Provider("logitloss backward only", lambda: backward(g, output, axis=axis), isa=isa),
        Provider("logitloss forward + backward", forward_backward, isa=isa),
    ], []


def _torch(op: str, x: np.ndarray, g: np.ndarray, axis: int) -> Built:
    torch, note = _import("torch")
    if torch is None:
        return [], [note or "torch: not installed"]
    function = getattr(torch, op)
    upstream = torch.from_numpy(g)
    graph_input = torch.from_numpy(x).requires_grad_()
    graph_output = function(graph_input, axis)

    def backward_only() -> Any:
        return torch.autograd.grad(graph_output, graph_input, upstream, retain_graph=True)[0]

    def forward_backward() -> Any:
        z = torch.from_numpy(x).requires_grad_()
        output = function(z, axis)
        output.backward(upstream)
        return output.detach(), z.grad

    return [Provider("torch backward only", backward_only), Provider("torch forward + backward", forward_backward)], []


def _jax(op: str, x: np.ndarray, g: np.ndarray, axis: int) -> Built:
    jax, note = jax_calls.load_jax()
    if jax is None:
        return [], [note or "jax: not available"]
    array, upstream = jax.device_put(x), jax.device_put(g)
    pullback = jax_calls.backward(op, axis, array)
    both = jax_calls.forward_backward(op, axis)
    return [
        Provider("jax backward only", lambda: jax_calls.ready(pullback(upstream))),
        Provider("jax forward + backward", lambda: jax_calls.ready(both(array, upstream))),
    ], []


def _numpy(op: str, x: np.ndarray, g: np.ndarray, axis: int) -> Built:
    stable_forward = getattr(numpy_formulas, f"numpy_{op}")
    output = stable_forward(x, axis)

    def forward_backward() -> Any:
        fresh = stable_forward(x, axis)
        return fresh, _numpy_backward(op, x, fresh, g, axis)

    return [
        Provider("numpy stable backward only", lambda: _numpy_backward(op, x, output, g, axis)),
        Provider("numpy stable forward + backward", forward_backward),
    ], []


def backward_providers(op: str, x: np.ndarray, axis: int = -1) -> Built:
    """Every provider of the module doc for ``op`` over ``axis`` of ``x``, each with its gradient check; a
    missing library gives a note instead of its providers."""
    g = upstream_gradient(op, x, axis)
    check = gradient_check(op, x, g, axis)
    providers: list[Provider] = []
    notes: list[str] = []
    for factory in (_logitloss, _torch, _jax, _numpy):
        more, more_notes = factory(op, x, g, axis)
        for provider in more:
            provider.check = check
        providers += more
        notes += more_notes
    return providers, notes
