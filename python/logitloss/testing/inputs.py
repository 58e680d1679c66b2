"""Deterministic inputs of the tests and the benchmark: logits, targets, weights, upstream gradients,
and every memory layout a caller can hand logitloss.

Every generator takes an explicit seed, so a failing case can be re-created from its test id (or a
benchmark row from its shape), and so the exact references (cached by content) are computed once per
input and shared by every ISA a test suite runs on.
"""

from __future__ import annotations

import math

import numpy as np

FLOAT_DTYPES = (np.float16, np.float32, np.float64)

# Sizes around the vector widths of every target (float64x2 .. float32x16, times up to four
# accumulators), so the masked tails and the accumulator merge are all exercised.
VECTOR_WIDTH_SIZES = (1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129)

# Realistic vocabulary widths: Llama-2 (32000), GPT-2 (50257), Llama-3 (128256).
VOCAB_SIZES = (32000, 50257, 128256)


# Logits are drawn this many at a time: no float64 copy of a 524 MB input (the stream is the same as
# one draw).
_DRAW_CHUNK = 1 << 22


def logits(shape, dtype=np.float32, seed=0, *, spread=4.0, offset=0.0):
    """C-contiguous normal logits ``offset + spread * N(0, 1)`` drawn in float64 from
    ``np.random.default_rng(seed)`` and rounded to ``dtype``.  ``spread = 4`` gives a range of about 36
    between the largest and smallest logit of a 32000-wide row, like the logits of a trained language
    model."""
    rng = np.random.default_rng(seed)
    result = np.empty(shape, dtype=dtype)
    flat = result.reshape(-1)
    for start in range(0, flat.size, _DRAW_CHUNK):
        stop = min(start + _DRAW_CHUNK, flat.size)
        flat[start:stop] = offset + spread * rng.standard_normal(stop - start)
    return result


def tricky_rows(n, dtype, seed):
    """Rows of length ``n`` that stress a SIMD kernel at every width, in ``dtype``.

    row 0: plain normal logits;
    row 1: the maximum in the very last element (the masked tail must see it);
    row 2: the maximum in the first element and every other entry far below it
           (large ``|a - max|``: exp arguments near the bottom of the range);
    row 3: roughly half the entries -inf (a mask), including the last one when n > 1;
    row 4: a tie: the maximum repeated three times (or n times if n < 3), rest below.
    """
    rng = np.random.default_rng(seed)
    limit = 20.0 if dtype == np.float16 else 40.0
    rows = np.empty((5, n), dtype=np.float64)
    rows[0] = 3.0 * rng.standard_normal(n)
    rows[1] = 3.0 * rng.standard_normal(n)
    rows[1, -1] = rows[1].max() + 1.5
    rows[2] = -rng.uniform(1.0, limit, n)
    rows[2, 0] = 0.25
    rows[3] = 2.0 * rng.standard_normal(n)
    if n > 1:
        mask = rng.random(n) < 0.5
        mask[-1] = True
        mask[0] = False
        rows[3, mask] = -np.inf
    rows[4] = rng.uniform(-6.0, 1.0, n)
    ties = rng.choice(n, size=min(3, n), replace=False)
    rows[4, ties] = 1.5
    return rows.astype(dtype)


def negative_stride_view(x):
    """A view of ``x`` with every axis reversed (negative strides everywhere)."""
    return x[(slice(None, None, -1),) * x.ndim]


def misaligned_copy(x):
    """A copy of ``x`` whose data pointer is NOT aligned to its itemsize (numpy flags it unaligned)."""
    x = np.ascontiguousarray(x)
    buffer = bytearray(x.nbytes + 1)
    view = np.frombuffer(buffer, dtype=x.dtype, count=x.size, offset=1).reshape(x.shape)
    view[...] = x
    assert not view.flags.aligned or x.itemsize == 1
    return view


