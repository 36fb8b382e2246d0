"""Run evaluations on this machine: a local Ray runtime and an engine actor."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from .engine import require_extra

__all__ = ["ensure_ray", "root_cause", "shutdown_ray"]


def ensure_ray(address: str | None = None, quiet: bool = True) -> Any:
    """Start (or join) Ray, on loopback, without usage stats.

    Args:
        address: A cluster to join (``SABHA_RAY_ADDRESS``); None starts a local one.
        quiet: Keep the engines' own logs out of the terminal.
    """
    # Without this Ray binds to the machine's network address, not 127.0.0.1.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = require_extra("ray")
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.WARNING if quiet else logging.INFO,
            "log_to_driver": not quiet,
            "runtime_env": {"env_vars": {"VLLM_LOGGING_LEVEL": "WARNING" if quiet else "INFO"}},
        }
        if address:
            options["address"] = address
        else:
            # Also covers a process that imported ray before the variable was set.
            options["_node_ip_address"] = "127.0.0.1"
        ray.init(**options)
    return ray


def shutdown_ray() -> None:
    """Stop the local Ray runtime if this process started one."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


_ERROR_LINE = re.compile(r"^\s*(Value error, |[A-Za-z_][\w.]*(Error|Exception)\b:?\s*)")


def root_cause(exc: BaseException) -> str:
    """The most telling line of a remote traceback, shortened."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    text = str(cause or exc)
    lines = [line.strip() for line in text.splitlines() if _ERROR_LINE.match(line)]
    best = lines[-1] if lines else (text.strip().splitlines() or [type(exc).__name__])[-1]
    best = best.removeprefix("Value error, ").strip()
    return best if len(best) <= 300 else best[:297] + "..."
