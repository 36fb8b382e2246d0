"""Seeded bootstrap confidence intervals over items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import Metric

__all__ = ["Estimate", "bootstrap_estimate"]

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 12345


@dataclass(frozen=True)
class Estimate:
    """A score with its percentile bootstrap confidence interval."""

    value: float
    ci_low: float
    ci_high: float
    n: int


def bootstrap_estimate(
    metric: Metric,
    stats: np.ndarray,
    labels: Sequence[str] = (),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> Estimate:
    """Score a set of items and bootstrap a confidence interval for it.

    Items are resampled with replacement ``n_resamples`` times with a fixed
    ``seed``; the interval is the central ``confidence`` percentile range of
    the resampled scores, so the same inputs always give the same interval.

    Args:
        metric: The metric.
        stats: Per-item statistics from ``metric.item_stats``.
        labels: Class labels, for classification metrics.
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the random generator.
        confidence: Coverage of the interval.
    """
    n = stats.shape[0]
    if n == 0:
        raise ValueError("Cannot score an empty set of items.")
    value = metric.score_from_stats(stats.sum(axis=0), labels)
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, n, size=(n_resamples, n))
    totals = stats[indices].sum(axis=1)
    samples = np.array([metric.score_from_stats(row, labels) for row in totals])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    # Percentile intervals of skewed metrics can miss the point estimate by a hair.
    return Estimate(value, float(min(low, value)), float(max(high, value)), n)
