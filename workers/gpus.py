"""The agent's GPU ledger: which GPUs of which node its engines hold. Pure: no threads, no Ray.

A pool's GPUs are accounted per node, because an engine of ``k`` GPUs (vLLM
tensor parallelism) must sit on one node. ``place`` reserves GPUs on the
fullest node that still fits (so big gaps stay open for big engines);
``victims`` picks the fewest idle engines, least recently used first, whose
GPUs would make room on one node. The agent holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["GpuLedger", "HeldGpus"]


@dataclass(frozen=True)
class HeldGpus:
    """An idle engine that could be closed: which slot, where, how many GPUs, when last used."""

    slot: int
    node: int
    gpus: int
    last_used: float


class GpuLedger:
    """Free GPUs per node.

    Args:
        gpus_per_node: GPUs of each node (a CPU pool counts its engine slots here).
    """

    def __init__(self, gpus_per_node: Sequence[int]) -> None:
        self.total = list(gpus_per_node)
        self.free = list(gpus_per_node)

    @property
    def largest_node(self) -> int:
        """GPUs of the biggest node: no engine may need more."""
        return max(self.total)

    def place(self, gpus: int) -> int | None:
        """Reserve ``gpus`` GPUs on the fullest node that fits; its index, or None."""
        fitting = [n for n, free in enumerate(self.free) if free >= gpus]
        if not fitting:
            return None
        node = min(fitting, key=lambda n: self.free[n])
        self.free[node] -= gpus
        return node

    def release(self, node: int, gpus: int) -> None:
        """Give back GPUs an engine held."""
        self.free[node] += gpus
        if self.free[node] > self.total[node]:
            raise ValueError(
                f"node {node} would have {self.free[node]} free GPUs of {self.total[node]}"
            )

    def fits_now(self, gpus: int) -> bool:
        """Whether ``gpus`` GPUs are free on one node."""
        return max(self.free) >= gpus

    def victims(self, idle: Sequence[HeldGpus], gpus: int) -> list[HeldGpus] | None:
        """The fewest idle engines (least recently used first) to close for ``gpus`` on one node.

        Returns:
            Them (empty when the GPUs are free already), or None when no node
            can make room by closing idle engines.
        """
        best: list[HeldGpus] | None = None
        for node, free in enumerate(self.free):
            chosen: list[HeldGpus] = []
            for engine in sorted((e for e in idle if e.node == node), key=lambda e: e.last_used):
                if free >= gpus:
                    break
                chosen.append(engine)
                free += engine.gpus
            if free >= gpus and (best is None or len(chosen) < len(best)):
                best = chosen
        return best
