"""logitloss.torch against torch.nn.functional: values and gradients over options x reductions x dtypes,
gradcheck in float64 for every function and option, non-contiguous tensors, on every SIMD target."""

from __future__ import annotations

import itertools

import pytest

from .helpers.libraries import require
from .helpers.torch_autograd_checks import check_backward_twice

torch = require("torch", module_level=True)
F = torch.nn.functional
import logitloss.torch as lt  # noqa: E402

REDUCTIONS = ("mean", "sum", "none")
# Tolerances relative to the largest magnitude of torch's result (torch's own rounding dominates:
# log_softmax rounded before the loss, float16 rounded at every step).
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def _close(ours, theirs, dtype):
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    scale = max(float(theirs.double().abs().max()), 1e-30) if theirs.numel() else 1.0
    torch.testing.assert_close(ours.double(), theirs.double(), rtol=0, atol=TOLERANCE[dtype] * scale,
                               equal_nan=True)


def _upstream(loss, generator):
    """A random upstream gradient of the loss's shape (a scalar other than 1 for 'mean' / 'sum')."""
    return torch.rand(loss.shape, generator=generator, dtype=torch.float64).add_(0.5).to(loss.dtype)


def _grads(function, inputs, upstream):
    loss = function(*inputs)
    loss.backward(upstream)
    return loss.detach(), [value.grad for value in inputs]


def _leaves(*values):
    return [value.detach().clone().requires_grad_() for value in values]


CROSS_ENTROPY_CASES = list(itertools.product(
    REDUCTIONS, (0.0, 0.15), (False, True), ("index", "probability"), (torch.float64, torch.float32, torch.float16,
                                                                          torch.bfloat16)))


@pytest.mark.parametrize("reduction, smoothing, weighted, targets, dtype", CROSS_ENTROPY_CASES)
def test_cross_entropy_matches_torch(isa, reduction, smoothing, weighted, targets, dtype):
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(6, 7, 3, generator=generator, dtype=torch.float64) * 3).to(dtype)
    weight = (torch.rand(7, generator=generator, dtype=torch.float64) + 0.5).to(dtype) if weighted else None
    if targets == "index":
        target = torch.randint(0, 7, (6, 3), generator=generator)
        target[0, 0] = -100
        extra = []
    else:
        target = torch.softmax(torch.randn(6, 7, 3, generator=generator, dtype=torch.float64), 1).to(dtype)
        extra = [target]
    upstream = _upstream(F.cross_entropy(x.float(), target if targets == "index" else target.float(),
                                         reduction=reduction), generator).to(dtype)
    results = []
    for function in (lt.cross_entropy, F.cross_entropy):
        leaves = _leaves(x, *extra)
        results.append(_grads(lambda *values: function(values[0], values[1] if extra else target, weight=weight,
                                                        reduction=reduction, label_smoothing=smoothing),
                              leaves, upstream))
    (ours_loss, ours_grads), (torch_loss, torch_grads) = results
    _close(ours_loss, torch_loss, dtype)
    for ours, theirs in zip(ours_grads, torch_grads):
        _close(ours, theirs, dtype)


BCE_CASES = list(itertools.product(REDUCTIONS, (False, True), (False, True),
                                   (torch.float64, torch.float32, torch.float16, torch.bfloat16)))


@pytest.mark.parametrize("reduction, weighted, positive_weighted, dtype", BCE_CASES)
def test_binary_cross_entropy_matches_torch(isa, reduction, weighted, positive_weighted, dtype):
    generator = torch.Generator().manual_seed(2)
    x = (torch.randn(5, 4, generator=generator, dtype=torch.float64) * 3).to(dtype)
    target = torch.rand(5, 4, generator=generator, dtype=torch.float64).to(dtype)
    weight = (torch.rand(4, generator=generator, dtype=torch.float64) + 0.5).to(dtype) if weighted else None
    pos_weight = (torch.rand(4, generator=generator, dtype=torch.float64) + 1).to(dtype) if positive_weighted else None
    upstream = _upstream(F.binary_cross_entropy_with_logits(x.float(), target.float(), reduction=reduction),
                         generator).to(dtype)
    results = [_grads(lambda a, b: function(a, b, weight, reduction=reduction, pos_weight=pos_weight),
                      _leaves(x, target), upstream)
               for function in (lt.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits)]
    (ours_loss, ours_grads), (torch_loss, torch_grads) = results
    _close(ours_loss, torch_loss, dtype)
    for ours, theirs in zip(ours_grads, torch_grads):
        _close(ours, theirs, dtype)


