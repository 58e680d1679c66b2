"""linear_cross_entropy against torch float64 autograd of ``F.linear`` + ``F.cross_entropy`` (and torch's own
``F.linear_cross_entropy``): every option x reduction x dtype x chunk size (one row, a chunk that does not
divide N, N smaller than a chunk, the default), 3-D input, ignored rows in every chunk, every row ignored,
bias on and off; inputs never modified; peak memory in a subprocess.

Tolerance (float32 and float16, both computed in float32), a bound, not a fit: every result is a sum of
products whose rounding is at most ``(terms) * eps`` times the sum of the absolute values of those products
(Higham's gamma_n). The logits of row n carry ``|dz_nv| <= D eps Zs_n`` with ``Zs_n = max_v (|x_n| . |w_v| +
|b_v|)``; through the softmax that moves G_nv by at most ``2 p_nv D eps Zs_n`` per unit of the row's factor
(weight / denominator). So with ``Gs = (|G| + f P)(1 + 2 Zs)`` the gradients are within
``(D + V + N + 16) eps`` of ``Gs @ |W|``, ``Gs.T @ |X|``, ``sum(Gs)``: D for the logits, V for ``G @ W``,
and for ``grad_weight`` the rows of one chunk inside the BLAS plus one addition per chunk, at most N in all
(so the bound grows linearly with the number of chunks K; random inputs see about sqrt of it); 16 for the
fused kernel and the final scaling. The loss is within the same units of ``f (|loss_n| + 2 Zs_n)`` summed.
float16 results add their own rounding (half an ulp of float16). float64 uses the same formula with its eps.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import logitloss

from .helpers.assertions import assert_unchanged, snapshot
from .helpers.libraries import require

N, D, V = 13, 24, 40
CHUNKS = [1, 5, 64, None]  # one row, not dividing N = 13, larger than N, the default
REDUCTIONS = ["mean", "sum", "none"]
EPS = {np.float16: np.finfo(np.float32).eps, np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


def make_inputs(dtype, shape=(N,), bias=True, class_weight=False, ignore_every=3, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape + (D,)) * 0.5).astype(dtype)
    w = (rng.standard_normal((V, D)) * 0.5).astype(dtype)
    b = rng.standard_normal(V).astype(dtype) if bias else None
    cw = (rng.random(V) + 0.5).astype(dtype) if class_weight else None
    t = rng.integers(0, V, shape)
    if ignore_every:
        t.reshape(-1)[::ignore_every] = -100  # with chunks of 1 or 5 rows, ignored rows in every chunk of 5
    return x, w, t, b, cw


def torch_reference(x, w, t, b, cw, reduction, label_smoothing):
    """Loss and gradients by float64 torch autograd, and the tolerance scales of the module docstring."""
    torch = require("torch")
    F = torch.nn.functional
    X = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    W = torch.tensor(np.asarray(w, np.float64), requires_grad=True)
    B = None if b is None else torch.tensor(np.asarray(b, np.float64), requires_grad=True)
    CW = None if cw is None else torch.tensor(np.asarray(cw, np.float64))
    T = torch.tensor(t)
    z = F.linear(X, W, B)
    loss = F.cross_entropy(z.reshape(-1, w.shape[0]), T.reshape(-1), weight=CW, reduction=reduction,
                           label_smoothing=label_smoothing)
    loss.sum().backward()
    lossv = loss.detach().numpy()
    out = dict(loss=lossv.reshape(t.shape) if reduction == "none" else lossv, grad_input=X.grad.numpy(), grad_weight=W.grad.numpy(),
               grad_bias=None if B is None else B.grad.numpy())
    # scales
    x2 = np.abs(np.asarray(x, np.float64)).reshape(-1, w.shape[1])
    w64 = np.abs(np.asarray(w, np.float64))
    zs = (x2 @ w64.T + (0 if b is None else np.abs(np.asarray(b, np.float64)))).max(axis=1, keepdims=True)
    zz = z.detach().numpy().reshape(-1, w.shape[0])
    p = np.exp(zz - zz.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    flat_t = t.reshape(-1)
    kept = flat_t != -100
    row_weight = np.where(kept, 1.0 if cw is None else np.asarray(cw, np.float64)[np.where(kept, flat_t, 0)], 0.0)
    denominator = row_weight.sum() if reduction == "mean" else 1.0
    f = (row_weight * (1.0 if cw is None else np.abs(np.asarray(cw, np.float64)).max() + 1)
         / (denominator if denominator else 1.0))[:, None]
    # |G|, the gradient of the logits (torch does not keep it for a non-leaf tensor)
    Z = z.detach().clone().requires_grad_(True)
    F.cross_entropy(Z.reshape(-1, w.shape[0]), T.reshape(-1), weight=CW, reduction=reduction,
                    label_smoothing=label_smoothing).sum().backward()
    G = np.abs(Z.grad.numpy().reshape(-1, w.shape[0]))
    Gs = (G + f * p) * (1 + 2 * zs)
    row_losses = F.cross_entropy(z.detach().reshape(-1, w.shape[0]), T.reshape(-1), weight=CW, reduction="none",
                                 label_smoothing=label_smoothing).numpy()
    loss_scale = (np.abs(row_losses) + 2 * zs[:, 0]) * f[:, 0]
    scales = dict(grad_input=(Gs @ w64).reshape(x.shape), grad_weight=Gs.T @ x2,
                  grad_bias=None if b is None else Gs.sum(axis=0),
                  loss=loss_scale.reshape(t.shape) if reduction == "none" else loss_scale.sum())
    return out, scales


def assert_within(actual, expected, scale, dtype, rows, what):
    units = D + V + rows + 16
    tol = units * EPS[dtype] * np.asarray(scale)
    actual64 = np.asarray(actual, np.float64)
    if dtype == np.float16:
        tol = tol + np.abs(expected) * 2.0**-11 + np.finfo(np.float16).smallest_subnormal
    err = np.abs(actual64 - expected)
    ok = (err <= tol) | (np.isnan(expected) & np.isnan(actual64))
    assert ok.all(), f"{what}: max error {np.nanmax(err)} (tolerance there {tol.reshape(-1)[np.argmax(err)]})"


def check(x, w, t, b, cw, dtype, reduction="mean", label_smoothing=0.0, chunk_size=None, return_grad=True):
    before = snapshot(x, w, t, b, cw)
    result = logitloss.linear_cross_entropy(x, w, t, linear_bias=b, weight=cw, reduction=reduction,
                                            label_smoothing=label_smoothing, return_grad=return_grad,
                                            chunk_size=chunk_size)
    assert_unchanged(before, [x, w, t, b, cw], "linear_cross_entropy")
    expected, scales = torch_reference(x, w, t, b, cw, reduction, label_smoothing)
    rows = t.size
    loss = result.loss if return_grad else result
    assert np.asarray(loss).dtype == dtype and np.shape(loss) == (t.shape if reduction == "none" else ())
    assert_within(loss, expected["loss"], scales["loss"], dtype, rows, "loss")
    if not return_grad:
        return
    assert (result.grad_bias is None) == (b is None)
    for name in ("grad_input", "grad_weight", "grad_bias"):
        got = getattr(result, name)
        if got is None:
            continue
        assert got.dtype == dtype and got.shape == expected[name].shape, name
        assert_within(got, expected[name], scales[name], dtype, rows, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("options", ["plain", "bias", "weight", "smoothing", "all"])
def test_matches_torch(dtype, reduction, chunk_size, options):
    bias = options in ("bias", "all")
    class_weight = options in ("weight", "all")
    smoothing = 0.15 if options in ("smoothing", "all") else 0.0
    x, w, t, b, cw = make_inputs(dtype, bias=bias, class_weight=class_weight)
    check(x, w, t, b, cw, dtype, reduction, smoothing, chunk_size)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("chunk_size", [1, 4, None])
def test_forward_only_matches_torch(reduction, chunk_size):
    x, w, t, b, cw = make_inputs(np.float32, class_weight=True)
    check(x, w, t, b, cw, np.float32, reduction, 0.1, chunk_size, return_grad=False)


@pytest.mark.parametrize("chunk_size", [1, 4, None])
def test_3d_input(chunk_size):
    x, w, t, b, cw = make_inputs(np.float32, shape=(3, 5))
    check(x, w, t, b, cw, np.float32, "none", 0.0, chunk_size)
    check(x, w, t, b, cw, np.float32, "mean", 0.05, chunk_size)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_every_row_ignored(reduction):
    x, w, t, b, cw = make_inputs(np.float64, ignore_every=0, class_weight=True)
    t[:] = -100
    r = logitloss.linear_cross_entropy(x, w, t, linear_bias=b, weight=cw, reduction=reduction, return_grad=True,
                                       chunk_size=4)
    if reduction == "mean":
        assert np.isnan(r.loss)  # torch: 0 / 0
    else:
        assert np.all(r.loss == 0)
    for g in r[1:]:
        assert np.all(g == 0)  # torch's gradient, also for 'mean'
    check(x, w, t, b, cw, np.float64, reduction, 0.0, 4)


def test_mean_divides_by_the_whole_inputs_denominator():
    """Chunks with very different weight sums: the mean is not an average of per-chunk means."""
    x, w, t, b, cw = make_inputs(np.float64, class_weight=True, ignore_every=0)
    t[:4] = -100
    for chunk_size in (1, 4, 6):
        check(x, w, t, b, cw, np.float64, "mean", 0.2, chunk_size)


def test_against_torch_linear_cross_entropy():
    torch = require("torch")
    F = torch.nn.functional
    if not hasattr(F, "linear_cross_entropy"):
        pytest.skip("this torch has no F.linear_cross_entropy")
    x, w, t, b, cw = make_inputs(np.float64, class_weight=True)
    for reduction in REDUCTIONS:
        expected = F.linear_cross_entropy(torch.tensor(x), torch.tensor(w), torch.tensor(t), linear_bias=torch.tensor(b),
                                          weight=torch.tensor(cw), reduction=reduction, ignore_index=-100,
                                          label_smoothing=0.1).numpy()
        got = logitloss.linear_cross_entropy(x, w, t, linear_bias=b, weight=cw, reduction=reduction,
                                             label_smoothing=0.1, chunk_size=5)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


def test_results_do_not_depend_on_threads_or_strides():
    x, w, t, b, _ = make_inputs(np.float32)
    previous = logitloss.get_num_threads()
    try:
        logitloss.set_num_threads(1)
        one = logitloss.linear_cross_entropy(x, w, t, linear_bias=b, reduction="none", chunk_size=5)
        logitloss.set_num_threads(2)
        two = logitloss.linear_cross_entropy(x, w, t, linear_bias=b, reduction="none", chunk_size=5)
    finally:
        logitloss.set_num_threads(previous)
    np.testing.assert_allclose(one, two, rtol=4 * D * EPS[np.float32])
    wide = np.zeros((V, 2 * D), np.float32)
    wide[:, ::2] = w
    strided = logitloss.linear_cross_entropy(x, wide[:, ::2], t, linear_bias=b, reduction="none", chunk_size=5)
    np.testing.assert_allclose(strided, one, rtol=4 * D * EPS[np.float32])


def test_single_row_input():
    x, w, t, b, cw = make_inputs(np.float64, shape=(), ignore_every=0)
    check(x, w, t, b, cw, np.float64, "none")
    check(x, w, t, b, cw, np.float64, "mean")


_MEMORY_SCRIPT = """
import sys
import numpy as np
import logitloss
from tests.helpers.process_memory import peak_resident_bytes, reset_peak_resident, resident_bytes
N, D, V = int(sys.argv[1]), 64, 32000
rng = np.random.default_rng(0)
x = np.empty((N, D), np.float32); rng.standard_normal(dtype=np.float32, out=x)
w = np.empty((V, D), np.float32); rng.standard_normal(dtype=np.float32, out=w)
b = np.empty(V, np.float32); rng.standard_normal(dtype=np.float32, out=b)
t = rng.integers(0, V, N)
logitloss.set_num_threads(1)
logitloss.linear_cross_entropy(x[:8], w[:16], t[:8] % 16, return_grad=True)  # load the BLAS and the pool
reset_peak_resident()
before = resident_bytes()
r = logitloss.linear_cross_entropy(x, w, t, linear_bias=b, return_grad=True, label_smoothing=0.1)
peak = peak_resident_bytes()
returned = sum(g.nbytes for g in r[1:])
print(peak - before - returned)
"""


def extra_memory(n):
    completed = subprocess.run([sys.executable, "-c", textwrap.dedent(_MEMORY_SCRIPT), str(n)], capture_output=True,
                               text=True, timeout=600, cwd=__file__.rsplit("/tests/", 1)[0])
    assert completed.returncode == 0, completed.stderr
    return int(completed.stdout.split()[-1])


def test_peak_memory_is_a_fraction_of_the_logits_and_does_not_grow_with_n():
    from .helpers.process_memory import under_address_sanitizer

    if under_address_sanitizer():
        pytest.skip("AddressSanitizer keeps freed memory resident")
    logits_bytes = 4096 * 32000 * 4
    small, large = extra_memory(4096), extra_memory(8192)
    print(f"peak extra memory: {small / 2**20:.1f} MiB at N = 4096, {large / 2**20:.1f} MiB at N = 8192")
    assert small <= logits_bytes / 8, f"peak extra {small / 2**20:.1f} MiB at N = 4096"
    assert large <= small + 8 * 2**20, f"peak extra {small / 2**20:.1f} MiB at N = 4096, {large / 2**20:.1f} at 8192"


def test_blas_threads_follow_logitloss_threads(monkeypatch):
    threadpoolctl = require("threadpoolctl")
    from logitloss import _blas_threads

    # The controller covers the BLAS libraries loaded when it was made (at the first call, documented):
    # an earlier test may have loaded another since (scipy's OpenBLAS), so this test makes a fresh one.
    monkeypatch.setattr(_blas_threads, "_controller", None)
    previous = logitloss.get_num_threads()
    try:
        for n in (1, 2):
            logitloss.set_num_threads(n)
            with _blas_threads.blas_threads():
                counts = {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}
            assert counts <= {n}, counts
    finally:
        logitloss.set_num_threads(previous)


def test_overlapping_calls_restore_the_blas_setting(monkeypatch):
    """Calls from two Python threads that overlap (A enters, B enters, A leaves, B leaves) leave the
    BLAS as they found it: the shared limit is undone by the last to leave."""
    threadpoolctl = require("threadpoolctl")
    from logitloss import _blas_threads

    monkeypatch.setattr(_blas_threads, "_controller", None)  # one that covers the BLAS loaded now (as above)

    def blas_counts():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas_counts()
    previous = logitloss.get_num_threads()
    try:
        logitloss.set_num_threads(1)
        first, second = _blas_threads.blas_threads(), _blas_threads.blas_threads()
        first.__enter__()
        second.__enter__()
        assert set(blas_counts()) <= {1}
        first.__exit__(None, None, None)
        assert set(blas_counts()) <= {1}, "the limit must hold while a call is still inside"
        second.__exit__(None, None, None)
    finally:
        logitloss.set_num_threads(previous)
    assert blas_counts() == before


def test_without_threadpoolctl_the_blas_keeps_its_setting(monkeypatch):
    from logitloss import _blas_threads

    monkeypatch.setattr(_blas_threads, "_controller", False)  # as if the import had failed
    x, w, t, b, _ = make_inputs(np.float64)
    assert _blas_threads._threadpool_controller() is None
    check(x, w, t, b, None, np.float64, "sum", 0.0, 4)
