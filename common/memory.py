"""Resident-memory probes for benchmarks (Linux /proc): current RSS, peak RSS, and resetting the peak.

A benchmark measures "peak memory above what the process held once its inputs were allocated" as
`peak_rss_bytes() - rss_bytes()`, with `reset_peak_rss()` called right after taking the baseline.
"""

from __future__ import annotations

import os


def rss_bytes() -> int:
    """The process's resident set size now, in bytes."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The process's peak resident set size (VmHWM), in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False