SOFTMAX_FAMILY = {
    "softmax": (lambda x, dim: lt.softmax(x, dim), lambda x, dim: F.softmax(x, dim)),
    "log_softmax": (lambda x, dim: lt.log_softmax(x, dim), lambda x, dim: F.log_softmax(x, dim)),
    "logsumexp": (lambda x, dim: lt.logsumexp(x, dim), lambda x, dim: torch.logsumexp(x, dim)),
    "logsumexp keepdim": (lambda x, dim: lt.logsumexp(x, dim, keepdim=True),
                          lambda x, dim: torch.logsumexp(x, dim, keepdim=True)),
}


@pytest.mark.parametrize("name, dim", [(name, dim) for name in sorted(SOFTMAX_FAMILY) for dim in (0, 1, -1, (0, 2))
                                       if name.startswith("logsumexp") or not isinstance(dim, tuple)])
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32, torch.float16, torch.bfloat16))
def test_softmax_family_matches_torch(isa, name, dim, dtype):
    generator = torch.Generator().manual_seed(3)
    x = (torch.randn(4, 9, 3, generator=generator, dtype=torch.float64) * 4).to(dtype)
    ours_function, torch_function = SOFTMAX_FAMILY[name]
    upstream = _upstream(torch_function(x.float(), dim), generator).to(dtype)
    ours_value, (ours_grad,) = _grads(lambda a: ours_function(a, dim), _leaves(x), upstream)
    torch_value, (torch_grad,) = _grads(lambda a: torch_function(a, dim), _leaves(x), upstream)
    _close(ours_value, torch_value, dtype)
    _close(ours_grad, torch_grad, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("biased, weighted", [(False, False), (True, True)])
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
def test_linear_cross_entropy_matches_torch(isa, reduction, biased, weighted, dtype):
    generator = torch.Generator().manual_seed(4)
    hidden = torch.randn(300, 8, generator=generator, dtype=dtype)  # 300 rows: more than one chunk of 256
    head = torch.randn(11, 8, generator=generator, dtype=dtype)
    bias = torch.randn(11, generator=generator, dtype=dtype) if biased else None
    weight = torch.rand(11, generator=generator, dtype=dtype) + 0.5 if weighted else None
    target = torch.randint(0, 11, (300,), generator=generator)
    target[3] = -100
    upstream = _upstream(torch.zeros(300 if reduction == "none" else ()), generator).to(dtype)
    leaves = [hidden, head] + ([bias] if biased else [])

    def ours(*values):
        return lt.linear_cross_entropy(values[0], values[1], target, linear_bias=values[2] if biased else None,
                                       weight=weight, reduction=reduction, label_smoothing=0.1)

    def reference(*values):
        logits = F.linear(values[0], values[1], values[2] if biased else None)
        return F.cross_entropy(logits, target, weight=weight, reduction=reduction, label_smoothing=0.1)

    ours_loss, ours_grads = _grads(ours, _leaves(*leaves), upstream)
    torch_loss, torch_grads = _grads(reference, _leaves(*leaves), upstream)
    tolerance = {torch.float64: 1e-12, torch.float32: 1e-5}[dtype]
    torch.testing.assert_close(ours_loss, torch_loss, rtol=tolerance, atol=tolerance)
    for a, b in zip(ours_grads, torch_grads):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance * float(b.abs().max()))


# --- gradcheck in float64 --------------------------------------------------------------------------------------

def _gradcheck(function, *inputs):
    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", (0.0, 0.3))
