"""logitloss: fused SIMD kernels for the computations under every likelihood-based loss.

Softmax cross-entropy and binary cross-entropy with logits (``torch.nn.functional`` semantics), a
classifier head's cross-entropy without its logits (``linear_cross_entropy``),
and logsumexp, softmax and log_softmax (drop-ins for ``scipy.special``), forward and backward, on
NumPy arrays; the entropy of softmax(logits) and the perplexity. See ``show_config()`` for the SIMD
target and thread count in use.
"""

from ._version import __version__
from ._binary_cross_entropy import binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward
from ._contrastive import contrastive_loss
from ._cross_entropy import cross_entropy, cross_entropy_backward
from ._entropy import entropy_with_logits, perplexity
from ._divergence import jsd_with_logits, kl_div_with_logits
from ._linear_cross_entropy import LinearCrossEntropyResult, linear_cross_entropy
from ._config import (
    get_isa,
    get_num_threads,
    get_output_reuse,
    release_output_buffers,
    set_num_threads,
    set_output_reuse,
    show_config,
    supported_isas,
    use_isa,
)
from ._c_api import get_include
from ._softmax_family import (
    log_softmax,
    log_softmax_backward,
    logsumexp,
    logsumexp_backward,
    softmax,
    softmax_backward,
)

__all__ = [
    "__version__",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward",
    "contrastive_loss",
    "cross_entropy",
    "cross_entropy_backward",
    "entropy_with_logits",
    "get_include",
    "get_isa",
    "get_num_threads",
    "get_output_reuse",
    "jsd_with_logits",
    "kl_div_with_logits",
    "linear_cross_entropy",
    "LinearCrossEntropyResult",
    "log_softmax",
    "log_softmax_backward",
    "perplexity",
    "logsumexp",
    "logsumexp_backward",
    "release_output_buffers",
    "set_num_threads",
    "set_output_reuse",
    "show_config",
    "softmax",
    "softmax_backward",
    "supported_isas",
    "use_isa",
]
