"""logitloss.torch: clear errors (devices, layouts, arguments torch does not differentiate, double backward),
a small model trained with either loss, the torch.compile smoke test, and the import without torch."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .helpers.libraries import require
from .helpers.torch_autograd_checks import check_double_backward_raises

torch = require("torch", module_level=True)
F = torch.nn.functional
import logitloss.torch as lt  # noqa: E402


def test_tensors_off_the_cpu_are_refused():
    meta = torch.empty(2, 3, device="meta")
    with pytest.raises(ValueError, match="logitloss runs on the CPU; `input` is on meta"):
        lt.cross_entropy(meta, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="logitloss runs on the CPU; `target` is on meta"):
        lt.binary_cross_entropy_with_logits(torch.zeros(2, 3), meta)
    with pytest.raises(ValueError, match="logitloss runs on the CPU; `weight`"):
        lt.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.ones(3, device="meta"))
    for function in (lambda: lt.softmax(meta, 1), lambda: lt.log_softmax(meta, 1), lambda: lt.logsumexp(meta, 1),
                     lambda: lt.linear_cross_entropy(meta, torch.zeros(4, 3), torch.tensor([0, 1]))):
        with pytest.raises(ValueError, match="logitloss runs on the CPU"):
            function()
    with pytest.raises(ValueError, match="layout"):
        lt.softmax(torch.eye(3).to_sparse(), 1)


@pytest.mark.parametrize("function, argument", [
    (lambda w: lt.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=w), "weight"),
    (lambda w: lt.cross_entropy(torch.zeros(2, 3), torch.rand(2, 3), weight=w), "weight"),
    (lambda w: lt.binary_cross_entropy_with_logits(torch.zeros(2, 3), torch.rand(2, 3), w), "weight"),
    (lambda w: lt.binary_cross_entropy_with_logits(torch.zeros(2, 3), torch.rand(2, 3), pos_weight=w), "pos_weight"),
    (lambda w: lt.linear_cross_entropy(torch.zeros(2, 4), torch.zeros(3, 4), torch.tensor([0, 1]), weight=w),
     "weight"),
])
def test_weights_that_require_grad_are_refused(function, argument):
    with pytest.raises(ValueError, match=f"not differentiable with respect to `{argument}`"):
        function(torch.ones(3, requires_grad=True))


def test_linear_cross_entropy_probability_targets_are_refused():
    with pytest.raises(ValueError, match="class-index targets only"):
        lt.linear_cross_entropy(torch.zeros(2, 4), torch.zeros(3, 4), torch.rand(2, 3))


DOUBLE_BACKWARD = {
    "cross_entropy": lambda x: lt.cross_entropy(x, torch.tensor([0, 2])),
    "cross_entropy none": lambda x: lt.cross_entropy(x, torch.tensor([0, 2]), reduction="none").sum(),
    "binary_cross_entropy_with_logits": lambda x: lt.binary_cross_entropy_with_logits(x, torch.ones(2, 3)),
    "softmax": lambda x: lt.softmax(x, 1)[:, 0].sum(),
    "log_softmax": lambda x: lt.log_softmax(x, 1)[:, 0].sum(),
    "logsumexp": lambda x: lt.logsumexp(x, 1).sum(),
    "linear_cross_entropy": lambda x: lt.linear_cross_entropy(x, torch.eye(3, dtype=x.dtype), torch.tensor([0, 2])),
}


@pytest.mark.parametrize("name", sorted(DOUBLE_BACKWARD))
def test_double_backward_raises_in_every_form(name):
    check_double_backward_raises(torch, DOUBLE_BACKWARD[name], torch.randn(2, 3, dtype=torch.float64,
                                                                           requires_grad=True))


def test_in_place_change_before_a_second_backward_raises():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    logits = x * 1
    loss = lt.cross_entropy(logits, torch.tensor([0, 1, 2]))
    loss.backward(retain_graph=True)
    with torch.no_grad():
        logits.add_(1)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def _train(criterion, steps=5):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 5)).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    inputs = torch.randn(64, 6, dtype=torch.float64)
    labels = torch.randint(0, 5, (64,))
    for _ in range(steps):
        optimizer.zero_grad()
        criterion(model(inputs), labels).backward()
        optimizer.step()
    return [parameter.detach() for parameter in model.parameters()]


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "weight": torch.linspace(0.5, 1.5, 5).double()}])
def test_training_with_either_loss_gives_the_same_parameters(options):
    ours = _train(lt.CrossEntropyLoss(**options))
    theirs = _train(torch.nn.CrossEntropyLoss(**options))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_modules_keep_torchs_constructor_and_class():
    loss = lt.CrossEntropyLoss(ignore_index=3, reduction="sum", label_smoothing=0.2)
    assert isinstance(loss, torch.nn.CrossEntropyLoss) and loss.ignore_index == 3
    bce = lt.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]), reduction="none")
    x, y = torch.randn(3, 1), torch.rand(3, 1)
    torch.testing.assert_close(bce(x, y), torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]),
                                                                     reduction="none")(x, y))
    head = lt.LinearCrossEntropyLoss(4, 7, bias=True)
    assert isinstance(head, torch.nn.LinearCrossEntropyLoss)
    hidden, target = torch.randn(5, 4), torch.randint(0, 7, (5,))
    torch.testing.assert_close(head(hidden, target), F.cross_entropy(head.linear(hidden), target))
    with pytest.raises(ValueError, match="out_features"):
        lt.LinearCrossEntropyLoss(4, 7, out_features=(2,))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own internals (torch.jit.script_method)
def test_torch_compile_runs_without_graph_breaks():
    """A tiny model with the loss under torch.compile: the custom ops' fake implementations let Dynamo keep one
    graph; Inductor compiles it (it needs a C compiler) and training matches eager."""
    if shutil.which("gcc") is None and shutil.which("cc") is None and shutil.which("clang") is None:
        pytest.skip("torch.compile's Inductor backend needs a C compiler, and none is on PATH")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).double()
    criterion = lt.CrossEntropyLoss()
    inputs, labels = torch.randn(8, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])

    def step(x, y):
        return criterion(model(x), y) + lt.logsumexp(lt.log_softmax(model(x), 1), 1).mean()

    explanation = torch._dynamo.explain(step)(inputs, labels)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(step)
    loss = compiled(inputs, labels)
    loss.backward()
    compiled_grad = model.weight.grad.clone()
    model.weight.grad = None
    eager = step(inputs, labels)
    eager.backward()
    torch.testing.assert_close(loss, eager, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(compiled_grad, model.weight.grad, rtol=1e-12, atol=1e-14)


def test_import_without_torch_names_the_extra(tmp_path):
    blocker = tmp_path / "torch.py"
    blocker.write_text("raise ImportError('No module named torch (blocked by the test)')\n")
    completed = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import logitloss\n"
         "try:\n    import logitloss.torch\nexcept ImportError as error:\n    print(error)", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True)
    assert "logitloss[torch]" in completed.stdout


@pytest.mark.parametrize("module", ["_cross_entropy", "_binary_cross_entropy", "_softmax_family", "_modules",
                                    "_linear_cross_entropy"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"logitloss.torch.{module}"),
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
