"""Timing core of the logitloss benchmarks.

How a case is measured (:func:`measure`):

1. Warm-up: every provider is called until ``warmup_time`` has passed (at least ``warmup_calls`` times).  The
   first result is handed to ``check`` (a wrong provider is reported, not hidden); a provider that raises is
   dropped with a note.  The warm-up also estimates the time of one call.
2. Calibration: ``number`` calls per sample so a sample lasts at least ``min_sample_time`` (1 for large
   shapes; thousands for a (32, 10) call, whose per-call time includes Python's call overhead for every
   provider alike).
3. Interleaving: ``repeats`` rounds; each round times one sample of every provider, in an order shuffled
   each round (seeded by the round: the same orders in every run).  A slow phase of the machine (the other
   core busy, a frequency change) then hits every provider, so ratios of medians measured in one run hold
   on a noisy machine.  Shuffled, not rotated: what a provider leaves behind lands on whichever provider
   comes next, and a rotation always puts the same provider next.  Measured on a Firecracker VM that
   reports freed memory to its host (``page_reporting``): the host reclaiming a 524 MB result just freed
   slowed the following second of work by 10-35%, and with a rotation that fell in nearly every round on
   the provider listed after the fresh-output one (logitloss ``softmax(out=)``: median 78 ms against 57 ms
   for the identical call elsewhere in the round).
4. Statistics: per provider the median, min and max of the per-call times of the samples.

A call's result is dropped inside the timed loop, so freeing a fresh output is part of every call's time.

Each provider may carry a ``context`` (entered around each sample, outside the timed loop: an ISA or thread
override) and a ``setup`` (called before each sample, outside the timed loop).  Garbage collection is off
while a sample runs.

Peak memory (:func:`measure_peak_memory`): a call's extra resident memory, measured in a fresh Python
subprocess from ``getrusage`` and ``/proc/self/statm``, so C++ allocations count as well as NumPy's.

Also here: machine information (:func:`machine_info`), the memory roofline of the same bytes (probes that
a row times interleaved with its providers, :func:`roofline_providers`), the CPU time other processes took
during a row (:class:`CpuLoadMeter`) and a busy process pinned to a core (:func:`busy_core`).
"""

from __future__ import annotations

import contextlib
import datetime as _datetime
import gc
import importlib
import io
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ContextManager

import numpy as np

__all__ = [
    "OTHER_LOAD_THRESHOLD_CORES",
    "CpuLoadMeter",
    "PeakMemory",
    "Provider",
    "Roofline",
    "Timing",
    "busy_core",
    "machine_info",
    "measure",
    "measure_peak_memory",
    "measure_roofline",
    "roofline_from_timings",
    "roofline_providers",
    "set_threads",
    "wait_for_quiet",
]


@dataclass
class Provider:
    """One way of computing a case: ``fn()`` is the timed call (its inputs are made beforehand)."""

    name: str
    fn: Callable[[], Any]
    context: Callable[[], ContextManager[Any]] | None = None
    setup: Callable[[], Any] | None = None
    isa: str = ""
    threads: int | None = None  # set when the provider fixes its own thread count
    checked: bool = True  # hand the first result to measure()'s ``check``
    check: Callable[[Any], str | None] | None = None  # this provider's own check (instead of measure()'s)


@dataclass
class Timing:
    """Per-call times (seconds) of one provider: one entry per sample, ``number`` calls per sample."""

    provider: str
    isa: str
    number: int
    samples: list[float] = field(default_factory=list)
    threads: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)


def _entered(provider: Provider) -> ContextManager[Any]:
    return provider.context() if provider.context is not None else contextlib.nullcontext()


def _time_sample(provider: Provider, number: int) -> float:
    """Seconds per call over ``number`` calls, context and setup outside the timed loop."""
    fn = provider.fn
    with _entered(provider):
        if provider.setup is not None:
            provider.setup()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for _ in range(number):
                fn()
            stop = time.perf_counter_ns()
        finally:
            if gc_was_enabled:
                gc.enable()
    return (stop - start) * 1e-9 / number


