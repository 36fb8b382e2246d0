"""Seeded bootstrap confidence intervals over items, vectorised across resamples.

A resample is a row of counts: how often each item was drawn. The summed
statistics of every resample are then one matrix product, ``counts @ stats``,
and the metric scores all rows at once. The counts come from
``np.random.default_rng(seed).integers(0, n, size=(R, n))``, so they depend
only on the number of items and the seed: every metric and every model scored
on the same items in the same order gets the same resamples, and the
differences of two models' resampled scores are a paired bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .metrics import Metric

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "Estimate",
    "bootstrap_estimate",
    "estimate_from_totals",
    "is_tie",
    "paired_difference",
    "percentile_interval",
    "resample_count_blocks",
    "resample_counts",
    "resampled_totals",
]

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 12345
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A score with its percentile bootstrap confidence interval.

    Attributes:
        value: The score of all items.
        ci_low: Lower end of the percentile interval of the resampled scores.
        ci_high: Upper end of that interval. Like ``ci_low`` it is reported as
            computed, so it may exclude ``value`` for skewed metrics.
        n: Number of items.
        too_few: Fewer items than the caller's minimum: no bootstrap was run,
            ``ci_low == ci_high == value`` and ``resamples`` is None.
        resamples: The resampled scores in resample order (None when
            ``too_few``); left out of equality and repr.
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    too_few: bool = False
    resamples: np.ndarray | None = field(default=None, compare=False, repr=False)


# Counts are made this many matrix entries at a time: large enough for fast
# numpy calls, small enough to stay in cache instead of allocating (R, n) at once.
_BLOCK_ENTRIES = 1 << 21


def resample_count_blocks(
    n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> Iterator[tuple[slice, np.ndarray]]:
    """The rows of ``resample_counts(n, n_resamples, seed)``, a block at a time.

    Yields:
        ``(rows, counts)``: which resamples the block holds and their float
        counts, shape (rows, n).
    """
    rng = np.random.default_rng(seed)
    block_rows = max(1, _BLOCK_ENTRIES // max(n, 1))
    for start in range(0, n_resamples, block_rows):
        rows = slice(start, min(start + block_rows, n_resamples))
        # Drawing consecutive blocks gives the same numbers as one (R, n) draw.
        indices = rng.integers(0, n, size=(rows.stop - rows.start, n))
        # Offset each row's indices into its own block of n, then count them all at once.
        indices += np.arange(indices.shape[0])[:, None] * n
        counts = np.bincount(indices.ravel(), minlength=indices.size)
        yield rows, counts.reshape(indices.shape).astype(np.float64)


def resample_counts(
    n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """How often each of ``n`` items is drawn in each bootstrap resample.

    The draws are ``np.random.default_rng(seed).integers(0, n, size=(R, n))``.

    Args:
        n: Number of items.
        n_resamples: Number of resamples R.
        seed: Seed of the random generator.

    Returns:
        Float counts of shape (R, n); each row sums to ``n``.
    """
    return np.vstack([counts for _, counts in resample_count_blocks(n, n_resamples, seed)])


def resampled_totals(
    stats_by_group: Sequence[np.ndarray],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> list[np.ndarray]:
    """``resample_counts(n) @ stats`` for several groups of the same size n.

    Equal to the plain product (the statistics are integer counts, so every
    order of summation is exact) without holding the (R, n) counts at once.

    Args:
        stats_by_group: Per-item statistics of each group, each of shape (n, k).
        n_resamples: Number of resamples R.
        seed: Seed of the random generator.

    Returns:
        For each group, its statistics summed over each resample, shape (R, k).
    """
    n = stats_by_group[0].shape[0]
    totals = [np.empty((n_resamples, stats.shape[1])) for stats in stats_by_group]
    for rows, counts in resample_count_blocks(n, n_resamples, seed):
        for stats, out in zip(stats_by_group, totals, strict=True):
            out[rows] = counts @ stats
    return totals


def percentile_interval(
    samples: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """The central ``confidence`` percentile range of ``samples``.

    Equal to ``np.percentile(samples, [tail, 100 - tail])`` (linear
    interpolation, the same arithmetic), but a partial sort for just the two
    ends, several times faster; ranking calls it once per model.
    """
    tail = 100 * (1 - confidence) / 2
    n = samples.size
    positions = [(n - 1) * (q / 100) for q in (tail, 100 - tail)]
    below = [int(np.floor(position)) for position in positions]
    above = [min(index + 1, n - 1) for index in below]
    ordered = np.partition(samples, sorted({*below, *above}))
    ends = []
    for position, low, high in zip(positions, below, above, strict=True):
        weight = position - low
        a, b = ordered[low], ordered[high]
        # numpy's lerp: from the nearer end, so weight 1 gives b exactly.
        ends.append(float(b - (b - a) * (1 - weight) if weight >= 0.5 else a + (b - a) * weight))
    return ends[0], ends[1]


def paired_difference(
    a: np.ndarray, b: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Percentile interval of ``a - b`` for two models' scores on the same resamples.

    Args:
        a: Resampled scores of the first model.
        b: Resampled scores of the second model, drawn with the same counts.
        confidence: Coverage of the interval.

    Raises:
        ValueError: the two arrays hold different numbers of resamples.
    """
    if a.shape != b.shape:
        raise ValueError(
            f"Paired resamples must have the same shape, got {a.shape} and {b.shape}; "
            "score both models with the same n_resamples and seed."
        )
    return percentile_interval(a - b, confidence)


def is_tie(a: np.ndarray, b: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> bool:
    """Whether the paired bootstrap interval of ``a - b`` contains 0."""
    low, high = paired_difference(a, b, confidence)
    return low <= 0.0 <= high


def estimate_from_totals(
    metric: Metric,
    totals: np.ndarray,
    resample_totals: np.ndarray,
    n: int,
    labels: Sequence[str] = (),
    confidence: float = DEFAULT_CONFIDENCE,
) -> Estimate:
    """An estimate from the summed statistics of all items and of each resample.

    Args:
        metric: The metric.
        totals: Statistics summed over all items, shape (k,).
        resample_totals: Statistics summed over each resample, ``counts @ stats``, shape (R, k).
        n: Number of items.
        labels: Class labels, for classification metrics.
        confidence: Coverage of the interval.
    """
    value = metric.score_from_stats(totals, labels)
    samples = metric.scores_from_totals(resample_totals, labels)
    low, high = percentile_interval(samples, confidence)
    return Estimate(value, low, high, n, resamples=samples)


def bootstrap_estimate(
    metric: Metric,
    stats: np.ndarray,
    labels: Sequence[str] = (),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
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

    Raises:
        ValueError: there are no items.
    """
    n = stats.shape[0]
    if n == 0:
        raise ValueError("Cannot score an empty set of items.")
    (resample_totals,) = resampled_totals([stats], n_resamples, seed)
    return estimate_from_totals(metric, stats.sum(axis=0), resample_totals, n, labels, confidence)
