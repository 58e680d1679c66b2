"""cross_entropy's logit options (temperature, softcap, z_loss) against torch's float64 autograd of the same
composition, every option combination x reduction x dtype x ISA; the exactness rows (tiny losses of confident
rows against mpmath, +-1e4, -inf masks); argument errors; cross_entropy_backward; defaults unchanged.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import class_weights, logits, probability_targets
from logitloss.testing.tolerances import COMPUTE_DTYPE, EPS

from .helpers.marks import dtype_id, dtypes

pytestmark = pytest.mark.usefixtures("torch_single_threaded")

REDUCTIONS = ("mean", "sum", "none")
# (temperature, softcap, z_loss): each alone, pairs, all three
OPTIONS = [
    (2.0, None, 0.0),
    (0.3, None, 0.0),
    (1.0, 3.0, 0.0),
    (1.0, None, 1e-2),
    (0.7, 5.0, 0.0),
    (1.5, None, 0.1),
    (1.0, 2.5, 1e-3),
    (2.0, 30.0, 1e-4),
    (0.5, 4.0, 0.5),
]


def option_id(options):
    temperature, softcap, z_loss = options
    return f"T{temperature}-cap{softcap}-z{z_loss}"


def transform(z, temperature, softcap):
    """z'' = softcap tanh(z / softcap) / temperature and its derivative, in float64 (numpy)."""
    z = np.asarray(z, np.float64)
    if softcap is None:
        return z / temperature, np.full_like(z, 1.0 / temperature)
    capped = softcap * np.tanh(z / softcap)
    e = np.exp(-2 * np.abs(z / softcap))  # sech^2 = 4 e / (1 + e)^2: no overflow of cosh at +-inf
    return capped / temperature, 4 * e / (1 + e) ** 2 / temperature


def torch_reference(torch, z, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                    temperature=1.0, softcap=None, z_loss=0.0, upstream=None):
    """torch float64 autograd of the loss of z'' (a leaf): its loss, d/dz'', and the per-row scale of the
    z-loss term (for the tolerance)."""
    F = torch.nn.functional
    leaf = torch.from_numpy(np.array(z, np.float64)).requires_grad_(True)
    probabilities = np.shape(target) == np.shape(z)
    t = torch.from_numpy(np.array(target, np.float64 if probabilities else np.int64))
    w = None if weight is None else torch.from_numpy(np.array(weight, np.float64))
    per_row = F.cross_entropy(leaf, t, weight=w, ignore_index=ignore_index, reduction="none",
                              label_smoothing=label_smoothing)
    class_axis = 0 if leaf.ndim == 1 else 1
    lse = torch.logsumexp(leaf, dim=class_axis)
    if probabilities:
        row_weight = torch.ones_like(lse)
    else:
        kept = t != ignore_index
        safe = torch.where(kept, t, torch.zeros_like(t))
        row_weight = (w[safe] if w is not None else torch.ones_like(lse)) * kept
    per_row = per_row + z_loss * row_weight * lse**2
    if reduction == "none":
        loss = per_row
    elif reduction == "sum":
        loss = per_row.sum()
    else:
        denominator = row_weight.sum() if not probabilities else torch.tensor(float(per_row.numel()), dtype=torch.float64)
        loss = per_row.sum() / denominator
    g = torch.ones_like(loss) if upstream is None else torch.from_numpy(np.array(upstream, np.float64))
    loss.backward(g)
    # z-loss's lse = max + log(total) and its square: their magnitudes (masked -inf classes aside)
    magnitude = (lse.abs() + leaf.detach().amax(dim=class_axis).abs()) ** 2
    scale = (z_loss * row_weight * magnitude).detach().numpy() if z_loss else np.zeros(tuple(lse.shape))
    # torch's own float64 rounding: lse - z_y cancels on a confident row (a tiny loss off by eps |lse|)
    finite_lse = torch.nan_to_num(lse.detach(), nan=0.0, posinf=0.0, neginf=0.0)
    reference_error = 2.0**-51 * (row_weight.abs() * finite_lse.abs()).numpy() * (1 + 2 * z_loss * finite_lse.abs().numpy())
    return loss.detach().numpy(), leaf.grad.numpy(), (scale, reference_error)


def expected(torch, x, target, **kwargs):
    """The reference for x as logitloss sees it: z'' rounded once to the compute dtype (the documented bound is
    for the transformed logits as rounded), the gradient through the exact chain factor."""
    temperature, softcap = kwargs.get("temperature", 1.0), kwargs.get("softcap")
    compute = COMPUTE_DTYPE[np.dtype(x.dtype)]
    x64 = np.asarray(x, compute).astype(np.float64)
    z2, chain = transform(x64, temperature, softcap)
    z2 = z2.astype(compute).astype(np.float64)
    loss, grad, (scale, reference_error) = torch_reference(torch, z2, target, **kwargs)
    return loss, grad * chain, (scale, gradient_scale(z2, chain, target, **kwargs), reference_error)


def gradient_scale(z, chain, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                   temperature=1.0, softcap=None, z_loss=0.0, upstream=None):
    """Per element, the magnitude the gradient is a cancelling sum of: g ((A + 2 z_loss w |lse|) p_c + v_c) times
    the chain factor, v the weighted target distribution and A its mass (docs/accuracy.md's row scale)."""
    probabilities = np.shape(target) == np.shape(z)
    z = np.moveaxis(np.atleast_2d(z), 1, -1)
    chain = np.moveaxis(np.atleast_2d(chain), 1, -1)
    classes = z.shape[-1]
    w = np.ones(classes) if weight is None else np.asarray(weight, np.float64)
    e = label_smoothing
    with np.errstate(all="ignore"):  # all -inf and nan rows: their scales are never used
        lse = np.logaddexp.reduce(z, axis=-1, keepdims=True)
        p = np.exp(z - lse)
    if probabilities:
        y = np.moveaxis(np.atleast_2d(np.asarray(target, np.float64)), 1, -1)
        v = w * ((1 - e) * y + e / classes)
        row_weight = np.ones(z.shape[:-1] + (1,))
        denominator = float(np.prod(z.shape[:-1]))
    else:
        t = np.asarray(target).reshape(z.shape[:-1])
        kept = t != ignore_index
        safe = np.where(kept, t, 0)
        w_y = (w[safe] * kept)[..., None]
        v = (1 - e) * w_y * (np.arange(classes) == safe[..., None]) + kept[..., None] * w * e / classes
        row_weight = w_y
        denominator = float(w_y.sum())
    g = 1.0 / denominator if reduction == "mean" and denominator else 1.0
    mass = np.abs(v).sum(axis=-1, keepdims=True)
    with np.errstate(all="ignore"):
        magnitude = g * ((mass + 2 * z_loss * np.abs(row_weight) * np.abs(lse)) * p + np.abs(v)) * np.abs(chain)
        row = np.broadcast_to(magnitude.max(axis=-1, keepdims=True), magnitude.shape)
    return np.moveaxis(row, -1, 1)  # the caller reshapes it to the input's shape


def assert_matches(x, loss, grad, ref_loss, ref_grad, scales, reduction, what):
    scale, grad_scale, reference_error = scales
    dtype = np.dtype(x.dtype)
    eps = EPS[COMPUTE_DTYPE[dtype]]
    rounding = EPS[dtype] if dtype == np.float16 else 0.0
    ref_loss = np.asarray(ref_loss)
    if reduction == "none":
        tol = 16 * eps * (np.abs(ref_loss) + scale) + rounding * np.abs(ref_loss) + reference_error + 1e-300
    else:
        tol = 16 * eps * (np.abs(ref_loss) + scale.sum()) + rounding * np.abs(ref_loss) + reference_error.sum() + 1e-300
    err = np.abs(np.asarray(loss, np.float64) - ref_loss)
    assert np.all(err <= tol), f"{what}: loss {loss} vs {ref_loss} (error {err.max():.3g}, tolerance {np.min(tol):.3g})"
    if grad is None:
        return
    assert grad.dtype == dtype and grad.shape == x.shape
    row_scale = grad_scale.reshape(x.shape)
    gtol = 16 * eps * row_scale + rounding * np.abs(ref_grad) + 2 * float(np.finfo(dtype).smallest_subnormal)
    gerr = np.abs(grad.astype(np.float64) - ref_grad)
    assert np.all(gerr <= gtol), f"{what}: gradient error {np.max(gerr - gtol):.3g} over tolerance"


def case_inputs(dtype, kind, seed, shape=(5, 7)):
    x = logits(shape, dtype, seed=seed, spread=3.0)
    if kind == "index":
        rng = np.random.default_rng(seed)
        kept_shape = (shape[0],) + tuple(shape[2:]) if len(shape) > 1 else ()
        t = rng.integers(0, shape[1 if len(shape) > 1 else 0], kept_shape)
        if t.ndim:
            t.flat[1] = -100  # one ignored position
    else:
        t = probability_targets(shape, dtype, seed)
    return x, t


@dtypes
@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
@pytest.mark.parametrize("kind", ["index", "probability"])
def test_against_torch_composition(isa, torch, dtype, options, kind):
    temperature, softcap, z_loss = options
    x, t = case_inputs(dtype, kind, seed=11)
    before = x.copy()
    for reduction, weighted, smoothing in itertools.product(REDUCTIONS, (False, True), (0.0, 0.2)):
        weight = class_weights(x.shape[1], dtype, seed=2) if weighted else None
        kwargs = dict(weight=weight, reduction=reduction, label_smoothing=smoothing, temperature=temperature,
                      softcap=softcap, z_loss=z_loss)
        loss, grad = logitloss.cross_entropy(x, t, return_grad=True, **kwargs)
        ref_loss, ref_grad, scale = expected(torch, x, t, **kwargs)
        what = f"{dtype_id(dtype)} {kind} {reduction} weighted={weighted} smoothing={smoothing}"
        assert_matches(x, loss, grad, ref_loss, ref_grad, scale, reduction, what)
        assert np.array_equal(x, before), "input modified"
        only_loss = logitloss.cross_entropy(x, t, **kwargs)
        assert np.array_equal(np.asarray(only_loss), np.asarray(loss), equal_nan=True)


@pytest.mark.parametrize("options", OPTIONS[::2], ids=option_id)
@pytest.mark.parametrize("kind", ["index", "probability"])
def test_k_dim_long_rows_and_strides(isa, torch, options, kind):
    """K-dim input (the class axis strided), rows longer than a chunk, a transposed (strided) input."""
    temperature, softcap, z_loss = options
    kwargs = dict(temperature=temperature, softcap=softcap, z_loss=z_loss)
    for shape in [(3, 5, 4, 2), (3, 5000), (2, 70)]:
        x, t = case_inputs(np.float32, kind, seed=5, shape=shape)
        for reduction in REDUCTIONS:
            loss, grad = logitloss.cross_entropy(x, t, reduction=reduction, return_grad=True, **kwargs)
            ref_loss, ref_grad, scale = expected(torch, x, t, reduction=reduction, **kwargs)
            assert_matches(x, loss, grad, ref_loss, ref_grad, scale, reduction, f"{shape} {reduction}")
    x = np.asfortranarray(logits((6, 9), np.float64, seed=4))
    t = np.arange(6) % 9
    loss, grad = logitloss.cross_entropy(x, t, return_grad=True, **kwargs)
    ref_loss, ref_grad, scale = expected(torch, x, t, **kwargs)
    assert_matches(x, loss, grad, ref_loss, ref_grad, scale, "mean", "strided")


@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_full_composition_in_float64(torch, options):
    """Independent of the rounded-z'' reference: torch's autograd through tanh and the division itself."""
    temperature, softcap, z_loss = options
    x = logits((4, 6), np.float64, seed=8)
    t = np.array([0, 5, 2, 2])
    w = class_weights(6, np.float64, seed=1)
    leaf = torch.from_numpy(x.copy()).requires_grad_(True)
    z = leaf if softcap is None else softcap * torch.tanh(leaf / softcap)
    z = z / temperature
    tt = torch.from_numpy(t)
    wt = torch.from_numpy(w)
    loss = torch.nn.functional.cross_entropy(z, tt, weight=wt, reduction="sum")
    loss = (loss + z_loss * (wt[tt] * torch.logsumexp(z, 1) ** 2).sum()) / wt[tt].sum()
    loss.backward()
    ours, grad = logitloss.cross_entropy(x, t, w, return_grad=True, temperature=temperature, softcap=softcap,
                                         z_loss=z_loss)
    np.testing.assert_allclose(ours, loss.item(), rtol=1e-14)
    np.testing.assert_allclose(grad, leaf.grad.numpy(), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_backward_matches_return_grad(isa, options):
    temperature, softcap, z_loss = options
    kwargs = dict(temperature=temperature, softcap=softcap, z_loss=z_loss)
    x, t = case_inputs(np.float64, "index", seed=3)
    w = class_weights(7, np.float64, seed=9)
    for reduction in REDUCTIONS:
        loss, grad = logitloss.cross_entropy(x, t, w, reduction=reduction, return_grad=True, **kwargs)
        upstream = 1.0 if reduction != "none" else np.ones(x.shape[0])
        backward = logitloss.cross_entropy_backward(upstream, x, t, w, reduction=reduction, **kwargs)
        assert np.array_equal(backward, grad)
    upstream = np.linspace(-2, 2, x.shape[0])
    backward = logitloss.cross_entropy_backward(upstream, x, t, w, reduction="none", **kwargs)
    _, grad = logitloss.cross_entropy(x, t, w, reduction="none", return_grad=True, **kwargs)
    np.testing.assert_allclose(backward, grad * upstream[:, None], rtol=1e-14, atol=1e-300)


@dtypes
def test_defaults_are_bitwise_the_plain_call(isa, dtype):
    """temperature=1, softcap=None, z_loss=0 given explicitly: the very bits of the call without them."""
    x, t = case_inputs(dtype, "index", seed=6, shape=(9, 300))
    for reduction in REDUCTIONS:
        plain = logitloss.cross_entropy(x, t, reduction=reduction, return_grad=True)
        given = logitloss.cross_entropy(x, t, reduction=reduction, return_grad=True, temperature=1.0, softcap=None,
                                        z_loss=0.0)
        assert plain[0].tobytes() == given[0].tobytes() and plain[1].tobytes() == given[1].tobytes()


def exact_loss(mpmath, row, y, temperature, z_loss):
    """mpmath: -log softmax(row / T)[y] + z_loss lse(row / T)^2, row as given (float)."""
    mpmath.mp.dps = 400  # lse - z_y cancels to the tiny loss: enough digits for it
    z = [mpmath.mpf(float(v)) / temperature for v in row]
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
    return float(lse - z[y] + z_loss * lse**2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5, 3.0, 0.3, 7.0])
def test_tiny_losses_of_confident_rows(isa, mpmath, dtype, temperature):
    """A confident correct row's loss is tiny (down to 1e-30 in float64, 1e-12 in float32) and keeps its
    relative precision against the exact loss of x / T: the quotient (x - max) / T is compensated
    (docs/accuracy.md), also far from 0 (an offset of 1e3, where a rounded z'' would cost 1e3 / T eps)."""
    eps = EPS[np.dtype(dtype)]
    targets = (1e-6, 1e-9, 1e-12) if dtype == np.float32 else (1e-12, 1e-20, 1e-30)
    rng = np.random.default_rng(int(temperature * 10))
    for target_loss in targets:
        for offset in (0.0, 1e3, -2.5e2):
            gap = -np.log(target_loss) * temperature
            others = -gap - rng.uniform(0.0, 3.0, 5)
            row = (np.concatenate([others[:2], [0.0], others[2:]]) + 0.1234567 + offset).astype(dtype)
            for z_loss in (0.0, 1e-3):
                loss = logitloss.cross_entropy(row, np.array(2), temperature=temperature, z_loss=z_loss)
                exact = exact_loss(mpmath, row, 2, temperature, z_loss)
                assert abs(float(loss) - exact) <= 8 * eps * exact, (target_loss, offset, z_loss, float(loss), exact)
    # with class weights and in a batch (the weighted mean), and with ignored rows
    rows = np.stack([row, row[::-1], row]).astype(dtype)
    labels = np.array([2, 3, -100])
    weight = np.linspace(0.5, 2.0, rows.shape[1]).astype(dtype)
    loss = logitloss.cross_entropy(rows, labels, weight=weight, temperature=temperature, reduction="none")
    for r in range(2):
        exact = float(weight[labels[r]]) * exact_loss(mpmath, rows[r], labels[r], temperature, 0.0)
        assert abs(float(loss[r]) - exact) <= 8 * eps * exact
    assert float(loss[2]) == 0.0


def exact_distribution_loss(mpmath, row, v, temperature):
    """mpmath: sum_c v_c (lse(row / T) - row_c / T), the loss of the weighted target distribution v."""
    mpmath.mp.dps = 400
    z = [mpmath.mpf(float(c)) / temperature for c in row]
    lse = mpmath.log(mpmath.fsum(mpmath.exp(c) for c in z))
    return float(mpmath.fsum(mpmath.mpf(float(vc)) * (lse - zc) for vc, zc in zip(v, z)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("temperature", [2.0, 0.3, 7.0])
def test_tiny_losses_of_probability_targets_and_smoothing(isa, mpmath, dtype, temperature):
    """The compensated quotient holds for every target kind: a one-hot probability target on a confident
    row (a tiny loss), a soft target, and label smoothing, each far from 0 too (an offset of 1e3, where the
    rounded z'' would cost 1e3 / T eps of every term max'' - z''_c); within 8 eps of mpmath."""
    eps = EPS[np.dtype(dtype)]
    targets = (1e-6, 1e-12) if dtype == np.float32 else (1e-12, 1e-30)
    rng = np.random.default_rng(int(temperature * 10) + 1)
    for target_loss in targets:
        for offset in (0.0, 1e3):
            gap = -np.log(target_loss) * temperature
            others = -gap - rng.uniform(0.0, 3.0, 5)
            row = (np.concatenate([others[:2], [0.0], others[2:]]) + 0.1234567 + offset).astype(dtype)
            one_hot = np.eye(row.size, dtype=dtype)[2]
            soft = (0.9 * one_hot + 0.1 / row.size).astype(dtype)
            weight = np.linspace(0.5, 2.0, row.size).astype(dtype)
            cases = [  # (target, label_smoothing, weight, v: the weighted target distribution)
                (one_hot, 0.0, None, one_hot.astype(np.float64)),
                (soft, 0.0, None, soft.astype(np.float64)),
                (soft, 0.0, weight, soft.astype(np.float64) * weight),
                (np.array(2), 0.1, None, 0.9 * np.eye(row.size)[2] + 0.1 / row.size),
                (np.array(2), 0.1, weight, weight[2] * 0.9 * np.eye(row.size)[2] + 0.1 / row.size * weight),
            ]
            for target, smoothing, w, v in cases:
                loss = logitloss.cross_entropy(row, target, w, label_smoothing=smoothing, temperature=temperature,
                                              reduction="sum")  # ("mean" divides by w_y)
                exact = exact_distribution_loss(mpmath, row, v, temperature)
                assert abs(float(loss) - exact) <= 8 * eps * exact, (target_loss, offset, smoothing, float(loss), exact)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_extremes_and_masks(isa, torch, dtype):
    """+-1e4 logits; -inf masks survive temperature and z-loss, become -softcap under a cap (as torch's
    composition); nan stays nan; all -inf rows are nan without a cap and finite with one."""
    inf = np.inf
    x = np.array([[1e4, -1e4, 0.0, 5.0], [-inf, 2.0, -inf, 1.0], [3.0, -inf, -inf, -inf], [0.0, np.nan, 1.0, 2.0],
                  [-inf, -inf, -inf, -inf]], dtype)
    t = np.array([0, 1, 0, 2, 1])
    for temperature, softcap, z_loss in [(2.0, None, 0.1), (0.5, None, 0.0), (1.0, 10.0, 1e-3), (3.0, 50.0, 0.0)]:
        kwargs = dict(temperature=temperature, softcap=softcap, z_loss=z_loss)
        loss, grad = logitloss.cross_entropy(x, t, reduction="none", return_grad=True, **kwargs)
        ref_loss, ref_grad, scale = expected(torch, x, t, reduction="none", **kwargs)
        finite = np.isfinite(ref_loss)
        assert np.array_equal(np.isnan(loss), ~finite), (kwargs, loss, ref_loss)
        scales = tuple(part[finite] for part in scale)
        assert_matches(x[finite], loss[finite], grad[finite], ref_loss[finite], ref_grad[finite], scales, "none",
                       str(kwargs))
        assert np.all(np.isnan(grad[~finite]))
        if softcap is not None:
            assert np.all(np.isfinite(loss[[0, 1, 2, 4]]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(temperature=np.inf), "temperature"),
        (dict(temperature=np.nan), "temperature"),
        (dict(softcap=0.0), "softcap"),
        (dict(softcap=-2.0), "softcap"),
        (dict(softcap=np.inf), "softcap"),
        (dict(softcap=np.nan), "softcap"),
        (dict(z_loss=-1e-4), "z_loss"),
        (dict(z_loss=np.inf), "z_loss"),
        (dict(z_loss=np.nan), "z_loss"),
    ],
)
def test_bad_options(kwargs, match):
    x, t = np.zeros((2, 3), np.float32), np.array([0, 1])
    with pytest.raises(ValueError, match=match):
        logitloss.cross_entropy(x, t, **kwargs)
    with pytest.raises(ValueError, match=match):
        logitloss.cross_entropy_backward(1.0, x, t, **kwargs)


@pytest.mark.parametrize("name, value", [("temperature", "2"), ("softcap", True), ("z_loss", 1j), ("temperature", None)])
def test_option_types(name, value):
    with pytest.raises(TypeError, match=name):
        logitloss.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), **{name: value})


