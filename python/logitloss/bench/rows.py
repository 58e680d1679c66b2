"""The table of benchmark rows: one :class:`Row` per line, expanded into the cases of a run by
:func:`~logitloss.bench.suite.build_suite`.  Adding a row is adding a line to ``ROWS``.

A row names its shape (``SHAPES``: some are smaller under ``--quick``), how its providers are made (a builder of
:mod:`~logitloss.bench.row_builders` with its options), the title (``{shape}`` is filled in), its roofline
("read" or "copy": GB/s and the fraction of that bandwidth) and the run modes it belongs to.  Bytes moved per call
are the op's (:meth:`~logitloss.bench.suite.Case.bytes_per_call`).  The width sweep, a grid of ops x widths, is
``SWEEP``.  All rows are float32 but those with ``dtype="float64"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .providers import OPS
from .row_builders import (
    Builder,
    axis0,
    backward,
    bfloat16,
    binary_cross_entropy,
    calibration,
    class_axis_1,
    contrastive,
    cross_entropy,
    entropy,
    jensen_shannon,
    kl_divergence,
    linear_head,
    logit_options,
    linear_head_memory,
    memory,
    standard,
    thread_scaling,
)

__all__ = ["BOTH", "FULL", "QUICK", "ROWS", "SHAPES", "SWEEP", "Row", "Sweep"]

BOTH, FULL, QUICK = "full and quick", "full", "quick"  # the run modes a row belongs to

# name -> shape, or (quick shape, full shape).  --quick runs the (4096, 32000) rows at (512, 32000): 66 MB
# instead of 524 MB, still beyond the caches.
SHAPES: dict[str, tuple[int, ...] | tuple[tuple[int, ...], tuple[int, ...]]] = {
    "big": ((512, 32000), (4096, 32000)),
    "big transposed": ((32000, 512), (32000, 4096)),  # axis 0 of it: the same data as the last axis of "big"
    "mid": (8192, 1000),
    "tiny": (32, 10),
    "backward": ((8192, 1000), (4096, 32000)),
    "memory": (16384, 1024),  # 67 MB of float32: far above the noise of RSS
    "segmentation": ((2, 150, 128, 128), (8, 150, 128, 128)),  # ADE20K's 150 classes
    "bce": (1_000_000,),
    "multilabel": (4096, 1000),
    "bce tiny": (2,),
    # linear_cross_entropy: hidden states (N, D), the head's V is the builder's; --quick at N = 512
    "head": ((512, 1024), (4096, 1024)),
    "head memory": (4096, 256),  # D = 256 keeps the two subprocess calls short; memory does not depend on D
    "llm head": (4096, 2048),
    "temperature": ((10000, 1000), (100000, 1000)),
    "ece": (1_000_000, 10),
    "similarity": ((1024, 1024), (4096, 4096)),  # a CLIP batch's image x text logits
}


@dataclass(frozen=True)
class Row:
    key: str
    op: str  # what is timed (bytes moved follow from it): a family op, "<op>_backward", "cross_entropy_fwd_bwd", ...
    shape: str  # a name in SHAPES
    build: Builder
    title: str  # "{shape}" is replaced by the shape
    roofline: str | None = None  # "read" or "copy"
    check: bool = True  # compare each provider's first result with the float64 reference (family ops)
    repeats: int | tuple[int | None, int | None] | None = None  # one for both modes, or (quick, full)
    number: int | None = None  # calls per sample (1: single calls)
    note: str = ""
    dtype: str = "float32"
    modes: str = BOTH
    quick_title: str = ""  # appended to the title under --quick
    axis: int = -1
    baseline: str = "logitloss"  # the "time / baseline" column
    busy_core: bool = False  # a busy process pinned to the other core while the row runs
    threads: int | None = None  # None: the run's --threads; 0: each provider sets its own


@dataclass(frozen=True)
class Sweep:
    """The width sweep: every op at every width on the same number of logits per cell (``time_vs_width.png``,
    ``roofline.png``), (quick, full)."""

    widths: tuple[tuple[int, ...], tuple[int, ...]] = ((10, 32000, 262144), (10, 1000, 32000, 50257, 128256, 262144))
    logits: tuple[int, int] = (2**21, 2**24)  # 2**24: 67 MB of float32, beyond the caches, far below the cap
    ops: tuple[tuple[str, ...], tuple[str, ...]] = (("logsumexp", "cross_entropy_fwd_bwd"),
                                                    ("logsumexp", "softmax", "log_softmax", "cross_entropy_fwd_bwd"))
    repeats: tuple[int | None, int | None] = (None, 7)


SWEEP = Sweep()
CELL_CAP_LOGITS = 2**27  # no row larger than this many logits

# NumPy naive is left out of the sweep (it costs what NumPy stable costs, and the sweep is the run's largest block).
SWEEP_BASELINES = ("numpy", "scipy", "torch", "jax")
SWEEP_CROSS_ENTROPY = ("logitloss", "torch", "jax", "numpy stable")

VOCABULARY, LLM_VOCABULARY = 32000, 128256
HEAD_ROWS_FOR_MEMORY = (4096, 8192)

# --- notes shown under the rows ---------------------------------------------------------------------------
HESSIAN_VARIANTS = ("logitloss", "logitloss return_hessian=True", "logitloss grad_out=", "logitloss grad_out= hessian_out=")
HESSIAN = ("`logitloss`: return_grad=True; `logitloss return_hessian=True`: the gradient and the Hessian's diagonal from "
           "the same pass (two new results, in dropped results' memory: output reuse); `grad_out= hessian_out=`: both "
           "into preallocated buffers, against `grad_out=` alone. Bytes moved count the logits and the gradient only.")

IN_PLACE_FORWARD = ("`logitloss out=input`: written over a private copy of x, restored with np.copyto before each "
                    "sample (outside the timing). `logitloss`: a new result, in the previous sample's dropped one "
                    "(output reuse, the default); `logitloss reuse off`: in fresh pages, their page faults timed, as "
                    "torch's are.")
IN_PLACE_LOSS = ("`logitloss grad_out=input`: in place on a private copy of x, restored with np.copyto before each call "
                 "(outside the timing), so every call sees the original logits; single calls (calls/sample = 1) for "
                 "every provider of the row.")
MEMORY = ("Peak extra resident memory of one call, each provider in a fresh subprocess (C++ allocations count): "
          "ru_maxrss after the call - max(ru_maxrss, RSS) before it; the input is made in float32 in the child, "
          "libraries warmed up on 8 rows (JAX: compiled for this shape ahead of time), 1 thread; a fresh result "
          "counts. `logits` = x.nbytes, the unit of the ratios.")
AXIS0 = "logitloss and its last-axis call with out= buffers; the other providers as users call them."
THREADS = "21 single calls per thread count, interleaved; each after one untimed call"
BUSY = "with a busy process pinned to the other core"
LINEAR_HEAD = ("Hidden states x (N, D) N(0, 1), head w (V, D) N(0, 1 / D), class-index targets; `logitloss`: "
               "linear_cross_entropy(x, w, y, return_grad=True) (default chunks of about 48 MiB of logits); `torch`: "
               "F.cross_entropy(F.linear(X, W), y).backward() with X and W requiring grad (the N x V logits and their "
               "gradient); `torch linear_cross_entropy`: F.linear_cross_entropy(X, W, y, "
               "options=nn.LinearCrossEntropyOptions()) and .backward() (torch's opt-in chunked path). Single calls.")
LINEAR_HEAD_MEMORY = ("Peak extra RSS of one fwd+bwd call in a fresh subprocess (as the other memory rows) minus the "
                      "returned gradients (grad_input, grad_weight); `logits N=n` = n x V x 4 bytes, the unit of the "
                      "ratios; 1 thread.")


def _backward_note(op: str) -> str:
    forward_backward = ("logitloss.logsumexp(x, return_grad=True), one fused pass" if op == "logsumexp"
                        else f"logitloss.{op} then logitloss.{op}_backward (no fused call)")
    return (("Upstream gradient: ones of the result's shape (the gradient of sum(logsumexp))" if op == "logsumexp"
             else "Upstream gradient: N(0, 1) of x's shape")
            + "; bytes moved are those of the backward pass alone ("
            + ("reads x, writes the gradient" if op == "logsumexp"
               else "reads the forward output and the upstream gradient, writes the gradient")
            + f"). `backward only`: logitloss's `{op}_backward`, torch.autograd.grad on a prebuilt graph, the pullback "
            f"of jax.vjp, NumPy's formula; `forward + backward`: {forward_backward}, torch's .backward(g), jax.vjp in "
            "one jitted function, NumPy's forward then its formula.")


FIVE = 5  # rows of 7 or more providers of 524 MB each: the full run's time budget
PER_CALL = " (per-call time)"
CE = "cross_entropy forward + backward"
BCE = "binary_cross_entropy_with_logits"
ALL_BUT_REUSE = ("logitloss", "logitloss grad_out=", "logitloss.torch", "torch", "jax", "numpy stable")
PEERS = ("logitloss", "torch", "jax", "numpy stable")

ROWS: list[Row] = [
    Row("logsumexp_big", "logsumexp", "big", standard(isas=True), "logsumexp {shape}, axis=-1", "read"),
    Row("logsumexp_mid", "logsumexp", "mid", standard(isas=True), "logsumexp {shape}, axis=-1", "read"),
    Row("logsumexp_tiny", "logsumexp", "tiny", standard(), "logsumexp {shape}, axis=-1" + PER_CALL),
    *[Row(f"{op}_big", op, "big", standard(isas=True, out=True, in_place=True), op + " {shape}, axis=-1", "copy",
          note=IN_PLACE_FORWARD) for op in ("softmax", "log_softmax")],
    *[Row(f"{op}_mid", op, "mid", standard(out=True), op + " {shape}, axis=-1", "copy")
      for op in ("softmax", "log_softmax")],
    *[Row(f"{op}_tiny", op, "tiny", standard(), op + " {shape}, axis=-1" + PER_CALL)
      for op in ("softmax", "log_softmax")],
    # --quick: the class axis 1 of cross_entropy stands for the non-last axes
    *[Row(f"{op}_axis0", op, "big transposed", axis0(isas=op == "logsumexp"),
          op + " {shape}, axis=0 (same data as (4096, 32000), axis=-1)", "read" if op == "logsumexp" else "copy",
          repeats=FIVE, note="" if op == "logsumexp" else AXIS0, modes=FULL, axis=0) for op in OPS],
    *[Row(f"{op}_backward", f"{op}_backward", "backward", backward(), op + " backward and forward + backward {shape}, "
          "axis=-1", "copy", check=False, repeats=(None, FIVE), note=_backward_note(op),
          modes=BOTH if op == "softmax" else FULL, baseline="logitloss backward only") for op in OPS],
    *[Row(f"{op}_memory", op, "memory", memory(), op + " {shape}, axis=-1: peak extra memory", check=False,
          note=MEMORY, modes=FULL) for op in OPS],
    Row("cross_entropy_big", "cross_entropy_fwd_bwd", "big", cross_entropy(), CE + " {shape}", "copy", check=False,
        number=1, repeats=(5, None), quick_title=" (--quick; targets at (4096, 32000))",
        note=IN_PLACE_LOSS + " `logitloss`: return_grad=True (a new gradient, in the previous sample's dropped one: "
        "output reuse); `logitloss reuse off`: the same in fresh pages, their page faults timed; `torch`: z = "
        "torch.from_numpy(x).requires_grad_(); F.cross_entropy(z, y).backward(); z.grad."),
    *[Row(f"{key}_bfloat16", op, "big", bfloat16(), title + " {shape}, bfloat16 logits against float32 and torch",
          check=False, number=1, repeats=(5, 7), quick_title=" (--quick)",
          note="The time / baseline column is the bfloat16 call's time over the float32 call's (same values).") for key, op, title in (("logsumexp", "logsumexp", "logsumexp"),
                                                       ("cross_entropy", "cross_entropy_fwd_bwd", CE))],
    Row("cross_entropy_mid", "cross_entropy_fwd_bwd", "mid", cross_entropy(variants=ALL_BUT_REUSE,
        options_variant=True), CE + " {shape}", "copy", check=False,
        note="`smoothing+weight`: label_smoothing=0.1 and class weights of shape (1000,), gradient into a "
             "preallocated buffer like `logitloss grad_out=`."),
    Row("cross_entropy_mid_probabilities", "cross_entropy_fwd_bwd", "mid", cross_entropy(options_variant=True,
        probabilities=True), CE + " {shape}, probability targets", "copy", check=False, number=1,
        note="Targets: float32 rows of probabilities of the logits' shape (softmax of 2 N(0, 1)); `numpy stable`: "
             "-mean(sum(y * log_softmax)) and (softmax - y) / N; `smoothing+weight` as in the (8192, 1000) "
             "index-target row. Bytes moved count the logits and the gradient only. " + IN_PLACE_LOSS),
    Row("cross_entropy_logit_options", "cross_entropy_fwd_bwd", "big", logit_options(),
        CE + " {shape}, softcap=30, z_loss=1e-4, temperature=2", "copy", check=False, number=1, repeats=(5, 7),
        note="The options' cost against the plain fused call (return_grad=True both), and torch's composition."),
    Row("cross_entropy_forward_big", "cross_entropy", "big", cross_entropy(backward=False, variants=PEERS),
        "cross_entropy forward only {shape}", "read", check=False, quick_title=" (--quick)",
        note="`torch`: F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y)), no autograd."),
    Row("cross_entropy_hessian_big", "cross_entropy_fwd_bwd", "big", cross_entropy(variants=HESSIAN_VARIANTS),
        CE + " {shape}, with the Hessian's diagonal", "copy", check=False, number=1, repeats=(5, 7),
        quick_title=" (--quick; targets at (4096, 32000))", note=HESSIAN),
    Row("cross_entropy_tiny", "cross_entropy_fwd_bwd", "tiny", cross_entropy(variants=ALL_BUT_REUSE),
        CE + " {shape}" + PER_CALL, check=False),
    Row("cross_entropy_memory", "cross_entropy_fwd_bwd", "big", memory(kernel="cross_entropy"),
        CE + " {shape}: peak extra memory", check=False, note=MEMORY, quick_title=" (--quick)"),
    Row("cross_entropy_class_axis_1", "cross_entropy_fwd_bwd", "segmentation", class_axis_1(),
        CE + " {shape}, class axis 1 (segmentation layout)", "copy", check=False, axis=1,
        note="Index targets (N, H, W); logitloss reduces the class axis in place (no transposed copy); torch and jax "
             "take the same layout (jax: log_softmax(axis=1) and take_along_axis)."),
    Row("bce_big", f"{BCE}_fwd_bwd", "bce", binary_cross_entropy(), BCE + " forward + backward {shape}", "copy",
        check=False, number=1, repeats=(41, 61),  # single calls of about a millisecond: many rounds
        note=IN_PLACE_LOSS + " `logitloss`: return_grad=True; `torch`: z = torch.from_numpy(x).requires_grad_(); "
        "F.binary_cross_entropy_with_logits(z, y).backward(); z.grad; `numpy stable`: np.mean(np.maximum(x, 0) - "
        "x*y + np.log1p(np.exp(-np.abs(x)))) and (1 / (1 + np.exp(-x)) - y) / x.size."),
    Row("bce_hessian_big", f"{BCE}_fwd_bwd", "big", binary_cross_entropy(variants=HESSIAN_VARIANTS),
        BCE + " forward + backward {shape}, with the second derivative", "copy", check=False, number=1,
        repeats=(5, 7), quick_title=" (--quick; targets at (4096, 32000))", note=HESSIAN + " Targets 0 / 1 float32."),
    Row("bce_forward_big", BCE, "bce", binary_cross_entropy(backward=False, variants=PEERS),
        BCE + " forward only {shape}", "read", check=False,
        note="`torch`: F.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y)), no autograd."),
    Row("bce_multilabel", f"{BCE}_fwd_bwd", "multilabel", binary_cross_entropy(weighted=True, unweighted_variant=True),
        BCE + " forward + backward {shape}, weight and pos_weight (1000,)", "copy", check=False, number=1,
        repeats=(7, 15), note=IN_PLACE_LOSS + " Every provider gets weight (uniform [0.5, 1.5)) and pos_weight "
        "(uniform [1, 4)) of shape (1000,) except `logitloss no weights` (return_grad=True without them)."),
    Row("bce_multilabel_forward", BCE, "multilabel", binary_cross_entropy(backward=False, weighted=True,
        variants=PEERS), BCE + " forward only {shape}, weight and pos_weight (1000,)", "read", check=False),
    Row("bce_tiny", f"{BCE}_fwd_bwd", "bce tiny", binary_cross_entropy(variants=ALL_BUT_REUSE),
        BCE + " forward + backward {shape}" + PER_CALL, check=False),
    # --quick measures the memory of cross_entropy only (a subprocess per provider)
    Row("bce_memory", f"{BCE}_fwd_bwd", "memory", memory(kernel=BCE), BCE + " forward + backward {shape}: peak extra "
        "memory", check=False, note=MEMORY + " Targets 0 / 1 float32.", modes=FULL),
    # float64: the mid shape of each kernel
    *[Row(f"{op}_mid_f64", op, "mid", standard(out=op != "logsumexp"), op + " {shape} float64, axis=-1",
          "read" if op == "logsumexp" else "copy", dtype="float64", modes=FULL) for op in OPS],
    Row("cross_entropy_mid_f64", "cross_entropy_fwd_bwd", "mid", cross_entropy(variants=ALL_BUT_REUSE),
        CE + " {shape} float64", "copy", check=False, dtype="float64", modes=FULL),
    Row("bce_big_f64", f"{BCE}_fwd_bwd", "bce", binary_cross_entropy(variants=ALL_BUT_REUSE),
        BCE + " forward + backward {shape} float64", "copy", check=False, dtype="float64", number=1, repeats=31,
        modes=FULL),
    # linear_cross_entropy (issue 22): the head and its loss without the N x V logits
    Row("linear_ce_head", "linear_cross_entropy_fwd_bwd", "head", linear_head(classes=VOCABULARY),
        f"linear_cross_entropy forward + backward, x {{shape}}, V = {VOCABULARY}", check=False, number=1,
        repeats=(3, 5), note=LINEAR_HEAD, quick_title=" (--quick; targets at N = 4096)"),
    Row("linear_ce_head_forward", "linear_cross_entropy", "head", linear_head(classes=VOCABULARY, backward=False,
        variants=("logitloss", "torch")), f"linear_cross_entropy forward only (reduction='none'), x {{shape}}, "
        f"V = {VOCABULARY}", check=False, number=1, repeats=(3, 5), quick_title=" (--quick)",
        note="`torch`: F.cross_entropy(F.linear(x, w), y, reduction='none') under torch.no_grad()."),
    Row("linear_ce_head_threads", "linear_cross_entropy_fwd_bwd", "head", linear_head(classes=VOCABULARY,
        threads=True), f"threads: linear_cross_entropy forward + backward, x {{shape}}, V = {VOCABULARY}",
        check=False, number=1, repeats=(3, 5), baseline="logitloss 1 thread", threads=0, quick_title=" (--quick)",
        note="logitloss.set_num_threads(n) governs its pool and (threadpoolctl) the BLAS of the products."),
    Row("linear_ce_memory", "linear_cross_entropy_fwd_bwd", "head memory",
        linear_head_memory(classes=VOCABULARY, row_counts=HEAD_ROWS_FOR_MEMORY),
        f"linear_cross_entropy forward + backward, D = 256, V = {VOCABULARY}, N = 4096 and 8192: peak extra memory",
        check=False, note=LINEAR_HEAD_MEMORY),
    Row("linear_ce_llm_head", "linear_cross_entropy_fwd_bwd", "llm head", linear_head(classes=LLM_VOCABULARY,
        variants=("logitloss", "torch")), f"linear_cross_entropy forward + backward, x {{shape}}, V = {LLM_VOCABULARY} "
        "(an LLM head)", check=False, number=1, repeats=3, note=LINEAR_HEAD, modes=FULL),
    Row("fit_temperature", "fit_temperature", "temperature", calibration(), "calibration.fit_temperature {shape}",
        check=False, number=1, repeats=(3, 1), baseline="logitloss 12 x cross_entropy",  # torch LBFGS: ~5 min/call
        note="Each call fits T from scratch (start T = 1, tol 1e-8); `logitloss 12 x cross_entropy`: the issue's budget, "
             "12 fused forward passes over the same logits; `torch LBFGS (Guo et al.)`: their reference code's fit "
             "(nn.CrossEntropyLoss on logits / T, optim.LBFGS lr=0.01, max_iter=50, T0 = 1.5). Bytes moved: one read "
             "of the logits."),
    Row("ece", "expected_calibration_error", "ece", calibration(), "calibration.expected_calibration_error {shape}",
        check=False, number=1, repeats=(5, 7),
        note="15 uniform bins, top-label, norm l1; torchmetrics' multiclass_calibration_error on the same logits."),
    # entropy_with_logits (issue 20)
    Row("entropy_big", "entropy_with_logits_fwd_bwd", "big", entropy(), "entropy_with_logits forward + backward "
        "{shape}", "copy", check=False, repeats=(None, FIVE),
        note="`logitloss`: entropy_with_logits(x, return_grad=True) (a new gradient); `torch`: z = "
             "torch.from_numpy(x).requires_grad_(); h = -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(-1); "
             "h.sum().backward(); z.grad. `forward`: the entropy alone (torch under no_grad)."),
    Row("entropy_mid", "entropy_with_logits_fwd_bwd", "mid", entropy(), "entropy_with_logits forward + backward "
        "{shape}", "copy", check=False, note="As entropy_big."),
    Row("entropy_tiny", "entropy_with_logits_fwd_bwd", "tiny", entropy(), "entropy_with_logits forward + backward "
        "{shape}" + PER_CALL, check=False, note="As entropy_big."),
    Row("contrastive_clip", "contrastive_loss_fwd_bwd", "similarity", contrastive(),
        "contrastive_loss forward + backward {shape}, symmetric (CLIP)", "copy", check=False, number=1,
        repeats=(5, 7), quick_title=" (--quick; targets at (4096, 4096))",
        note="Positives on the diagonal; `logitloss`: contrastive_loss(x, return_grad=True); `logitloss 2 x "
             "cross_entropy`: the two directions' fused passes alone, each into its own buffer (the floor); `torch`: "
             "(F.cross_entropy(X, t) + F.cross_entropy(X.T, t)) / 2 and .backward()."),
    Row("kl_div_big", "kl_div_fwd_bwd", "big", kl_divergence(), "kl_div_with_logits forward + backward {shape}",
        "copy", check=False, number=1, repeats=(5, 7), quick_title=" (--quick; targets at (4096, 32000))",
        note="Teacher = student + N(0, 0.5^2); `logitloss`: kl_div_with_logits(x, t, return_grad=True); "
             "`logitloss cross_entropy`: cross_entropy(x, labels, return_grad=True) (the budget); `torch`: "
             "F.kl_div(F.log_softmax(X), F.log_softmax(T), 'batchmean', log_target=True) and .backward()."),
    Row("jsd_big", "jsd_fwd_bwd", "big", jensen_shannon(), "jsd_with_logits forward + backward {shape}, beta = 0.5",
        "copy", check=False, number=1, repeats=(5, 7), quick_title=" (--quick; targets at (4096, 32000))",
        note="Teacher = student + N(0, 0.5^2); `logitloss`: jsd_with_logits(x, t, 0.5, return_grad=True); `torch`: "
             "Liger's formula (two log_softmax, M = lerp(Q, P, beta), beta kl(log M, log P) + (1 - beta) "
             "kl(log M, log Q), averaged over rows) and .backward()."),
    # --quick leaves out the thread rows (about 10 s): they need many single calls to mean anything
    *[Row(f"threads_{size}_{load}", "logsumexp", size, thread_scaling(),
          "threads: logsumexp {shape}, " + (BUSY if load == "loaded" else "no added load"), "read", check=False,
          repeats=21, number=1, note=THREADS + ("; max = slowest call." if load == "loaded" else "."), modes=FULL,
          baseline="logitloss 1 thread", busy_core=load == "loaded", threads=0)
      for size in ("big", "mid") for load in ("loaded", "unloaded")],
]
