"""The settings a benchmark changes from the shipped defaults, and the machine, said out loud.

Every benchmark script runs against the shipped defaults, or sets what it
must and prints it with ``announce`` at start, with the machine's cores and
load average, so a figure is never read without the settings and the load it
was measured under.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["LOCAL_MODELS_SHARED", "NO_VERIFICATION", "NO_RATE_LIMITS", "announce", "machine"]

NO_RATE_LIMITS = {"SABHA_RATE_LIMITS": "false"}
"""Rate limits off: the shipped per-address limit (600 a minute) stops a load test."""

NO_VERIFICATION = {
    "SABHA_REPLICATION_NEW_POOL_SHARDS": "0",
    "SABHA_REPLICATION_FRACTION": "0",
    "SABHA_REPLICATION_AUDIT_JOBS": "false",
}
"""Every pool trusted: throughput figures count each shard once (docs/verification.md
has what verification costs)."""


LOCAL_MODELS_SHARED = {"SABHA_LOCAL_MODELS_FOR_VOLUNTEERS": "true"}
"""The agent runs on the platform's machine and shares its disk, so it may be leased a
model that is a folder there (by default only the operator's own pools are)."""


def machine() -> str:
    """The machine's CPU cores and load average (1, 5 and 15 minutes), now."""
    load = os.getloadavg()
    return f"{os.cpu_count()} CPU cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def announce(changed: Mapping[str, str], why: str = "") -> None:
    """Print the machine's load at start and the settings changed from the shipped defaults.

    Args:
        changed: The settings (environment names) the script sets, with their values.
        why: Why it must change them (printed after them).
    """
    print(f"machine at start: {machine()}")
    if not changed:
        print("settings: the shipped defaults")
        return
    pairs = ", ".join(f"{key}={value}" for key, value in sorted(changed.items()))
    print(f"settings changed from the shipped defaults: {pairs} ({why})")
