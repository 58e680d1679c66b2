"""bfloat16 logits (``ml_dtypes.bfloat16``): every function accepts them where it accepts float16.

The kernels read bfloat16 in registers for ``logsumexp`` values and ``cross_entropy`` with class-index
targets (loss and gradient); everything else goes through a float32 copy. Either way the result is the
float32 computation on the same (bfloat16-exact) values, rounded once to bfloat16: checked here against a
float64 reference rounded to bfloat16 (within 1 bfloat16 ulp), and against logitloss's own float32 result
rounded by ml_dtypes (bitwise, but for the losses, which are rounded to float32 first, and the target lane
of the gradient, rounded from double).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import logitloss

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
BF16_MAX = float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)

# Class counts around the vector widths (8, 16 lanes), the small-row limit (two vectors) and the kernels'
# chunk of 2048 elements.
CLASS_COUNTS = (1, 3, 16, 17, 33, 100, 2048, 2049, 4133)


def bf16(values) -> np.ndarray:
    with np.errstate(over="ignore"):  # beyond bfloat16's range: +-inf, as the exact value rounds
        return np.asarray(values, dtype=np.float64).astype(BF16)


def ordered(a: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns as integers in the order of the values (+0 and -0 both 0)."""
    bits = np.ascontiguousarray(a, dtype=BF16).view(np.uint16).astype(np.int64)
    return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)


def assert_within_one_ulp(actual, expected64, what=""):
    """actual (bfloat16) is expected64 rounded to bfloat16, or a neighbour; nan where expected is nan."""
    actual = np.asarray(actual)
    assert actual.dtype == BF16, (what, actual.dtype)
    expected = bf16(expected64)
    nan_actual, nan_expected = np.isnan(actual.astype(np.float32)), np.isnan(expected.astype(np.float32))
    np.testing.assert_array_equal(nan_actual, nan_expected, err_msg=f"{what}: nan placement")
    distance = np.abs(ordered(np.where(nan_actual, 0, actual)) - ordered(np.where(nan_expected, 0, expected)))
    assert distance.max(initial=0) <= 1, f"{what}: {distance.max()} ulp, at {np.argmax(distance)}"


def assert_same_bits(actual, expected, what=""):
    np.testing.assert_array_equal(np.asarray(actual, BF16).view(np.uint16), np.asarray(expected, BF16).view(np.uint16),
                                  err_msg=what)


def random_logits(rng, shape, scale):
    return bf16(rng.standard_normal(shape) * scale)


def logsumexp64(x, axis):
    x = np.asarray(x, dtype=np.float64)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis))


def cross_entropy64(x, target, weight=None, label_smoothing=0.0, reduction="mean"):
    """torch's float64 autograd on the bfloat16-exact values: loss and gradient."""
    torch = pytest.importorskip("torch")
    t = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    w = None if weight is None else torch.tensor(np.asarray(weight, np.float64))
    loss = torch.nn.functional.cross_entropy(t, torch.tensor(target), weight=w, label_smoothing=label_smoothing,
                                             reduction=reduction)
    loss.sum().backward()
    return loss.detach().numpy(), t.grad.numpy()


# ---- logsumexp: read in registers ----------------------------------------------------------------------

@pytest.mark.parametrize("classes", CLASS_COUNTS)
@pytest.mark.parametrize("scale", (1.0, 30.0, 1e4))
def test_logsumexp_rows(isa, classes, scale):
    rng = np.random.default_rng(classes)
    x = random_logits(rng, (5, classes), scale)
    before = x.copy()
    result = logitloss.logsumexp(x, axis=-1)
    assert result.dtype == BF16
    assert_same_bits(x, before, "input unchanged")
    assert_within_one_ulp(result, logsumexp64(x, -1), "logsumexp")
    assert_same_bits(result, logitloss.logsumexp(x.astype(np.float32), axis=-1).astype(BF16), "float32 rounded")


@pytest.mark.parametrize("axis", (0, 1, None, (0, 2)))
def test_logsumexp_strided_and_axes(isa, axis):
    rng = np.random.default_rng(7)
    base = random_logits(rng, (9, 40, 6), 5.0)
    x = base[:, ::3, :]  # strided along every reduced axis choice
    result = logitloss.logsumexp(x, axis=axis, keepdims=True)
    assert result.dtype == BF16
    reference = logsumexp64(x.astype(np.float64).reshape(x.shape), axis=axis if axis is not None else (0, 1, 2))
    assert_within_one_ulp(np.asarray(result).reshape(np.shape(reference)), reference, f"axis {axis}")


