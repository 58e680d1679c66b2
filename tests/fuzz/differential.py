"""Seeded differential fuzz of the public API against the exact references (logitloss.testing).

    python -m tests.fuzz.differential [--seed N] [--cases N] [--seconds S]   (from the repository root)

Each case draws a function, a dtype (float16/32/64), a shape (0-d, 0-size axes, up to 3-d), values
(normal logits, or entries log-uniform over the dtype's whole finite range, both signs, with ties at
the max and -inf masks), a memory layout (negative strides, transposed, zero-stride broadcast,
misaligned, byte-swapped) and keywords (axis None / int / tuple, keepdims, b broadcasting a either
way with any signs and return_sign, return_grad, reductions, class weights, label smoothing,
ignore_index, probability targets, weight / pos_weight), calls logitloss, and checks the SHAPES,
dtypes and VALUES of every output against the slow exact reference with the documented bounds, via
the suite's own check helpers (tests/helpers/*_checks.py). The cases the issue-18 report named come
first, so every run reaches them: b broadcasting a in logsumexp's gradient, and float32 rows such as
[3e38, 2.9e38, 1e38] whose differences span the float range.

Each case's description is printed to stderr before the call, so a crash (the test runs this in a
child process) names its case. The last stdout line is a JSON summary: cases run, failures with their
descriptions, and the features reached. Exit status 0 only when no case failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import numpy as np

import logitloss
from logitloss.testing.inputs import (
    binary_targets,
    class_weights,
    index_targets,
    positive_weights,
    probability_targets,
    upstream,
)
from logitloss.testing.softmax_family import log_softmax_backward as exact_log_softmax_backward
from logitloss.testing.softmax_family import logsumexp as exact_logsumexp
from logitloss.testing.softmax_family import softmax_backward as exact_softmax_backward
from logitloss.testing.tolerances import GRADIENT

from ..helpers.assertions import assert_close_to_exact
from ..helpers.binary_cross_entropy_checks import check_binary_cross_entropy
from ..helpers.cross_entropy_checks import check_cross_entropy
from ..helpers.softmax_family_checks import check_logsumexp, check_softmax

DTYPES = (np.float16, np.float32, np.float64)
FUNCTIONS = ("logsumexp", "softmax", "log_softmax", "logsumexp_backward", "softmax_backward",
             "log_softmax_backward", "cross_entropy", "binary_cross_entropy_with_logits")
LAYOUTS = ("contiguous", "negative strides", "transposed", "zero stride", "misaligned", "byte-swapped")


# ---- inputs -----------------------------------------------------------------------------------


def whole_range(rng, shape, dtype):
    """Entries log-uniform over the dtype's whole finite range, both signs, with ties at the max and
    -inf masks (the exp-range cases of issue 18)."""
    info = np.finfo(dtype)
    low, high = np.log2(float(info.smallest_subnormal)), np.log2(float(info.max))
    with np.errstate(over="ignore"):
        x = np.exp2(rng.uniform(low, high, shape)) * rng.choice([-1.0, 1.0], shape)
        x = np.clip(x, -float(info.max), float(info.max)).astype(dtype)
    if x.size > 2:
        flat = x.reshape(-1)
        top = flat.argmax()
        flat[rng.integers(0, flat.size)] = flat[top]  # a tie at the max
        flat[rng.random(flat.size) < 0.15] = -np.inf
    return x


def logit_values(rng, shape, dtype, *, extreme_ok=True):
    if extreme_ok and rng.random() < 0.3:
        return whole_range(rng, shape, dtype), True
    x = rng.standard_normal(shape) * rng.choice([1.0, 4.0, 30.0])
    return np.asarray(x).astype(dtype), False


def random_shape(rng, ndim=None):
    ndim = int(rng.integers(0, 4)) if ndim is None else ndim
    return tuple(int(rng.choice([0, 1, 2, 3, 5, 8, 17, 33])) if rng.random() < 0.3 else int(rng.integers(1, 7))
                 for _ in range(ndim))


def in_layout(rng, x, layout):
    """``x``'s values in a memory layout (a view whose strides differ from C order)."""
    if x.ndim == 0 or layout == "contiguous":
        return x
    if layout == "negative strides":
        flip = (slice(None, None, -1),) * x.ndim
        return np.ascontiguousarray(x[flip])[flip]
    if layout == "transposed":
        return np.ascontiguousarray(x.T).T
    if layout == "zero stride":  # the first entry of axis 0 broadcast along it (values change: fine)
        return np.broadcast_to(x[:1], x.shape) if x.shape[0] > 0 else x
    if layout == "misaligned":
        buffer = bytearray(x.nbytes + 1)
        view = np.frombuffer(buffer, dtype=x.dtype, count=x.size, offset=1).reshape(x.shape)
        view[...] = x
        return view
    return x.astype(x.dtype.newbyteorder())  # byte-swapped


