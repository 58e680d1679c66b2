"""The benchmark's providers compute what their names say, and a missing peer library is a note, never an error.

Small inputs, in process: every provider of the new row kinds (backward modes of the softmax family,
(N, C, H, W) cross-entropy, softmax written over its input, the axis-0 rows' float64 check) passes the
float64 check the timed rows use; with JAX hidden, every place that would use it says so in a note; memory rows
measure the softmax family as they measure the losses.  JAX stays out of this process (it starts threads and
warns at every later ``os.fork()``, which the concurrency tests do): its providers are tested in a subprocess.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from logitloss.bench import harness, implementations, memory_rows, providers
from logitloss.bench.backward_providers import backward_providers
from logitloss.bench.checks import check_result


@pytest.fixture(autouse=True)
def _without_jax(monkeypatch):
    """``import jax`` fails in this process (see the module doc)."""
    monkeypatch.setitem(sys.modules, "jax", None)


def _wrong_results(row_providers: list[harness.Provider], check=None) -> list[str]:
    """Time each provider once (the harness checks its first result) and return the check's complaints."""
    notes: list[str] = []
    harness.measure(row_providers, repeats=1, warmup_time=0.0, warmup_calls=1, check=check, notes=notes)
    return [note for note in notes if "WRONG" in note or "skipped" in note]


@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("op", providers.OPS)
def test_backward_providers_right(op, axis):
    x = np.random.default_rng(0).standard_normal((64, 300)).astype(np.float32) * 4
    row_providers, _ = backward_providers(op, x, axis)
    names = {p.name for p in row_providers}
    assert {"logitloss backward only", "logitloss forward + backward", "numpy stable backward only"} <= names
    assert not _wrong_results(row_providers)


def test_cross_entropy_class_axis_1_providers_right():
    x = np.random.default_rng(0).standard_normal((2, 7, 5, 3)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 7, (2, 5, 3))
    for backward in (True, False):
        row_providers, _ = providers.cross_entropy_providers(x, y, backward=backward,
                                                             variants=("logitloss", "torch", "jax"))
        assert not _wrong_results(row_providers)


def test_in_place_softmax_and_naive_numpy_right():
    x = np.random.default_rng(0).standard_normal((32, 100)).astype(np.float32)
    for op in ("softmax", "log_softmax"):
        row_providers, _ = providers.all_providers(op, x, -1, out=True, in_place=True,
                                                   baselines=("numpy", "numpy naive"))
        assert {"logitloss out=input", "numpy naive"} <= {p.name for p in row_providers}
        assert not _wrong_results(row_providers, check=lambda result, op=op: check_result(op, x, -1, result))


def test_float64_rows_checked():
    """The float64 rows' check works outside pytest's conftest too (it once skipped every provider)."""
    x = np.random.default_rng(0).standard_normal((16, 50))
    for op in providers.OPS:
        row_providers, _ = providers.all_providers(op, x, -1, baselines=("numpy",))
        assert not _wrong_results(row_providers, check=lambda result, op=op: check_result(op, x, -1, result))


_JAX_SCRIPT = """
import numpy as np
from logitloss.bench import harness, implementations, providers
from logitloss.bench.backward_providers import backward_providers
from logitloss.bench.checks import check_result

x = np.random.default_rng(0).standard_normal((16, 50)).astype(np.float32)
y = np.random.default_rng(1).integers(0, 50, 16)
x4 = np.random.default_rng(2).standard_normal((2, 7, 5, 3)).astype(np.float32)
y4 = np.random.default_rng(3).integers(0, 7, (2, 5, 3))
row, notes = providers.jax_providers("log_softmax", x, -1)
assert [p.name for p in row] == ["jax"] and not notes, notes
row += [p for p in backward_providers("softmax", x, 0)[0] if p.name.startswith("jax")]
row += providers.binary_cross_entropy_providers(x, (x > 0).astype(np.float32), variants=("jax",))[0]
row += providers.cross_entropy_providers(x, y, variants=("jax",))[0]
row += providers.cross_entropy_providers(x4, y4, backward=False, variants=("jax",))[0]
assert len(row) == 6, [p.name for p in row]
notes = []
harness.measure(row, repeats=1, warmup_time=0.0, warmup_calls=1, notes=notes,
                check=lambda result: check_result("log_softmax", x, -1, result))
assert not notes, notes
value, gradient = implementations.compute("cross_entropy", "jax", x, y)
assert gradient.shape == x.shape and np.isfinite(value)
print("ok")
"""