def empty_at_offset(shape, dtype, offset_bytes):
    """An uninitialized C-contiguous array whose data starts `offset_bytes` past a 64-byte boundary
    (a cache line / AVX-512 vector): NumPy's large arrays start 16 bytes past one."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    raw = np.empty(size * itemsize + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset_bytes
    out = raw[start : start + size * itemsize].view(dtype).reshape(shape)
    assert out.ctypes.data % 64 == offset_bytes
    return out


def big_endian_copy(x):
    """A copy of ``x`` in non-native (big-endian) byte order with the same values."""
    return np.asarray(x).astype(np.asarray(x).dtype.newbyteorder(">"))


def strided_views(base):
    """Named (view, axis) pairs over a 2-D ``base``: every layout a caller can hand us.

    Each view is reduced over the axis given, and its values are ``np.ascontiguousarray(view)``.
    """
    wide = np.repeat(base, 2, axis=1)  # every other column of this is `base` again
    return {
        "contiguous": (base, -1),
        "transposed": (base.T, 0),
        "fortran": (np.asfortranarray(base), 1),
        "column_step2": (wide[:, ::2], 1),
        "negative_strides": (negative_stride_view(base), 1),
        "row_step3_neg": (base[::-3, ::-1], 1),
        "offset_by_one": (base[:, 1:], 1),
        "misaligned": (misaligned_copy(base), 1),
        "big_endian": (big_endian_copy(base), 1),
        "broadcast_rows": (np.broadcast_to(base[:1], base.shape), 1),
        "axis0_of_c_order": (base, 0),
    }


def extreme_finite_rows(dtype, n):
    """Rows of length ``n`` with extreme finite values (and -inf masks) in ``dtype``.

    +-1e4 (saturates a naive exp), +-huge (``a - max`` overflows to -inf), all equal to the dtype's
    max (``max + log n`` must round to max, not overflow), -inf masks, a single finite entry.
    """
    big = 1e4
    huge = {np.float16: 6e4, np.float32: 3e38, np.float64: 1e308}[dtype]
    top = float(np.finfo(dtype).max)
    rng = np.random.default_rng(n)
    rows = [
        np.full(n, big),
        np.where(np.arange(n) % 2 == 0, big, -big),
        np.full(n, -big),
        np.where(np.arange(n) == n // 2, huge, -huge),
        np.full(n, -huge),
        np.full(n, top),
        np.where(rng.random(n) < 0.5, -np.inf, rng.standard_normal(n)),
        np.concatenate([[-np.inf] * (n - 1), [0.5]]),
    ]
    return np.array(rows).astype(dtype)


def masked_block_rows(n, dtype, seed):
    """Long rows (n of several thousand) with whole blocks masked by -inf, so a kernel that splits
    a row into chunks (across threads or for a two-level reduction) sees all -inf chunks:
    a masked prefix, a masked suffix, a masked middle, and a single finite entry."""
    rng = np.random.default_rng(seed)
    rows = 3.0 * rng.standard_normal((4, n))
    rows[0, : (2 * n) // 3] = -np.inf
    rows[1, n // 3 :] = -np.inf
    rows[2, n // 5 : (4 * n) // 5] = -np.inf
    rows[3, :] = -np.inf
    rows[3, n - 7] = 1.25
    return rows.astype(dtype)


CHUNK = 2048  # kRowChunk: a row's unit of reduction
# Spikes high enough that a chunk whose max missed one overflows its sum (the lanes hold
# exp(x - max) * 2^64 in float, * 2^512 in double): an error no tolerance can absorb.
SPIKE = {np.float16: 100.0, np.float32: 100.0, np.float64: 1000.0}


def spikes_across_chunks(n, dtype, value):
    """Rows of n logits, each with `value` at one position: both sides of each chunk boundary,
    and the last element of each vector pair (32 floats) and of the row. A chunk's max is taken
    while the chunk before it is summed, except for the elements past its last whole vector pair
    at the end of a row; a row's first chunk has a pass of its own."""
    positions = sorted({p for c in range(0, n, CHUNK) for p in (c - 1, c, c + 31, c + 32, n - 9, n - 1) if 0 <= p < n})
    x = logits((len(positions), n), dtype, seed=n)
    for row, p in enumerate(positions):
        x[row, p] = value
    return x, positions


# ---- targets, weights and upstream gradients of the losses -------------------------------------

# Every integer dtype a class-index target may come in (torch: int64 and uint8 only; logitloss: all).
TARGET_DTYPES = (np.int64, np.int32, np.uint8, np.int16, np.uint16, np.int8, np.uint32, np.uint64)


def classes_of(input_shape):
    """The class count of cross-entropy logits: axis 1, or axis 0 of a 1-D input."""
    return input_shape[0] if len(input_shape) == 1 else input_shape[1]


