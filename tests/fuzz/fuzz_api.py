"""Coverage-guided fuzzing of logitloss's public Python API with atheris (libFuzzer).

    pip install atheris
    python tests/fuzz/fuzz_api.py -max_total_time=600 -rss_limit_mb=4096 CORPUS_DIR [SEED_DIR ...]

Against the AddressSanitizer + UndefinedBehaviorSanitizer build (.ci/sanitize), preload the
sanitizer runtimes as that script does, with ASAN_OPTIONS=detect_leaks=0, and give the corpus of
a normal run as a seed: there the fuzzer mutates unguided (GCC's sanitizer runtime takes the
coverage callbacks), so replaying a guided corpus is what reaches the deep cases.

Each input picks one function and builds its arguments from the fuzzer's bytes: shapes up to 4-d
(axes of length 0 to 70), dtypes (float16/32/64, integers, bool; sometimes complex, object,
strings), values (normal, huge, tiny, +-inf, nan, -inf masks), layouts (transposed, negative and
zero strides, offset and misaligned views, non-native byte order, read-only), and every kind of
argument (axis as None / int / tuple / out of range / repeated, b, keepdims, return_sign,
return_grad, out= and grad_out= right or wrong or aliased, class targets in and out of range,
probability targets, weights, reductions, label_smoothing, ignore_index; binary targets of any
real dtype, weight and pos_weight broadcasting or not).

Accepted: a result, or TypeError / ValueError (numpy's AxisError included) / IndexError. Anything
else (another exception, a warning, a crash) is a finding. Each result is also checked: finite
wherever the exact answer is (finite inputs of moderate range, a non-empty reduction, positive
weights), with the shape and dtype of the same call on contiguous native copies of the arguments
and within a loose tolerance of its values (layouts must not change answers), and the inputs are
left unchanged. The coverage that guides the fuzzer is this file's and the package's Python code
(the compiled kernels are built by GCC, which cannot emit libFuzzer's coverage).

Not collected by pytest (the file name does not start with test_).
"""

from __future__ import annotations

import sys
import warnings

import atheris
import numpy as np

with atheris.instrument_imports():
    import logitloss

DOCUMENTED = (TypeError, ValueError, IndexError)  # AxisError is a ValueError and an IndexError
FLOAT_DTYPES = (np.float16, np.float32, np.float64)
OTHER_DTYPES = (np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_)
NONSENSE_DTYPES = (np.complex64, object, "U2", "M8[s]")
FUNCTIONS = (
    "logsumexp", "softmax", "log_softmax", "logsumexp_backward", "softmax_backward", "log_softmax_backward",
    "cross_entropy", "cross_entropy_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
)
REDUCTIONS = ("mean", "sum", "none", "avg", None)
MAX_ELEMENTS = 20_000
NUMPY_DEFAULT_ERRSTATE = {"divide": "warn", "over": "warn", "invalid": "warn", "under": "ignore"}


