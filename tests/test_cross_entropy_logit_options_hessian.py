"""cross_entropy(return_hessian=True) under the logit options (temperature, softcap, z_loss): the Hessian's
diagonal with respect to the input logits z, against torch's float64 double backward of the same composition
(``softcap * tanh(z / softcap) / T``, ``F.cross_entropy``, ``z_loss * w_y * logsumexp**2``), every option
combination x reduction x targets x dtype x ISA.

Bound (docs/accuracy.md): per row, normwise, 16 eps of the row's scale -- the Hessian's and the gradient's
terms in magnitude, before their cancellation -- plus the conditioning of z'' as computed (|z''| eps per ULP of z'') and the cap factor's
``2 |x| / softcap`` eps.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import class_weights, logits, probability_targets
from logitloss.testing.tolerances import COMPUTE_DTYPE, EPS

from .helpers.marks import dtypes
from .test_cross_entropy_logit_options import OPTIONS, REDUCTIONS, option_id

pytestmark = pytest.mark.usefixtures("torch_single_threaded")


def torch_hessian_diagonal(torch, x, target, *, weight, reduction, label_smoothing, temperature, softcap, z_loss):
    """float64 (loss, grad, Hessian diagonal, per-element scale) of the composition by double backward: the
    diagonal of the Hessian of loss.sum() (a row's logits only meet each other), taken class by class."""
    F = torch.nn.functional
    z = torch.from_numpy(np.array(x, np.float64)).requires_grad_(True)
    probabilities = np.shape(target) == np.shape(x)
    t = torch.from_numpy(np.array(target, np.float64 if probabilities else np.int64))
    w = None if weight is None else torch.from_numpy(np.array(weight, np.float64))
    capped = z if softcap is None else softcap * torch.tanh(z / softcap)
    transformed = capped / temperature
    per_row = F.cross_entropy(transformed, t, weight=w, reduction="none", label_smoothing=label_smoothing)
    if probabilities:
        row_weight = torch.ones(per_row.shape, dtype=torch.float64)
    else:
        kept = t != -100
        row_weight = (torch.ones(x.shape[1], dtype=torch.float64) if w is None else w)[torch.where(kept, t, 0)] * kept
    per_row = per_row + z_loss * row_weight * torch.logsumexp(transformed, 1) ** 2
    loss = {"none": per_row, "sum": per_row.sum(), "mean": per_row.sum() / row_weight.sum()}[reduction]
    (grad,) = torch.autograd.grad(loss.sum(), z, create_graph=True)
    columns = []
    for c in range(x.shape[1]):
        (second,) = torch.autograd.grad(grad[:, c].sum(), z, retain_graph=True)
        columns.append(second[:, c])
    hessian = torch.stack(columns, 1).detach().numpy()
    # The row's scale: its Hessian and gradient magnitudes, and the size of the terms that cancel in them
    # (d loss / d z''_c = M p_c - v_c; d2 = M p_c (1 - p_c): a confident row's target lane cancels to a tiny
    # value, which torch's double backward forms as p (1 - p) with 1 - p rounded), M the row's target mass
    # plus z-loss's 2 z_loss w (|lse| + 1), times the reduction's factor and the largest chain factor squared.
    classes = x.shape[1]
    w_all = np.ones(classes) if weight is None else np.asarray(weight, np.float64)
    if probabilities:
        mass = (w_all * ((1 - label_smoothing) * np.asarray(target) + label_smoothing / classes)).sum(axis=1)
        row_w = np.ones(x.shape[0])
    else:
        kept = np.asarray(target) != -100
        row_w = np.where(kept, w_all[np.where(kept, target, 0)], 0.0)
        mass = np.where(kept, (1 - label_smoothing) * row_w + label_smoothing * w_all.sum() / classes, 0.0)
    lse = torch.logsumexp(transformed, 1).detach().numpy()
    mass = mass + 2 * z_loss * row_w * (np.abs(lse) + 1)
    factor = 1.0 / float(row_weight.sum()) if reduction == "mean" else 1.0
    chain = np.ones_like(x) / temperature if softcap is None else 1 / np.cosh(np.asarray(x) / softcap) ** 2 / temperature
    scale = (np.abs(hessian).max(axis=1, keepdims=True) + np.abs(grad.detach().numpy()).max(axis=1, keepdims=True)
             + (factor * mass)[:, None] * (chain ** 2).max(axis=1, keepdims=True))
    return loss.detach().numpy(), grad.detach().numpy(), hessian, scale


def row_conditioning(x, temperature, softcap):
    """Per row, in eps of the row's scale: the bounds are for z'' as computed (docs/accuracy.md), whose own
    error moves p by |z''| eps per ULP of z'' (half an ULP without a cap, 6 ULP under one), plus the cap
    factor's conditioning 2 |x| / softcap."""
    magnitude = np.abs(x).max(axis=1, keepdims=True)
    if softcap is None:
        return magnitude / temperature
    return 12 * softcap / temperature + 2 * magnitude / softcap


@dtypes
@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_hessian_against_double_backward(isa, torch, dtype, options):
    temperature, softcap, z_loss = options
    eps = EPS[np.dtype(COMPUTE_DTYPE[np.dtype(dtype)])]
    x = logits((5, 7), dtype, seed=11, spread=3.0)
    x64 = x.astype(np.float64)
    rng = np.random.default_rng(12)
    kinds = itertools.product(REDUCTIONS, (False, True), (0.0, 0.2), ("index", "probabilities"))
    for reduction, weighted, smoothing, kind in kinds:
        weight = class_weights(7, dtype, seed=2) if weighted else None
        if kind == "index":
            target = rng.integers(0, 7, 5)
            target[3] = -100
        else:
            target = probability_targets((5, 7), dtype, seed=13)
        loss, grad, hessian = logitloss.cross_entropy(x, target, weight=weight, reduction=reduction,
                                                      label_smoothing=smoothing, return_hessian=True,
                                                      temperature=temperature, softcap=softcap, z_loss=z_loss)
        ref_loss, ref_grad, ref_hessian, scale = torch_hessian_diagonal(
            torch, x64, target, weight=None if weight is None else weight.astype(np.float64), reduction=reduction,
            label_smoothing=smoothing, temperature=temperature, softcap=softcap, z_loss=z_loss)
        assert hessian.dtype == dtype and hessian.shape == x.shape
        conditioning = row_conditioning(x64, temperature, softcap)
        # float16 results: computed in float32, rounded once to the output (half an ULP of float16 each)
        bound = (16 * eps + conditioning * eps) * scale + EPS[np.dtype(dtype)] * np.abs(ref_hessian)
        label = f"{reduction} weighted={weighted} smoothing={smoothing} {kind}"
        assert np.all(np.abs(hessian.astype(np.float64) - ref_hessian) <= bound), (
            label, np.abs(hessian.astype(np.float64) - ref_hessian).max(), bound.min())
        np.testing.assert_allclose(grad, ref_grad, rtol=float(EPS[np.dtype(dtype)]), atol=float(16 * eps * scale.max()),
                                   err_msg=label)


@pytest.mark.parametrize("options", OPTIONS[::3], ids=option_id)
def test_hessian_out_long_rows_and_in_place_gradient(isa, torch, options):
    """Rows of several chunks (the transform runs a chunk ahead of the fused pass), hessian_out=, grad_out=input."""
    temperature, softcap, z_loss = options
    x = logits((3, 5000), np.float64, seed=21, spread=4.0)
    target = np.array([4, 2500, 4999])
    hessian_out = np.empty_like(x)
    given = x.copy()
    loss, grad, hessian = logitloss.cross_entropy(given, target, reduction="sum", grad_out=given,
                                                  hessian_out=hessian_out, temperature=temperature, softcap=softcap,
                                                  z_loss=z_loss)
    assert hessian is hessian_out and grad is given
    _, ref_grad, ref_hessian, scale = torch_hessian_diagonal(
        torch, x, target, weight=None, reduction="sum", label_smoothing=0.0, temperature=temperature,
        softcap=softcap, z_loss=z_loss)
    conditioning = row_conditioning(x, temperature, softcap).max()
    eps = EPS[np.dtype(np.float64)]
    assert np.abs(hessian - ref_hessian).max() <= (16 + conditioning) * eps * scale.max()
    assert np.abs(grad - ref_grad).max() <= 16 * eps * scale.max()
