"""cross_entropy(..., return_hessian=True): the Hessian's diagonal against the exact reference
(logitloss.testing.hessian), torch's float64 double backward and scikit-learn's HalfMultinomialLoss, over
every option x reduction x dtype x ISA x layout, extremes, and hessian_out's rules."""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.hessian import assert_hessian_close, cross_entropy_hessian

from .helpers.loss_checks import check_hessian_out_forms

DTYPES = (np.float16, np.float32, np.float64)
REDUCTIONS = ("mean", "sum", "none")
# name -> (weight, ignore_index, label_smoothing, probability targets)
OPTIONS = {
    "plain": (False, -100, 0.0, False),
    "weight": (True, -100, 0.0, False),
    "smoothing": (False, -100, 0.1, False),
    "weight+smoothing+ignore": (True, 1, 0.2, False),
    "probabilities": (False, -100, 0.0, True),
    "probabilities+weight+smoothing": (True, -100, 0.3, True),
}
# name -> input shape: the small-row path, chunked rows (several chunks of 2048), K-dim (column mode), 1-D.
SHAPES = {"small": (5, 7), "rows": (3, 300), "chunks": (2, 4500), "k-dim": (3, 6, 9), "one-d": (11,)}


def _arguments(shape, dtype, option, seed=0):
    rng = np.random.default_rng(seed)
    use_weight, ignore_index, smoothing, probabilities = OPTIONS[option]
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    classes = shape[0] if len(shape) == 1 else shape[1]
    kept = () if len(shape) == 1 else (shape[0],) + shape[2:]
    if probabilities:
        t = rng.random(shape)
        t = (t / t.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)).astype(dtype)
    else:
        t = rng.integers(0, classes, kept)
        if ignore_index >= 0 and t.size > 1:
            t.reshape(-1)[::3] = ignore_index
    weight = rng.uniform(0.5, 2.0, classes).astype(dtype) if use_weight else None
    kwargs = {"weight": weight, "label_smoothing": smoothing}
    if not probabilities:
        kwargs["ignore_index"] = ignore_index
    return x, t, kwargs