def target_shape(input_shape):
    """The index-target shape: () for 1-D input, else (N, d1..dk)."""
    return () if len(input_shape) == 1 else (input_shape[0],) + tuple(input_shape[2:])


def target_dtype_for(seed, classes, ignore_index):
    """The seed-th integer dtype (cycling) that holds every class, and the ignore_index when that
    is a class (a negative ignore_index in an unsigned dtype simply never occurs)."""
    for k in range(len(TARGET_DTYPES)):
        dtype = np.dtype(TARGET_DTYPES[(seed + k) % len(TARGET_DTYPES)])
        info = np.iinfo(dtype)
        if info.max >= classes - 1:
            return dtype
    raise AssertionError("unreachable")


def index_targets(input_shape, seed, *, ignore_index=-100, dtype=np.int64, ignored=0.25):
    """Random classes; about ``ignored`` of the positions (at least one, when there are several)
    set to ``ignore_index`` when ``dtype`` can hold it (``ignored=0``: none)."""
    rng = np.random.default_rng(seed)
    C = classes_of(input_shape)
    shape = target_shape(input_shape)
    t = rng.integers(0, C, shape)
    info = np.iinfo(dtype)
    if t.size > 1 and ignored > 0 and info.min <= ignore_index <= info.max:
        mask = rng.random(shape) < ignored
        mask.flat[0] = True
        t = np.where(mask, ignore_index, t)
    return np.asarray(t).astype(dtype)


