"""Benchmarks of logitloss against NumPy, SciPy and torch: ``python -m logitloss.bench --help``.

- :mod:`~logitloss.bench.harness`: interleaved timing, rooflines, machine information, a busy core;
- :mod:`~logitloss.bench.inputs`: the input makers (also used by the pytest-benchmark suites in ``bench/``);
- :mod:`~logitloss.bench.references`: the NumPy baseline as users write it and the float64 sanity check;
- :mod:`~logitloss.bench.providers`: the timed call of each library;
- :mod:`~logitloss.bench.suite`: the rows and the performance targets;
- :mod:`~logitloss.bench.run` and :mod:`~logitloss.bench.report`: running a suite and writing
  ``report.md``, ``results.csv`` and ``results.json``.

Only NumPy is required; SciPy and torch rows are skipped with a note when those are not installed.
"""

from .harness import Provider, Timing, measure, measure_roofline
from .inputs import InputCache, make_logits, make_logits_transposed

__all__ = ["InputCache", "Provider", "Timing", "make_logits", "make_logits_transposed", "measure", "measure_roofline"]
