"""The process's resident memory, for tests that check a call does not need (or keep) memory."""

from __future__ import annotations

import os

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def resident_bytes():
    """Resident set size now (Linux /proc/self/statm, field 2, in pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def under_address_sanitizer():
    """Whether AddressSanitizer's runtime is loaded (.ci/sanitize): its quarantine keeps freed
    memory resident by design, so RSS says nothing about leaks there."""
    with open("/proc/self/maps") as maps:
        return "libasan" in maps.read()


def reset_peak_resident():
    """Restart the peak that :func:`peak_resident_bytes` reports at the current RSS (Linux >= 4.0:
    writing 5 to /proc/self/clear_refs resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_resident_bytes():
    """Peak resident set size of this process's memory since exec or :func:`reset_peak_resident`
    (VmHWM). Not ``getrusage().ru_maxrss``: after fork + exec that starts at the PARENT's RSS."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