def measure(
    providers: Sequence[Provider],
    *,
    repeats: int,
    warmup_time: float = 0.2,
    warmup_calls: int = 2,
    min_sample_time: float = 0.02,
    max_number: int = 100_000,
    number: int | None = None,
    check: Callable[[Any], str | None] | None = None,
    notes: list[str] | None = None,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Timing]:
    """Time ``providers`` interleaved (see the module docstring); returns a Timing per surviving provider.

    ``number`` forces the calls per sample (e.g. 1 to see single calls); ``notes`` collects skip and check
    messages; ``on_round(r)`` is called after each round (progress display).
    """
    notes = notes if notes is not None else []
    alive: list[tuple[Provider, int]] = []
    for provider in providers:
        try:
            with _entered(provider):
                if provider.setup is not None:
                    provider.setup()
                start = time.perf_counter()
                result = provider.fn()
                first_call = time.perf_counter() - start
                provider_check = provider.check if provider.check is not None else check
                if provider_check is not None and provider.checked:
                    problem = provider_check(result)
                    if problem:
                        notes.append(f"{provider.name}: WRONG RESULT, {problem}")
                del result
            # Warm up in doubling batches; the last batch gives the per-call estimate.
            calls, elapsed, batch, per_call = 1, first_call, 1, first_call
            while calls < warmup_calls or elapsed < warmup_time:
                per_call = _time_sample(provider, batch)
                elapsed += per_call * batch
                calls += batch
                if per_call * batch < warmup_time / 8:
                    batch = min(batch * 2, max_number)
            per_call = max(per_call, 1e-9)
        except Exception as error:  # a provider that fails is skipped with a note, never fatal
            notes.append(f"{provider.name}: skipped, raised {type(error).__name__}: {error}")
            continue
        if number is not None:
            provider_number = number
        else:
            provider_number = int(min(max_number, max(1, math.ceil(min_sample_time / per_call))))
        alive.append((provider, provider_number))

    timings = {p.name: Timing(p.name, p.isa, n, threads=p.threads) for p, n in alive}
    for round_index in range(repeats):
        order = list(alive)
        random.Random(round_index).shuffle(order)
        for provider, provider_number in order:
            if provider.name not in timings:
                continue
            try:
                timings[provider.name].samples.append(_time_sample(provider, provider_number))
            except Exception as error:
                notes.append(f"{provider.name}: dropped in round {round_index + 1}, raised "
                             f"{type(error).__name__}: {error}")
                del timings[provider.name]
        if on_round is not None:
            on_round(round_index)
    return timings


# --- threads ----------------------------------------------------------------------------------------------


def set_threads(threads: int) -> list[str]:
    """Set the intra-op thread count of logitloss and torch (JAX: always 1, ``jax_calls``); returns notes for
    what could not be set."""
    notes: list[str] = []
    try:
        import logitloss

        logitloss.set_num_threads(threads)
    except Exception as error:
        notes.append(f"logitloss.set_num_threads({threads}) failed: {type(error).__name__}: {error}")
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    except Exception as error:
        notes.append(f"torch.set_num_threads({threads}) failed: {type(error).__name__}: {error}")
    if threads != 1:
        notes.append(f"jax runs at 1 thread whatever --threads ({threads}): logitloss.bench.jax_calls sets XLA's "
                     "flags once, before JAX starts")
    return notes


# --- roofline ---------------------------------------------------------------------------------------------


@dataclass
class Roofline:
    """Memory bandwidth measured on one array of the run, at 1 thread (NumPy's reductions and copies).

    Units: ``read_gbps`` = bytes of the array / median time of a pure read of it (the faster of ``x.sum()``
    and ``x.max()``); ``copy_gbps`` = 2 * bytes (one read + one write) / median time of ``np.copyto``.
    1 GB = 1e9 bytes.
    """

    label: str
    nbytes: int
    read_sum_gbps: float
    read_max_gbps: float
    copy_gbps: float

    @property
    def read_gbps(self) -> float:
        return max(self.read_sum_gbps, self.read_max_gbps)


_ROOFLINE_PROBES = ("roofline read: x.sum()", "roofline read: x.max()", "roofline copy: np.copyto")


