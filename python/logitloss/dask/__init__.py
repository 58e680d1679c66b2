"""logitloss over Dask arrays: logsumexp, softmax, log_softmax, cross_entropy and
binary_cross_entropy_with_logits with the in-memory functions' semantics, on arrays larger than one
machine's memory.

The reduced (class) axis may be chunked: each chunk's per-row softmax statistics (max, count of
maximal terms, scaled sum of the others, in double; logitloss's own kernel) are merged by a tree
reduction exactly as the row kernels merge their own 2048-element pieces, so results equal the
in-memory call up to the order of double additions. Forward losses read every input chunk once;
gradients are a second blockwise pass chunked like the input.

Needs the ``dask`` extra: ``pip install "logitloss[dask]"``. ``import logitloss`` never imports
Dask.
"""

try:
    import dask.array  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised in a subprocess without dask
    raise ImportError(
        'logitloss.dask needs Dask: install the extra with pip install "logitloss[dask]" '
        "(dask[array] and distributed)"
    ) from error

from ._binary_cross_entropy import binary_cross_entropy_with_logits
from ._cross_entropy import cross_entropy
from ._softmax_family import log_softmax, logsumexp, softmax

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "log_softmax", "logsumexp", "softmax"]