@pytest.mark.parametrize("weighted", (False, True))
def test_gradcheck_cross_entropy(reduction, smoothing, weighted):
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(4, 5, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(5, generator=generator, dtype=torch.float64) + 0.5 if weighted else None
    index = torch.tensor([[0, 4], [-100, 2], [3, 3], [1, 0]])
    probabilities = torch.softmax(torch.randn(4, 5, 2, generator=generator, dtype=torch.float64), 1).requires_grad_()
    options = dict(weight=weight, reduction=reduction, label_smoothing=smoothing)
    _gradcheck(lambda a: lt.cross_entropy(a, index, **options), x)
    _gradcheck(lambda a, b: lt.cross_entropy(a, b, **options), x, probabilities)
    _gradcheck(lambda a: lt.cross_entropy(a, torch.tensor(2), **options), x[0, :, 0].detach().requires_grad_())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", (False, True))
def test_gradcheck_binary_cross_entropy(reduction, weighted):
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.rand(3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(4, generator=generator, dtype=torch.float64) + 0.5 if weighted else None
    pos_weight = torch.rand(4, generator=generator, dtype=torch.float64) + 1 if weighted else None
    _gradcheck(lambda a, b: lt.binary_cross_entropy_with_logits(a, b, weight, reduction=reduction,
                                                                pos_weight=pos_weight), x, target)


@pytest.mark.parametrize("function", [lambda a: lt.softmax(a, 1), lambda a: lt.log_softmax(a, 0),
                                      lambda a: lt.logsumexp(a, 1), lambda a: lt.logsumexp(a, (0, 2), keepdim=True),
                                      lambda a: lt.softmax(a, -1, dtype=torch.float64)],
                         ids=["softmax", "log_softmax", "logsumexp", "logsumexp keepdim", "softmax dtype"])
def test_gradcheck_softmax_family(function):
    x = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64, requires_grad=True)
    _gradcheck(function, x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_linear_cross_entropy(reduction):
    generator = torch.Generator().manual_seed(8)
    hidden = torch.randn(5, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    head = torch.randn(6, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 5, -100, 2, 2])
    _gradcheck(lambda a, b, c: lt.linear_cross_entropy(a, b, target, linear_bias=c, reduction=reduction,
                                                       label_smoothing=0.2), hidden, head, bias)


# --- layouts ---------------------------------------------------------------------------------------------------

def test_non_contiguous_tensors_are_read_in_place(isa):
    generator = torch.Generator().manual_seed(9)
    base = torch.randn(7, 12, 5, generator=generator)
    x = base.transpose(0, 2)[:, ::2]  # (5, 6, 7): class axis 1 strided, nothing contiguous
    assert not x.is_contiguous()
    target = torch.randint(0, 6, (5, 7), generator=generator)
    checks = [
        (lambda a: lt.cross_entropy(a, target), lambda a: F.cross_entropy(a, target)),
        (lambda a: lt.cross_entropy(a, target.t().contiguous().t(), reduction="none"),
         lambda a: F.cross_entropy(a, target, reduction="none")),
        (lambda a: lt.binary_cross_entropy_with_logits(a, torch.sigmoid(base.transpose(0, 2)[:, 1::2])),
         lambda a: F.binary_cross_entropy_with_logits(a, torch.sigmoid(base.transpose(0, 2)[:, 1::2]))),
        (lambda a: lt.softmax(a, 1), lambda a: F.softmax(a, 1)),
        (lambda a: lt.log_softmax(a, 2), lambda a: F.log_softmax(a, 2)),
        (lambda a: lt.logsumexp(a, 0), lambda a: torch.logsumexp(a, 0)),
    ]
    for ours, theirs in checks:
        upstream = _upstream(theirs(x), generator)
        ours_value, (ours_grad,) = _grads(ours, _leaves(x), upstream)
        torch_value, (torch_grad,) = _grads(theirs, _leaves(x), upstream)
        _close(ours_value, torch_value, torch.float32)
        _close(ours_grad, torch_grad, torch.float32)


def test_inputs_are_not_modified():
    x = torch.randn(4, 6, requires_grad=True)
    target = torch.tensor([0, 1, 2, 3])
    before = x.detach().clone()
    for function in (lambda: lt.cross_entropy(x, target), lambda: lt.softmax(x, 1), lambda: lt.logsumexp(x, 1),
                     lambda: lt.binary_cross_entropy_with_logits(x, torch.zeros(4, 6))):
        function().sum().backward()
    assert torch.equal(x.detach(), before)


def test_tiny_losses_stay_tiny():
    """The adapter returns the kernels' exact values where torch rounds to 0."""
    logits = torch.tensor([[40.0, 0.0]], requires_grad=True)
    loss = lt.cross_entropy(logits, torch.tensor([0]))
    assert loss.item() == pytest.approx(4.248354e-18, rel=1e-6) and F.cross_entropy(logits, torch.tensor([0])) == 0
    loss.backward()
    assert logits.grad[0, 1].item() == pytest.approx(4.248354e-18, rel=1e-6)
    bce = lt.binary_cross_entropy_with_logits(torch.tensor([-40.0]), torch.tensor([0.0]))
    assert bce.item() == pytest.approx(4.248354e-18, rel=1e-6)


def test_no_grad_path_and_result_types():
    x = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        loss = lt.cross_entropy(x.requires_grad_(), torch.tensor([0, 1, 2]))
    assert loss.grad_fn is None and loss.dtype == torch.float64 and loss.shape == ()
    assert lt.logsumexp(torch.arange(4), 0).dtype == torch.get_default_dtype()


def test_retained_graph_backward_twice_recomputes():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1, 2, 0, 1])
    for function in (lambda a: lt.cross_entropy(a, target, reduction="none").sum() * 3,
                     lambda a: lt.binary_cross_entropy_with_logits(a, torch.ones(5, 3)) * 3,
                     lambda a: lt.linear_cross_entropy(a, torch.eye(3, dtype=torch.float64), target) * 3):
        check_backward_twice(torch, function, x)