class Draw:
    """Typed choices from the fuzzer's bytes."""

    def __init__(self, data):
        self.fdp = atheris.FuzzedDataProvider(data)

    def int(self, lo, hi):
        return self.fdp.ConsumeIntInRange(lo, hi)

    def bool(self):
        return self.fdp.ConsumeBool()

    def pick(self, values):
        return values[self.fdp.ConsumeIntInRange(0, len(values) - 1)]

    def shape(self, ndim=None):
        """Up to 4 axes of length 0 to 70, at most MAX_ELEMENTS elements (a fast run)."""
        ndim = self.int(0, 4) if ndim is None else ndim
        shape = [self.pick((0, 1, 2, 3, 5, 8, 17, 33, 70)) if self.int(0, 9) == 0 else self.int(1, 9)
                 for _ in range(ndim)]
        while int(np.prod(shape)) > MAX_ELEMENTS:
            shape[int(np.argmax(shape))] //= 2
        return tuple(shape)

    def dtype(self):
        roll = self.int(0, 19)
        if roll < 15:
            return np.dtype(FLOAT_DTYPES[roll % 3])
        if roll < 19:
            return np.dtype(self.pick(OTHER_DTYPES))
        return np.dtype(self.pick(NONSENSE_DTYPES))

    @atheris.instrument_func
    def values(self, shape, dtype, kind=None):
        """An array of `shape` in `dtype` of one value family (normal logits unless told)."""
        rng = np.random.default_rng(self.int(0, 2**32 - 1))
        kind = self.int(0, 7) if kind is None else kind
        scale = (1.0, 4.0, 30.0, 1e4, 1e30, 1e300, 1e-30, 1.0)[kind]
        x = np.asarray(scale * rng.standard_normal(shape))
        if kind == 7 and x.size:  # specials sprinkled in
            specials = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e308, -1e308])
            where = rng.random(shape) < 0.3
            x[where] = rng.choice(specials, size=int(where.sum()))
        if self.bool() and x.size:  # a -inf mask
            x[rng.random(shape) < 0.4] = -np.inf
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dtype.kind in "biu":  # (np.clip of a 0-d array gives a NumPy scalar)
                return np.asarray(np.clip(np.nan_to_num(x), -100, 100)).astype(dtype)
            if dtype.kind in "fc":
                return x.astype(dtype)
            return np.zeros(shape).astype(dtype)

    @atheris.instrument_func
    def layout(self, a):
        """`a`'s values in some memory layout (or `a` itself)."""
        choice = self.int(0, 8)
        if a.ndim == 0 or choice == 0:
            return a
        if choice == 1:
            return np.asfortranarray(a)
        if choice == 2:  # one element into a bigger buffer
            return np.concatenate([a[..., :1], a], axis=-1)[..., 1:]
        if choice == 3:  # negative strides, same values
            return a[(slice(None, None, -1),) * a.ndim].copy()[(slice(None, None, -1),) * a.ndim]
        if choice == 4:  # every other element of a wider array
            wide = np.repeat(a, 2, axis=-1)
            return wide[..., ::2]
        if choice == 5 and a.dtype.kind in "fiub":  # misaligned
            buffer = bytearray(a.nbytes + 1)
            view = np.frombuffer(buffer, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
            view[...] = a
            return view
        if choice == 6 and a.dtype.kind in "fiu":
            return a.astype(a.dtype.newbyteorder())
        if choice == 7:
            frozen = a.copy()
            frozen.flags.writeable = False
            return frozen
        if choice == 8 and a.shape[0] > 0:  # zero strides: the first row broadcast (read-only)
            return np.broadcast_to(a[:1], a.shape)
        return a

    @atheris.instrument_func
    def axis(self, ndim):
        choice = self.int(0, 7)
        if choice == 0 or ndim == 0:
            return None if choice < 6 else self.int(-2, 1)
        if choice <= 3:
            return self.int(-ndim, ndim - 1)
        if choice <= 5:
            axes = [a for a in range(ndim) if self.bool()]
            return tuple(a - ndim if self.bool() else a for a in axes)
        if choice == 6:
            return self.int(-ndim - 2, ndim + 1)  # maybe out of range
        return (self.int(0, ndim - 1),) * 2 if self.bool() else self.pick((1.0, "0", True, (0, 0.5)))


def contiguous(value):
    """The same argument as a plain C-contiguous native array (or the value itself)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
        return value.astype(value.dtype.newbyteorder("="), order="C")  # (ascontiguousarray makes 0-d 1-d)
    return value


def as_parts(result):
    return result if isinstance(result, tuple) else (result,)


def moderate(a, dtype, n):
    """Finite, and small enough that no exact answer built from it and n-element sums overflows."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        return False
    a = a.astype(np.float64)
    top = float(np.finfo(dtype if np.dtype(dtype).kind == "f" else np.float64).max)
    return a.size > 0 and bool(np.isfinite(a).all()) and float(np.abs(a).max()) <= (top / (100.0 * max(n, 1))) ** 0.5


def axes_of(axis, ndim):
    """The reduced axes, or None if `axis` is not a valid axis argument for `ndim` dimensions."""
    axes = tuple(range(ndim)) if axis is None else axis if isinstance(axis, tuple) else (axis,)
    if not all(type(a) is int and -ndim <= a < ndim for a in axes):
        return None
    return {a % ndim for a in axes}


def input_scale(kwargs):
    """The largest finite magnitude among the float arguments (for absolute error allowances)."""
    scale = 1.0
    for value in kwargs.values():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size:
            finite = np.abs(value[np.isfinite(value)].astype(np.float64))
            scale = max(scale, float(finite.max()) if finite.size else 0.0)
    return scale


@atheris.instrument_func  # this file's branches guide the fuzzer too
def build_call(draw):
    """(name, kwargs, finite_expected): one call, with whether its exact answer is finite."""
    name = draw.pick(FUNCTIONS)
    dtype = draw.dtype()
    shape = draw.shape()
    x = draw.values(shape, dtype)
    kwargs = {}
    finite = dtype.kind in "fiub" and moderate(x, dtype, x.size)
    if name in ("logsumexp", "softmax", "log_softmax", "logsumexp_backward"):
        axis = draw.axis(x.ndim)
        kwargs["axis"] = axis
        finite = finite and axes_of(axis, max(x.ndim, 1)) is not None
    if name in ("logsumexp", "logsumexp_backward"):
        key = "a"
        if draw.int(0, 3) == 0:
            b = draw.values(shape if draw.bool() else shape[1:], draw.dtype(), kind=draw.int(0, 7))
            kwargs["b"] = draw.layout(b)
            # Any finite positive weights, huge and tiny ones included: the exact value
            # log(sum b exp(a)) <= log(n max b) + max a and the gradient (<= 1) stay finite.
            finite = finite and b.dtype.kind in "fiub" and b.size > 0 and bool((np.asarray(b) > 0).all())
            finite = finite and bool(np.isfinite(np.asarray(b, dtype=np.float64)).all())
        kwargs["keepdims"] = draw.bool()
        if name == "logsumexp":
            kwargs["return_sign"] = draw.bool()
            kwargs["return_grad"] = draw.bool()
        else:
            reduced = axes_of(kwargs["axis"], len(shape)) or set(range(len(shape)))
            kept = tuple(n for i, n in enumerate(shape) if i not in reduced)
            g_shape = kept if draw.int(0, 7) else draw.shape()
            kwargs["grad_output"] = draw.layout(draw.values(g_shape, dtype, kind=0))
            finite = finite and moderate(kwargs["grad_output"], dtype, x.size)
    elif name in ("softmax", "log_softmax"):
        key = "x"
        if draw.int(0, 3) == 0:
            out_dtype = dtype if draw.int(0, 3) else draw.dtype()
            out_shape = shape if draw.int(0, 3) else draw.shape()
            kwargs["out"] = "x" if draw.int(0, 3) == 0 else np.zeros(out_shape, out_dtype)
    elif name in ("softmax_backward", "log_softmax_backward"):
        key = "output"
        kwargs["axis"] = draw.axis(x.ndim)
        kwargs["grad_output"] = draw.layout(draw.values(shape if draw.int(0, 7) else draw.shape(), draw.dtype(), kind=0))
        finite = finite and moderate(kwargs["grad_output"], dtype, x.size) and axes_of(kwargs["axis"], x.ndim) is not None
        if name == "log_softmax_backward":
            finite = finite and bool((np.asarray(x, dtype=np.float64) <= 0).all())
    elif name.startswith("binary_cross_entropy"):
        key = "input"
        # Targets of the input's shape (sometimes not), any real dtype, usually in [0, 1]; weight and
        # pos_weight of a trailing part of the shape (broadcasting), sometimes of a wrong one.
        target_shape = shape if draw.int(0, 7) else draw.shape()
        target = draw.values(target_shape, draw.dtype(), kind=0)
        if target.dtype.kind == "f" and draw.int(0, 3):
            with np.errstate(all="ignore"):
                target = np.clip(np.nan_to_num(np.abs(target)), 0, 1).astype(target.dtype)
        kwargs["target"] = draw.layout(target)
        for operand in ("weight", "pos_weight"):
            if draw.bool():
                operand_shape = shape[len(shape) - draw.int(0, len(shape)):] if draw.int(0, 7) else draw.shape()
                value = draw.values(tuple(n if draw.int(0, 3) else 1 for n in operand_shape), draw.dtype(), kind=0)
                if value.dtype.kind in "fiu" and draw.int(0, 3):
                    with np.errstate(all="ignore"):
                        value = (np.abs(value) % 8 + 0.25).astype(value.dtype)
                kwargs[operand] = draw.layout(value)
                finite = finite and value.dtype.kind in "fiub" and bool((np.asarray(value) >= 0).all())
                finite = finite and moderate(value, dtype, x.size)
        kwargs["reduction"] = draw.pick(REDUCTIONS)
        finite = finite and dtype.kind == "f" and target.dtype.kind in "fiub" and x.size > 0
        finite = finite and bool(np.isfinite(np.asarray(target, dtype=np.float64)).all())
        finite = finite and bool(((np.asarray(target, dtype=np.float64) >= 0) & (np.asarray(target) <= 1)).all())
        if name == "binary_cross_entropy_with_logits":
            kwargs["return_grad"] = draw.bool()
            if draw.int(0, 4) == 0:
                kwargs["grad_out"] = "input" if draw.bool() else np.zeros(shape if draw.int(0, 3) else draw.shape(), dtype)
        else:
            g_shape = shape if kwargs["reduction"] == "none" and draw.int(0, 5) else ()
            kwargs["grad_output"] = draw.values(g_shape, dtype, kind=0)
            finite = finite and moderate(kwargs["grad_output"], dtype, x.size)
    else:
        key = "input"
        classes = shape[1] if len(shape) > 1 else (shape[0] if shape else 0)
        kept = (shape[0],) + shape[2:] if len(shape) > 1 else ()
        if draw.int(0, 3) == 0:  # probability targets
            target = draw.values(shape, np.dtype(draw.pick(FLOAT_DTYPES)), kind=0)
            with np.errstate(all="ignore"):
                target = np.abs(target) / max(1.0, float(np.abs(target).sum()))
        else:
            hi = max(classes - 1, 0) + (draw.int(0, 3) == 0)
            target = np.array(np.random.default_rng(draw.int(0, 99)).integers(-1 if draw.bool() else 0, hi + 1, kept))
            target = target.astype(draw.pick((np.int64, np.int32, np.uint8, np.int8, np.float32)) if draw.int(0, 5) == 0
                                    else np.int64)
        kwargs["target"] = draw.layout(target)
        if draw.bool():
            weight = draw.values((classes if draw.int(0, 7) else draw.int(0, 5),), dtype, kind=0)
            if weight.dtype.kind in "fiu":
                with np.errstate(all="ignore"):
                    weight = (np.abs(weight) + 0.5).astype(weight.dtype)
            kwargs["weight"] = draw.layout(weight)
            finite = finite and weight.dtype.kind in "fiub" and moderate(weight, dtype, x.size)
        kwargs["ignore_index"] = draw.pick((-100, -1, 0, 1, 2**40, 1.5))
        kwargs["reduction"] = draw.pick(REDUCTIONS)
        kwargs["label_smoothing"] = draw.pick((0.0, 0.1, 1.0, -0.1, 2.0, float("nan")))
        finite = finite and dtype.kind == "f" and len(shape) >= 1 and classes > 0
        if name == "cross_entropy":
            kwargs["return_grad"] = draw.bool()
            if draw.int(0, 4) == 0:
                kwargs["grad_out"] = "input" if draw.bool() else np.zeros(shape if draw.int(0, 3) else draw.shape(), dtype)
        else:
            g_shape = kept if kwargs["reduction"] == "none" and draw.int(0, 5) else ()
            kwargs["grad_output"] = draw.values(g_shape, dtype, kind=0)
        # mean over index targets: nan when every kept weight is 0 or every target ignored
        finite = finite and kwargs["reduction"] != "mean" and moderate(kwargs.get("grad_output", 1.0), dtype, x.size)
        finite = finite and (target.dtype.kind != "f" or moderate(target, dtype, x.size))
    kwargs[key] = draw.layout(x)
    # The result dtype may be narrower than an argument's (uint8 output, float16 grad_output: float16).
    values = [v for k, v in kwargs.items() if isinstance(v, np.ndarray) and v.dtype.kind in "fiub"
              and k not in ("out", "grad_out", "b") and not (k == "target" and v.dtype.kind in "iu")]
    if finite and values:
        result_dtype = np.result_type(*values)
        result_dtype = result_dtype if result_dtype.kind == "f" else np.dtype(np.float64)
        finite = all(moderate(v, result_dtype, x.size) for v in values)
    return name, key, kwargs, finite


def call(name, key, kwargs):
    """Call logitloss.<name> with kwargs; "x"/"input" in out=/grad_out= stand for the input array."""
    kwargs = dict(kwargs)
    for alias_key in ("out", "grad_out"):
        if isinstance(kwargs.get(alias_key), str):
            kwargs[alias_key] = kwargs[key]
    positional = {"logsumexp_backward": ("grad_output", "a"), "softmax_backward": ("grad_output", "output"),
                  "log_softmax_backward": ("grad_output", "output"), "cross_entropy": ("input", "target"),
                  "cross_entropy_backward": ("grad_output", "input", "target"),
                  "binary_cross_entropy_with_logits": ("input", "target"),
                  "binary_cross_entropy_with_logits_backward": ("grad_output", "input", "target")}.get(name, (key,))
    args = [kwargs.pop(p) for p in positional]
    return getattr(logitloss, name)(*args, **kwargs)


def tolerance(dtype):
    return {np.dtype(np.float16): 2e-2, np.dtype(np.float32): 1e-4}.get(np.dtype(dtype), 1e-9)


@atheris.instrument_func
def check_same(got, expected, allowance, what):
    """Same shape and dtype; unless `allowance` is None, nan and inf in the same places and finite
    values within a loose relative tolerance plus `allowance` eps (row and column kernels may round
    differently)."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape and got.dtype == expected.dtype, (what, got.shape, expected.shape)
    if allowance is None:  # shape and dtype only
        return
    if got.dtype.kind != "f":
        assert np.array_equal(got, expected), what
        return
    g, e = got.astype(np.float64), expected.astype(np.float64)
    same_class = (np.isnan(g) == np.isnan(e)) & (np.isinf(g) == np.isinf(e))
    assert same_class.all(), (what, "nan/inf positions differ", g[~same_class][:4], e[~same_class][:4])
    finite = np.isfinite(e)
    scale = np.abs(e[finite]).max() if finite.any() else 0.0
    bound = tolerance(got.dtype) * (np.abs(e[finite]) + 1e-3 * scale) + allowance * np.finfo(got.dtype).eps + 1e-300
    close = np.abs(g[finite] - e[finite]) <= bound
    assert close.all(), (what, "values differ", g[finite][~close][:4], e[finite][~close][:4])


@atheris.instrument_func
def TestOneInput(data):
    with np.errstate(all="ignore"):  # the harness's own arithmetic; the library runs under "error"
        check_one_call(Draw(data))


def check_one_call(draw):
    name, key, kwargs, finite = build_call(draw)
    aliased = isinstance(kwargs.get("out"), str) or isinstance(kwargs.get("grad_out"), str)
    saved = {k: v.copy() for k, v in kwargs.items() if isinstance(v, np.ndarray)}
    with warnings.catch_warnings(), np.errstate(**NUMPY_DEFAULT_ERRSTATE):
        warnings.simplefilter("error")  # the library must not warn (NumPy's defaults)
        try:
            result = call(name, key, kwargs)
        except DOCUMENTED:
            return
    for k, before in saved.items():
        if k in ("out", "grad_out") or (aliased and k == key):
            continue
        assert np.array_equal(kwargs[k], before, equal_nan=True), f"{name} modified its argument {k}"
    if finite:
        for part in as_parts(result):
            assert np.isfinite(np.asarray(part, dtype=np.float64)).all(), (name, "not finite", kwargs)
    if aliased:
        return
    plain = {k: contiguous(v) for k, v in kwargs.items()}
    for alias_key in ("out", "grad_out"):
        if isinstance(plain.get(alias_key), np.ndarray):
            plain[alias_key] = np.zeros_like(plain[alias_key])
    with warnings.catch_warnings(), np.errstate(**NUMPY_DEFAULT_ERRSTATE):
        warnings.simplefilter("error")
        expected = call(name, key, plain)
    # Values are compared where the answer is well defined: a signed sum (b < 0) cancels (its value
    # is as ill-conditioned as the cancellation), and inf or nan anywhere but -inf masks in the main
    # input make inf * 0 and inf - inf, whose nan-or-inf depends on the order of operations.
    cancels = "b" in kwargs and np.asarray(kwargs["b"]).dtype.kind in "fiu" and bool((np.asarray(kwargs["b"]) < 0).any())
    well_defined = not cancels and all(
        not (isinstance(v, np.ndarray) and v.dtype.kind == "f")
        or bool(np.isfinite(v).all() if k != key else (np.isfinite(v) | (v == -np.inf)).all())
        for k, v in kwargs.items() if k not in ("out", "grad_out"))
    scale = input_scale(kwargs)
    allowance = 64 * (scale * scale if "backward" in name else scale)
    for k, (got, want) in enumerate(zip(as_parts(result), as_parts(expected), strict=True)):
        check_same(got, want, allowance if well_defined else None, f"{name} result {k}")


def main():
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
