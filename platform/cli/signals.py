"""Long-running commands stop cleanly on SIGTERM, as they do on Ctrl-C.

By default SIGTERM (``kill``, systemd, docker stop) ends a Python process at
once: no ``finally`` runs, so a Label Studio server the command started (in
its own process group) would keep running, and its ``server.json`` would
point other commands at it. :func:`stop_on_sigterm` turns the first SIGTERM
(or SIGHUP, a closed terminal) into ``SystemExit`` in the main thread, so the
command's clean-up runs; further signals are ignored while it does.

``ray.init`` puts its own SIGTERM handler in (``sys.exit``, which a second
signal repeats in the middle of the clean-up), and ``ray.shutdown`` leaves
none at the C level (SIGTERM then kills the process with no clean-up at
all): :func:`reclaim_sigterm` puts the command's back after either.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Terminated", "reclaim_sigterm", "stop_on_sigterm"]

_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_handlers: list[Callable[[int, FrameType | None], None]] = []  # of the blocks now running


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
    _handlers.append(_stop)
    try:
        yield
    finally:
        _handlers.remove(_stop)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def reclaim_sigterm() -> None:
    """Inside :func:`stop_on_sigterm`, put its handler back where a library replaced it.

    Does nothing outside such a block, or once a signal came (its clean-up
    ignores further signals, and keeps doing so).
    """
    if not _handlers:
        return
    for sig in _SIGNALS:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _handlers[-1])
