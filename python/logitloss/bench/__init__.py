"""Benchmarks of logitloss against NumPy, SciPy and torch: ``python -m logitloss.bench --help``.

- :mod:`~logitloss.bench.harness`: interleaved timing, rooflines, machine information, a busy core;
- :mod:`~logitloss.bench.inputs`: a run's inputs, made once from the generators of :mod:`logitloss.testing.inputs`
  (also used by the pytest-benchmark suites in ``bench/``);
- :mod:`~logitloss.bench.numpy_formulas`: the NumPy code users write (the "numpy stable" and "numpy naive" rows);
- :mod:`~logitloss.bench.checks`: each provider's first result against the float64 references of
  :mod:`logitloss.testing`;
- :mod:`~logitloss.bench.providers`: the timed call of each library;
- :mod:`~logitloss.bench.suite`: the rows and the performance targets;
- :mod:`~logitloss.bench.verdicts`: the exact results of the tables (from :mod:`logitloss.testing`) and the rule
  that judges a result against them;
- :mod:`~logitloss.bench.implementations`: each library's value and gradient of each kernel, for
  :mod:`~logitloss.bench.safety` (adversarial inputs, ``safety.md``) and :mod:`~logitloss.bench.accuracy`
  (random logits, ``accuracy.md``);
- :mod:`~logitloss.bench.run`, :mod:`~logitloss.bench.report` and :mod:`~logitloss.bench.plots`: running a
  suite and writing ``report.md``, ``results.csv``, ``results.json`` and the PNG plots.

Only NumPy is required; SciPy and torch rows are skipped with a note when those are not installed; the safety
and accuracy tables need mpmath and the plots matplotlib (all in the ``bench`` extra).
"""

from .harness import Provider, Timing, measure, measure_roofline
from .inputs import InputCache

__all__ = ["InputCache", "Provider", "Timing", "measure", "measure_roofline"]
