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