def test_logsumexp_exactness_rows(isa):
    x = bf16([[0.0, -80.0, -80.0],  # log(1 + 2e^-80): 3.6e-35, tiny but normal in bfloat16
              [0.0, -np.inf, -np.inf],
              [3e38, 3e38, -3e38],
              [-3e38, -3e38, -3e38],
              [np.nan, 0.0, 1.0],
              [-np.inf, -np.inf, -np.inf],
              [np.inf, 0.0, 1.0]])
    result = logitloss.logsumexp(x, axis=1)
    with np.errstate(invalid="ignore"):
        expected = [2 * np.exp(-80.0), 0.0, float(x[2, 0].astype(np.float64)) + np.log(2.0),
                    float(x[3, 0].astype(np.float64)) + np.log(3.0), np.nan, -np.inf, np.inf]
    assert_within_one_ulp(result, expected, "exactness rows")
    assert float(result[0]) > 0  # not rounded to 0


def test_logsumexp_return_sign_and_other_paths(isa):
    """Weights, gradients and signs go through a float32 copy; results rounded once to bfloat16."""
    rng = np.random.default_rng(3)
    x = random_logits(rng, (4, 37), 3.0)
    b = bf16(rng.uniform(-1, 1, (4, 37)))
    value, sign = logitloss.logsumexp(x, axis=1, b=b, return_sign=True)
    value32, sign32 = logitloss.logsumexp(x.astype(np.float32), axis=1, b=b.astype(np.float32), return_sign=True)
    assert value.dtype == BF16 and sign.dtype == BF16
    assert_same_bits(value, value32.astype(BF16))
    assert_same_bits(sign, sign32.astype(BF16))
    value, grad = logitloss.logsumexp(x, axis=1, return_grad=True)
    value32, grad32 = logitloss.logsumexp(x.astype(np.float32), axis=1, return_grad=True)
    assert grad.dtype == BF16
    assert_same_bits(grad, grad32.astype(BF16))


# ---- cross_entropy with class-index targets: read in registers ------------------------------------------

@pytest.mark.parametrize("classes", CLASS_COUNTS)
@pytest.mark.parametrize("options", ({}, {"label_smoothing": 0.1}, {"weight": True}, {"reduction": "none"},
                                     {"reduction": "sum", "ignore_index": 1}))
def test_cross_entropy_loss_and_grad(isa, classes, options):
    rng = np.random.default_rng(classes + len(options))
    rows = 6
    x = random_logits(rng, (rows, classes), 4.0)
    target = rng.integers(0, classes, rows)
    options = dict(options)
    if options.pop("weight", False):
        options["weight"] = rng.uniform(0.5, 2.0, classes).astype(np.float32)
    before = x.copy()
    loss, grad = logitloss.cross_entropy(x, target, return_grad=True, **options)
    assert_same_bits(x, before, "input unchanged")
    assert np.asarray(loss).dtype == BF16 and grad.dtype == BF16
    loss64, grad64 = cross_entropy64(x, target, options.get("weight"), options.get("label_smoothing", 0.0),
                                     options.get("reduction", "mean")) if "ignore_index" not in options else (None, None)
    if loss64 is not None:
        assert_within_one_ulp(loss, loss64, "loss")
        assert_within_one_ulp(grad, grad64, "grad")
    loss32, grad32 = logitloss.cross_entropy(x.astype(np.float32), target, return_grad=True, **options)
    assert_within_one_ulp(loss, np.asarray(loss32, np.float64), "loss vs float32")
    # The float32 gradient rounded by ml_dtypes: bitwise but for the target lanes (rounded from double).
    same = np.asarray(grad, BF16).view(np.uint16) == np.asarray(grad32, np.float32).astype(BF16).view(np.uint16)
    others = np.ones_like(same)
    others[np.arange(rows), target] = False
    assert same[others].all()
    assert_within_one_ulp(grad, grad32.astype(np.float64), "grad vs float32")


def test_cross_entropy_strided_and_k_dimensional(isa):
    rng = np.random.default_rng(11)
    base = random_logits(rng, (5, 90), 3.0)
    x = base[:, ::3]  # strided class axis
    target = rng.integers(0, 30, 5)
    loss, grad = logitloss.cross_entropy(x, target, return_grad=True)
    loss64, grad64 = cross_entropy64(x, target)
    assert_within_one_ulp(loss, loss64, "strided loss")
    assert_within_one_ulp(grad, grad64, "strided grad")
    x3 = random_logits(rng, (3, 7, 4), 3.0)  # (N, C, d): class axis strided
    target3 = rng.integers(0, 7, (3, 4))
    loss, grad = logitloss.cross_entropy(x3, target3, return_grad=True, reduction="none")
    loss64, grad64 = cross_entropy64(x3, target3, reduction="none")
    assert_within_one_ulp(loss, loss64, "K-d loss")
    assert_within_one_ulp(grad, grad64, "K-d grad")


