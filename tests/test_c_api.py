"""The C / Cython API (logitloss/kernels.pxd, logitloss/include/logitloss.h, the capsule
logitloss._core.kernels_api).

test_cython_*: a Cython extension built at test time against the installed package
(tests/helpers/c_api_build.py) calls every function per row inside ``prange`` without the GIL; each
result must have the Python API's bits for the same rows, on every ISA target, whatever the
thread count. test_ctypes_*: the table's layout as logitloss.h states it, read without Cython.
(.ci/aarch64 deselects test_cython_*: no compiler in its emulated environment.)
"""

from __future__ import annotations

import ctypes
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import logitloss
from logitloss.testing import inputs

from .helpers.assertions import same_bits
from .helpers.c_api_build import build_consumers

DTYPES = (np.float32, np.float64)
# Around the vector widths, a chunk (2048), the stack scratch limit and a BCE segment (16384).
WIDTHS = (1, 3, 10, 17, 129, 1000, 2049, 20000)
THREADS = 4


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_consumers(tmp_path_factory.mktemp("c_api"))


@pytest.fixture(scope="module")
def consumer(built):
    return built.consumer


def edge_rows(n, dtype, seed):
    """Rows of width n: tricky_rows, extreme finite rows (+-3e38 / +-1e308, -inf masks), masked
    blocks, and rows with a nan, a +inf, +inf and -inf, all -inf."""
    special = np.full((4, n), 0.5)
    special[0, n // 2] = np.nan
    special[1, n // 3] = np.inf
    special[2, 0] = np.inf
    special[2, -1] = -np.inf
    special[3] = -np.inf
    rows = [inputs.tricky_rows(n, dtype, seed), inputs.extreme_finite_rows(dtype, n), special.astype(dtype)]
    if n >= 10:
        rows.append(inputs.masked_block_rows(n, dtype, seed))
    return np.ascontiguousarray(np.concatenate(rows))


def class_targets(x, seed):
    return np.random.default_rng(seed).integers(0, x.shape[1], x.shape[0]).astype(np.intp)


def assert_bits(ours, python, what):
    ours, python = np.asarray(ours), np.asarray(python)
    if same_bits(ours, python):
        return
    ours, python = np.atleast_1d(ours), np.atleast_1d(python)
    differ = ours.view(f"u{ours.itemsize}") != python.view(f"u{python.itemsize}")
    first = np.argwhere(differ)[:3].tolist()
    raise AssertionError(f"{what}: C API differs from the Python API at {first} "
                         f"(C {ours[differ][:3]}, Python {python[differ][:3]})")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", WIDTHS)
def test_cython_functions_match_python_api(consumer, isa, dtype, n):
    x = edge_rows(n, dtype, seed=n)
    rows = x.shape[0]
    for threads in (1, THREADS):
        lse = np.empty(rows, dtype)
        consumer.logsumexp_rows(x, lse, threads)
        assert_bits(lse, logitloss.logsumexp(x, axis=-1), f"logsumexp_row {isa} n={n} threads={threads}")
        for log, python in ((False, logitloss.softmax), (True, logitloss.log_softmax)):
            out = np.empty_like(x)
            consumer.softmax_rows(x, out, log, threads)
            assert_bits(out, python(x, axis=-1), f"{python.__name__}_row {isa} n={n}")

        target = class_targets(x, seed=n)
        loss, grad = np.empty(rows, dtype), np.empty_like(x)
        consumer.cross_entropy_rows(x, target, loss, grad, threads)
        python_loss, python_grad = logitloss.cross_entropy(x, target, reduction="none", return_grad=True)
        assert_bits(loss, python_loss, f"cross_entropy_row loss {isa} n={n}")
        assert_bits(grad, python_grad, f"cross_entropy_row grad {isa} n={n}")
        loss_only = np.empty(rows, dtype)
        consumer.cross_entropy_rows(x, target, loss_only, None, threads)
        assert_bits(loss_only, python_loss, f"cross_entropy_row without grad {isa} n={n}")

        y = inputs.binary_targets(x.shape, dtype, seed=n)
        loss, grad = np.empty(rows, dtype), np.empty_like(x)
        consumer.binary_cross_entropy_rows(x, y, loss, grad, threads)
        loss_only = np.empty(rows, dtype)
        consumer.binary_cross_entropy_rows(x, y, loss_only, None, threads)
        for i in range(rows):
            row_loss, row_grad = logitloss.binary_cross_entropy_with_logits(x[i], y[i], reduction="sum",
                                                                            return_grad=True)
            assert_bits(loss[i], np.asarray(row_loss, dtype), f"binary_cross_entropy_with_logits row {i} {isa} n={n}")
            assert_bits(grad[i], row_grad, f"binary_cross_entropy_with_logits grad row {i} {isa} n={n}")
            row_loss = logitloss.binary_cross_entropy_with_logits(x[i], y[i], reduction="sum")
            assert_bits(loss_only[i], np.asarray(row_loss, dtype),
                        f"binary_cross_entropy_with_logits without grad row {i} {isa} n={n}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", WIDTHS)
def test_cython_hessian_functions_match_python_api(consumer, isa, dtype, n):
    """cross_entropy_hessian_row / binary_cross_entropy_with_logits_hessian: the Python API's
    return_hessian=True bits (cross_entropy reduction='none', binary cross-entropy 'sum' per row)."""
    x = edge_rows(n, dtype, seed=n)
    rows = x.shape[0]
    target = class_targets(x, seed=n)
    y = inputs.binary_targets(x.shape, dtype, seed=n)
    for threads in (1, THREADS):
        loss, grad, hessian = np.empty(rows, dtype), np.empty_like(x), np.empty_like(x)
        consumer.hessian_rows(x, target, None, loss, grad, hessian, threads)
        python = logitloss.cross_entropy(x, target, reduction="none", return_hessian=True)
        for ours, theirs, what in zip((loss, grad, hessian), python, ("loss", "grad", "hessian")):
            assert_bits(ours, theirs, f"cross_entropy_hessian_row {what} {isa} n={n} threads={threads}")
        consumer.hessian_rows(x, target, y, loss, grad, hessian, threads)
        for i in range(rows):
            row_loss, row_grad, row_hessian = logitloss.binary_cross_entropy_with_logits(
                x[i], y[i], reduction="sum", return_hessian=True)
            assert_bits(loss[i], np.asarray(row_loss, dtype), f"bce hessian loss row {i} {isa} n={n}")
            assert_bits(grad[i], row_grad, f"bce hessian grad row {i} {isa} n={n}")
            assert_bits(hessian[i], row_hessian, f"bce hessian row {i} {isa} n={n}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cython_many_rows_many_threads(consumer, dtype):
    """10000 rows of 10 classes, one call per row from every thread at once: the same bits as the
    Python API's batched calls."""
    x = inputs.logits((10000, 10), dtype, seed=3)
    target = class_targets(x, seed=3)
    loss, grad = np.empty(x.shape[0], dtype), np.empty_like(x)
    consumer.cross_entropy_rows(x, target, loss, grad, THREADS)
    python_loss, python_grad = logitloss.cross_entropy(x, target, reduction="none", return_grad=True)
    assert_bits(loss, python_loss, "cross_entropy_row loss")
    assert_bits(grad, python_grad, "cross_entropy_row grad")
    out = np.empty_like(x)
    consumer.softmax_rows(x, out, True, THREADS)
    assert_bits(out, logitloss.log_softmax(x, axis=-1), "log_softmax_row")


def test_cython_prange_uses_threads(built):
    """With OpenMP, prange spreads the rows over several threads (the concurrency the tests above
    rely on); without it (no OpenMP in this compiler) the build says so and prange is serial."""
    ids = np.empty(64, np.intp)
    built.consumer.thread_ids(64, THREADS, ids)
    if not built.openmp:
        pytest.skip(f"compiler without OpenMP: prange ran serially ({built.log[-300:]})")
    assert len(set(ids.tolist())) == THREADS


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cython_in_place(consumer, dtype):
    """out = x for softmax / log_softmax, grad = x for the losses, as the Python API's grad_out=input."""
    x = edge_rows(129, dtype, seed=5)
    for log, python in ((False, logitloss.softmax), (True, logitloss.log_softmax)):
        work = x.copy()
        consumer.softmax_rows(work, work, log, THREADS)
        assert_bits(work, python(x, axis=-1), f"{python.__name__}_row in place")
    target = class_targets(x, seed=5)
    work, loss = x.copy(), np.empty(x.shape[0], dtype)
    consumer.cross_entropy_rows(work, target, loss, work, THREADS)
    python_loss, python_grad = logitloss.cross_entropy(x, target, reduction="none", return_grad=True)
    assert_bits(loss, python_loss, "cross_entropy_row in place")
    assert_bits(work, python_grad, "cross_entropy_row grad in place")
    y = inputs.binary_targets(x.shape, dtype, seed=5)
    work, loss = x.copy(), np.empty(x.shape[0], dtype)
    consumer.binary_cross_entropy_rows(work, y, loss, work, THREADS)
    # Against the out-of-place call, which test_cython_functions_match_python_api checks against Python.
    expected, expected_loss = np.empty_like(x), np.empty(x.shape[0], dtype)
    consumer.binary_cross_entropy_rows(x, y, expected_loss, expected, 1)
    assert_bits(loss, expected_loss, "binary_cross_entropy_with_logits loss, gradient in place")
    assert_bits(work, expected, "binary_cross_entropy_with_logits grad in place")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cython_empty_rows(consumer, dtype):
    """n == 0: logsumexp -inf and binary cross-entropy 0 (as the Python API); softmax writes
    nothing and cross-entropy has no valid target, so nan (the Python API raises for both)."""
    x = np.empty((3, 0), dtype)
    lse = np.zeros(3, dtype)
    consumer.logsumexp_rows(x, lse, THREADS)
    assert_bits(lse, logitloss.logsumexp(x, axis=-1), "logsumexp_row n=0")
    loss = np.zeros(3, dtype)
    consumer.binary_cross_entropy_rows(x, x, loss, np.empty_like(x), THREADS)
    assert_bits(loss, np.full(3, logitloss.binary_cross_entropy_with_logits(x[0], x[0], reduction="sum"), dtype),
                "binary_cross_entropy_with_logits n=0")
    consumer.cross_entropy_rows(x, np.zeros(3, np.intp), loss, np.empty_like(x), THREADS)
    assert np.isnan(loss).all()
    with pytest.raises(IndexError):
        logitloss.cross_entropy(x, np.zeros(3, np.intp), reduction="none")
    consumer.softmax_rows(x, np.empty_like(x), False, THREADS)  # nothing to write, nothing to fail


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cython_target_out_of_range(consumer, dtype):
    """A target outside [0, n) (-1, n, torch's ignore_index -100: the C API ignores nothing) gives a
    nan loss and an all-nan gradient for that row only; the Python API raises IndexError."""
    x = inputs.logits((4, 7), dtype, seed=1)
    target = np.array([-1, 7, -100, 2], np.intp)
    loss, grad = np.empty(4, dtype), np.empty_like(x)
    consumer.cross_entropy_rows(x, target, loss, grad, THREADS)
    assert np.isnan(loss[:3]).all() and np.isnan(grad[:3]).all()
    python_loss, python_grad = logitloss.cross_entropy(x[3:], target[3:], reduction="none", return_grad=True)
    assert_bits(loss[3:], python_loss, "the valid row")
    assert_bits(grad[3:], python_grad, "the valid row's gradient")
    with pytest.raises(IndexError):
        logitloss.cross_entropy(x, np.array([0, 7, 0, 0]), reduction="none")


def test_cython_negative_length(consumer):
    x, out = np.ones(4), np.full(4, 2.0)
    lse, ce, bce = consumer.negative_length(x, out)
    assert np.isnan([lse, ce, bce]).all()
    assert (out == 2.0).all(), "n < 0 wrote to the output"


def test_cython_calls_before_import_kernels_give_nan(built):
    """A module that never called import_kernels() gets nan (and nan outputs), not a crash."""
    x, out64 = np.arange(5.0), np.zeros(5)
    x32, out32 = x.astype(np.float32), np.zeros(5, np.float32)
    results = built.unimported.calls_before_import(x, out64, x32, out32)
    assert np.isnan(results).all()
    assert np.isnan(out64).all() and np.isnan(out32).all()
    outputs = [np.zeros(5), np.zeros(5), x32, np.zeros(5, np.float32), np.zeros(5, np.float32)]
    results = built.unimported.hessian_calls_before_import(x, *outputs[:2], *outputs[2:])
    assert np.isnan(results).all()
    assert all(np.isnan(out).all() for i, out in enumerate(outputs) if i != 2)


def _run_with_consumer(built, code):
    script = f"import sys; sys.path.insert(0, {str(built.folder)!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=built.folder)


def test_cython_abi_version_mismatch_fails_at_import(built):
    """A table of another ABI version (here a fake capsule put in place of the real one) stops the
    consumer's import with an ImportError that says to rebuild."""
    completed = _run_with_consumer(built, """
        import ctypes, logitloss, logitloss._core
        header = ctypes.c_uint32 * 32
        fake = header(999, ctypes.sizeof(header))
        new = ctypes.pythonapi.PyCapsule_New
        new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        logitloss._core.kernels_api = new(ctypes.addressof(fake), b"logitloss._core.kernels_api", None)
        try:
            import logitloss_c_api_consumer
        except ImportError as error:
            print("ImportError:", error)
        """)
    assert completed.returncode == 0, completed.stderr
    assert "ABI version 999" in completed.stdout and "rebuild it" in completed.stdout, completed.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc/self/task")
def test_cython_calls_never_start_the_thread_pool(built):
    """C API calls from many threads run on those threads: the extension's pool starts only when a
    Python call needs it (and the count shows it when it does)."""
    completed = _run_with_consumer(built, """
        import os, numpy as np, logitloss, logitloss_c_api_consumer as consumer
        tasks = lambda: len(os.listdir("/proc/self/task"))
        logitloss.set_num_threads(4)
        consumer.thread_ids(64, 4, np.empty(64, np.intp))  # OpenMP's threads, started once
        before = tasks()
        x = np.random.default_rng(0).standard_normal((2000, 1000)).astype(np.float32)
        for log in (False, True):
            consumer.softmax_rows(x, np.empty_like(x), log, 4)
        consumer.cross_entropy_rows(x, np.zeros(2000, np.intp), np.empty(2000, np.float32), np.empty_like(x), 4)
        consumer.binary_cross_entropy_rows(x, x, np.empty(2000, np.float32), np.empty_like(x), 4)
        after_c_api = tasks()
        logitloss.softmax(x, axis=-1)
        print(before, after_c_api, tasks())
        """)
    assert completed.returncode == 0, completed.stderr
    before, after_c_api, after_python = map(int, completed.stdout.split())
    assert after_c_api == before, "a C API call started threads"
    assert after_python > after_c_api, "the Python call did not start the pool: this test cannot see it"


# The table as logitloss.h declares it (the ctypes view a Rust or C user's binding would take).
_ROW = ctypes.c_ssize_t
_F32, _F64 = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_double)


class _KernelsApi(ctypes.Structure):
    _fields_ = [
        ("abi_version", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("logsumexp_row_f32", ctypes.CFUNCTYPE(ctypes.c_float, _F32, _ROW)),
        ("logsumexp_row_f64", ctypes.CFUNCTYPE(ctypes.c_double, _F64, _ROW)),
        ("cross_entropy_row_f32", ctypes.CFUNCTYPE(ctypes.c_float, _F32, _ROW, _ROW, _F32)),
        ("cross_entropy_row_f64", ctypes.CFUNCTYPE(ctypes.c_double, _F64, _ROW, _ROW, _F64)),
        ("softmax_row_f32", ctypes.CFUNCTYPE(None, _F32, _ROW, _F32)),
        ("softmax_row_f64", ctypes.CFUNCTYPE(None, _F64, _ROW, _F64)),
        ("log_softmax_row_f32", ctypes.CFUNCTYPE(None, _F32, _ROW, _F32)),
        ("log_softmax_row_f64", ctypes.CFUNCTYPE(None, _F64, _ROW, _F64)),
        ("binary_cross_entropy_with_logits_f32", ctypes.CFUNCTYPE(ctypes.c_float, _F32, _F32, _ROW, _F32)),
        ("binary_cross_entropy_with_logits_f64", ctypes.CFUNCTYPE(ctypes.c_double, _F64, _F64, _ROW, _F64)),
        ("cross_entropy_hessian_row_f32", ctypes.CFUNCTYPE(ctypes.c_float, _F32, _ROW, _ROW, _F32, _F32)),
        ("cross_entropy_hessian_row_f64", ctypes.CFUNCTYPE(ctypes.c_double, _F64, _ROW, _ROW, _F64, _F64)),
        ("binary_cross_entropy_with_logits_hessian_f32",
         ctypes.CFUNCTYPE(ctypes.c_float, _F32, _F32, _ROW, _F32, _F32)),
        ("binary_cross_entropy_with_logits_hessian_f64",
         ctypes.CFUNCTYPE(ctypes.c_double, _F64, _F64, _ROW, _F64, _F64)),
    ]


HEADER = pathlib.Path(logitloss.get_include()) / "logitloss.h"


def _table():
    capsule = logitloss._core.kernels_api
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return _KernelsApi.from_address(get(capsule, b"logitloss._core.kernels_api"))


def test_ctypes_table_layout_matches_header():
    """abi_version and size as logitloss.h says, and the header's fields are the ctypes mirror's, in order."""
    text = HEADER.read_text()
    version = int(re.search(r"#define LOGITLOSS_KERNELS_ABI_VERSION (\d+)", text).group(1))
    struct = re.search(r"typedef struct logitloss_kernels_api \{(.*?)\} logitloss_kernels_api;", text, re.S).group(1)
    struct = re.sub(r"/\*.*?\*/", "", struct, flags=re.S)
    fields = re.findall(r"\(\*(\w+)\)|\b(\w+);", struct)
    assert [a or b for a, b in fields] == [name for name, _ in _KernelsApi._fields_]
    table = _table()
    assert table.abi_version == version
    assert table.size == ctypes.sizeof(_KernelsApi)


def test_ctypes_calls_match_python_api():
    """Each function through the raw table (no Cython), on one row per dtype."""
    table = _table()
    for dtype, suffix, pointer in ((np.float32, "f32", _F32), (np.float64, "f64", _F64)):
        x = inputs.logits(37, dtype, seed=2)
        p = lambda a: a.ctypes.data_as(pointer)  # noqa: E731
        assert_bits(np.asarray(getattr(table, f"logsumexp_row_{suffix}")(p(x), 37), dtype), logitloss.logsumexp(x),
                    "logsumexp_row")
        for name, python in (("softmax_row", logitloss.softmax), ("log_softmax_row", logitloss.log_softmax)):
            out = np.empty_like(x)
            getattr(table, f"{name}_{suffix}")(p(x), 37, p(out))
            assert_bits(out, python(x), name)
        grad = np.empty_like(x)
        loss = getattr(table, f"cross_entropy_row_{suffix}")(p(x), 37, 5, p(grad))
        python_loss, python_grad = logitloss.cross_entropy(x, np.int64(5), reduction="none", return_grad=True)
        assert_bits(np.asarray(loss, dtype), python_loss, "cross_entropy_row")
        assert_bits(grad, python_grad, "cross_entropy_row grad")
        y = inputs.binary_targets(37, dtype, seed=2)
        loss = getattr(table, f"binary_cross_entropy_with_logits_{suffix}")(p(x), p(y), 37, None)
        python_loss = logitloss.binary_cross_entropy_with_logits(x, y, reduction="sum")
        assert_bits(np.asarray(loss, dtype), np.asarray(python_loss, dtype), "binary_cross_entropy_with_logits")
        grad, hessian = np.empty_like(x), np.empty_like(x)
        loss = getattr(table, f"cross_entropy_hessian_row_{suffix}")(p(x), 37, 5, p(grad), p(hessian))
        python = logitloss.cross_entropy(x, np.int64(5), reduction="none", return_hessian=True)
        assert_bits(np.asarray(loss, dtype), python[0], "cross_entropy_hessian_row")
        assert_bits(grad, python[1], "cross_entropy_hessian_row grad")
        assert_bits(hessian, python[2], "cross_entropy_hessian_row hessian")
        loss = getattr(table, f"binary_cross_entropy_with_logits_hessian_{suffix}")(p(x), p(y), 37, p(grad), p(hessian))
        python = logitloss.binary_cross_entropy_with_logits(x, y, reduction="sum", return_hessian=True)
        assert_bits(np.asarray(loss, dtype), np.asarray(python[0], dtype), "binary_cross_entropy_with_logits_hessian")
        assert_bits(grad, python[1], "binary_cross_entropy_with_logits_hessian grad")
        assert_bits(hessian, python[2], "binary_cross_entropy_with_logits_hessian hessian")
        # the Hessian needs the gradient: without it, nan
        hessian.fill(0)
        loss = getattr(table, f"cross_entropy_hessian_row_{suffix}")(p(x), 37, 5, None, p(hessian))
        assert np.isnan(loss) and np.isnan(hessian).all()
        hessian.fill(0)
        loss = getattr(table, f"binary_cross_entropy_with_logits_hessian_{suffix}")(p(x), p(y), 37, None, p(hessian))
        assert np.isnan(loss) and np.isnan(hessian).all()
