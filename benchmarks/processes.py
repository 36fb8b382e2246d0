"""Stopping the process groups a benchmark started (platforms, agents) and all they spawned."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

__all__ = ["stop_groups"]


def stop_groups(
    processes: Sequence[subprocess.Popen[bytes]], how: int = signal.SIGTERM, seconds: float = 30
) -> None:
    """Send ``how`` to each still running process's group, then wait; kill what outlives it.

    The processes must have been started with ``start_new_session=True`` (each leads its
    own group), so a gunicorn master's workers or an agent's engine go with it.
    """
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, how)
    for process in processes:
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
