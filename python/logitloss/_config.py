"""Runtime configuration: which SIMD target runs the kernels, and how many threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import os
import re

from . import _core
from ._version import __version__

# Choose the SIMD target once, at import: the best this CPU supports, capped by LOGITLOSS_ISA
# (ValueError naming the valid names for an unknown one).
_core._initialize_dispatch(os.environ.get("LOGITLOSS_ISA", ""))

# LOGITLOSS_NUM_THREADS, if set and not blank, must be a decimal integer >= 1 (capped at 1024, as
# set_num_threads); the kernels read it when they first run, and ignore anything else, so a typo
# is reported here rather than silently running on the default count.
_threads_setting = os.environ.get("LOGITLOSS_NUM_THREADS")
if _threads_setting and _threads_setting.strip() and not re.fullmatch(r"[ \t]*0*[1-9][0-9]*[ \t]*", _threads_setting):
    raise ValueError(f"LOGITLOSS_NUM_THREADS must be an integer >= 1, got {_threads_setting!r}")


def get_isa() -> str:
    """Return the SIMD target the kernels run on now: 'baseline', 'avx2', 'avx512' or 'neon'.

    >>> import logitloss
    >>> logitloss.get_isa() in logitloss.supported_isas()
    True
    """
    return _core._config()["active"]


def supported_isas() -> list[str]:
    """Return the targets compiled into this build that this CPU can run, lowest first.

    >>> import logitloss
    >>> logitloss.supported_isas()[0]
    'baseline'
    """
    return list(_core._config()["supported"])


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[str]:
    """Run the kernels called inside the ``with`` block on target `name`.

    The switch is process-wide (meant for tests and benchmarks) and restored on exit.
    Raises ValueError for a target that is not compiled in or not supported by this CPU.

    >>> import logitloss
    >>> with logitloss.use_isa("baseline"):
    ...     logitloss.get_isa()
    'baseline'
    """
    previous = get_isa()
    _core._set_isa(name)
    try:
        yield name
    finally:
        _core._set_isa(previous)


def get_num_threads() -> int:
    """Return the number of threads kernels may use (the caller included).

    >>> import logitloss
    >>> logitloss.get_num_threads() >= 1
    True
    """
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads kernels may use (the caller included). Results do not depend on it.

    `n` is an integer >= 1; counts above 1024 are capped at 1024 (``get_num_threads()`` then
    returns 1024): more never speeds a kernel up, and each thread costs a stack.
    Raises TypeError for a non-integer (a bool or float included) and ValueError for n < 1.

    >>> import logitloss
    >>> previous = logitloss.get_num_threads()
    >>> logitloss.set_num_threads(1)
    >>> logitloss.get_num_threads()
    1
    >>> logitloss.set_num_threads(previous)
    """
    _core.set_num_threads(n)


def show_config() -> None:
    """Print the version, the compiled, supported and chosen SIMD targets, and the threads.

    >>> import logitloss
    >>> logitloss.show_config()  # doctest: +ELLIPSIS
    logitloss ...
      compiled targets:  baseline...
    """
    c = _core._config()
    print(f"logitloss {__version__}")
    print(f"  compiled targets:  {', '.join(c['compiled'])}")
    print(f"  supported by CPU:  {', '.join(c['supported'])}")
    chosen = c["active"]
    if c["cap"]:
        note = f" (LOGITLOSS_ISA={c['cap']}"
        note += f", lowered to {c['default']}: the best this CPU supports)" if c["cap_lowered"] else ")"
    else:
        note = ""
    if chosen != c["default"]:
        note += f" (switched by use_isa; default {c['default']})"
    print(f"  chosen target:     {chosen}{note}")
    print(f"  threads:           {c['num_threads']}")