def probability_targets(input_shape, dtype, seed, *, one_hot_first=True):
    """Rows (along the class axis) of the softmax of ``2 N(0, 1)``, in [0, 1] and summing to 1 before
    rounding to ``dtype``; with ``one_hot_first`` the first position one-hot (exact zeros elsewhere)."""
    rng = np.random.default_rng(seed)
    C = classes_of(input_shape)
    moved = (input_shape[0],) + tuple(input_shape[2:]) + (C,) if len(input_shape) > 1 else (1, C)
    R = math.prod(moved[:-1])
    z = 2.0 * rng.standard_normal((R, C))
    y = np.exp(z - z.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    if one_hot_first and R > 0:
        y[0] = 0.0
        y[0, rng.integers(0, C)] = 1.0
    y = y.reshape(moved)
    y = y[0] if len(input_shape) == 1 else np.moveaxis(y, -1, 1)
    return np.ascontiguousarray(y).astype(dtype)


def class_weights(classes, dtype, seed, *, low=0.25, high=2.0):
    """Class weights uniform in [low, high), rounded to ``dtype``."""
    return np.random.default_rng(seed).uniform(low, high, classes).astype(dtype)


def upstream(shape, dtype, seed):
    """A grad_output: normal, with a few exact zeros."""
    g = np.random.default_rng(seed).standard_normal(shape)
    if g.size > 3:
        g.flat[:: max(1, g.size // 3)] = 0.0
    return np.asarray(g).astype(dtype)


def binary_targets(shape, dtype, seed):
    """Targets in [0, 1]: about a quarter exact 0, a quarter exact 1, the rest uniform."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(0.0, 1.0, shape)
    pick = rng.random(shape)
    y = np.where(pick < 0.25, 0.0, np.where(pick < 0.5, 1.0, y))
    return np.asarray(y).astype(dtype)


def coin_flip_targets(shape, dtype, seed, *, probability=0.5):
    """Hard 0 / 1 targets, each 1 with ``probability`` (multi-label data as it usually comes)."""
    return (np.random.default_rng(seed).random(shape) < probability).astype(dtype)


def positive_weights(shape, dtype, seed, *, low=0.25, high=3.0):
    """Non-negative weights (pos_weight) uniform in [low, high], rounded to ``dtype``."""
    return np.asarray(np.random.default_rng(seed).uniform(low, high, shape)).astype(dtype)


# ---- the whole finite range ----------------------------------------------------------------------

_UNSIGNED_OF = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def whole_range_values(rng, dtype, shape, *, low=None, high=None, signed=True):
    """Values of ``dtype`` spread log-uniformly over [low, high] in magnitude (default: from the smallest
    subnormal to the largest finite): uniform over the bit patterns between them, so every binade --
    subnormals included -- is about equally likely.  ``signed``: each sign with probability 1/2."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    unsigned = _UNSIGNED_OF[dtype.itemsize]
    low = info.smallest_subnormal if low is None else low
    high = info.max if high is None else high
    bounds = np.array([low, high], dtype=dtype).view(unsigned).astype(np.uint64)
    bits = rng.integers(int(bounds[0]), int(bounds[1]), size=shape, endpoint=True, dtype=np.uint64)
    values = bits.astype(unsigned).view(dtype)
    if signed:
        values = np.where(rng.random(shape) < 0.5, -values, values).astype(dtype)
    return values


def underflow_gap(dtype):
    """-log(smallest subnormal) of the dtype exp is computed in (float16: float32's is not it: float16
    results round from float32, so its own threshold, ~17.3, is what an output sees): exp of a
    difference beyond this rounds to 0 in the result dtype."""
    return -math.log(float(np.finfo(dtype).smallest_subnormal))


def whole_range_rows(dtype, seed, n):
    """Named (rows, n) arrays of ``dtype`` whose entries span the dtype's whole finite range (seeded):

    * ``whole range``: magnitudes log-uniform from the smallest subnormal to the largest finite, both signs;
    * ``with -inf``: the same with about a third -inf (and one row all -inf but one entry);
    * ``ties at the max``: the row's max repeated at two more positions;
    * ``differences overflow``: half near +max, half near -max, so ``x - max`` overflows to -inf;
    * ``dominant entry``: one entry above all others by 20 to 3x the dtype's underflow gap (log_softmax
      of it, and cross-entropy with it as the target, far below eps), at any magnitude;
    * ``near the underflow threshold``: others below the max by 0.9 to 1.1 times the underflow gap;
    * ``tiny``: magnitudes from the smallest subnormal to 1 (differences tiny, softmax near uniform);
    * ``issue row``: [0.88, 0.85, 0.29] times the largest finite, the row the range defect was found on
      (the float32 row [3e38, 2.9e38, 1e38]), padded with entries far below.
    """
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    rng = np.random.default_rng(seed)
    top = float(info.max)
    gap = underflow_gap(dtype)
    rows = {}
    rows["whole range"] = whole_range_values(rng, dtype, (8, n))
    masked = whole_range_values(rng, dtype, (8, n))
    masked[rng.random((8, n)) < 0.35] = -np.inf
    masked[0, :] = -np.inf
    masked[0, n // 2] = whole_range_values(rng, dtype, ())
    rows["with -inf"] = masked
    ties = whole_range_values(rng, dtype, (8, n))
    top_of_row = ties.max(axis=1)
    for r in range(ties.shape[0]):
        ties[r, rng.choice(n, size=min(2, n), replace=False)] = top_of_row[r]
    rows["ties at the max"] = ties
    high = whole_range_values(rng, dtype, (8, n), low=top / 2, high=top, signed=False)
    rows["differences overflow"] = np.where(rng.random((8, n)) < 0.5, high, -high).astype(dtype)
    rows["differences overflow"][:, 0] = high[:, 0]  # a positive max in every row
    base = whole_range_values(rng, dtype, (8, 1)).astype(np.float64)
    below = rng.uniform(20.0, 3.0 * gap, (8, n))
    below[:, 0] = 0.0
    dominant = base - below * np.maximum(1.0, np.abs(base) * float(info.eps))  # stays below base when rounded
    rows["dominant entry"] = np.clip(dominant, -top, top).astype(dtype)
    near = base - rng.uniform(0.9 * gap, 1.1 * gap, (8, n)) * np.maximum(1.0, np.abs(base) * float(info.eps))
    near[:, 0] = base[:, 0]
    rows["near the underflow threshold"] = np.clip(near, -top, top).astype(dtype)
    rows["tiny"] = whole_range_values(rng, dtype, (8, n), high=1.0)
    issue = whole_range_values(rng, dtype, (1, n), low=top / 4, high=top, signed=False)
    issue = -issue
    issue[0, :3] = np.array([0.88, 0.85, 0.29]) * top
    rows["issue row"] = issue.astype(dtype)
    for name, x in rows.items():
        rows[name] = np.ascontiguousarray(rng.permuted(x, axis=1), dtype=dtype)  # the max anywhere in a row
    return rows
