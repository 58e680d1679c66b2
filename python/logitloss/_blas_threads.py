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
_active_calls = 0  # calls inside blas_threads() now, and the limit they share
_active_limit = None


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


@contextlib.contextmanager
def blas_threads():
    """A context in which the BLAS uses ``logitloss.get_num_threads()`` threads (if threadpoolctl is there).

    threadpoolctl's limit is process-wide: overlapping calls from several Python threads share one
    limit, applied by the first to enter and undone by the last to leave (undoing it in each call's
    own order could leave another call's limit in place for good). The controller covers the BLAS
    libraries loaded when it was made, at the first call.
    """
    global _active_calls, _active_limit
    controller = _threadpool_controller()
    if controller is None:
        yield
        return
    with _controller_lock:
        if _active_calls == 0:
            _active_limit = controller.limit(limits=_core.get_num_threads(), user_api="blas")
        _active_calls += 1
    try:
        yield
    finally:
        with _controller_lock:
            _active_calls -= 1
            if _active_calls == 0:
                _active_limit.restore_original_limits()
                _active_limit = None
