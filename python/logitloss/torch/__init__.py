"""logitloss's kernels for PyTorch tensors on the CPU: drop-ins for torch's functions and loss modules,
each differentiable once through an autograd Function whose forward runs the fused kernel on the
tensor's own memory (no copy) and, for the losses, computes the gradient in the same pass.

Needs torch (the extra ``logitloss[torch]``); ``import logitloss`` alone never imports it. The functions
are also ``torch.library`` custom ops (``torch.ops.logitloss.*``) with fake implementations, which is what
they call under ``torch.compile``.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as _error:  # pragma: no cover - exercised in a subprocess without torch on sys.path
    raise ImportError("logitloss.torch needs PyTorch: install it with `pip install 'logitloss[torch]'` "
                      "(or your own torch build)") from _error

from ._binary_cross_entropy import binary_cross_entropy_with_logits
from ._contrastive import contrastive_loss
from ._cross_entropy import cross_entropy
from ._divergence import kl_div_with_logits
from ._entropy import entropy_with_logits, perplexity
from ._linear_cross_entropy import LinearCrossEntropyLoss, linear_cross_entropy
from ._modules import BCEWithLogitsLoss, CrossEntropyLoss
from ._softmax_family import log_softmax, logsumexp, softmax

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "LinearCrossEntropyLoss",
    "binary_cross_entropy_with_logits",
    "contrastive_loss",
    "cross_entropy",
    "entropy_with_logits",
    "kl_div_with_logits",
    "linear_cross_entropy",
    "log_softmax",
    "logsumexp",
    "perplexity",
    "softmax",
]
