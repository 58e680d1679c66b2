"""logitloss.torch's distribution losses (kl_div_with_logits, entropy_with_logits, perplexity,
contrastive_loss) and cross_entropy's logit options against torch's compositions in float64: values and
gradients over options x reductions x dtypes on every SIMD target, gradcheck in float64, non-contiguous
tensors, double backward, and the custom ops (opcheck, torch.compile without graph breaks)."""

from __future__ import annotations

import itertools

import pytest

from .helpers.libraries import require
from .helpers.torch_autograd_checks import check_backward_twice, check_double_backward_raises

torch = require("torch", module_level=True)
F = torch.nn.functional
import logitloss.torch as lt  # noqa: E402

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
REDUCTIONS = ("mean", "sum", "none")
# Relative to the largest magnitude of the float64 reference: the result's own rounding (float16 and bfloat16
# round the inputs' products once more).
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def _close(ours, reference, dtype):
    assert ours.dtype == dtype and ours.shape == reference.shape
    scale = max(float(reference.abs().max()), 1e-30) if reference.numel() else 1.0
    torch.testing.assert_close(ours.double(), reference, rtol=0, atol=TOLERANCE[dtype] * scale, equal_nan=True)


def _compare(ours, reference, values, dtype, seed):
    """ours(*leaves in dtype) against reference(*leaves in float64 holding the same values): the results, and
    the gradients of both for one random upstream gradient."""
    rounded = [value.to(dtype) for value in values]
    ours_leaves = [value.clone().requires_grad_() for value in rounded]
    reference_leaves = [value.double().clone().requires_grad_() for value in rounded]  # (clones: never the caller's)
    result = ours(*ours_leaves)
    expected = reference(*reference_leaves)
    upstream = torch.rand(expected.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.5
    upstream = upstream.to(dtype).double()  # exact in both dtypes
    result.backward(upstream.to(dtype))
    expected.backward(upstream)
    _close(result.detach(), expected.detach(), dtype)
    for leaf, reference_leaf in zip(ours_leaves, reference_leaves):
        _close(leaf.grad, reference_leaf.grad, dtype)


def _reduce(per_position, reduction, denominator=None):
    if reduction == "none":
        return per_position
    total = per_position.sum()
    return total if reduction == "sum" else total / (per_position.numel() if denominator is None else denominator)


# --- cross_entropy's temperature / softcap / z_loss ------------------------------------------------------------

LOGIT_OPTIONS = [dict(temperature=2.0), dict(softcap=5.0), dict(z_loss=1e-2), dict(temperature=0.5, softcap=3.0,
                                                                                   z_loss=1e-3)]


def _cross_entropy_reference(x, target, weight, reduction, label_smoothing, temperature=1.0, softcap=None,
                             z_loss=0.0):
    z = x if softcap is None else softcap * torch.tanh(x / softcap)
    z = z / temperature
    per = F.cross_entropy(z, target, weight=weight, reduction="none", label_smoothing=label_smoothing)
    if target.is_floating_point():
        position_weight = torch.ones_like(per)
    else:
        kept = target != -100
        position_weight = (weight[target.clamp(min=0)] if weight is not None else torch.ones_like(per)) * kept
    per = per + z_loss * position_weight * torch.logsumexp(z, 1) ** 2
    return _reduce(per, reduction, position_weight.sum())


@pytest.mark.parametrize("options", LOGIT_OPTIONS, ids=lambda options: "+".join(options))
@pytest.mark.parametrize("reduction, targets", list(itertools.product(REDUCTIONS, ("index", "probability"))))
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_logit_options_match_the_composition(isa, options, reduction, targets, dtype):
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(6, 7, 3, generator=generator, dtype=torch.float64) * 3
    weight = (torch.rand(7, generator=generator, dtype=torch.float64) + 0.5).to(dtype).double()
    if targets == "index":
        target = torch.randint(0, 7, (6, 3), generator=generator)
        target[0, 0] = -100
        ours = lambda a: lt.cross_entropy(a, target, weight.to(a.dtype), reduction=reduction, label_smoothing=0.1,
                                          **options)
        reference = lambda a: _cross_entropy_reference(a, target, weight, reduction, 0.1, **options)
        _compare(ours, reference, [x], dtype, 12)
    else:
        target = torch.softmax(torch.randn(6, 7, 3, generator=generator, dtype=torch.float64), 1)
        ours = lambda a, b: lt.cross_entropy(a, b, reduction=reduction, label_smoothing=0.1, **options)
        reference = lambda a, b: _cross_entropy_reference(a, b, None, reduction, 0.1, **options)
        _compare(ours, reference, [x, target], dtype, 12)


# --- kl_div_with_logits ----------------------------------------------------------------------------------------

def _kl_reference(input, target, reduction, dim, temperature, where):
    per = F.kl_div(F.log_softmax(input / temperature, dim), F.log_softmax(target / temperature, dim),
                   reduction="none", log_target=True).sum(dim)
    if where is None:
        return _reduce(per, reduction)
    return _reduce(per * where, reduction, where.sum())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dim, temperature, masked", [(-1, 1.0, False), (1, 2.5, True), (0, 0.7, False)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_div_with_logits_matches_the_composition(isa, reduction, dim, temperature, masked, dtype):
    generator = torch.Generator().manual_seed(13)
    student = torch.randn(4, 6, 5, generator=generator, dtype=torch.float64) * 2
    teacher = torch.randn(4, 6, 5, generator=generator, dtype=torch.float64) * 2
    rows = student.sum(dim).shape
    where = torch.rand(rows, generator=generator) > 0.3 if masked else None
    rounded_teacher = teacher.to(dtype)
    ours = lambda a: lt.kl_div_with_logits(a, rounded_teacher, reduction, dim=dim, temperature=temperature,
                                           where=where)
    reference = lambda a: _kl_reference(a, rounded_teacher.double(), reduction, dim, temperature, where)
    _compare(ours, reference, [student], dtype, 14)


# --- entropy_with_logits ---------------------------------------------------------------------------------------

def _entropy_reference(x, dim, keepdim):
    dims = tuple(range(x.dim())) if dim is None else dim
    log_p = x - torch.logsumexp(x, dims, keepdim=True)
    return -(log_p.exp() * log_p).sum(dims, keepdim=keepdim)


@pytest.mark.parametrize("dim", [-1, 0, (0, 2), [1], None], ids=str)
@pytest.mark.parametrize("keepdim", (False, True))
@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_with_logits_matches_the_composition(isa, dim, keepdim, dtype):
    x = torch.randn(4, 9, 3, generator=torch.Generator().manual_seed(15), dtype=torch.float64) * 3
    reference_dim = tuple(dim) if isinstance(dim, list) else dim
    _compare(lambda a: lt.entropy_with_logits(a, dim, keepdim), lambda a: _entropy_reference(a, reference_dim, keepdim),
             [x], dtype, 16)


# --- perplexity ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weighted", (False, True))
@pytest.mark.parametrize("targets", ("index", "probability"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_perplexity_matches_the_composition(isa, weighted, targets, dtype):
    generator = torch.Generator().manual_seed(17)
    x = torch.randn(5, 6, 2, generator=generator, dtype=torch.float64)
    weight = (torch.rand(6, generator=generator, dtype=torch.float64) + 0.5).to(dtype).double() if weighted else None
    cast = (lambda a: None if weight is None else weight.to(a.dtype))
    if targets == "index":
        target = torch.randint(0, 6, (5, 2), generator=generator)
        target[1, 1] = 4
        ours = lambda a: lt.perplexity(a, target, cast(a), ignore_index=4)
        reference = lambda a: torch.exp(F.cross_entropy(a, target, weight, ignore_index=4))
        _compare(ours, reference, [x], dtype, 18)
    else:
        target = torch.softmax(torch.randn(5, 6, 2, generator=generator, dtype=torch.float64), 1)
        ours = lambda a, b: lt.perplexity(a, b, cast(a))
        reference = lambda a, b: torch.exp(F.cross_entropy(a, b, weight))
        _compare(ours, reference, [x, target], dtype, 18)


# --- contrastive_loss ------------------------------------------------------------------------------------------

def _contrastive_reference(logits, target, reduction, symmetric, label_smoothing):
    rows, columns = logits.shape[-2:]
    batch = logits.reshape(-1, rows, columns)
    labels = (torch.arange(rows) if target is None else target).expand(logits.shape[:-1]).reshape(-1, rows)
    per = F.cross_entropy(batch.reshape(-1, columns), labels.reshape(-1), reduction="none",
                          label_smoothing=label_smoothing)
    if symmetric:
        by_column = F.cross_entropy(batch.transpose(1, 2).reshape(-1, rows), labels.reshape(-1), reduction="none",
                                    label_smoothing=label_smoothing)
        per = (per + by_column) / 2
    return _reduce(per.reshape(logits.shape[:-1]), reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, symmetric, permuted", [((5, 5), True, False), ((2, 4, 4), True, True),
                                                        ((3, 6), False, True), ((2, 3, 5), False, False)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_contrastive_loss_matches_the_composition(isa, reduction, shape, symmetric, permuted, dtype):
    generator = torch.Generator().manual_seed(19)
    logits = torch.randn(shape, generator=generator, dtype=torch.float64) * 3
    target = torch.randperm(shape[-1], generator=generator)[: shape[-2]] if permuted else None
    ours = lambda a: lt.contrastive_loss(a, target, reduction, symmetric=symmetric, label_smoothing=0.1)
    reference = lambda a: _contrastive_reference(a, target, reduction, symmetric, 0.1)
    _compare(ours, reference, [logits], dtype, 20)


# --- gradcheck in float64 --------------------------------------------------------------------------------------

def _gradcheck(function, *inputs):
    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("options", LOGIT_OPTIONS, ids=lambda options: "+".join(options))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_cross_entropy_logit_options(options, reduction):
    generator = torch.Generator().manual_seed(21)
    x = torch.randn(4, 5, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    probabilities = torch.softmax(torch.randn(4, 5, 2, generator=generator, dtype=torch.float64), 1).requires_grad_()
    index = torch.tensor([[0, 4], [-100, 2], [3, 3], [1, 0]])
    weight = torch.rand(5, generator=generator, dtype=torch.float64) + 0.5
    _gradcheck(lambda a: lt.cross_entropy(a, index, weight, reduction=reduction, label_smoothing=0.2, **options), x)
    _gradcheck(lambda a, b: lt.cross_entropy(a, b, reduction=reduction, **options), x, probabilities)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_distribution_losses(reduction):
    generator = torch.Generator().manual_seed(22)
    x = torch.randn(3, 4, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(3, 4, 2, generator=generator, dtype=torch.float64)
    where = torch.tensor([[True, False], [True, True], [False, True]])
    square = torch.randn(2, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    wide = torch.randn(3, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    _gradcheck(lambda a: lt.kl_div_with_logits(a, teacher, reduction, dim=1, temperature=1.7, where=where), x)
    _gradcheck(lambda a: lt.kl_div_with_logits(a, teacher, reduction), x)
    _gradcheck(lambda a: lt.contrastive_loss(a, reduction=reduction, label_smoothing=0.2), square)
    _gradcheck(lambda a: lt.contrastive_loss(a, torch.tensor([4, 0, 2]), reduction, symmetric=False), wide)


_PROBABILITIES = torch.softmax(torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(31), dtype=torch.float64), 1)


@pytest.mark.parametrize("function", [lambda a: lt.entropy_with_logits(a), lambda a: lt.entropy_with_logits(a, 0),
                                      lambda a: lt.entropy_with_logits(a, (0, 2), keepdim=True),
                                      lambda a: lt.entropy_with_logits(a, None),
                                      lambda a: lt.perplexity(a, torch.tensor([[0, 1], [3, 3], [2, 0]])),
                                      lambda a: lt.perplexity(a, _PROBABILITIES, torch.linspace(1.0, 2.0, 4,
                                                                                                dtype=torch.float64))],
                         ids=["entropy", "entropy dim 0", "entropy dims keepdim", "entropy all", "perplexity",
                              "perplexity probabilities"])
def test_gradcheck_entropy_and_perplexity(function):
    x = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(23), dtype=torch.float64, requires_grad=True)
    _gradcheck(function, x)


def test_gradcheck_perplexity_probability_targets():
    generator = torch.Generator().manual_seed(24)
    x = torch.randn(3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.softmax(torch.randn(3, 4, generator=generator, dtype=torch.float64), 1).requires_grad_()
    _gradcheck(lambda a, b: lt.perplexity(a, b), x, target)


# --- layouts, inputs, retained graphs --------------------------------------------------------------------------

NEW_FUNCTIONS = {
    "cross_entropy options": (lambda a: lt.cross_entropy(a, torch.tensor([[0, 1], [2, 3], [4, 0]]), reduction="none",
                                                         temperature=1.5, softcap=4.0, z_loss=1e-2),
                              lambda a: _cross_entropy_reference(a, torch.tensor([[0, 1], [2, 3], [4, 0]]), None,
                                                                 "none", 0.0, 1.5, 4.0, 1e-2)),
    "kl_div_with_logits": (lambda a: lt.kl_div_with_logits(a, a.detach().flip(0) * 2, "none", dim=1),
                           lambda a: _kl_reference(a, a.detach().flip(0) * 2, "none", 1, 1.0, None)),
    "entropy_with_logits": (lambda a: lt.entropy_with_logits(a, 1), lambda a: _entropy_reference(a, (1,), False)),
    "perplexity": (lambda a: lt.perplexity(a, torch.tensor([[0, 1], [2, 3], [4, 0]])),
                   lambda a: torch.exp(F.cross_entropy(a, torch.tensor([[0, 1], [2, 3], [4, 0]])))),
}


@pytest.mark.parametrize("name", sorted(NEW_FUNCTIONS))
def test_non_contiguous_tensors(isa, name):
    base = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(25), dtype=torch.float64)
    x = base.transpose(0, 2)  # (3, 5, 2): nothing contiguous
    assert not x.is_contiguous()
    ours, reference = NEW_FUNCTIONS[name]
    _compare(ours, reference, [x], torch.float64, 26)


def test_contrastive_loss_non_contiguous_and_retained_graph():
    base = torch.randn(4, 4, generator=torch.Generator().manual_seed(27), dtype=torch.float64)
    _compare(lambda a: lt.contrastive_loss(a.t(), reduction="none"),
             lambda a: _contrastive_reference(a.t(), None, "none", True, 0.0), [base], torch.float64, 28)
    for reduction in ("mean", "none"):
        check_backward_twice(torch, lambda a: lt.contrastive_loss(a, reduction=reduction).sum() * 3,
                             base.clone().requires_grad_())


def test_retained_graph_backward_twice_recomputes():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    for function in (lambda a: lt.kl_div_with_logits(a, torch.zeros(3, 4, dtype=torch.float64)) * 3,
                     lambda a: lt.entropy_with_logits(a).sum() * 3, lambda a: lt.perplexity(a, torch.tensor([0, 1, 2])) * 3,
                     lambda a: lt.cross_entropy(a, torch.tensor([0, 1, 2]), temperature=2.0, z_loss=0.1) * 3):
        check_backward_twice(torch, function, x)


def test_inputs_are_not_modified_and_results_stay_tiny():
    x = torch.tensor([[40.0, 0.0, 0.0], [0.0, 1.0, 2.0]], requires_grad=True)
    before = x.detach().clone()
    teacher = torch.tensor([[40.0, 0.0, 0.0], [0.0, 1.0, 2.0]]) * 1.0000001
    for function in (lambda: lt.kl_div_with_logits(x, teacher), lambda: lt.entropy_with_logits(x).sum(),
                     lambda: lt.perplexity(x, torch.tensor([0, 2])), lambda: lt.contrastive_loss(x[:, :2]),
                     lambda: lt.cross_entropy(x, torch.tensor([0, 2]), z_loss=0.1, softcap=30.0)):
        function().backward()
    assert torch.equal(x.detach(), before)
    entropy = lt.entropy_with_logits(torch.tensor([0.0, -40.0]))
    assert 1.7e-16 < entropy.item() < 1.8e-16  # torch's composition gives 0 in float32


def test_distillation_training_gives_the_composition_s_parameters():
    """A student trained 5 steps on cross-entropy with z-loss plus the KL to a teacher, with logitloss.torch or
    torch's compositions, ends with the same parameters."""
    generator = torch.Generator().manual_seed(35)
    inputs, labels = torch.randn(32, 6, generator=generator, dtype=torch.float64), torch.randint(0, 5, (32,))
    teacher = torch.randn(32, 5, generator=generator, dtype=torch.float64) * 2

    def train(loss_of):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 5)).double()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        for _ in range(5):
            optimizer.zero_grad()
            loss_of(model(inputs)).backward()
            optimizer.step()
        return [parameter.detach() for parameter in model.parameters()]

    ours = train(lambda logits: lt.cross_entropy(logits, labels, z_loss=1e-2, temperature=1.5)
                 + 4.0 * lt.kl_div_with_logits(logits, teacher, temperature=2.0))
    theirs = train(lambda logits: _cross_entropy_reference(logits, labels, None, "mean", 0.0, 1.5, None, 1e-2)
                   + 4.0 * _kl_reference(logits, teacher, "mean", -1, 2.0, None))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# --- errors ----------------------------------------------------------------------------------------------------

DOUBLE_BACKWARD = {
    "cross_entropy options": lambda x: lt.cross_entropy(x, torch.tensor([0, 2]), temperature=2.0, softcap=3.0),
    "kl_div_with_logits": lambda x: lt.kl_div_with_logits(x, torch.zeros(2, 3, dtype=x.dtype)),
    "kl_div_with_logits none": lambda x: lt.kl_div_with_logits(x, torch.zeros(2, 3, dtype=x.dtype), "none").sum(),
    "entropy_with_logits": lambda x: lt.entropy_with_logits(x).sum(),
    "perplexity": lambda x: lt.perplexity(x, torch.tensor([0, 2])),
    "contrastive_loss": lambda x: lt.contrastive_loss(x[:, :2]),
    "contrastive_loss none": lambda x: lt.contrastive_loss(x[:, :2], reduction="none").sum(),
}


@pytest.mark.parametrize("name", sorted(DOUBLE_BACKWARD))
def test_double_backward_raises_in_every_form(name):
    check_double_backward_raises(torch, DOUBLE_BACKWARD[name], torch.randn(2, 3, dtype=torch.float64,
                                                                           requires_grad=True))


def test_clear_errors():
    meta = torch.empty(2, 3, device="meta")
    for function, name in ((lambda: lt.kl_div_with_logits(meta, meta), "input"),
                           (lambda: lt.entropy_with_logits(meta), "input"),
                           (lambda: lt.perplexity(torch.zeros(2, 3), meta), "target"),
                           (lambda: lt.contrastive_loss(meta), "logits")):
        with pytest.raises(ValueError, match=f"logitloss runs on the CPU; `{name}` is on meta"):
            function()
    with pytest.raises(ValueError, match="does not differentiate with respect to `target`"):
        lt.kl_div_with_logits(torch.zeros(2, 3), torch.zeros(2, 3, requires_grad=True))
    with pytest.raises(ValueError, match="not differentiable with respect to `weight`"):
        lt.perplexity(torch.zeros(2, 3), torch.tensor([0, 1]), torch.ones(3, requires_grad=True))
    with pytest.raises(ValueError, match="`dim` must be an integer"):
        lt.kl_div_with_logits(torch.zeros(2, 3), torch.zeros(2, 3), dim=2)
    with pytest.raises(ValueError, match="temperature"):
        lt.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), temperature=0.0)
    with pytest.raises(ValueError, match="softcap"):
        lt.cross_entropy(torch.zeros(2, 3, requires_grad=True), torch.tensor([0, 1]), softcap=-1.0)
    with pytest.raises(ValueError, match="symmetric=True needs square logits"):
        lt.contrastive_loss(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="dtype of `input`"):
        lt.kl_div_with_logits(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64))


# --- custom ops ------------------------------------------------------------------------------------------------

def test_custom_ops_pass_opcheck():
    generator = torch.Generator().manual_seed(29)
    x = torch.randn(3, 4, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(3, 4, 2, generator=generator, dtype=torch.float64)
    square = torch.randn(2, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([[0, 1], [3, 3], [2, 0]])
    ops = torch.ops.logitloss
    cases = [
        (ops.divergence_with_logits, (x, teacher, None, "kl_div_with_logits", "none", 1.5, 1, None, True)),
        (ops.divergence_with_logits, (x, teacher, torch.tensor([[True, False], [True, True], [False, True]]),
                                      "kl_div_with_logits", "mean", 1.0, 1, None, True)),
        (ops.entropy_with_logits, (x, [0, 2], True, True)),
        (ops.entropy_with_logits, (x.detach(), None, False, False)),  # no gradient asked for: no grad
        (ops.perplexity, (x, index, None, -100, True)),
        (ops.contrastive_loss, (square, None, "none", True, 0.1)),
        (ops.contrastive_loss, (square, torch.tensor([2, 0, 1]), "mean", False, 0.0)),
        (ops.cross_entropy, (x, index, None, -100, "sum", 0.1, 2.0, 3.0, 1e-2, True)),
    ]
    for op, arguments in cases:
        torch.library.opcheck(op, arguments)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own internals (torch.jit.script_method)
def test_torch_compile_keeps_one_graph():
    model = torch.nn.Linear(4, 3).double()
    inputs = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(30))
    teacher = torch.randn(3, 3, dtype=torch.float64)

    def step(x):
        logits = model(x)
        return (lt.kl_div_with_logits(logits, teacher, temperature=2.0) + lt.entropy_with_logits(logits).mean()
                + lt.perplexity(logits, torch.tensor([0, 1, 2])) + lt.contrastive_loss(logits, reduction="sum")
                + lt.cross_entropy(logits, torch.tensor([0, 1, 2]), softcap=5.0, z_loss=1e-3))

    explanation = torch._dynamo.explain(step)(inputs)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(step, backend="aot_eager")
    loss = compiled(inputs)
    loss.backward()
    compiled_grad = model.weight.grad.clone()
    model.weight.grad = None
    eager = step(inputs)
    eager.backward()
    torch.testing.assert_close(loss, eager, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(compiled_grad, model.weight.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("module", ["_contrastive", "_divergence", "_entropy"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"logitloss.torch.{module}"),
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# --- the NumPy functions' exact values, extremes included ------------------------------------------------------

EXTREME_ROWS = [[40.0, 0.0, 0.0, -1e4], [0.0, -float("inf"), 3.0, 1.0], [1e4, 1e4, -1e4, 0.5], [-40.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("dtype", (torch.float64, torch.float32, torch.float16))
def test_values_and_gradients_are_the_numpy_functions(isa, dtype):
    """On extreme logits (+-1e4, -inf masks, rows whose loss is tiny) the adapters return the NumPy functions'
    exact values and gradients, bit for bit: nothing is recomputed or rounded on the way."""
    import numpy as np

    import logitloss

    x = torch.tensor(EXTREME_ROWS, dtype=dtype)
    teacher = torch.tensor([[40.0, 0.0, 0.0, -1e4], [0.0, -float("inf"), 3.0, 1.5], [1e4, 1e4, -1e4, 0.0],
                            [-40.0, 0.0, 0.0, 1e-3]], dtype=dtype)
    labels = torch.tensor([0, 2, 1, 3])
    cases = [
        (lambda a: lt.kl_div_with_logits(a, teacher, "none"),
         lambda a: logitloss.kl_div_with_logits(a, teacher.numpy(), "none", return_grad=True)),
        (lambda a: lt.entropy_with_logits(a), lambda a: logitloss.entropy_with_logits(a, return_grad=True)),
        (lambda a: lt.cross_entropy(a, labels, reduction="none", softcap=20.0, z_loss=1e-3),
         lambda a: logitloss.cross_entropy(a, labels.numpy(), reduction="none", softcap=20.0, z_loss=1e-3,
                                           return_grad=True)),
        (lambda a: lt.contrastive_loss(a[:, :4], labels, "none", symmetric=False),
         lambda a: logitloss.contrastive_loss(a, labels.numpy(), "none", symmetric=False, return_grad=True)),
    ]
    for ours, numpy_function in cases:
        leaf = x.clone().requires_grad_()
        value = ours(leaf)
        value.sum().backward()
        expected_value, expected_grad = numpy_function(x.numpy())
        np.testing.assert_array_equal(value.detach().numpy(), expected_value)
        np.testing.assert_array_equal(leaf.grad.numpy(), expected_grad)
    perplexity = lt.perplexity(x[:, :3].clone(), torch.tensor([0, 2, 1, 1]))
    assert perplexity.item() == logitloss.perplexity(x[:, :3].numpy(), np.array([0, 2, 1, 1])).item()