def test_numpy_scalars_accepted():
    x, t = logits((3, 4), np.float64, seed=1), np.array([0, 1, 3])
    a = logitloss.cross_entropy(x, t, temperature=np.float32(2.0), softcap=np.array(5.0), z_loss=np.float64(0.01))
    b = logitloss.cross_entropy(x, t, temperature=2.0, softcap=5.0, z_loss=0.01)
    assert a == b


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_capped_logits_and_chain_factor_elementwise(isa, mpmath, dtype):
    """One-class rows with z_loss = 1/2 expose the transform itself: the loss is z''^2 / 2 and the gradient
    z'' dz''/dz. Swept over the series / exp boundary (|z / softcap| = 1/4), tiny and huge |z|, +-inf."""
    mpmath.mp.dps = 50
    softcap, temperature = 3.0, 1.5
    u = np.concatenate([np.geomspace(1e-30, 40, 400), [0.2499999, 0.25, 0.2500001, 1e3, 1e30]])
    z = np.concatenate([u, -u, [0.0]]) * softcap
    x = z.astype(dtype).reshape(-1, 1)
    t = np.zeros(len(x), np.int64)
    loss, grad = logitloss.cross_entropy(x, t, reduction="none", return_grad=True, temperature=temperature,
                                         softcap=softcap, z_loss=0.5)
    eps = EPS[np.dtype(dtype)]
    for value, l, g in zip(x[:, 0], loss, grad[:, 0]):
        v = mpmath.mpf(float(value))
        capped = softcap * mpmath.tanh(v / softcap) / temperature
        chain = mpmath.sech(v / softcap) ** 2 / temperature
        exact_loss, exact_grad = float(capped**2 / 2), float(capped * chain)
        # z'' rounded once (about 1 eps), squared: 2 eps relative plus the loss's own rounding
        # (a loss below the normal range underflows as it should)
        assert abs(float(l) - exact_loss) <= 4 * eps * exact_loss + float(np.finfo(dtype).smallest_normal), (
            value, float(l), exact_loss)
        # sech^2(u) has condition number 2 |u| tanh |u|: the rounding of u = z / softcap costs 2 |u| eps
        conditioning = 2 * abs(float(value)) / softcap
        assert abs(float(g) - exact_grad) <= (6 + conditioning) * eps * abs(exact_grad) + float(
            np.finfo(dtype).smallest_subnormal), (value, float(g), exact_grad)
    inf = logitloss.cross_entropy(np.array([[np.inf], [-np.inf]], dtype), np.array([0, 0]), reduction="none",
                                  return_grad=True, softcap=softcap, temperature=temperature, z_loss=0.5)
    assert np.allclose(inf[0], (softcap / temperature) ** 2 / 2, rtol=4 * eps) and np.all(inf[1] == 0)


