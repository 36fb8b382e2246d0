"""Per-item metric statistics computed in several processes.

sacrebleu computes statistics item by item in pure Python, so for large runs
they are the slow part of scoring. Items are independent, so chunks of them
can be scored in worker processes and the rows stacked back in order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .metrics import get_metric

__all__ = ["SEQUENTIAL_BELOW", "item_stats_parallel"]

# Starting worker processes costs a fraction of a second; below this many items
# the sequential computation is faster.
SEQUENTIAL_BELOW = 2000


def _chunk_stats(
    metric_name: str, predictions: Sequence[str], references: Sequence[str], labels: Sequence[str]
) -> np.ndarray:
    return get_metric(metric_name).item_stats(predictions, references, labels)


def item_stats_parallel(
    metric_name: str,
    predictions: Sequence[str],
    references: Sequence[str],
    labels: Sequence[str] = (),
    processes: int = 2,
    sequential_below: int = SEQUENTIAL_BELOW,
) -> np.ndarray:
    """The same array as ``get_metric(metric_name).item_stats(...)``, computed in processes.

    Workers are started with the 'spawn' method, which is safe in threaded
    servers; each gets a few chunks so an uneven chunk does not hold up the rest.

    Args:
        metric_name: Registry name of the metric.
        predictions: Model outputs, one per item.
        references: References or gold labels, one per item.
        labels: Class labels, for classification metrics.
        processes: Number of worker processes; 1 computes sequentially.
        sequential_below: Compute sequentially when there are fewer items than this.

    Raises:
        ValueError: predictions and references differ in length.
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"Got {len(predictions)} predictions but {len(references)} references; "
            "pass one reference per prediction."
        )
    n = len(predictions)
    if processes <= 1 or n < max(sequential_below, 2):
        return _chunk_stats(metric_name, predictions, references, labels)
    bounds = np.linspace(0, n, min(n, 4 * processes) + 1).astype(int)
    chunks = list(zip(bounds[:-1], bounds[1:], strict=True))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        parts = pool.map(
            _chunk_stats,
            [metric_name] * len(chunks),
            [list(predictions[a:b]) for a, b in chunks],
            [list(references[a:b]) for a, b in chunks],
            [list(labels)] * len(chunks),
        )
        return np.vstack(list(parts))
