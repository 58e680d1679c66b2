"""Runtime configuration: which SIMD target runs the kernels, how many threads, and output reuse."""

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

# LOGITLOSS_REUSE_OUTPUTS=0 starts with output reuse off (see set_output_reuse); 1 or unset: on.
_reuse_setting = os.environ.get("LOGITLOSS_REUSE_OUTPUTS", "").strip()
if _reuse_setting not in ("", "0", "1"):
    raise ValueError(f"LOGITLOSS_REUSE_OUTPUTS must be 0 (off) or 1 (on), got {os.environ['LOGITLOSS_REUSE_OUTPUTS']!r}")
if _reuse_setting == "0":
    _core._set_output_reuse(False)


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


def get_output_reuse() -> bool:
    """Return whether large results reuse the memory of dropped ones (see ``set_output_reuse``).

    >>> import logitloss
    >>> logitloss.get_output_reuse()
    True
    """
    return bool(_core._config()["output_reuse"])


def set_output_reuse(enabled: bool) -> None:
    """Turn output reuse on or off (on by default; ``LOGITLOSS_REUSE_OUTPUTS=0`` starts with it off).

    A C-ordered result of 32 MiB or more (a softmax, a gradient ...) is placed in the memory of a
    result the program has already dropped, when one fits, instead of in fresh pages from the OS,
    whose first writes fault while the OS zeroes them (36 of the 93 ms of a softmax of
    (4096, 32000) float32). Memory is only reused once nothing refers to it: a view, a
    ``memoryview``, a DLPack or ``torch.from_numpy`` of a result keeps its memory out of reuse. Such
    a result is an ordinary writeable array whose ``base`` chain ends in a capsule.

    At most two dropped buffers are kept, the most recently dropped; the OS may take their pages
    back under memory pressure (``MADV_FREE`` on Linux and macOS; Windows has no such advice), but
    until then they count in the process's resident memory. ``release_output_buffers()`` frees them at once. With reuse off, results are NumPy's
    own again; buffers already idle stay idle (unused) until released or reuse is turned back on.

    >>> import logitloss
    >>> logitloss.set_output_reuse(False)
    >>> logitloss.get_output_reuse()
    False
    >>> logitloss.set_output_reuse(True)
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be a bool, got {enabled!r}")
    _core._set_output_reuse(enabled)


def release_output_buffers() -> int:
    """Free the dropped results' buffers kept for reuse now; return how many bytes that released.

    >>> import logitloss
    >>> logitloss.release_output_buffers() >= 0
    True
    """
    return int(_core._release_output_buffers())


def show_config() -> None:
    """Print the version, the compiled, supported and chosen SIMD targets, the threads and output reuse.

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
    reuse = "on" if c["output_reuse"] else "off"
    print(f"  output reuse:      {reuse} ({c['idle_buffers']} idle buffers, {c['idle_buffer_bytes'] / 2**20:.0f} MiB)")