@pytest.mark.parametrize("options", OPTIONS[::2], ids=option_id)
def test_linear_cross_entropy_with_options(torch, options):
    temperature, softcap, z_loss = options
    rng = np.random.default_rng(3)
    hidden, head = rng.standard_normal((7, 5)), rng.standard_normal((11, 5))
    bias, w = rng.standard_normal(11), class_weights(11, np.float64, seed=4)
    tokens = np.array([1, 2, -100, 4, 10, 6, 0])
    kwargs = dict(temperature=temperature, softcap=softcap, z_loss=z_loss)
    for reduction in REDUCTIONS:
        result = logitloss.linear_cross_entropy(hidden, head, tokens, linear_bias=bias, weight=w, reduction=reduction,
                                                return_grad=True, chunk_size=3, **kwargs)
        h, W, b = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (hidden, head, bias))
        z = h @ W.T + b
        z = z if softcap is None else softcap * torch.tanh(z / softcap)
        z = z / temperature
        tt, wt = torch.from_numpy(tokens), torch.from_numpy(w)
        kept = tt != -100
        row_weight = wt[torch.where(kept, tt, 0)] * kept
        per_row = torch.nn.functional.cross_entropy(z, tt, weight=wt, reduction="none")
        per_row = per_row + z_loss * row_weight * torch.logsumexp(z, 1) ** 2
        loss = {"none": per_row, "sum": per_row.sum(), "mean": per_row.sum() / row_weight.sum()}[reduction]
        loss.backward(torch.ones_like(loss))
        np.testing.assert_allclose(result.loss, loss.detach().numpy(), rtol=1e-13)
        for ours, theirs in [(result.grad_input, h), (result.grad_weight, W), (result.grad_bias, b)]:
            np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="softcap"):
        logitloss.linear_cross_entropy(hidden, head, tokens, softcap=-1.0)
