"""Where the C / Cython API's header lives (python/logitloss/include/logitloss.h)."""

from __future__ import annotations

import pathlib


def get_include() -> str:
    """The folder holding ``logitloss.h``, the C API's header, for a C or Cython extension's
    ``include_dirs``; Cython modules ``cimport`` from ``logitloss.kernels`` (see the README's
    "C and Cython API").

    >>> import os, logitloss
    >>> os.path.isfile(os.path.join(logitloss.get_include(), "logitloss.h"))
    True
    """
    return str(pathlib.Path(__file__).parent / "include")
