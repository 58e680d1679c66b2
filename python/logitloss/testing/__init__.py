"""What logitloss promises about its results, and the means to check it: exact references, the error
bounds, and deterministic inputs.  Used by the test suite and by ``python -m logitloss.bench``; nothing
here is imported by ``import logitloss``.

- :mod:`~logitloss.testing.softmax_family`, :mod:`~logitloss.testing.cross_entropy`,
  :mod:`~logitloss.testing.binary_cross_entropy`, :mod:`~logitloss.testing.entropy`: exact references (float64 with care for float16 /
  float32 results, mpmath for float64 results) with the condition scale of every output;
- :mod:`~logitloss.testing.tolerances`: the one table of error bounds, per family, direction and dtype
  (``docs/accuracy.md``);
- :mod:`~logitloss.testing.inputs`: deterministic logits, targets, weights and memory layouts;
- :mod:`~logitloss.testing.arithmetic`, :mod:`~logitloss.testing.rows`, :mod:`~logitloss.testing.cache`:
  the references' arithmetic beyond float64, their row layout and their content cache.

NumPy is all they need, and mpmath (the ``test`` and ``bench`` extras) for the references of float64 results.
"""