def _class_axis(x):
    return 0 if x.ndim == 1 else 1


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_hessian_matches_exact_reference(isa, dtype, reduction, option, shape):
    if np.dtype(dtype) == np.float64 and shape == SHAPES["chunks"] and reduction != "sum":
        pytest.skip("mpmath reference of 9000 elements: once per ISA (reduction='sum') is enough")
    x, t, kwargs = _arguments(shape, dtype, option)
    x_before, t_before = x.copy(), t.copy()
    loss, grad, hessian = logitloss.cross_entropy(x, t, reduction=reduction, return_hessian=True, **kwargs)
    assert hessian.shape == x.shape and hessian.dtype == x.dtype
    exact = cross_entropy_hessian(x, t, reduction=reduction, **kwargs)
    assert_hessian_close(hessian, exact, dtype, rowwise_axis=_class_axis(x))
    # The Hessian rides along: loss and gradient bitwise those of return_grad=True.
    loss_alone, grad_alone = logitloss.cross_entropy(x, t, reduction=reduction, return_grad=True, **kwargs)
    np.testing.assert_array_equal(loss, loss_alone)
    np.testing.assert_array_equal(grad, grad_alone)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(t, t_before)


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("classes", (7, 40, 3000))
def test_confident_rows_keep_relative_precision(isa, dtype, classes):
    """A confident row's largest entry has 1 - p far below eps: its curvature sum_{c != max} p_c must stay
    exact (1 - p rounded would give 0), and so must every tiny entry (8 / 16 eps relative each)."""
    x = np.zeros((4, classes), dtype)
    x[:, 1:] = -np.linspace(30, 60, classes - 1)
    x[1, 0] = 1e4
    x[2, 0], x[2, 5] = 40.0, 40.0  # two maxima: p = 1/2 each
    x[3, 2:] = -np.inf
    t = np.array([0, 0, 5, 1])
    _, _, hessian = logitloss.cross_entropy(x, t, reduction="sum", return_hessian=True)
    exact = cross_entropy_hessian(x, t, reduction="sum")
    units = 16 if np.dtype(dtype) == np.float64 else 8
    eps = np.finfo(dtype).eps
    tiny = float(np.finfo(dtype).smallest_normal)
    keep = exact >= tiny
    relative = np.abs(hessian.astype(np.float64)[keep] - exact[keep]) / exact[keep]
    assert relative.max() <= units * eps, relative.max()
    assert hessian[0, 0] > 0  # sum of p_c ~ e^-30: 1 - p rounded would give 0
    np.testing.assert_array_equal(hessian[3, 2:], 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_extremes(isa, dtype, reduction):
    big = 3e38 if np.dtype(dtype) != np.float16 else 6e4
    x = np.array([
        [1e4, -1e4, 0.0, 5.0],
        [-np.inf, 0.0, -np.inf, 1.0],  # masked entries: 0
        [-np.inf, -np.inf, -np.inf, -np.inf],  # all -inf: nan
        [np.nan, 0.0, 1.0, 2.0],  # nan: nan
        [np.inf, 0.0, 1.0, 2.0],  # +inf: nan
        [big, -big, big, 0.0],
        [1e-30, -1e-30, 0.0, 3.0],
    ]).astype(dtype)
    t = np.array([0, 1, 2, 0, 1, 3, -100])
    _, grad, hessian = logitloss.cross_entropy(x, t, reduction=reduction, return_hessian=True)
    exact = cross_entropy_hessian(x, t, reduction=reduction)
    assert_hessian_close(hessian, exact, dtype, rowwise_axis=1)
    np.testing.assert_array_equal(np.isnan(hessian), np.isnan(grad))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_ignored(isa, reduction):
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    t = np.full(3, -100)
    loss, grad, hessian = logitloss.cross_entropy(x, t, reduction=reduction, return_hessian=True)
    np.testing.assert_array_equal(hessian, 0)
    np.testing.assert_array_equal(grad, 0)
    if reduction == "mean":
        assert np.isnan(loss)


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", ((3, 5), (2, 4, 3), (6,)), ids=("2d", "k-dim", "1d"))
def test_torch_double_backward(isa, torch, shape, reduction, option):
    """The diagonal of torch.autograd.functional.hessian of F.cross_entropy in float64."""
    x, t, kwargs = _arguments(shape, np.float64, option, seed=3)
    _, _, hessian = logitloss.cross_entropy(x, t, reduction=reduction, return_hessian=True, **kwargs)
    torch_kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    target = torch.from_numpy(t)

    def loss(z):
        value = torch.nn.functional.cross_entropy(z, target, reduction=reduction, **torch_kwargs)
        return value.sum()

    full = torch.autograd.functional.hessian(loss, torch.from_numpy(x)).numpy().reshape(x.size, x.size)
    expected = np.diagonal(full).reshape(x.shape)
    scale = np.max(np.abs(expected), axis=_class_axis(x), keepdims=True)
    np.testing.assert_allclose(hessian, expected, rtol=0, atol=1e-13 * max(float(scale.max()), 1e-300))


@pytest.mark.parametrize("weighted", (False, True))
def test_scikit_learn_half_multinomial(isa, weighted):
    """scikit-learn's HalfMultinomialLoss().gradient_hessian: gradient sw (p - onehot), hessian sw p (1 - p)
    (no half factor for the multinomial); its sample weight is our class weight of the target with 'sum'."""
    loss_module = pytest.importorskip("sklearn._loss.loss")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 6)) * 2
    y = rng.integers(0, 6, 50)
    weight = rng.uniform(0.5, 2, 6) if weighted else None
    sample_weight = weight[y] if weighted else None
    gradient, hessian = loss_module.HalfMultinomialLoss(n_classes=6).gradient_hessian(
        y_true=y.astype(np.float64), raw_prediction=x, sample_weight=sample_weight)
    _, grad, ours = logitloss.cross_entropy(x, y, weight=weight, reduction="sum", return_hessian=True)
    np.testing.assert_allclose(grad, gradient, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours, hessian, rtol=1e-12, atol=1e-15)


