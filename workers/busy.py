"""How long an engine worked on each shard: its busy time, shared among the shards in it.

An engine batches the items of several shards at once, so a shard's wall
time from submission to answers overstates what it cost. ``BusyClock``
splits each moment the engine holds shards among them by their number of
items; the shares of all shards add up to the engine's busy time (on a
one-GPU engine, its GPU-seconds). No Ray, no vLLM: the local pool and the
volunteer agent both use it around ``generate_shards``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["BusyClock"]


class BusyClock:
    """Shares an engine's busy time among the shards in it, by their item counts.

    Args:
        clock: The time source (seconds); ``time.monotonic`` by default.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._weights: dict[Hashable, int] = {}
        self._seconds: dict[Hashable, float] = {}
        self._last = clock()

    def _advance(self) -> None:
        now = self._clock()
        total = sum(self._weights.values())
        if total:
            elapsed = max(0.0, now - self._last)
            for key, weight in self._weights.items():
                self._seconds[key] += elapsed * weight / total
        self._last = now

    def start(self, key: Hashable, items: int) -> None:
        """A shard of ``items`` items went into the engine."""
        with self._lock:
            self._advance()
            self._weights[key] = max(items, 1)
            self._seconds.setdefault(key, 0.0)

    def finish(self, key: Hashable) -> float:
        """The shard's answers came back: its share of the engine's time, in seconds."""
        with self._lock:
            self._advance()
            self._weights.pop(key, None)
            return self._seconds.pop(key, 0.0)