def test_cross_entropy_exactness_rows(isa):
    x = bf16([[0.0, -80.0, -80.0, -80.0],    # loss 3 e^-80: tiny, not 0
              [5.0, -np.inf, 1.0, -np.inf],  # masked classes
              [3e38, -3e38, 0.0, 1.0],       # +-3e38 (bfloat16's max is 3.39e38)
              [np.nan, 0.0, 1.0, 2.0],
              [-np.inf, -np.inf, -np.inf, -np.inf]])
    target = np.array([0, 2, 1, 1, 0])
    loss, grad = logitloss.cross_entropy(x, target, reduction="none", return_grad=True)
    with np.errstate(invalid="ignore"):
        loss64, grad64 = cross_entropy64(x[:3], target[:3], reduction="none")
    loss64[0] = np.log1p(3 * np.exp(-80.0))  # torch's float64 rounds this loss and p_y - 1 to 0
    grad64[0, 0] = -3 * np.exp(-80.0) / (1 + 3 * np.exp(-80.0))
    assert_within_one_ulp(loss[:3], loss64, "loss")
    assert_within_one_ulp(grad[:3], grad64, "grad")
    assert float(loss[0]) > 0 and float(grad[0, 1]) > 0 and float(grad[0, 0]) < 0
    assert np.isnan(loss[3:].astype(np.float32)).all() and np.isnan(grad[3:].astype(np.float32)).all()


def test_cross_entropy_grad_out_in_place_and_backward(isa):
    rng = np.random.default_rng(5)
    x = random_logits(rng, (4, 50), 2.0)
    target = rng.integers(0, 50, 4)
    expected_loss, expected_grad = logitloss.cross_entropy(x, target, return_grad=True)
    out = np.empty_like(x)
    loss, grad = logitloss.cross_entropy(x, target, grad_out=out)
    assert grad is out
    assert_same_bits(out, expected_grad)
    y = x.copy()
    logitloss.cross_entropy(y, target, grad_out=y)  # in place
    assert_same_bits(y, expected_grad)
    backward = logitloss.cross_entropy_backward(np.float32(1.0), x, target)
    assert backward.dtype == BF16
    assert_same_bits(backward, expected_grad)


def test_streamed_gradient_matches(isa):
    """A gradient large enough to be streamed (>= 32 MiB of float32 terms; here into the caller's buffer)."""
    rng = np.random.default_rng(9)
    x = random_logits(rng, (520, 32768), 3.0)
    target = rng.integers(0, 32768, 520)
    out = np.zeros_like(x)
    logitloss.cross_entropy(x, target, grad_out=out, reduction="sum")
    loss32, grad32 = logitloss.cross_entropy(x[:8].astype(np.float32), target[:8], return_grad=True, reduction="sum")
    same = out[:8].view(np.uint16) == grad32.astype(BF16).view(np.uint16)
    same[np.arange(8), target[:8]] = True
    assert same.all()


# ---- the rest: through a float32 copy ---------------------------------------------------------------

@pytest.mark.parametrize("function", ("softmax", "log_softmax"))
def test_softmax_family_rounded_once(isa, function):
    rng = np.random.default_rng(2)
    x = random_logits(rng, (3, 41), 4.0)
    result = getattr(logitloss, function)(x, axis=1)
    assert result.dtype == BF16
    assert_same_bits(result, getattr(logitloss, function)(x.astype(np.float32), axis=1).astype(BF16))


def test_probability_targets_and_bce(isa):
    rng = np.random.default_rng(4)
    x = random_logits(rng, (3, 9), 2.0)
    p = bf16(rng.dirichlet(np.ones(9), 3))
    loss, grad = logitloss.cross_entropy(x, p, return_grad=True)
    loss32, grad32 = logitloss.cross_entropy(x.astype(np.float32), p.astype(np.float32), return_grad=True)
    assert np.asarray(loss).dtype == BF16 and grad.dtype == BF16
    assert_same_bits(grad, grad32.astype(BF16))
    y = bf16(rng.uniform(0, 1, (3, 9)))
    loss, grad = logitloss.binary_cross_entropy_with_logits(x, y, return_grad=True)
    loss32, grad32 = logitloss.binary_cross_entropy_with_logits(x.astype(np.float32), y.astype(np.float32),
                                                               return_grad=True)
    assert grad.dtype == BF16
    assert_same_bits(grad, grad32.astype(BF16))