def roofline_providers(x: np.ndarray) -> list[Provider]:
    """The three roofline probes of ``x`` as providers, to be timed interleaved with a row's providers
    (so the roofline sees the same machine state as the row); turn their timings into a
    :class:`Roofline` with :func:`roofline_from_timings`."""
    destination = np.empty_like(x)
    np.copyto(destination, x)  # fault the pages in before timing
    read_sum, read_max, copy = _ROOFLINE_PROBES
    return [
        Provider(read_sum, lambda: x.sum(), checked=False),
        Provider(read_max, lambda: x.max(), checked=False),
        Provider(copy, lambda: np.copyto(destination, x), checked=False),
    ]


def roofline_from_timings(timings: dict[str, Timing], nbytes: int, label: str) -> Roofline | None:
    """Pops the probe timings out of ``timings`` and returns the Roofline (None if a probe is missing)."""
    probes = [timings.pop(name, None) for name in _ROOFLINE_PROBES]
    if any(probe is None for probe in probes):
        return None
    read_sum, read_max, copy = (probe.median for probe in probes if probe is not None)
    return Roofline(label, nbytes, nbytes / read_sum / 1e9, nbytes / read_max / 1e9, 2 * nbytes / copy / 1e9)


def measure_roofline(x: np.ndarray, *, repeats: int, label: str = "") -> Roofline:
    """The roofline of ``x`` on its own (the CLI times the probes inside each row instead)."""
    timings = measure(roofline_providers(x), repeats=repeats, warmup_calls=1, warmup_time=0.05,
                      min_sample_time=0.01)
    roofline = roofline_from_timings(timings, x.nbytes, label or f"{tuple(x.shape)} {x.dtype}")
    assert roofline is not None
    return roofline


# --- peak memory of a call, in a subprocess ---------------------------------------------------------------

_PEAK_MEMORY_CHILD = """
import os
# ru_maxrss survives exec: a child spawned by a large parent starts with the parent's peak.  A fork of this
# (still small) interpreter starts a new count, so the measurement runs in that grandchild.
_pid = os.fork()
if _pid:
    os._exit(os.waitstatus_to_exitcode(os.waitpid(_pid, 0)[1]))

import gc, json, resource, sys

def _rss_bytes():
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def _maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB

report = {{}}
{setup}
gc.collect()
_rss_before, _maxrss_before = _rss_bytes(), _maxrss_bytes()
{call}
_maxrss_after = _maxrss_bytes()
print(json.dumps({{"rss_before": _rss_before, "maxrss_before": _maxrss_before, "maxrss_after": _maxrss_after,
                  "report": report}}))
"""


@dataclass
class PeakMemory:
    """Extra resident memory of one call, in bytes: ``maxrss_after - max(maxrss_before, rss_before)``.

    ``report`` holds what the child's code put in its ``report`` dict (e.g. the size of a result).
    """

    label: str
    rss_before: int
    maxrss_before: int
    maxrss_after: int
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_extra(self) -> int:
        return self.maxrss_after - max(self.maxrss_before, self.rss_before)


def measure_peak_memory(setup: str, call: str, *, label: str = "", threads: int = 1,
                        timeout: float = 600.0) -> PeakMemory:
    """Run ``setup`` then ``call`` (Python statements) in a fresh interpreter; return the call's peak extra RSS.

    The measurement runs in a fork of the fresh interpreter, made before anything is imported: on Linux the
    peak ``ru_maxrss`` is inherited across ``exec`` (the child of a 1 GB benchmark process would start with a
    1 GB peak), not across ``fork``.  It reads its resident set size (``/proc/self/statm``) and peak (``getrusage().ru_maxrss``) after
    ``setup`` and a ``gc.collect()``, runs ``call``, and reads the peak again: peak extra = peak after -
    max(peak before, current before).  Whatever ``call`` allocates counts (NumPy, C++ ``new``, torch's
    allocator) as long as it touches the pages; what ``call`` keeps alive (its result) counts too.

    Because the child's peak before the call bounds the measurement from below, ``setup`` must not allocate
    temporaries larger than what it keeps (make inputs in their dtype: ``rng.standard_normal(shape,
    dtype=np.float32)``, not a float64 draw), and should warm up lazily initialized libraries on a small
    input (thread pools, dispatch tables).  ``setup`` may fill the dict ``report``; it comes back in
    :attr:`PeakMemory.report`.  ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` are set to ``threads``; set the
    libraries' own thread counts in ``setup``.  Raises RuntimeError when the child fails (with its stderr).
    """
    import json
    import textwrap

    script = _PEAK_MEMORY_CHILD.format(setup=textwrap.dedent(setup), call=textwrap.dedent(call))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                               timeout=timeout, check=False)
    if completed.returncode != 0:
        tail = completed.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"peak-memory child exited with {completed.returncode}: {' | '.join(tail)}")
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    return PeakMemory(label, values["rss_before"], values["maxrss_before"], values["maxrss_after"],
                      values["report"])