def random_axis(rng, ndim):
    roll = rng.random()
    if ndim == 0 or roll < 0.25:
        return None
    if roll < 0.7:
        return int(rng.integers(-ndim, ndim))
    return tuple(int(a) for a in rng.permutation(ndim)[: int(rng.integers(1, ndim + 1))])


def broadcast_partner(rng, shape):
    """A shape that broadcasts with ``shape``: equal, a suffix, length-1 axes, or larger (leading
    axes added, ``shape``'s length-1 axes stretched)."""
    roll = rng.random()
    if roll < 0.25:
        return shape
    if roll < 0.45:
        return shape[int(rng.integers(0, len(shape) + 1)):]
    if roll < 0.65:
        return tuple(1 if rng.random() < 0.5 else n for n in shape)
    bigger = [int(rng.integers(2, 5)) if n == 1 and rng.random() < 0.7 else n for n in shape]
    return tuple(int(rng.integers(1, 4)) for _ in range(int(rng.integers(0, 3)))) + tuple(bigger)


# ---- one call per function, checked by the suite's helpers ------------------------------------------


def reduced_length(shape, axis):
    axes = range(len(shape)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    return int(np.prod([shape[a] for a in axes]))


def run_logsumexp(rng, dtype, reached, *, a=None, b=None, axis="draw", keepdims=None, sign=None):
    if a is None:
        a, extreme = logit_values(rng, random_shape(rng), dtype)
        reached["whole-range values"] += extreme
        if rng.random() < 0.6:
            b_shape = broadcast_partner(rng, a.shape)
            b = rng.uniform(0.25, 2.0, b_shape) * (np.where(rng.random(b_shape) < 0.3, -1.0, 1.0)
                                                   if rng.random() < 0.4 else 1.0)
            b = np.asarray(b).astype(dtype)
            if a.ndim == 0 or b.ndim > a.ndim or any(m == 1 and n != 1 for m, n in zip(a.shape[::-1], b.shape[::-1])):
                reached["b broadcasts a (gradient summed)"] += 1
    full = np.broadcast_shapes(a.shape, np.shape(b)) if b is not None else a.shape
    axis = random_axis(rng, len(full)) if axis == "draw" else axis
    keepdims = bool(rng.random() < 0.5) if keepdims is None else keepdims
    sign = bool(b is not None and (np.asarray(b) < 0).any()) if sign is None else sign
    layout = LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
    a_in = in_layout(rng, a, layout)
    what = f"logsumexp a{a.shape} {np.dtype(dtype).name} {layout} b{None if b is None else np.shape(b)} " \
           f"axis={axis} keepdims={keepdims} return_sign={sign}"
    return what, lambda: check_logsumexp(a_in, axis=axis, b=b, keepdims=keepdims, return_sign=sign, grad=True,
                                         what=what), layout


def run_softmax(rng, dtype, reached, log, *, x=None, axis="draw"):
    if x is None:
        x, extreme = logit_values(rng, random_shape(rng), dtype)
        reached["whole-range values"] += extreme
    axis = random_axis(rng, x.ndim) if axis == "draw" else axis
    layout = LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
    x_in = in_layout(rng, x, layout)
    name = "log_softmax" if log else "softmax"
    what = f"{name} x{x.shape} {np.dtype(dtype).name} {layout} axis={axis}"

    def check():
        if reduced_length(x.shape, axis) == 0:  # documented: a clear ValueError
            try:
                getattr(logitloss, name)(x_in, axis=axis)
            except ValueError:
                return
            raise AssertionError(f"{what}: no ValueError for a length-0 normalization")
        check_softmax(x_in, axis=axis, log=log, what=what)

    return what, check, layout


def run_logsumexp_backward(rng, dtype, reached):
    a, _ = logit_values(rng, random_shape(rng), dtype, extreme_ok=False)
    b = np.asarray(rng.uniform(0.25, 2.0, broadcast_partner(rng, a.shape))).astype(dtype) if rng.random() < 0.5 else None
    full = np.broadcast_shapes(a.shape, np.shape(b)) if b is not None else a.shape
    axis = random_axis(rng, len(full))
    keepdims = bool(rng.random() < 0.5)
    layout = LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
    a_in = in_layout(rng, a, layout)
    what = f"logsumexp_backward a{a.shape} {np.dtype(dtype).name} {layout} b{None if b is None else b.shape} " \
           f"axis={axis} keepdims={keepdims}"

    def check():
        g = upstream(np.shape(logitloss.logsumexp(a, axis=axis, b=b, keepdims=keepdims)), dtype, seed=1)
        exact = exact_logsumexp(a_in, axis=axis, b=b, keepdims=keepdims, grad_output=g)  # (a zero-stride view
        # has other values than a)
        got = logitloss.logsumexp_backward(g, a_in, axis=axis, b=b, keepdims=keepdims)
        assert np.shape(got) == a.shape, f"{what}: gradient shape {np.shape(got)}, expected {a.shape}"
        assert_close_to_exact(got, exact.grad, dtype, exact.grad_scale, lo=exact.grad_lo, direction=GRADIENT,
                              what=what)

    return what, check, layout


def run_softmax_backward(rng, dtype, reached, log):
    x, _ = logit_values(rng, random_shape(rng), dtype, extreme_ok=False)
    axis = random_axis(rng, x.ndim)
    layout = LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
    name = "log_softmax" if log else "softmax"
    what = f"{name}_backward x{x.shape} {np.dtype(dtype).name} {layout} axis={axis}"

    def check():
        if reduced_length(x.shape, axis) == 0:
            return
        output = getattr(logitloss, name)(x, axis=axis)
        g = upstream(x.shape, dtype, seed=2)
        exact = (exact_log_softmax_backward if log else exact_softmax_backward)(g, output, axis=axis)
        got = getattr(logitloss, f"{name}_backward")(in_layout(rng, g, layout), in_layout(rng, np.asarray(output), layout),
                                                     axis=axis)
        if layout == "zero stride":  # the views changed the values: recompute the reference
            exact = (exact_log_softmax_backward if log else exact_softmax_backward)(
                in_layout(rng, g, layout), in_layout(rng, np.asarray(output), layout), axis=axis)
        assert np.shape(got) == x.shape, f"{what}: shape {np.shape(got)}"
        assert_close_to_exact(got, exact.value, exact.dtype, exact.scale, lo=exact.lo, direction=GRADIENT, what=what)

    return what, check, layout


def run_cross_entropy(rng, dtype, reached, *, x=None, target=None):
    if x is None:
        shape = (int(rng.integers(0, 6)), int(rng.integers(1, 40))) + random_shape(rng, int(rng.integers(0, 2)))
        if rng.random() < 0.15:
            shape = (int(rng.integers(1, 40)),)  # one unbatched row
        x, extreme = logit_values(rng, shape, dtype)
        x = np.where(np.isneginf(x), np.asarray(-1e4 if dtype != np.float16 else -6e4, dtype), x).astype(dtype)
        reached["whole-range values"] += extreme
    probability = target is None and rng.random() < 0.3
    ignore_index = -100 if probability or rng.random() < 0.5 else 0
    if target is None:
        target = (probability_targets(x.shape, dtype, seed=3) if probability
                  else index_targets(x.shape, seed=3, ignore_index=ignore_index))
    classes = x.shape[1] if x.ndim > 1 else x.shape[0]
    weight = class_weights(classes, dtype, seed=4) if rng.random() < 0.4 else None
    reduction = str(rng.choice(["mean", "sum", "none"]))
    smoothing = float(rng.choice([0.0, 0.0, 0.1, 0.7]))
    layout = LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
    x_in = in_layout(rng, x, layout)
    what = f"cross_entropy x{x.shape} {np.dtype(dtype).name} {layout} {'probability' if probability else 'index'} " \
           f"targets weight={weight is not None} reduction={reduction} label_smoothing={smoothing} " \
           f"ignore_index={ignore_index}"
    return what, lambda: check_cross_entropy(x_in, target, weight, ignore_index, reduction, smoothing, what=what), layout


def run_binary_cross_entropy(rng, dtype, reached):
    x, extreme = logit_values(rng, random_shape(rng), dtype)
    x = np.where(np.isneginf(x), np.asarray(-1e4 if dtype != np.float16 else -6e4, dtype), x).astype(dtype)
    reached["whole-range values"] += extreme
    target = binary_targets(x.shape, dtype, seed=5)
    weight = positive_weights(broadcast_partner(rng, x.shape)[-x.ndim:] if x.ndim and rng.random() < 0.4 else (),
                              dtype, seed=6) if rng.random() < 0.4 else None
    pos_weight = positive_weights(x.shape[-1:] if x.ndim and rng.random() < 0.5 else (), dtype, seed=7) \
        if rng.random() < 0.5 else None
    if weight is not None and np.broadcast_shapes(weight.shape, x.shape) != x.shape:
        weight = None  # weights never enlarge the input (documented)
    reduction = str(rng.choice(["mean", "sum", "none"]))
    layout = LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
    x_in = in_layout(rng, x, layout)
    what = f"binary_cross_entropy_with_logits x{x.shape} {np.dtype(dtype).name} {layout} " \
           f"weight={None if weight is None else weight.shape} pos_weight={None if pos_weight is None else pos_weight.shape} " \
           f"reduction={reduction}"
    return what, lambda: check_binary_cross_entropy(x_in, target, weight, reduction, pos_weight, what=what), layout


def random_case(rng, reached):
    dtype = DTYPES[int(rng.integers(0, 3))]
    name = FUNCTIONS[int(rng.integers(0, len(FUNCTIONS)))]
    if name == "logsumexp":
        return run_logsumexp(rng, dtype, reached)
    if name in ("softmax", "log_softmax"):
        return run_softmax(rng, dtype, reached, name == "log_softmax")
    if name == "logsumexp_backward":
        return run_logsumexp_backward(rng, dtype, reached)
    if name in ("softmax_backward", "log_softmax_backward"):
        return run_softmax_backward(rng, dtype, reached, name == "log_softmax_backward")
    if name == "cross_entropy":
        return run_cross_entropy(rng, dtype, reached)
    return run_binary_cross_entropy(rng, dtype, reached)


def named_cases(rng, reached):
    """The cases issue 18 reported, first in every run (they must be reached whatever the seed)."""
    a = np.array([[1.0], [2.0]])
    b = np.array([91.8, -27.0, -58.5])
    reached["b broadcasts a (gradient summed)"] += 3
    yield run_logsumexp(rng, np.float64, reached, a=a, b=b, axis=None, keepdims=False, sign=True)
    yield run_logsumexp(rng, np.float32, reached, a=np.float32(0.5), b=np.array([1.0, 2.0, 3.0], np.float32),
                        axis=None, keepdims=False, sign=False)
    yield run_logsumexp(rng, np.float64, reached, a=np.array([0.1, -0.3]), b=np.ones((3, 2)), axis=0, keepdims=True,
                        sign=False)
    for dtype, row in ((np.float32, [3e38, 2.9e38, 1e38]), (np.float64, [1.7e308, 1.6e308, 1e307])):
        x = np.array([row], dtype=dtype)
        reached["whole-range values"] += 4
        yield run_softmax(rng, dtype, reached, False, x=x, axis=-1)
        yield run_softmax(rng, dtype, reached, True, x=x, axis=-1)
        yield run_logsumexp(rng, dtype, reached, a=x, axis=-1, keepdims=False, sign=False)
        yield run_cross_entropy(rng, dtype, reached, x=x, target=np.array([2]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=50.0, help="stop drawing new cases after this long")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    reached = {"b broadcasts a (gradient summed)": 0, "whole-range values": 0}
    reached.update({f"layout {name}": 0 for name in LAYOUTS})
    reached.update({"0-d input": 0, "0-size input": 0})
    failures, run = [], 0
    started = time.monotonic()

    def cases():
        yield from named_cases(rng, reached)
        for _ in range(args.cases):
            if time.monotonic() - started > args.seconds:
                return
            yield random_case(rng, reached)

    with np.errstate(all="ignore"):  # the references' own float64 arithmetic; values are checked
        for what, check, layout in cases():
            run += 1
            reached[f"layout {layout}"] += 1
            reached["0-d input"] += " a()" in what or " x()" in what
            reached["0-size input"] += any(f"{s}0" in what for s in ("(", ", "))
            print(f"case {run}: {what}", file=sys.stderr, flush=True)
            try:
                check()
            except AssertionError as error:
                failures.append({"case": what, "error": str(error).splitlines()[0][:400]})
            except Exception as error:  # an undocumented exception is a finding too
                failures.append({"case": what, "error": f"{type(error).__name__}: {error}"[:400],
                                 "traceback": traceback.format_exc(limit=3)})
    summary = {"seed": args.seed, "cases": run, "failed": len(failures), "seconds": round(time.monotonic() - started, 1),
               "reached": reached, "failures": failures}
    print(json.dumps(summary))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
