"""Test-only helpers: assertions against the exact references of ``logitloss.testing``, torch calls,
the bad-call table machinery, ISA and reference-library handling, pytest marks.  The references, the
tolerance table and the input generators themselves are in ``logitloss.testing`` (the benchmark uses
them too)."""
