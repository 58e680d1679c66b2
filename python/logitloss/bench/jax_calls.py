"""JAX as its users write it, for every table of the benchmark: the one place that imports and configures JAX.

:func:`load_jax` imports JAX for the CPU at one intra-op thread (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``, ``JAX_PLATFORMS=cpu``, set before the first import; the flags only take effect
if nothing imported JAX earlier) with ``jax_enable_x64`` (float64 inputs stay float64).  Without JAX it returns a
note instead: the JAX rows are skipped, never an error.  JAX is not a dependency of logitloss, not even of its
``bench`` extra (jaxlib is about 350 MB); install it yourself (``pip install "jax[cpu]"``) to get these rows.

The calls, each ``jax.jit``-compiled once per function (and by JAX once per shape and dtype, during the
harness's warm-up):

- :func:`forward`: ``jax.nn.logsumexp / softmax / log_softmax(x, axis=axis)``;
- :func:`forward_backward`: the forward and its vector-Jacobian product with an upstream gradient ``g`` in one
  compiled function (``y, pullback = jax.vjp(f, x); pullback(g)``);
- :func:`backward`: the pullback alone, applied to ``g`` (``jax.vjp`` run outside the timing keeps the
  forward's residuals, as a training step does between its forward and backward passes);
- :func:`cross_entropy`: ``-mean(take_along_axis(log_softmax(x, axis), y[..., None], axis))`` for class indices
  (any class axis), ``-mean(sum(y * log_softmax(x), axis))`` for probability targets;
- :func:`binary_cross_entropy`: optax's sigmoid binary cross-entropy written inline with ``jax.nn.log_sigmoid``,
  ``mean(w * -(pw y log_sigmoid(x) + (1 - y) log_sigmoid(-x)))`` (torch's semantics for ``weight`` and
  ``pos_weight``);
- losses with gradients through ``jax.value_and_grad`` (``backward=True``).

Every timed call must end in ``jax.block_until_ready`` (JAX dispatches asynchronously): :func:`ready` does it.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["backward", "binary_cross_entropy", "binary_cross_entropy_elements", "cross_entropy", "forward",
           "forward_backward", "load_jax", "ready", "softmax_family_with_gradients"]

# One intra-op thread, like the other providers at the default --threads 1 (XLA's CPU backend reads the flags
# once, when the backend starts).
_XLA_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")


def load_jax() -> tuple[Any, str | None]:
    """``(jax, None)`` configured as the module doc says, or ``(None, note)`` when JAX cannot be imported."""
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = " ".join([flags, *(flag for flag in _XLA_FLAGS if flag not in flags)]).strip()
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
    except Exception as error:
        return None, f"jax: not available ({type(error).__name__}: {error}); its rows are skipped"
    return jax, None


def _jax() -> Any:
    jax, note = load_jax()
    if jax is None:
        raise ImportError(note)
    return jax


def ready(result: Any) -> Any:
    """``result`` once JAX has computed it (the timed calls wait for it)."""
    return _jax().block_until_ready(result)


@functools.cache
def forward(op: str, axis: int) -> Callable[[Any], Any]:
    """``jax.nn.<op>(x, axis=axis)``, jitted; ``op`` is logsumexp, softmax or log_softmax."""
    jax = _jax()
    return jax.jit(functools.partial(getattr(jax.nn, op), axis=axis))


@functools.cache
def forward_backward(op: str, axis: int) -> Callable[[Any, Any], Any]:
    """``(op(x), d/dx <g, op(x)>)`` in one jitted function."""
    jax = _jax()
    function = functools.partial(getattr(jax.nn, op), axis=axis)

    def value_and_pullback(x: Any, g: Any) -> Any:
        value, pullback = jax.vjp(function, x)
        return value, pullback(g)[0]

    return jax.jit(value_and_pullback)


@functools.cache
def _apply_pullback() -> Callable[[Any, Any], Any]:
    return _jax().jit(lambda pullback, g: pullback(g)[0])


def backward(op: str, axis: int, x: Any) -> Callable[[Any], Any]:
    """The backward pass alone: ``g -> d/dx <g, op(x)>`` from the residuals of a forward run now (untimed)."""
    jax = _jax()
    _, pullback = jax.vjp(functools.partial(getattr(jax.nn, op), axis=axis), x)
    apply = _apply_pullback()
    return lambda g: apply(pullback, g)


def _cross_entropy_loss(x: Any, y: Any, axis: int) -> Any:
    jax = _jax()
    log_probabilities = jax.nn.log_softmax(x, axis=axis)
    if y.shape == x.shape:  # probability targets
        return -jax.numpy.mean(jax.numpy.sum(y * log_probabilities, axis=axis))
    picked = jax.numpy.take_along_axis(log_probabilities, jax.numpy.expand_dims(y, axis), axis=axis)
    return -jax.numpy.mean(picked)


@functools.cache
def cross_entropy(axis: int, backward: bool) -> Callable[[Any, Any], Any]:
    """Mean cross-entropy ``(x, y) -> loss`` (or ``(loss, gradient)`` if ``backward``), class axis ``axis``."""
    jax = _jax()
    loss = functools.partial(_cross_entropy_loss, axis=axis)
    return jax.jit(jax.value_and_grad(loss) if backward else loss)


def _binary_cross_entropy_terms(x: Any, y: Any, pos_weight: Any) -> Any:
    log_sigmoid = _jax().nn.log_sigmoid
    positive = y * log_sigmoid(x) if pos_weight is None else pos_weight * y * log_sigmoid(x)
    return -(positive + (1 - y) * log_sigmoid(-x))


def _binary_cross_entropy_loss(x: Any, y: Any, weight: Any, pos_weight: Any) -> Any:
    losses = _binary_cross_entropy_terms(x, y, pos_weight)
    return _jax().numpy.mean(losses if weight is None else weight * losses)


@functools.cache
def binary_cross_entropy(backward: bool) -> Callable[..., Any]:
    """Mean binary cross-entropy with logits ``(x, y, weight, pos_weight) -> loss`` (or ``(loss, gradient)``);
    ``weight`` / ``pos_weight`` may be None."""
    jax = _jax()
    loss = _binary_cross_entropy_loss
    return jax.jit(jax.value_and_grad(loss) if backward else loss)


@functools.cache
def softmax_family_with_gradients() -> Callable[[Any, Any, Any], Any]:
    """``(x, onehot, targets) -> {kernel: (value, gradient)}`` for logsumexp (upstream ones), softmax and
    log_softmax (upstream ``onehot``) and mean cross_entropy (class indices ``targets``) over the last axis: the
    same calls as :func:`forward_backward` and :func:`cross_entropy` in one jitted function, so the safety and
    accuracy tables compile once per input shape instead of four times."""
    jax = _jax()

    def all_kernels(x: Any, onehot: Any, targets: Any) -> dict[str, Any]:
        results = {}
        ones = jax.numpy.ones(x.shape[:-1], x.dtype)
        for op, upstream in (("logsumexp", ones), ("softmax", onehot), ("log_softmax", onehot)):
            value, pullback = jax.vjp(functools.partial(getattr(jax.nn, op), axis=-1), x)
            results[op] = (value, pullback(upstream)[0])
        results["cross_entropy"] = jax.value_and_grad(functools.partial(_cross_entropy_loss, axis=-1))(x, targets)
        return results

    return jax.jit(all_kernels)


@functools.cache
def binary_cross_entropy_elements() -> Callable[[Any, Any], Any]:
    """``(x, y) -> (per-element losses, gradient of their sum)`` (reduction "none", no weights), jitted."""
    jax = _jax()

    def losses_and_gradient(x: Any, y: Any) -> Any:
        losses, pullback = jax.vjp(lambda z: _binary_cross_entropy_terms(z, y, None), x)
        return losses, pullback(jax.numpy.ones_like(losses))[0]

    return jax.jit(losses_and_gradient)
