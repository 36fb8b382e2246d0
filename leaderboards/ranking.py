"""Ranks that respect uncertainty: overlapping intervals share a rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RankedEntry", "rank_by_interval"]


@dataclass(frozen=True)
class RankedEntry:
    """One leaderboard row with its rank."""

    key: str
    value: float
    ci_low: float
    ci_high: float
    rank: int


def rank_by_interval(
    entries: Sequence[tuple[str, float, float, float]], higher_is_better: bool = True
) -> list[RankedEntry]:
    """Rank ``(key, value, ci_low, ci_high)`` entries, best first.

    An entry's rank is one plus the number of entries that are better with
    non-overlapping intervals, so entries whose intervals overlap can share a
    rank (the convention of public leaderboards that show uncertainty).
    """

    def clearly_better(
        a: tuple[str, float, float, float], b: tuple[str, float, float, float]
    ) -> bool:
        return a[2] > b[3] if higher_is_better else a[3] < b[2]

    ranked = [
        RankedEntry(e[0], e[1], e[2], e[3], 1 + sum(clearly_better(o, e) for o in entries))
        for e in entries
    ]
    return sorted(ranked, key=lambda r: (r.rank, -r.value if higher_is_better else r.value, r.key))
