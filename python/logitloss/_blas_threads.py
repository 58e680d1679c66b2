"""The BLAS's thread count for the calls that use it (linear_cross_entropy's matrix products).

logitloss's own pool and the BLAS take turns (a product, then a kernel pass, then a product), so
neither oversubscribes the cores as long as each uses at most ``get_num_threads()`` threads. With
``threadpoolctl`` (the ``threads`` extra) the BLAS is limited to that count for the call; without it
the BLAS keeps its own setting (``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, or the user's
threadpoolctl), which the README says.
"""

from __future__ import annotations

import contextlib
import threading

from . import _core

_controller = None
_controller_lock = threading.Lock()


def _threadpool_controller():
    """threadpoolctl's controller, made once (it scans the loaded libraries: ~1 ms); None without it."""
    global _controller
    with _controller_lock:
        if _controller is None:
            try:
                import threadpoolctl
            except ImportError:
                _controller = False
            else:
                _controller = threadpoolctl.ThreadpoolController()
    return _controller or None


def blas_threads():
    """A context in which the BLAS uses ``logitloss.get_num_threads()`` threads (if threadpoolctl is there)."""
    controller = _threadpool_controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=_core.get_num_threads(), user_api="blas")
