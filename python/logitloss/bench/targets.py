"""The table of performance targets: each a ratio of two medians measured in one row (so interleaved, in one run),
a fraction of the row's roofline, or a ratio of two values of a memory row, with the bound it must meet
(``informational``: reported, no bound).  ``{big}``, ``{big transposed}`` and ``{backward}`` in a description are
the run's shapes of those names (:data:`~logitloss.bench.rows.SHAPES`).  Adding a target is adding a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .harness import OTHER_LOAD_THRESHOLD_CORES
from .providers import OPS

if TYPE_CHECKING:
    from .suite import CaseResult

__all__ = ["TARGETS", "Target", "TargetResult", "evaluate_targets"]


@dataclass
class Target:
    key: str
    description: str
    case: str
    kind: str  # "ratio": median(numerator) / median(denominator); "roofline": fraction of roofline;
    #            "value": values[numerator] / values[denominator] of a values row; "seconds": median(numerator)
    numerator: str  # provider
    denominator: str = ""  # provider (ratio only)
    required: float = 1.0
    at_least: bool = True  # measured >= required (else <=)
    informational: bool = False  # reported, no requirement

    def requirement(self) -> str:
        if self.informational:
            return "(info)"
        unit = {"roofline": "%", "seconds": " s"}.get(self.kind, "x")
        value = f"{self.required * 100:.0f}%" if unit == "%" else f"{self.required:g}{unit}"
        return (">= " if self.at_least else "<= ") + value


@dataclass
class TargetResult:
    target: Target
    measured: float | None
    status: str  # PASS, FAIL, or "n/a (...)"
    detail: str = ""

    def measured_text(self) -> str:
        if self.measured is None:
            return "n/a"
        if self.target.kind == "roofline":
            return f"{self.measured * 100:.1f}%"
        if self.target.kind == "value":
            return f"{self.measured:.3f}x"
        if self.target.kind == "seconds":
            return f"{self.measured:.3f} s"
        return f"{self.measured:.2f}x"


TARGETS: list[Target] = [
    Target("lse_big_vs_torch", "logsumexp {big} axis=-1: speedup vs torch.logsumexp",
           "logsumexp_big", "ratio", "torch", "logitloss", 8.0),
    Target("lse_big_vs_scipy", "logsumexp {big} axis=-1: speedup vs scipy.special.logsumexp",
           "logsumexp_big", "ratio", "scipy", "logitloss", 15.0),
    Target("lse_big_roofline", "logsumexp {big} axis=-1: fraction of read bandwidth",
           "logsumexp_big", "roofline", "logitloss", "", 0.60),
    Target("lse_mid_vs_torch", "logsumexp (8192, 1000) axis=-1: speedup vs torch",
           "logsumexp_mid", "ratio", "torch", "logitloss", 3.0),
    Target("lse_axis0_vs_last", "logsumexp axis=0 of {big transposed} / axis=-1 of {big}, same data",
           "logsumexp_axis0", "ratio", "logitloss", "logitloss last axis", 1.5, at_least=False),
    Target("lse_tiny_vs_torch", "logsumexp (32, 10) axis=-1: per-call speedup vs torch",
           "logsumexp_tiny", "ratio", "torch", "logitloss", 4.0),
    Target("softmax_big_new_result", "softmax {big}: speedup vs torch, new results (logitloss's in the "
           "dropped result's memory, the default)", "softmax_big", "ratio", "torch", "logitloss", 3.0),
    Target("softmax_big_fresh_pages", "softmax {big}: speedup vs torch, new results in fresh pages (logitloss's "
           "output reuse off)", "softmax_big", "ratio", "torch", "logitloss reuse off", informational=True),
    Target("softmax_big_out", "softmax {big}: speedup of logitloss with out= vs torch (fresh output)",
           "softmax_big", "ratio", "torch", "logitloss out=", 5.0),
    Target("softmax_big_both_out", "softmax {big}: speedup vs torch, both with out=",
           "softmax_big", "ratio", "torch out=", "logitloss out=", informational=True),
    Target("log_softmax_big_new_result", "log_softmax {big}: speedup vs torch, new results (logitloss's in the "
           "dropped result's memory, the default)", "log_softmax_big", "ratio", "torch", "logitloss", 3.0),
    Target("log_softmax_big_fresh_pages", "log_softmax {big}: speedup vs torch, new results in fresh pages (logitloss's "
           "output reuse off)", "log_softmax_big", "ratio", "torch", "logitloss reuse off", informational=True),
    Target("log_softmax_big_out", "log_softmax {big}: speedup of logitloss with out= vs torch (fresh output)",
           "log_softmax_big", "ratio", "torch", "logitloss out=", 5.0),
    Target("log_softmax_big_both_out", "log_softmax {big}: speedup vs torch, both with out=",
           "log_softmax_big", "ratio", "torch out=", "logitloss out=", informational=True),
    Target("threads_big_loaded", "logsumexp {big}, other core busy: 2-thread / 1-thread median",
           "threads_big_loaded", "ratio", "logitloss 2 threads", "logitloss 1 thread", 1.10, at_least=False),
    Target("threads_mid_loaded", "logsumexp (8192, 1000), other core busy: 2-thread / 1-thread median",
           "threads_mid_loaded", "ratio", "logitloss 2 threads", "logitloss 1 thread", 1.10, at_least=False),
    Target("threads_big_speedup", "logsumexp {big}, no added load: 2-thread speedup (1-thread / 2-thread)",
           "threads_big_unloaded", "ratio", "logitloss 1 thread", "logitloss 2 threads", informational=True),
    Target("threads_mid_speedup", "logsumexp (8192, 1000), no added load: 2-thread speedup (1-thread / 2-thread)",
           "threads_mid_unloaded", "ratio", "logitloss 1 thread", "logitloss 2 threads", informational=True),
    Target("ce_big_vs_torch", "cross_entropy fwd+bwd {big}: speedup of return_grad=True vs torch "
           "training loop", "cross_entropy_big", "ratio", "torch", "logitloss", 10.0),
    Target("ce_big_fresh_pages_vs_torch", "cross_entropy fwd+bwd {big}: speedup of return_grad=True with "
           "output reuse off vs torch training loop", "cross_entropy_big", "ratio", "torch", "logitloss reuse off",
           informational=True),
    *[Target(f"{key}_bfloat16_vs_float32", f"{title} {{big}}: bfloat16 time / float32 time (same values)",
             f"{key}_bfloat16", "ratio", "logitloss bfloat16", "logitloss", 0.65, at_least=False)
      for key, title in (("logsumexp", "logsumexp"), ("cross_entropy", "cross_entropy fwd+bwd"))],
    *[Target(f"{key}_bfloat16_vs_torch", f"{title} {{big}}: bfloat16 speedup vs torch on the same bfloat16 tensor",
             f"{key}_bfloat16", "ratio", "torch bfloat16", "logitloss bfloat16", 8.0)
      for key, title in (("logsumexp", "logsumexp"), ("cross_entropy", "cross_entropy fwd+bwd"))],
    Target("ce_big_vs_numpy", "cross_entropy fwd+bwd {big}: speedup of return_grad=True vs NumPy stable",
           "cross_entropy_big", "ratio", "numpy stable", "logitloss", 3.0),
    Target("ce_big_out_roofline", "cross_entropy fwd+bwd {big} grad_out= buffer: fraction of copy "
           "bandwidth", "cross_entropy_big", "roofline", "logitloss grad_out=", "", 0.50),
    Target("ce_big_inplace_vs_out", "cross_entropy fwd+bwd {big}: grad_out=input time / grad_out= "
           "buffer time", "cross_entropy_big", "ratio", "logitloss grad_out=input", "logitloss grad_out=",
           1.0, at_least=False),
    Target("ce_big_inplace_roofline", "cross_entropy fwd+bwd {big} grad_out=input: fraction of copy "
           "bandwidth", "cross_entropy_big", "roofline", "logitloss grad_out=input", informational=True),
    Target("ce_big_new_result_roofline", "cross_entropy fwd+bwd {big} return_grad=True (a new gradient, "
           "output reuse): fraction of copy bandwidth", "cross_entropy_big", "roofline", "logitloss",
           informational=True),
    Target("ce_big_fresh_roofline", "cross_entropy fwd+bwd {big} return_grad=True, output reuse off (fresh "
           "pages, page faults): fraction of copy bandwidth", "cross_entropy_big", "roofline", "logitloss reuse off",
           informational=True),
    Target("ce_big_backward_vs_fused", "cross_entropy_backward(1.0, x, y) {big}: time / fused "
           "return_grad=True time", "cross_entropy_big", "ratio", "logitloss backward only", "logitloss",
           1.2, at_least=False),
    Target("ce_big_hessian_vs_grad", "cross_entropy fwd+bwd {big}: return_hessian=True time / return_grad=True time",
           "cross_entropy_hessian_big", "ratio", "logitloss return_hessian=True", "logitloss", 1.6, at_least=False),
    Target("ce_big_hessian_out_vs_grad_out", "cross_entropy fwd+bwd {big}: grad_out= hessian_out= time / grad_out= "
           "time", "cross_entropy_hessian_big", "ratio", "logitloss grad_out= hessian_out=", "logitloss grad_out=",
           informational=True),
    Target("ce_mid_vs_torch", "cross_entropy fwd+bwd (8192, 1000): speedup of return_grad=True vs torch",
           "cross_entropy_mid", "ratio", "torch", "logitloss", 5.0),
    Target("ce_mid_options", "cross_entropy fwd+bwd (8192, 1000), grad_out=: label_smoothing=0.1 + weight "
           "time / plain time", "cross_entropy_mid", "ratio", "logitloss grad_out= smoothing+weight",
           "logitloss grad_out=", 1.2, at_least=False),
    Target("ce_logit_options_cost", "cross_entropy fwd+bwd {big}: softcap=30 + z_loss=1e-4 + temperature=2 time / "
           "plain return_grad=True time", "cross_entropy_logit_options", "ratio",
           "logitloss softcap+z_loss+temperature", "logitloss", 1.5, at_least=False),
    Target("ce_logit_options_vs_torch", "cross_entropy fwd+bwd {big} with softcap, z_loss, temperature: speedup vs "
           "torch's composition", "cross_entropy_logit_options", "ratio", "torch composition",
           "logitloss softcap+z_loss+temperature", 8.0),
    Target("ce_forward_big_vs_torch", "cross_entropy forward {big}: speedup vs torch",
           "cross_entropy_forward_big", "ratio", "torch", "logitloss", 8.0),
    Target("ce_big_torch_adapter_vs_torch", "cross_entropy fwd+bwd {big}: speedup of logitloss.torch.cross_entropy "
           "(autograd, .backward()) vs F.cross_entropy", "cross_entropy_big", "ratio", "torch", "logitloss.torch", 8.0),
    Target("ce_tiny_torch_adapter_vs_torch", "cross_entropy fwd+bwd (32, 10): per-call speedup of "
           "logitloss.torch.cross_entropy vs F.cross_entropy", "cross_entropy_tiny", "ratio", "torch", "logitloss.torch",
           1.0),
    Target("ce_tiny_vs_torch", "cross_entropy fwd+bwd (32, 10): per-call speedup vs torch training loop",
           "cross_entropy_tiny", "ratio", "torch", "logitloss", 8.0),
    Target("ce_memory_fresh", "cross_entropy fwd+bwd {big} return_grad=True: peak extra memory / "
           "logits' size", "cross_entropy_memory", "value", "logitloss return_grad=True", "logits",
           1.05, at_least=False),
    Target("ce_memory_inplace", "cross_entropy fwd+bwd {big} grad_out=input: peak extra memory / "
           "logits' size", "cross_entropy_memory", "value", "logitloss grad_out=input", "logits",
           0.05, at_least=False),
    Target("ce_memory_torch", "cross_entropy fwd+bwd {big} torch: peak extra memory / logits' size",
           "cross_entropy_memory", "value", "torch", "logits", informational=True),
    Target("bce_big_vs_torch", "binary_cross_entropy_with_logits fwd+bwd (1000000,): speedup of return_grad=True "
           "vs torch training loop", "bce_big", "ratio", "torch", "logitloss", 3.0),
    Target("bce_big_vs_numpy", "binary_cross_entropy_with_logits fwd+bwd (1000000,): speedup of return_grad=True "
           "vs NumPy stable", "bce_big", "ratio", "numpy stable", "logitloss", 6.0),
    Target("bce_big_inplace_vs_out", "binary_cross_entropy_with_logits fwd+bwd (1000000,): grad_out=input time / "
           "grad_out= buffer time", "bce_big", "ratio", "logitloss grad_out=input", "logitloss grad_out=",
           informational=True),
    Target("bce_big_backward_vs_fused", "binary_cross_entropy_with_logits_backward(1.0, x, y) (1000000,): time / "
           "fused return_grad=True time", "bce_big", "ratio", "logitloss backward only", "logitloss",
           informational=True),
    Target("bce_big_hessian_vs_grad", "binary_cross_entropy_with_logits fwd+bwd {big}: return_hessian=True time / "
           "return_grad=True time", "bce_hessian_big", "ratio", "logitloss return_hessian=True", "logitloss", 1.6,
           at_least=False),
    Target("bce_big_hessian_out_vs_grad_out", "binary_cross_entropy_with_logits fwd+bwd {big}: grad_out= "
           "hessian_out= time / grad_out= time", "bce_hessian_big", "ratio", "logitloss grad_out= hessian_out=",
           "logitloss grad_out=", informational=True),
    Target("bce_multilabel_vs_torch", "binary_cross_entropy_with_logits fwd+bwd (4096, 1000), weight + pos_weight "
           "(1000,): speedup of return_grad=True vs torch", "bce_multilabel", "ratio", "torch", "logitloss", 3.0),
    Target("bce_multilabel_options", "binary_cross_entropy_with_logits fwd+bwd (4096, 1000): weight + pos_weight "
           "time / no weights time", "bce_multilabel", "ratio", "logitloss", "logitloss no weights",
           informational=True),
    Target("bce_multilabel_forward_vs_torch", "binary_cross_entropy_with_logits forward (4096, 1000), weight + "
           "pos_weight: speedup vs torch", "bce_multilabel_forward", "ratio", "torch", "logitloss",
           informational=True),
    Target("bce_forward_big_vs_torch", "binary_cross_entropy_with_logits forward (1000000,): speedup vs torch",
           "bce_forward_big", "ratio", "torch", "logitloss", 3.0),
    Target("bce_tiny_vs_torch", "binary_cross_entropy_with_logits fwd+bwd (2,): per-call speedup vs torch "
           "training loop", "bce_tiny", "ratio", "torch", "logitloss", 8.0),
    Target("bce_memory_fresh", "binary_cross_entropy_with_logits fwd+bwd (16384, 1024) return_grad=True: peak "
           "extra memory / logits' size", "bce_memory", "value", "logitloss return_grad=True", "logits",
           informational=True),
    Target("bce_memory_inplace", "binary_cross_entropy_with_logits fwd+bwd (16384, 1024) grad_out=input: peak "
           "extra memory / logits' size", "bce_memory", "value", "logitloss grad_out=input", "logits",
           informational=True),
    Target("bce_memory_torch", "binary_cross_entropy_with_logits fwd+bwd (16384, 1024) torch: peak extra memory / "
           "logits' size", "bce_memory", "value", "torch", "logits", informational=True),
]

# linear_cross_entropy (issue 22). Quick runs measure N = 512 (the targets are for N = 4096).
TARGETS += [
    Target("linear_ce_vs_torch", "linear_cross_entropy fwd+bwd x (N, 1024), V = 32000: time / torch F.linear + "
           "F.cross_entropy + backward", "linear_ce_head", "ratio", "logitloss", "torch", 1.15, at_least=False),
    Target("linear_ce_vs_torch_chunked", "linear_cross_entropy fwd+bwd x (N, 1024), V = 32000: speedup vs torch "
           "F.linear_cross_entropy(options=LinearCrossEntropyOptions())", "linear_ce_head", "ratio",
           "torch linear_cross_entropy", "logitloss", 1.5),
    Target("linear_ce_forward_vs_torch", "linear_cross_entropy forward reduction='none' x (N, 1024), V = 32000: "
           "time / torch forward", "linear_ce_head_forward", "ratio", "logitloss", "torch", 1.15, at_least=False),
    Target("linear_ce_threads", "linear_cross_entropy fwd+bwd x (N, 1024), V = 32000: 2-thread speedup "
           "(1-thread / 2-thread median)", "linear_ce_head_threads", "ratio", "logitloss 1 thread",
           "logitloss 2 threads", 1.6),
    Target("linear_ce_memory", "linear_cross_entropy fwd+bwd N = 4096, V = 32000: peak extra memory / N x V logits",
           "linear_ce_memory", "value", "logitloss N=4096", "logits N=4096", 0.125, at_least=False),
    Target("linear_ce_memory_growth", "linear_cross_entropy fwd+bwd: peak extra memory at N = 8192 / at N = 4096",
           "linear_ce_memory", "value", "logitloss N=8192", "logitloss N=4096", 1.1, at_least=False),
    Target("linear_ce_memory_torch", "torch F.linear + F.cross_entropy fwd+bwd N = 4096, V = 32000: peak extra "
           "memory / N x V logits", "linear_ce_memory", "value", "torch N=4096", "logits N=4096", informational=True),
    Target("linear_ce_llm_vs_torch", "linear_cross_entropy fwd+bwd x (4096, 2048), V = 128256: time / torch",
           "linear_ce_llm_head", "ratio", "logitloss", "torch", informational=True),
]

# Informational ratios of the rows that have no performance target of their own: JAX, the non-last axis of softmax
# and log_softmax, the backward modes, the class axis 1 of cross_entropy, the memory of the family.
TARGETS += [
    Target(f"{key}_vs_jax", f"{title}: speedup of logitloss vs jax", case, "ratio", "jax", "logitloss",
           informational=True)
    for key, title, case in (
        ("lse_big", "logsumexp {big}", "logsumexp_big"),
        ("softmax_big", "softmax {big} (new results)", "softmax_big"),
        ("log_softmax_big", "log_softmax {big} (new results)", "log_softmax_big"),
        ("ce_big", "cross_entropy fwd+bwd {big}", "cross_entropy_big"),
        ("ce_tiny", "cross_entropy fwd+bwd (32, 10), per call", "cross_entropy_tiny"),
        ("bce_big", "binary_cross_entropy_with_logits fwd+bwd (1000000,)", "bce_big"),
    )
]
TARGETS += [
    Target(f"{op}_axis0_vs_last", f"{op} axis=0 / axis=-1 of the same data, both with out=", f"{op}_axis0", "ratio",
           "logitloss out=", "logitloss last axis out=", 1.5, at_least=False, informational=True)
    for op in ("softmax", "log_softmax")
]
for op in OPS:
    TARGETS += [
        Target(f"{op}_backward_vs_torch", f"{op}_backward {{backward}}: speedup vs torch.autograd.grad",
               f"{op}_backward", "ratio", "torch backward only", "logitloss backward only", informational=True),
        Target(f"{op}_fwd_bwd_vs_torch", f"{op} forward + backward {{backward}}: speedup vs torch .backward()",
               f"{op}_backward", "ratio", "torch forward + backward", "logitloss forward + backward",
               informational=True),
        Target(f"{op}_memory_fresh", f"{op} (16384, 1024): peak extra memory / logits' size", f"{op}_memory", "value",
               "logitloss", "logits", informational=True),
    ]
TARGETS += [
    Target("temperature_vs_12_passes", "calibration.fit_temperature (100000, 1000) (--quick: (10000, 1000)): time / "
           "12 fused cross_entropy passes", "fit_temperature", "ratio", "logitloss fit_temperature",
           "logitloss 12 x cross_entropy", 1.0, at_least=False),
    Target("temperature_vs_torch_lbfgs", "calibration.fit_temperature (100000, 1000) (--quick: (10000, 1000)): "
           "speedup vs torch LBFGS as in Guo et al.", "fit_temperature", "ratio", "torch LBFGS (Guo et al.)",
           "logitloss fit_temperature", 10.0),
    Target("ece_seconds", "calibration.expected_calibration_error (1000000, 10): seconds", "ece", "seconds",
           "logitloss expected_calibration_error", required=1.0, at_least=False),
    Target("ece_vs_torchmetrics", "calibration.expected_calibration_error (1000000, 10): speedup vs torchmetrics",
           "ece", "ratio", "torchmetrics multiclass_calibration_error", "logitloss expected_calibration_error",
           informational=True),
]
TARGETS += [
    Target("entropy_big_vs_torch", "entropy_with_logits fwd+bwd {big}: speedup of return_grad=True vs torch "
           "-(softmax * log_softmax).sum(-1) and .backward()", "entropy_big", "ratio", "torch", "logitloss", 8.0),
    Target("entropy_forward_big_vs_torch", "entropy_with_logits forward {big}: speedup vs torch's forward",
           "entropy_big", "ratio", "torch forward", "logitloss forward", informational=True),
    Target("entropy_mid_vs_torch", "entropy_with_logits fwd+bwd (8192, 1000): speedup vs torch", "entropy_mid",
           "ratio", "torch", "logitloss", informational=True),
    Target("entropy_tiny_vs_torch", "entropy_with_logits fwd+bwd (32, 10): per-call speedup vs torch", "entropy_tiny",
           "ratio", "torch", "logitloss", informational=True),
]
TARGETS.append(Target("ce_class_axis_1_vs_torch", "cross_entropy fwd+bwd (N, C, H, W), class axis 1: speedup vs torch",
                      "cross_entropy_class_axis_1", "ratio", "torch", "logitloss", informational=True))
TARGETS.append(Target("contrastive_vs_torch", "contrastive_loss fwd+bwd (4096, 4096), symmetric (CLIP): speedup vs "
                      "torch's two F.cross_entropy + .backward()", "contrastive_clip", "ratio", "torch", "logitloss",
                      5.0))
TARGETS.append(Target("contrastive_vs_two_passes", "contrastive_loss fwd+bwd (4096, 4096): time / the two fused "
                      "cross_entropy passes alone", "contrastive_clip", "ratio", "logitloss",
                      "logitloss 2 x cross_entropy", informational=True))

TARGETS.append(Target("kl_div_vs_torch", "kl_div_with_logits fwd+bwd ({big}): speedup vs torch's two log_softmax + "
                      "F.kl_div + .backward()", "kl_div_big", "ratio", "torch", "logitloss", 10.0))
TARGETS.append(Target("kl_div_vs_cross_entropy", "kl_div_with_logits fwd+bwd ({big}): time / cross_entropy(..., "
                      "return_grad=True) on the same shape", "kl_div_big", "ratio", "logitloss",
                      "logitloss cross_entropy", 2.0, at_least=False))
TARGETS.append(Target("jsd_vs_torch", "jsd_with_logits fwd+bwd ({big}, beta = 0.5): speedup vs torch's two "
                      "log_softmax + Liger's formula + .backward()", "jsd_big", "ratio", "torch", "logitloss", 10.0))


def evaluate_targets(targets: list[Target], results: dict[str, CaseResult], threads: int) -> list[TargetResult]:
    evaluated: list[TargetResult] = []
    for target in targets:
        result = results.get(target.case)
        if result is None:
            evaluated.append(TargetResult(target, None, "n/a (row not run)"))
            continue
        if target.kind == "roofline":
            measured = result.roofline_fraction(target.numerator)
        elif target.kind == "value":
            numerator_value = result.values.get(target.numerator)
            denominator_value = result.values.get(target.denominator)
            measured = (None if numerator_value is None or not denominator_value
                        else numerator_value / denominator_value)
        elif target.kind == "seconds":
            timing = result.timings.get(target.numerator)
            measured = None if timing is None else timing.median
        else:
            numerator = result.timings.get(target.numerator)
            denominator = result.timings.get(target.denominator)
            measured = None if numerator is None or denominator is None else numerator.median / denominator.median
        if measured is None:
            evaluated.append(TargetResult(target, None, "n/a (provider missing, see notes)"))
            continue
        passed = measured >= target.required if target.at_least else measured <= target.required
        status = "info" if target.informational else ("PASS" if passed else "FAIL")
        detail = ""
        if result.case.threads is None and threads != 1:
            status += f" (run at {threads} threads; targets are defined at 1 thread)"
        if target.case.endswith("_loaded") and target.numerator in result.timings:
            slowest = result.timings[target.numerator].max
            single = result.timings[target.denominator].median
            detail = f"slowest 2-thread call {slowest * 1e3:.2f} ms = {slowest / single:.2f}x the 1-thread median"
        if result.other_load_cores is not None and result.other_load_cores > OTHER_LOAD_THRESHOLD_CORES:
            busy = f"other processes used {result.other_load_cores:.2f} cores meanwhile"
            detail = f"{detail}; {busy}" if detail else busy
        evaluated.append(TargetResult(target, measured, status, detail))
    return evaluated
