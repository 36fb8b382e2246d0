"""Ranks that respect uncertainty: models that cannot be told apart share a rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .bootstrap import DEFAULT_CONFIDENCE, is_tie

__all__ = ["RankedEntry", "RankedRow", "RankingEntry", "rank_by_interval", "rank_by_sorting"]


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
    Superseded by ``rank_by_sorting``, which uses paired resamples.
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


@dataclass(frozen=True)
class RankingEntry:
    """One model's score on a leaderboard, as ``rank_by_sorting`` reads it.

    Attributes:
        key: The model's name.
        value: Its score on all items.
        resamples: Its bootstrap resampled scores, drawn with the same seed over
            the same items in the same order as every other model's (see
            ``bootstrap.py``); None when not available.
        ci_low: Lower end of its confidence interval, used when ``resamples`` is None.
        ci_high: Upper end of its confidence interval.
    """

    key: str
    value: float
    resamples: np.ndarray | None = field(default=None, compare=False, repr=False)
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class RankedRow:
    """One leaderboard row with its rank and the models it is tied with.

    Attributes:
        key: The model's name.
        value: Its score.
        rank: 1-based position of its group's leader in the sorted board.
        group: Keys of every model in its tie group, itself included, best
            first (shared by the group's rows, so ranking stays linear).
    """

    key: str
    value: float
    rank: int
    group: tuple[str, ...] = field(repr=False)

    @property
    def tied_with(self) -> list[str]:
        """The other models in the same tie group."""
        return [key for key in self.group if key != self.key]


def _intervals_overlap(a: RankingEntry, b: RankingEntry) -> bool:
    if a.ci_low is None or a.ci_high is None or b.ci_low is None or b.ci_high is None:
        return a.value == b.value
    # NaN bounds compare False, so a missing interval only ties an equal value.
    return (a.ci_low <= b.ci_high and b.ci_low <= a.ci_high) or a.value == b.value


def _tied(leader: RankingEntry, entry: RankingEntry, confidence: float) -> bool:
    if (
        leader.resamples is not None
        and entry.resamples is not None
        and leader.resamples.shape == entry.resamples.shape
    ):
        return is_tie(leader.resamples, entry.resamples, confidence)
    return _intervals_overlap(leader, entry)


def rank_by_sorting(
    entries: Sequence[RankingEntry],
    higher_is_better: bool = True,
    confidence: float = DEFAULT_CONFIDENCE,
) -> list[RankedRow]:
    """Rank models best first; a model tied with its group's leader shares its rank.

    Entries are sorted by value (best first, ties broken by key) and walked in
    order. A model joins the current group when it is tied with the group's
    leader: the paired bootstrap interval of their difference contains 0, or,
    when either has no resamples, their confidence intervals overlap. Otherwise
    it leads a new group. Every model's rank is the 1-based position of its
    group's leader. Cost: O(n log n) for the sort plus O(R) per model.

    Args:
        entries: One per model.
        higher_is_better: Direction of the metric.
        confidence: Coverage of the paired intervals.
    """
    ordered = sorted(entries, key=lambda e: (-e.value if higher_is_better else e.value, e.key))
    groups: list[tuple[int, list[RankingEntry]]] = []  # (leader's position, members)
    for position, entry in enumerate(ordered, start=1):
        if groups and _tied(groups[-1][1][0], entry, confidence):
            groups[-1][1].append(entry)
        else:
            groups.append((position, [entry]))
    rows: list[RankedRow] = []
    for rank, members in groups:
        keys = tuple(member.key for member in members)
        rows.extend(RankedRow(member.key, member.value, rank, keys) for member in members)
    return rows