# --- a busy core ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def busy_core(core: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -c "while True: pass"`` pinned to ``core`` for the duration of the block, then kill it."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(process.pid, {core})
        time.sleep(0.2)  # let it start spinning
        yield process
    finally:
        process.kill()
        process.wait()


# --- load from other processes ----------------------------------------------------------------------------


def _cpu_busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat; None if unreadable."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    busy = sum(values[:3]) + sum(values[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of its waited-for children (the busy-core process)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


# A row during which other processes kept more than this many cores busy is flagged in the report.
OTHER_LOAD_THRESHOLD_CORES = 0.25


class CpuLoadMeter:
    """Measures how many cores other processes kept busy during a block: ``with meter: ...; meter.cores``.

    (busy CPU seconds of the machine - CPU seconds of this process and its children) / wall seconds, from
    /proc/stat at clock-tick resolution; ``None`` where /proc/stat is missing.  A row measured while
    another process used a core is flagged in the report: interleaving keeps its ratios fair, but absolute
    times and thread scaling are affected.
    """

    def __init__(self) -> None:
        self.cores: float | None = None
        self._start: tuple[float | None, float, float] = (None, 0.0, 0.0)

    def __enter__(self) -> CpuLoadMeter:
        self._start = (_cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy_start, own_start, wall_start = self._start
        busy_stop, own_stop, wall_stop = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        if busy_start is None or busy_stop is None or wall_stop <= wall_start:
            self.cores = None
            return
        other = (busy_stop - busy_start) - (own_stop - own_start)
        self.cores = max(0.0, other / (wall_stop - wall_start))


def wait_for_quiet(threshold_cores: float, timeout: float, window: float = 1.0) -> tuple[float, float | None]:
    """Wait until other processes use at most ``threshold_cores`` over a ``window``-second sample, or
    until ``timeout`` seconds have passed.  Returns (seconds waited, the last sample in cores)."""
    started = time.perf_counter()
    while True:
        with CpuLoadMeter() as meter:
            time.sleep(window)
        waited = time.perf_counter() - started
        if meter.cores is None or meter.cores <= threshold_cores or waited >= timeout:
            return waited, meter.cores


# --- machine information ----------------------------------------------------------------------------------

_ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_bf16")


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if ":" not in line:
                    if info:
                        break  # first processor block is enough
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def _version(module_name: str) -> str:
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        return f"not available ({type(error).__name__})"
    return str(getattr(module, "__version__", "unknown"))


def machine_info(threads: int) -> dict[str, Any]:
    """CPU, ISA, core counts, library versions, thread counts and a timestamp, as a flat JSON-able dict."""
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    info: dict[str, Any] = {
        "timestamp_utc": _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu.get("model name", platform.processor() or "unknown"),
        "cpu_flags": " ".join(flag for flag in _ISA_FLAGS if flag in flags),
        "cpu_mhz_at_start": cpu.get("cpu MHz", "unknown"),
        "logical_cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "threads": threads,
    }
    for name in ("logitloss", "numpy", "scipy", "torch", "jax"):
        info[f"{name}_version"] = _version(name)
    try:
        import logitloss

        info["logitloss_isa"] = logitloss.get_isa()
        info["logitloss_supported_isas"] = " ".join(logitloss.supported_isas())
        info["logitloss_threads"] = logitloss.get_num_threads()
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            result = logitloss.show_config()
        text = captured.getvalue() or (result if isinstance(result, str) else "")
        info["logitloss_config"] = text.strip()
    except Exception as error:
        info["logitloss_isa"] = f"unknown ({type(error).__name__}: {error})"
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info