_JAX_INSTALLED = importlib.util.find_spec("jax") is not None  # looked up before the fixture hides it


def test_jax_providers_when_installed(tmp_path):
    if not _JAX_INSTALLED:
        pytest.skip("jax is not installed (it is in no extra of logitloss)")
    completed = subprocess.run([sys.executable, "-c", textwrap.dedent(_JAX_SCRIPT)], capture_output=True, text=True,
                               timeout=600, cwd=tmp_path, check=False)
    assert completed.returncode == 0 and completed.stdout.strip() == "ok", completed.stderr[-2000:]


def test_missing_jax_is_a_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax raises ImportError
    x = np.zeros((4, 5), np.float32)
    y = np.zeros(4, np.int64)
    row_providers, notes = providers.jax_providers("softmax", x, -1)
    assert row_providers == [] and "jax: not available" in notes[0]
    row_providers, notes = providers.cross_entropy_providers(x, y, variants=("logitloss", "jax"))
    assert [p.name for p in row_providers] == ["logitloss"] and any("jax" in note for note in notes)
    backward, notes = backward_providers("softmax", x, -1)
    assert not any(p.name.startswith("jax") for p in backward) and any("jax" in note for note in notes)
    with pytest.raises(implementations.NotAvailable):
        implementations.compute("logsumexp", "jax", x, y)
    values, notes = memory_rows.memory_values("softmax", (8, 16), only=("jax",))()
    assert "jax" not in values and any("jax: not measured" in note for note in notes)


def test_softmax_family_memory_rows():
    """A fresh softmax result is one logits' size of extra memory, writing over the input none, as for the losses."""
    values, notes = memory_rows.memory_values(
        "softmax", (4096, 1024), only=("logitloss", "logitloss out=input", "numpy stable"))()
    assert set(values) == {"logits", "logitloss", "logitloss out=input", "numpy stable"}, notes
    logits = values["logits"]
    assert 0.9 <= values["logitloss"] / logits <= 1.2, notes
    assert values["logitloss out=input"] / logits < 0.1, notes
    assert values["numpy stable"] / logits >= 1.9, notes  # exp(x - max) and the result
    assert set(memory_rows.memory_calls("logsumexp")) >= {"logitloss", "logitloss return_grad=True", "numpy naive",
                                                          "scipy", "torch", "jax"}


