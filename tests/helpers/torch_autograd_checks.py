"""Checks shared by the logitloss.torch tests: double backward raises in every form, and a second backward
through a retained graph recomputes the gradient."""

from __future__ import annotations

import pytest


def check_double_backward_raises(torch, function, x) -> None:
    """``function(x)``'s backward with ``create_graph=True`` raises in each form: ``grad`` of the scalar loss
    (where ``once_differentiable`` alone stays silent), ``backward``, and a gradient penalty (whose
    second-order term would otherwise be dropped silently)."""
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(function(x), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable once"):
        function(x).backward(create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable once"):
        (grad,) = torch.autograd.grad(function(x), x, create_graph=True)
        (function(x) + grad.pow(2).sum()).backward()


def check_backward_twice(torch, function, x) -> None:
    """Two backwards through one retained graph of ``function(x)`` accumulate twice the first gradient."""
    x.grad = None
    loss = function(x)
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first, rtol=1e-14, atol=1e-15)
