"""Paired bootstrap ranking: ties are decided on the same resamples of the same items."""

from __future__ import annotations

import numpy as np
import pytest

from sabha.leaderboards.bootstrap import is_tie, paired_difference, percentile_interval
from sabha.leaderboards.ranking import RankingEntry, rank_by_interval, rank_by_sorting
from sabha.leaderboards.scoring import ScoredItem, ScoreRow, score_items

LABELS = ["safe", "unsafe"]


def _overall_accuracy(correct: np.ndarray) -> ScoreRow:
    golds = ["safe"] * len(correct)
    answers = ["safe" if ok else "unsafe" for ok in correct]
    rows = score_items(
        "classification",
        ["accuracy"],
        [ScoredItem(a, label=g) for a, g in zip(answers, golds, strict=True)],
        labels=LABELS,
        breakdowns=[],
    )
    return next(r for r in rows if r.metric == "accuracy")


def _entry(key: str, row: ScoreRow) -> RankingEntry:
    return RankingEntry(key, row.value, row.resamples, row.ci_low, row.ci_high)


def test_paired_bootstrap_finds_a_consistent_gap_that_overlapping_intervals_miss() -> None:
    # B is right on half the items; A is right on those and on 12 more.
    rng = np.random.default_rng(0)
    b_correct = rng.permutation(np.arange(300) < 150)
    a_correct = b_correct.copy()
    a_correct[np.flatnonzero(~b_correct)[:12]] = True
    a, b = _overall_accuracy(a_correct), _overall_accuracy(b_correct)
    assert a.resamples is not None and b.resamples is not None

    assert a.ci_low < b.ci_high  # the two intervals overlap ...
    low, high = paired_difference(a.resamples, b.resamples)
    assert 0 < low < 4.0 < high  # ... but the paired interval of A - B excludes 0
    assert not is_tie(a.resamples, b.resamples)

    ranked = rank_by_sorting([_entry("b", b), _entry("a", a)])
    assert [(r.key, r.rank, r.tied_with) for r in ranked] == [("a", 1, []), ("b", 2, [])]
    by_interval = rank_by_interval(
        [("a", a.value, a.ci_low, a.ci_high), ("b", b.value, b.ci_low, b.ci_high)]
    )
    assert [r.rank for r in by_interval] == [1, 1]


def test_models_tied_with_the_group_leader_share_its_rank() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(200) < 0.6
    almost = base.copy()
    almost[np.flatnonzero(~base)[:1]] = True  # one more right answer: no real difference
    worse = base & (rng.random(200) < 0.5)
    rows = {"base": base, "almost": almost, "worse": worse}
    entries = [_entry(key, _overall_accuracy(correct)) for key, correct in rows.items()]
    ranked = rank_by_sorting(entries)
    assert [(r.key, r.rank) for r in ranked] == [("almost", 1), ("base", 1), ("worse", 3)]
    assert ranked[0].tied_with == ["base"] and ranked[1].tied_with == ["almost"]
    assert ranked[2].tied_with == []


def test_lower_is_better_ranks_ascending_with_key_breaking_equal_values() -> None:
    entries = [
        RankingEntry("c", 30.0, ci_low=29.0, ci_high=31.0),
        RankingEntry("b", 10.0, ci_low=5.0, ci_high=15.0),
        RankingEntry("a", 10.0, ci_low=5.0, ci_high=15.0),
        RankingEntry("d", 14.0, ci_low=12.0, ci_high=16.0),
    ]
    ranked = rank_by_sorting(entries, higher_is_better=False)
    assert [(r.key, r.rank) for r in ranked] == [("a", 1), ("b", 1), ("d", 1), ("c", 4)]
    assert ranked[0].tied_with == ["b", "d"]


def test_entries_without_intervals_tie_only_on_equal_values() -> None:
    ranked = rank_by_sorting(
        [RankingEntry("x", 2.0), RankingEntry("y", 2.0), RankingEntry("z", 1.0)]
    )
    assert [(r.key, r.rank) for r in ranked] == [("x", 1), ("y", 1), ("z", 3)]


def test_paired_difference_needs_the_same_resamples() -> None:
    with pytest.raises(ValueError, match="same n_resamples and seed"):
        paired_difference(np.zeros(10), np.zeros(20))


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99])
def test_percentile_interval_equals_numpys_percentile(confidence: float) -> None:
    rng = np.random.default_rng(3)
    tail = 100 * (1 - confidence) / 2
    for n in [1, 2, 7, 100, 1000, 1001]:
        samples = rng.normal(50, 20, n)
        expected = tuple(float(x) for x in np.percentile(samples, [tail, 100 - tail]))
        assert percentile_interval(samples, confidence) == expected
