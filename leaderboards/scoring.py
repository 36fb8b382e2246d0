"""Score a job's outputs: every metric, overall and per breakdown group, with CIs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_estimate
from .metrics import get_metric, parse_label

__all__ = ["OVERALL", "ScoreRow", "ScoredItem", "score_items"]

OVERALL = ("overall", "all")


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
    """One score: a metric on one group of items, with its 95% CI."""

    metric: str
    breakdown: str
    group: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    signature: str | None


def score_items(
    task: str,
    metrics: Sequence[str],
    items: Sequence[ScoredItem],
    labels: Sequence[str] = (),
    breakdowns: Sequence[str] = ("language",),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> list[ScoreRow]:
    """Compute every metric overall and for each group of each breakdown.

    For classification the answer is parsed with ``parse_label``; an
    unparseable answer counts as wrong, and the ``unparseable`` metric (the
    share of such answers) is always added.
    """
    if not items:
        raise ValueError("There are no outputs to score.")
    if task == "classification":
        predictions = [parse_label(item.prediction, labels) for item in items]
        golds = [item.label or "" for item in items]
        metrics = [*metrics, *([] if "unparseable" in metrics else ["unparseable"])]
    else:
        predictions = [item.prediction.strip() for item in items]
        golds = [item.reference or "" for item in items]

    groups: list[tuple[str, str, np.ndarray]] = [(*OVERALL, np.arange(len(items)))]
    for breakdown in breakdowns:
        values = sorted({v for item in items if (v := item.groups.get(breakdown)) is not None})
        for value in values:
            indices = [i for i, item in enumerate(items) if item.groups.get(breakdown) == value]
            groups.append((breakdown, value, np.asarray(indices)))

    rows: list[ScoreRow] = []
    for name in metrics:
        metric = get_metric(name)
        stats = metric.item_stats(predictions, golds, labels)
        signature = metric.signature()
        for breakdown, group, members in groups:
            estimate = bootstrap_estimate(metric, stats[members], labels, n_resamples, seed)
            rows.append(
                ScoreRow(
                    name,
                    breakdown,
                    group,
                    estimate.value,
                    estimate.ci_low,
                    estimate.ci_high,
                    estimate.n,
                    signature,
                )
            )
    return rows