def test_thread_count_does_not_change_results(restore_threads):
    x = np.random.default_rng(5).standard_normal((257, 3000)).astype(np.float32)
    t = np.random.default_rng(6).integers(0, 3000, 257)
    logitloss.set_num_threads(1)
    one = logitloss.cross_entropy(x, t, label_smoothing=0.1, return_hessian=True)
    logitloss.set_num_threads(2)
    two = logitloss.cross_entropy(x, t, label_smoothing=0.1, return_hessian=True)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_streamed_outputs(isa):
    """Outputs of 32 MiB and more, in the caller's (non-fresh) buffers, are written with streaming stores."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1024, 8192)).astype(np.float32)
    t = rng.integers(0, 8192, 1024)
    grad_out, hessian_out = np.ones_like(x), np.ones_like(x)
    _, grad, hessian = logitloss.cross_entropy(x, t, grad_out=grad_out, hessian_out=hessian_out)
    assert grad is grad_out and hessian is hessian_out
    rows = slice(0, 1024, 97)
    exact = cross_entropy_hessian(x, t)[rows]
    # the reference's mean factor is over all 1024 rows: the selected rows carry the same factor
    assert_hessian_close(hessian[rows], exact, np.float32, rowwise_axis=1)


def test_hessian_out_forms(isa):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    t = rng.integers(0, 10, 6)
    check_hessian_out_forms(lambda input, **options: logitloss.cross_entropy(input, t, **options), x)
    # float16: computed in float32, written through a temporary
    x16 = x.astype(np.float16)
    out16 = np.empty_like(x16)
    _, _, hessian16 = logitloss.cross_entropy(x16, t, hessian_out=out16)
    assert hessian16 is out16
    assert_hessian_close(out16, cross_entropy_hessian(x16, t), np.float16, rowwise_axis=1)


X = np.zeros((3, 4), np.float32)
T = np.array([0, 1, 2])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hessian_out": np.empty((3, 5), np.float32)}, ValueError, "hessian_out"),
        ({"hessian_out": np.empty((3, 4), np.float64)}, TypeError, "hessian_out"),
        ({"hessian_out": [[0.0] * 4] * 3}, TypeError, "hessian_out"),
        ({"hessian_out": X}, ValueError, "hessian_out"),
        ({"return_hessian": "yes"}, TypeError, "return_hessian"),
    ],
    ids=("shape", "dtype", "not-an-array", "aliases-input", "flag"),
)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        logitloss.cross_entropy(X, T, **kwargs)


@pytest.mark.parametrize(
    "options",
    [{"temperature": 2.0}, {"softcap": 30.0}, {"z_loss": 1e-4}, {"temperature": 0.5, "softcap": 5.0, "z_loss": 1e-3}],
    ids=("temperature", "softcap", "z_loss", "all"),
)
@pytest.mark.parametrize("hessian_kwargs", [{"return_hessian": True}, {"hessian_out": "array"}], ids=("flag", "out"))
def test_logit_options_not_implemented(options, hessian_kwargs):
    """The Hessian of the transformed logits (the cap's curvature, the chain factor, z-loss's term) is not
    implemented: a NotImplementedError naming the arguments, never an unadjusted Hessian; no output written."""
    hessian_kwargs = dict(hessian_kwargs)
    if hessian_kwargs.get("hessian_out") == "array":
        hessian_kwargs["hessian_out"] = np.full((3, 4), 7.0, np.float32)
    x = X.copy()
    with pytest.raises(NotImplementedError, match=r"return_hessian.*temperature.*softcap.*z_loss"):
        logitloss.cross_entropy(x, T, **hessian_kwargs, **options)
    np.testing.assert_array_equal(x, X)
    if "hessian_out" in hessian_kwargs:
        np.testing.assert_array_equal(hessian_kwargs["hessian_out"], 7.0)
    # The defaults, spelled out, are not options: the Hessian as without them.
    plain = logitloss.cross_entropy(X, T, return_hessian=True)
    spelled = logitloss.cross_entropy(X, T, return_hessian=True, temperature=1.0, softcap=None, z_loss=0.0)
    for a, b in zip(plain, spelled):
        np.testing.assert_array_equal(a, b)


def test_hessian_out_read_only_and_overlaps():
    read_only = np.empty((3, 4), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="hessian_out"):
        logitloss.cross_entropy(X, T, hessian_out=read_only)
    grad = np.empty((3, 4), np.float32)
    with pytest.raises(ValueError, match="hessian_out.*grad_out"):
        logitloss.cross_entropy(X, T, grad_out=grad, hessian_out=grad)
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="hessian_out.*input"):
        logitloss.cross_entropy(x, T, grad_out=x, hessian_out=x)
    x16 = np.zeros((3, 4), np.float16)
    with pytest.raises(ValueError, match="hessian_out.*input"):
        logitloss.cross_entropy(x16, T, hessian_out=x16)
    probabilities = np.full((3, 4), 0.25, np.float32)
    with pytest.raises(ValueError, match="hessian_out.*target"):
        logitloss.cross_entropy(X, probabilities, hessian_out=probabilities)
    np.testing.assert_array_equal(x, 0)
    np.testing.assert_array_equal(probabilities, 0.25)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_layouts(isa, dtype):
    """Strided and Fortran-ordered logits (the class axis strided: column mode), with the Hessian in a fresh
    array laid out like the input or in a C-ordered hessian_out (then written row by row through a buffer)."""
    rng = np.random.default_rng(9)
    base = (rng.standard_normal((40, 24)) * 4).astype(dtype)
    t = rng.integers(0, 12, 40)
    weight = rng.uniform(0.5, 2.0, 12).astype(dtype)
    for x in (base[:, ::2], np.asfortranarray(base[:, :12]), base[:, :12].T.copy().T):
        exact = cross_entropy_hessian(x, t, weight=weight, label_smoothing=0.05)
        _, _, hessian = logitloss.cross_entropy(x, t, weight=weight, label_smoothing=0.05, return_hessian=True)
        assert_hessian_close(hessian, exact, dtype, rowwise_axis=1)
        out = np.empty(x.shape, dtype)
        logitloss.cross_entropy(x, t, weight=weight, label_smoothing=0.05, hessian_out=out)
        assert_hessian_close(out, exact, dtype, rowwise_axis=1)  # another path than the fresh output's
    # K-dim with a strided spatial axis and probability targets
    x = (rng.standard_normal((2, 5, 20)) * 3).astype(dtype)[:, :, ::2]
    p = rng.random(x.shape)
    p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    _, _, hessian = logitloss.cross_entropy(x, p, reduction="sum", return_hessian=True)
    assert_hessian_close(hessian, cross_entropy_hessian(x, p, reduction="sum"), dtype, rowwise_axis=1)
