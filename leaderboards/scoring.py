"""Score a job's outputs: every metric, overall and per breakdown group, with CIs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sabha.platform.benchmarks import AnswerSpec

from .bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Estimate,
    estimate_from_totals,
    resampled_totals,
)
from .extraction import extract_label
from .metrics import Metric, get_metric
from .parallel_stats import item_stats_parallel

__all__ = [
    "DEFAULT_MIN_ITEMS",
    "OVERALL",
    "ScoreRow",
    "ScoredItem",
    "failure_reason",
    "group_members",
    "score_from_item_stats",
    "score_items",
]

OVERALL = ("overall", "all")
DEFAULT_MIN_ITEMS = 5


def failure_reason(error: str) -> str:
    """The category of a per-item error: its text before the first colon."""
    return error.split(":", 1)[0].strip() or "failed"


@dataclass(frozen=True)
class ScoredItem:
    """One item's model output and gold answer.

    Attributes:
        prediction: The model's raw text.
        reference: Reference answer (generation tasks).
        label: Gold label (classification tasks).
        groups: Breakdown name to this item's value, e.g. ``{"language": "hi-Deva"}``.
    """

    prediction: str
    reference: str | None = None
    label: str | None = None
    groups: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreRow:
    """One score: a metric on one group of items, with its 95% CI.

    Attributes:
        metric: Metric name.
        breakdown: Breakdown name, or ``"overall"``.
        group: The breakdown's value, or ``"all"``.
        value: Score of the group's items.
        ci_low: Lower end of the percentile bootstrap interval.
        ci_high: Upper end of the interval.
        n: Number of items in the group.
        signature: sacrebleu's signature, for its metrics.
        too_few: The group has fewer items than the minimum: no bootstrap was
            run and ``ci_low == ci_high == value``; pages say "too few items".
        resamples: The bootstrap resampled scores (None when ``too_few``), for
            paired comparisons between models; left out of equality and repr.
    """

    metric: str
    breakdown: str
    group: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    signature: str | None
    too_few: bool = False
    resamples: np.ndarray | None = field(default=None, compare=False, repr=False)


def group_members(
    groups: Sequence[Mapping[str, str | None]], breakdowns: Sequence[str]
) -> list[tuple[str, str, np.ndarray]]:
    """Indices of the items in each group, overall first, in one pass over the items.

    Args:
        groups: Each item's breakdown values, e.g. ``{"language": "hi-Deva"}``.
        breakdowns: Breakdowns to group by; items without a value are in no group.

    Returns:
        ``(breakdown, group, indices)`` with groups sorted by value within each
        breakdown and indices in item order.
    """
    members: dict[str, dict[str, list[int]]] = {breakdown: {} for breakdown in breakdowns}
    for index, item_groups in enumerate(groups):
        for breakdown, by_value in members.items():
            value = item_groups.get(breakdown)
            if value is not None:
                by_value.setdefault(value, []).append(index)
    result = [(*OVERALL, np.arange(len(groups)))]
    for breakdown, by_value in members.items():
        result.extend((breakdown, value, np.asarray(by_value[value])) for value in sorted(by_value))
    return result


def score_from_item_stats(
    task: str,
    metrics: Sequence[str],
    stats_by_metric: Mapping[str, np.ndarray],
    groups: Sequence[Mapping[str, str | None]],
    labels: Sequence[str] = (),
    breakdowns: Sequence[str] = ("language",),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    min_items: int = DEFAULT_MIN_ITEMS,
) -> list[ScoreRow]:
    """Score every metric overall and per group from stored per-item statistics.

    The bootstrap counts are drawn once per group size and shared by all
    metrics, so the resamples of two runs over the same items in the same
    order are paired (see ``bootstrap.py``). Groups with fewer than
    ``min_items`` items are flagged ``too_few`` and not bootstrapped.

    Args:
        task: ``"generation"`` or ``"classification"``; every metric must be for it.
        metrics: Metric names to score, in the order of the returned rows.
        stats_by_metric: Each metric's per-item statistics from ``item_stats``,
            one row per item, in the order of ``groups``.
        groups: Each item's breakdown values.
        labels: Class labels, for classification metrics.
        breakdowns: Breakdowns to score besides overall.
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the bootstrap.
        min_items: Smallest group that gets a confidence interval.

    Raises:
        ValueError: no items, a metric for another task, or statistics missing
            or of the wrong length.
    """
    if not groups:
        raise ValueError("There are no outputs to score.")
    chosen: list[Metric] = []
    for name in metrics:
        metric = get_metric(name)
        if metric.task != task:
            raise ValueError(f"Metric {name!r} is for {metric.task} tasks, not {task}.")
        stats = stats_by_metric.get(name)
        if stats is None or stats.ndim != 2 or stats.shape[0] != len(groups):
            raise ValueError(
                f"Statistics for {name!r} must have one row per item ({len(groups)}); "
                "compute them with get_metric(name).item_stats."
            )
        chosen.append(metric)
    if not chosen:
        return []
    # One matrix product per group serves every metric: their columns side by side.
    all_stats = np.hstack([stats_by_metric[metric.name] for metric in chosen])
    columns, start = [], 0
    for metric in chosen:
        width = stats_by_metric[metric.name].shape[1]
        columns.append(slice(start, start + width))
        start += width

    estimates: dict[tuple[str, str, str], Estimate] = {}
    member_groups = group_members(groups, breakdowns)
    # Groups of one size share their resample counts, drawn once.
    by_size: dict[int, list[tuple[str, str, np.ndarray]]] = {}
    for breakdown, group, members in member_groups:
        group_stats = all_stats[members]
        n = len(members)
        if n >= min_items:
            by_size.setdefault(n, []).append((breakdown, group, group_stats))
            continue
        totals = group_stats.sum(axis=0)
        for metric, cols in zip(chosen, columns, strict=True):
            value = metric.score_from_stats(totals[cols], labels)
            estimates[metric.name, breakdown, group] = Estimate(
                value, value, value, n, too_few=True
            )
    for n, same_size in by_size.items():
        resample_totals = resampled_totals([s for _, _, s in same_size], n_resamples, seed)
        for (breakdown, group, group_stats), resampled in zip(
            same_size, resample_totals, strict=True
        ):
            totals = group_stats.sum(axis=0)
            for metric, cols in zip(chosen, columns, strict=True):
                estimates[metric.name, breakdown, group] = estimate_from_totals(
                    metric, totals[cols], resampled[:, cols], n, labels
                )

    rows: list[ScoreRow] = []
    for metric in chosen:
        signature = metric.signature()
        for breakdown, group, _ in member_groups:
            estimate = estimates[metric.name, breakdown, group]
            rows.append(
                ScoreRow(
                    metric.name,
                    breakdown,
                    group,
                    estimate.value,
                    estimate.ci_low,
                    estimate.ci_high,
                    estimate.n,
                    signature,
                    too_few=estimate.too_few,
                    resamples=estimate.resamples,
                )
            )
    return rows


def score_items(
    task: str,
    metrics: Sequence[str],
    items: Sequence[ScoredItem],
    labels: Sequence[str] = (),
    breakdowns: Sequence[str] = ("language",),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    min_items: int = DEFAULT_MIN_ITEMS,
    processes: int = 1,
    answer: AnswerSpec | None = None,
) -> list[ScoreRow]:
    """Compute every metric overall and for each group of each breakdown.

    For classification the answer is read with ``extract_label`` (the
    benchmark's ``answer`` rule, or the default); an
    unparseable answer counts as wrong, and the ``unparseable`` metric (the
    share of such answers) is always added. Groups with fewer than
    ``min_items`` items are flagged ``too_few`` (see ``score_from_item_stats``).

    Args:
        task: ``"generation"`` or ``"classification"``.
        metrics: Metric names.
        items: The outputs with their references or gold labels.
        labels: Class labels, for classification.
        breakdowns: Breakdowns to score besides overall.
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the bootstrap.
        min_items: Smallest group that gets a confidence interval.
        processes: Worker processes for the per-item statistics of large runs.
        answer: How classification answers are read (None: the default rule).

    Raises:
        ValueError: there are no items.
    """
    if not items:
        raise ValueError("There are no outputs to score.")
    if task == "classification":
        predictions = [
            extract_label(item.prediction, labels, answer, item.groups.get("language"))
            for item in items
        ]
        golds = [item.label or "" for item in items]
        metrics = [*metrics, *([] if "unparseable" in metrics else ["unparseable"])]
    else:
        predictions = [item.prediction.strip() for item in items]
        golds = [item.reference or "" for item in items]
    stats = {
        name: item_stats_parallel(name, predictions, golds, labels, processes=processes)
        for name in metrics
    }
    return score_from_item_stats(
        task,
        metrics,
        stats,
        [item.groups for item in items],
        labels,
        breakdowns,
        n_resamples,
        seed,
        min_items,
    )