def test_rounds_interleave_in_shuffled_orders():
    """Every round times each provider once, in an order that changes from round to round and is the same
    in every run; no provider always comes right after the same one (what a provider leaves behind, e.g.
    freed memory the host reclaims, would otherwise always land on the same neighbour)."""

    def record(runs):
        calls = []
        row = [harness.Provider(name, lambda name=name: calls.append(name)) for name in "abcdef"]
        harness.measure(row, repeats=11, warmup_time=0.0, warmup_calls=1, number=1)
        return calls[len(row) :]  # after each provider's single warm-up call

    calls = record(1)
    assert calls == record(2), "the orders must be the same in every run"
    rounds = [calls[i : i + 6] for i in range(0, len(calls), 6)]
    assert len(rounds) == 11 and all(sorted(r) == list("abcdef") for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1
    for name in "abcdef":
        before = {r[r.index(name) - 1] for r in rounds if r.index(name) > 0}
        assert len(before) > 1, f"{name} always follows {before}"


def test_reuse_off_providers_time_fresh_pages_and_keep_the_idle_buffers():
    """``logitloss reuse off`` turns reuse off around its own samples only, and leaves the buffers kept for the
    ``logitloss`` provider alone (turning it off releases nothing), so each provider sees its own steady state."""
    import logitloss
    from logitloss import _core

    rows = providers.REUSABLE_BYTES // (4 * 1000) + 8
    x = np.random.default_rng(0).standard_normal((rows, 1000), dtype=np.float32)
    y = np.arange(rows) % 1000
    softmax_row, _ = providers.logitloss_providers("softmax", x, -1, out=True)
    loss_row, _ = providers.cross_entropy_providers(x, y, backward=True, variants=("logitloss", "logitloss reuse off"))
    for row in (softmax_row, loss_row):
        by_name = {p.name: p for p in row}
        reused, fresh = by_name["logitloss"], by_name["logitloss reuse off"]
        logitloss.release_output_buffers()
        reused.fn()  # its result dropped: one idle buffer
        assert _core._config()["idle_buffers"] == 1
        seen = []
        with harness._entered(fresh):
            assert not logitloss.get_output_reuse()
            seen.append(fresh.fn())
        assert logitloss.get_output_reuse()
        assert _core._config()["idle_buffers"] == 1
        result = seen[0][1] if isinstance(seen[0], tuple) else seen[0]
        base = result
        while not base.flags.owndata:
            base = base.base
        assert isinstance(base, np.ndarray), "reuse off: NumPy's own memory"
    assert not any(p.name.endswith("reuse off") for p in providers.logitloss_providers("softmax", x[:8], -1, out=True)[0])
    logitloss.release_output_buffers()


@pytest.mark.parametrize("backward", [True, False])
def test_linear_head_providers_agree(backward):
    """The linear_cross_entropy rows' providers (logitloss, torch's plain path, torch's chunked path) compute
    the same loss and gradients (float32 products over D = 64: a few 1e-6 relative)."""
    torch = pytest.importorskip("torch")
    from logitloss.bench.linear_head import linear_head_providers

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 64), dtype=np.float32)
    w = rng.standard_normal((300, 64), dtype=np.float32) / np.float32(8)
    y = rng.integers(0, 300, 40)
    built, notes = linear_head_providers(x, w, y, backward=backward)
    assert not notes
    results = {p.name: p.fn() for p in built}
    assert set(results) == {"logitloss", "torch", "torch linear_cross_entropy"}
    as_numpy = {name: [np.asarray(r.detach() if isinstance(r, torch.Tensor) else r, np.float64)
                       for r in (result if backward else [result])][:3] for name, result in results.items()}
    for name, values in as_numpy.items():
        for got, expected in zip(values, as_numpy["logitloss"]):
            np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6, err_msg=name)


def test_calibration_providers_compute_what_they_say():
    from logitloss.bench.calibration_providers import PASSES, calibrated_targets, ece_providers, temperature_providers
    from logitloss.calibration import expected_calibration_error, fit_temperature

    x = (3.0 * np.random.default_rng(0).standard_normal((2000, 50))).astype(np.float32)
    y = calibrated_targets(x)
    row_providers, notes = temperature_providers(x, y)
    results = {p.name: p.fn() for p in row_providers}
    assert results["logitloss fit_temperature"] == fit_temperature(x, y)
    assert results["logitloss fit_temperature"].at_bound is None  # the labels make the optimum interior
    assert f"logitloss {PASSES} x cross_entropy" in results
    if "torch LBFGS (Guo et al.)" in results:
        # Guo et al.'s settings (lr=0.01, 50 iterations) stop short of the optimum: its NLL is no lower than ours.
        from logitloss.testing.calibration import temperature_nll

        ours = results["logitloss fit_temperature"]
        assert temperature_nll(x, y, results["torch LBFGS (Guo et al.)"]) >= temperature_nll(x, y, float(ours)) * (1 - 1e-12)
    else:
        assert any("torch" in note for note in notes)
    row_providers, _ = ece_providers(x, y)
    values = {p.name: float(p.fn()) for p in row_providers}
    assert values["logitloss expected_calibration_error"] == expected_calibration_error(x, y)
    if "torchmetrics multiclass_calibration_error" in values:
        assert values["torchmetrics multiclass_calibration_error"] == pytest.approx(
            values["logitloss expected_calibration_error"], rel=1e-4)
