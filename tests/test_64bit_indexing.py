"""64-bit indexing: a row longer than 2^31 elements, and arrays of more than 2^31 elements.

The arrays are ``np.zeros`` of 8.6 GB that are never written except for a page or two: untouched
pages of a fresh allocation all map the kernel's zero page, so reading them costs time, not memory
(the process's RSS grows by a few MB). Zero strides would do too, but the drivers pack a strided
row into a scratch buffer of the row's length, which here would be the 8.6 GB the test avoids.
Each call is one pass over 2^31 floats (~1-1.5 s on the best target), so only the default target
runs: the kernels take int64 lengths, and the byte offsets that could wrap are the drivers'.

The values are chosen so a 32-bit index would give a wrong answer, not just a slow one: the one
large element sits beyond 2^31 (and beyond 2^32 bytes), and the class index of the target too.
"""

from __future__ import annotations

import math

import numpy as np

import logitloss
from .helpers.process_memory import resident_bytes, under_address_sanitizer

BEYOND_INT32 = 2**31 + 5
EPS32 = 2.0**-23


def lazily_zero(shape):
    """A float32 array of zeros whose pages are not touched (np.zeros maps them on first access)."""
    return np.zeros(shape, np.float32)


def assert_float32_close(got, exact, what):
    assert abs(float(got) - exact) <= 4 * EPS32 * abs(exact), f"{what}: {float(got)!r}, exact {exact!r}"


def test_row_longer_than_int32():
    rss_before = resident_bytes()
    x = lazily_zero(BEYOND_INT32)
    x[-1] = 10.0  # the maximum, at element 2^31 + 4
    others = (BEYOND_INT32 - 1) * math.exp(-10.0)
    assert_float32_close(logitloss.logsumexp(x), 10.0 + math.log1p(others), "logsumexp")
    # class index 2^31 + 4: loss = logsumexp(x) - x[target]
    assert_float32_close(logitloss.cross_entropy(x, np.array(BEYOND_INT32 - 1)), math.log1p(others), "cross_entropy")
    assert resident_bytes() - rss_before < 256 * 2**20 or under_address_sanitizer(), "the test needed real memory"


def test_more_than_int32_elements_in_rows():
    """(2^21 + 3, 1024): rows at byte offsets past 2^33, reduced along rows and along columns."""
    rows, columns = 2**21 + 3, 1024
    assert rows * columns > 2**31
    x = lazily_zero((rows, columns))
    x[-1, -1] = 10.0
    x[rows // 2, 3] = 5.0
    per_row = logitloss.logsumexp(x, axis=1)
    assert per_row.shape == (rows,)
    assert_float32_close(per_row[-1], math.log(columns - 1 + math.exp(10.0)), "last row")
    assert_float32_close(per_row[rows // 2], math.log(columns - 1 + math.exp(5.0)), "middle row")
    plain = np.float32(math.log(columns))
    assert np.count_nonzero(per_row == plain) == rows - 2, "every other row is log(1024)"
    per_column = logitloss.logsumexp(x, axis=0)  # column mode: row strides times 2^21 rows
    assert_float32_close(per_column[-1], math.log(rows - 1 + math.exp(10.0)), "last column")
    assert_float32_close(per_column[3], math.log(rows - 1 + math.exp(5.0)), "column 3")
    assert_float32_close(per_column[0], math.log(rows), "column 0")
