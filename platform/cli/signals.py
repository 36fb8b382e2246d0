"""Long-running commands stop cleanly on SIGTERM, as they do on Ctrl-C.

By default SIGTERM (``kill``, systemd, docker stop) ends a Python process at
once: no ``finally`` runs, so a Label Studio server the command started (in
its own process group) would keep running, and its ``server.json`` would
point other commands at it. :func:`stop_on_sigterm` turns the first SIGTERM
(or SIGHUP, a closed terminal) into ``SystemExit`` in the main thread, so the
command's clean-up runs; further signals are ignored while it does.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Terminated", "stop_on_sigterm"]

_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(SystemExit):
    """Raised in the main thread when the process is asked to stop."""


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While the block runs, SIGTERM or SIGHUP raise :class:`Terminated` (exit status 128+N)."""

    def _stop(signum: int, _frame: FrameType | None) -> None:
        for sig in _SIGNALS:  # one clean-up; a second signal must not interrupt it
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(128 + signum)

    previous = {sig: signal.signal(sig, _stop) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
