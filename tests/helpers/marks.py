"""pytest marks shared by the test files."""

from __future__ import annotations

import numpy as np
import pytest

from logitloss.testing.inputs import FLOAT_DTYPES

from .cross_entropy_checks import KINDS


def dtype_id(dtype):
    return np.dtype(dtype).name


# Parametrize a test over FLOAT_DTYPES, named by dtype.
dtypes = pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)

# Parametrize a cross-entropy test over its target kinds (class indices, probabilities).
kinds = pytest.mark.parametrize("kind", KINDS)