# ---- argument rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", (np.dtype("V2"), np.dtype([("a", "u1"), ("b", "u1")])))
def test_other_two_byte_void_dtypes_are_refused(dtype):
    x = np.zeros((2, 3), dtype)
    with pytest.raises(TypeError, match="`a`.*2-byte void"):
        logitloss.logsumexp(x, axis=1)
    with pytest.raises(TypeError, match="`input`"):
        logitloss.cross_entropy(x, np.zeros(2, np.int64))


def test_import_without_ml_dtypes():
    """Without ml_dtypes (its import blocked) logitloss imports and computes as before; with it installed,
    ``import logitloss`` does not import it."""
    script = ("import sys\n"
              "sys.modules['ml_dtypes'] = None\n"
              "import numpy as np, logitloss\n"
              "x = np.array([[0.0, 1.0], [2.0, 3.0]], np.float16)\n"
              "print(logitloss.logsumexp(x, axis=1).dtype, logitloss.cross_entropy(x, np.array([0, 1])).dtype)\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert completed.stdout.split() == ["float16", "float16"]
    loaded = subprocess.run([sys.executable, "-c", "import sys, logitloss; print('ml_dtypes' in sys.modules)"],
                            capture_output=True, text=True, timeout=120, check=True)
    assert loaded.stdout.strip() == "False"


# ---- logitloss.torch: bfloat16 tensors read in place --------------------------------------------------

def test_torch_adapter_reads_bfloat16_in_place(torch, monkeypatch):
    import logitloss.torch as lt
    from logitloss.torch._bfloat16 import bfloat16_array

    generator = torch.Generator().manual_seed(0)
    base = (torch.randn(6, 70, generator=generator) * 3).to(torch.bfloat16)
    x = base[:, ::2]  # strided
    assert bfloat16_array(x).ctypes.data == x.data_ptr()  # a view, no copy
    target = torch.randint(0, 35, (6,), generator=generator)
    leaf = x.detach().requires_grad_()
    loss = lt.cross_entropy(leaf, target, label_smoothing=0.1)
    loss.backward()
    assert loss.dtype is torch.bfloat16 and leaf.grad.dtype is torch.bfloat16
    loss32, grad32 = logitloss.cross_entropy(x.float().numpy(), target.numpy(), label_smoothing=0.1, return_grad=True)
    assert_within_one_ulp(loss.detach().view(torch.int16).numpy().view(BF16), np.float64(loss32), "torch loss")
    assert_within_one_ulp(leaf.grad.view(torch.int16).numpy().view(BF16), grad32.astype(np.float64), "torch grad")
    with torch.no_grad():
        values = lt.logsumexp(x, 1)
    assert values.dtype is torch.bfloat16
    assert_within_one_ulp(values.view(torch.int16).numpy().view(BF16), logsumexp64(x.float().numpy(), 1), "torch lse")
    # Without ml_dtypes: the float32 copies, the same results.
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    assert bfloat16_array(x) is None
    leaf_copy = x.detach().requires_grad_()
    loss_copy = lt.cross_entropy(leaf_copy, target, label_smoothing=0.1)
    loss_copy.backward()
    assert loss_copy.dtype is torch.bfloat16
    assert_within_one_ulp(leaf_copy.grad.view(torch.int16).numpy().view(BF16), grad32.astype(np.float64), "copy grad")


def test_python_level_functions_through_float32():
    """KL divergence, the contrastive loss and the linear head's cross-entropy: float32 copies, rounded once."""
    rng = np.random.default_rng(8)
    x, t = random_logits(rng, (4, 6), 2.0), random_logits(rng, (4, 6), 2.0)
    calls = {
        "kl": lambda a, b: logitloss.kl_div_with_logits(a, b, return_grad=True),
        "contrastive": lambda a, b: logitloss.contrastive_loss(a[:, :4], return_grad=True),
        "linear": lambda a, b: logitloss.linear_cross_entropy(a, b[:5], np.array([0, 1, 2, 3]), return_grad=True)[:3],
    }
    for name, call in calls.items():
        result = call(x, t)
        expected = call(x.astype(np.float32), t.astype(np.float32))
        for got, want in zip(result, expected):
            assert np.asarray(got).dtype == BF16, name
            assert_same_bits(got, np.asarray(want).astype(BF16), name)
    out = np.empty_like(x)
    loss, grad = logitloss.kl_div_with_logits(x, t, grad_out=out)
    assert grad is out
    with pytest.raises(TypeError, match="grad_out"):
        logitloss.kl_div_with_logits(x, t, grad_out=np.empty((4, 6), np.float32))


@pytest.mark.parametrize("op", ("logsumexp", "cross_entropy_fwd_bwd"))
def test_bench_providers_compute_what_they_say(torch, op):
    from logitloss.bench.bfloat16_providers import bfloat16_providers

    rng = np.random.default_rng(12)
    x = (rng.standard_normal((8, 300)) * 3).astype(np.float32)
    y = rng.integers(0, 300, 8)
    providers, _ = bfloat16_providers(op, x, y)
    results = {provider.name: provider.fn() for provider in providers}
    assert set(results) == {"logitloss", "logitloss bfloat16", "torch bfloat16"}
    if op == "logsumexp":
        assert_within_one_ulp(results["logitloss bfloat16"], results["logitloss"].astype(np.float64), op)
        theirs = results["torch bfloat16"].float().numpy()
        np.testing.assert_allclose(theirs, results["logitloss"], rtol=2e-2)
    else:
        loss32, grad32 = results["logitloss"]
        loss16, grad16 = results["logitloss bfloat16"]
        assert_within_one_ulp(grad16, grad32.astype(np.float64), op)
        np.testing.assert_allclose(results["torch bfloat16"].float().numpy(), grad32, atol=1e-3)


def test_results_independent_of_threads(restore_threads):
    x = random_logits(np.random.default_rng(13), (300, 5000), 3.0)
    y = np.arange(300) % 5000
    results = {}
    for threads in (1, 2):
        logitloss.set_num_threads(threads)
        loss, grad = logitloss.cross_entropy(x, y, return_grad=True)
        results[threads] = (np.asarray(loss).view(np.uint16), grad.view(np.uint16),
                            logitloss.logsumexp(x, axis=1).view(np.uint16))
    for one, two in zip(results[1], results[2]):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("function", ("softmax", "log_softmax"))
@pytest.mark.parametrize("classes", (1, 17, 33, 2049, 4133))
def test_softmax_family_read_in_registers(isa, function, classes):
    rng = np.random.default_rng(classes)
    x = random_logits(rng, (4, classes), 5.0)
    x[0, :3] = bf16([np.inf, 0.0, 1.0])[: min(3, classes)] if classes >= 3 else x[0, :3]
    x[1, :] = -np.inf
    x[2, 0] = np.nan
    before = x.copy()
    result = getattr(logitloss, function)(x, axis=1)
    assert result.dtype == BF16
    assert_same_bits(x, before, "input unchanged")
    with np.errstate(invalid="ignore"):
        expected = getattr(logitloss, function)(x.astype(np.float32), axis=1).astype(np.float64)
    assert_within_one_ulp(result, expected, function)
    strided = random_logits(rng, (classes, 6), 5.0)  # axis 0: rows packed
    assert_within_one_ulp(getattr(logitloss, function)(strided, axis=0),
                          getattr(logitloss, function)(strided.astype(np.float32), axis=0).astype(np.float64), "axis 0")
    out = np.empty_like(x)
    assert getattr(logitloss, function)(x, axis=1, out=out) is out
    assert_same_bits(out, result, "out=")
    y = x.copy()
    getattr(logitloss, function)(y, axis=1, out=y)  # in place
    assert_same_bits(y, result, "in place")


def test_torch_softmax_family_in_place(torch):
    import logitloss.torch as lt

    x = (torch.randn(5, 80, generator=torch.Generator().manual_seed(3)) * 4).to(torch.bfloat16)[:, ::2]
    for name in ("softmax", "log_softmax"):
        result = getattr(lt, name)(x, 1)
        assert result.dtype is torch.bfloat16
        expected = getattr(logitloss, name)(x.float().numpy(), axis=1).astype(np.float64)
        assert_within_one_ulp(result.view(torch.int16).numpy().view(BF16), expected, name)


def test_dask_functions_take_bfloat16():
    da = pytest.importorskip("dask.array")
    import logitloss.dask as ld

    x = random_logits(np.random.default_rng(14), (8, 10), 3.0)
    chunked = da.from_array(x, chunks=(4, 5))
    pairs = ((ld.logsumexp(chunked, axis=1), logitloss.logsumexp(x, axis=1)),
             (ld.softmax(chunked, axis=1), logitloss.softmax(x, axis=1)),
             (ld.log_softmax(chunked, axis=0), logitloss.log_softmax(x, axis=0)))
    for lazy, eager in pairs:
        result = lazy.compute()
        assert result.dtype == BF16
        assert_within_one_ulp(result, np.asarray(eager).astype(np.float64), "dask")


def test_calibration_takes_bfloat16():
    from logitloss.calibration import expected_calibration_error, fit_temperature

    rng = np.random.default_rng(15)
    x = random_logits(rng, (200, 5), 2.0)
    labels = np.argmax(x.astype(np.float32) + rng.gumbel(size=x.shape), axis=1)  # drawn from softmax(x)
    assert expected_calibration_error(x, labels) == expected_calibration_error(x.astype(np.float32), labels)
    assert fit_temperature(x, labels) == fit_temperature(x.astype(np.float32), labels)


@pytest.mark.parametrize("function", ("softmax", "log_softmax"))
@pytest.mark.parametrize("classes", (1, 17, 2049))
def test_softmax_family_backward_read_in_registers(isa, function, classes):
    rng = np.random.default_rng(classes + 1)
    y = getattr(logitloss, function)(random_logits(rng, (4, classes), 3.0), axis=1)
    g = random_logits(rng, (4, classes), 1.0)
    g[3, 0] = bf16(3e38)
    before = g.copy(), y.copy()
    backward = getattr(logitloss, function + "_backward")
    result = backward(g, y, axis=1)
    assert result.dtype == BF16
    assert_same_bits(g, before[0]) and assert_same_bits(y, before[1])
    expected = backward(g.astype(np.float32), y.astype(np.float32), axis=1).astype(np.float64)
    assert_within_one_ulp(result, expected, function + "_backward")
    strided = backward(g.T.copy(), y.T.copy(), axis=0)  # the reduced axis strided: rows packed
    assert_within_one_ulp(strided.T, expected, "axis 0")


@pytest.mark.parametrize("classes", (3, 17, 2049))
@pytest.mark.parametrize("options", ({}, {"label_smoothing": 0.2}, {"weight": True, "reduction": "none"}))
def test_cross_entropy_probability_targets(isa, classes, options):
    rng = np.random.default_rng(classes + 7)
    x = random_logits(rng, (5, classes), 3.0)
    p = rng.dirichlet(np.ones(classes), 5).astype(np.float32)
    options = dict(options)
    if options.pop("weight", False):
        options["weight"] = rng.uniform(0.5, 2.0, classes).astype(np.float32)
    loss, grad = logitloss.cross_entropy(x, p, return_grad=True, **options)
    assert grad.dtype == BF16
    loss64, grad64 = cross_entropy64(x, p, options.get("weight"), options.get("label_smoothing", 0.0),
                                     options.get("reduction", "mean"))
    assert_within_one_ulp(grad, grad64, "grad")
    loss32 = logitloss.cross_entropy(x.astype(np.float32), p, **options)
    assert np.asarray(loss).dtype == BF16  # the input's dtype, as torch (and float16 here)
    assert_within_one_ulp(loss, np.asarray(loss32, np.float64), "loss")


@pytest.mark.parametrize("classes", (1, 17, 2049))
def test_entropy_read_in_registers(isa, classes):
    rng = np.random.default_rng(classes + 3)
    x = random_logits(rng, (5, classes), 4.0)
    x[4, 0] = bf16(np.nan)
    value, grad = logitloss.entropy_with_logits(x, axis=1, return_grad=True)
    assert value.dtype == BF16 and grad.dtype == BF16
    value32, grad32 = logitloss.entropy_with_logits(x.astype(np.float32), axis=1, return_grad=True)
    assert_within_one_ulp(value, value32.astype(np.float64), "entropy")
    assert_within_one_ulp(grad, grad32.astype(np.float64), "entropy gradient")
    out = np.empty_like(x)
    assert logitloss.entropy_with_logits(x, axis=1, grad_out=out)[1] is out
    assert_same_bits(out, grad, "grad_out=")
    strided_value, strided_grad = logitloss.entropy_with_logits(x.T.copy(), axis=0, return_grad=True)  # packed rows
    assert_same_bits(strided_value, value, "axis 0")
    assert_same_bits(strided_grad.T, grad, "axis 0 gradient")
