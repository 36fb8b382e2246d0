"""Metrics as sufficient statistics per item, so that bootstrap resampling is cheap.

Every metric turns each item into a vector of statistics; summing the vectors
of any subset of items and calling ``score_from_stats`` gives the corpus-level
score of that subset. For sacrebleu's metrics these are sacrebleu's own
statistics, so the full-set value equals ``corpus_score`` exactly.
``scores_from_totals`` scores many such sums at once (one per bootstrap
resample) with numpy, using the formulas in ``_formulas.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _formulas, _sacrebleu_stats

__all__ = [
    "INVALID_LABEL",
    "Metric",
    "get_metric",
    "known_metrics",
]

INVALID_LABEL = "<unparseable>"


@dataclass
class Metric:
    """One metric: how to compute it and how to read it.

    Attributes:
        name: Registry name, e.g. ``"chrf++"``.
        task: ``"generation"`` or ``"classification"``.
        higher_is_better: Direction used for ranking.
        label: Human-readable name for pages.
    """

    name: str
    task: str
    higher_is_better: bool
    label: str
    _stats: Callable[[Sequence[str], Sequence[str], Sequence[str]], np.ndarray] = field(repr=False)
    _scores: Callable[[np.ndarray, Sequence[str]], np.ndarray] = field(repr=False)
    _signature: Callable[[], str | None] = field(repr=False, default=lambda: None)

    def item_stats(
        self, predictions: Sequence[str], references: Sequence[str], labels: Sequence[str] = ()
    ) -> np.ndarray:
        """Per-item statistics, shape (n_items, n_stats)."""
        return self._stats(predictions, references, labels)

    def scores_from_totals(self, totals: np.ndarray, labels: Sequence[str] = ()) -> np.ndarray:
        """Scores of many sets of items at once.

        Args:
            totals: Summed statistics, one row per set of items, shape (R, n_stats).
            labels: Class labels, for classification metrics.

        Returns:
            The R scores, shape (R,).
        """
        return self._scores(
            np.asarray(totals, dtype=np.float64).reshape(-1, totals.shape[-1]), labels
        )

    def score_from_stats(self, totals: np.ndarray, labels: Sequence[str] = ()) -> float:
        """The score of a set of items from the sum of their statistics, shape (n_stats,)."""
        row = np.asarray(totals, dtype=np.float64).reshape(1, -1)
        return float(self._scores(row, labels)[0])

    def signature(self) -> str | None:
        """The metric signature (sacrebleu's for its metrics), stored beside each score."""
        return self._signature()


def _sacrebleu_metric(
    name: str,
    label: str,
    higher: bool,
    factory: Callable[[], Any],
    scores: Callable[[np.ndarray, Sequence[str]], np.ndarray],
) -> Metric:
    def stats(preds: Sequence[str], refs: Sequence[str], _labels: Sequence[str]) -> np.ndarray:
        # sacrebleu's ``_extract_corpus_statistics(preds, [refs])``, each reference analysed once
        rows = _sacrebleu_stats.segment_statistics(name, factory, preds, refs)
        return np.asarray(rows, dtype=np.float64).reshape(len(preds), -1)

    def signature() -> str:
        metric = factory()
        # The number of references is only known once references are cached.
        metric.corpus_score(["x"], [["x"]])
        return str(metric.get_signature())

    return Metric(name, "generation", higher, label, stats, scores, signature)


def _chrf_plus_plus() -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF(word_order=2)


def _bleu() -> Any:
    from sacrebleu.metrics import BLEU

    # Scripts such as Tamil and Devanagari are split on whitespace by 13a; the
    # default tokenizer is what sacrebleu recommends for these languages too.
    return BLEU(effective_order=False)


def _ter() -> Any:
    from sacrebleu.metrics import TER

    return TER()


# The settings of the factories above, for the vectorised formulas; a test checks they agree.
CHRF_ORDER = 6 + 2
CHRF_BETA = 2
BLEU_MAX_NGRAM_ORDER = 4


def _chrf_scores(totals: np.ndarray, _labels: Sequence[str]) -> np.ndarray:
    return _formulas.chrf_scores(totals, CHRF_ORDER, CHRF_BETA)


def _bleu_scores(totals: np.ndarray, _labels: Sequence[str]) -> np.ndarray:
    return _formulas.bleu_scores(totals, BLEU_MAX_NGRAM_ORDER)


def _ter_scores(totals: np.ndarray, _labels: Sequence[str]) -> np.ndarray:
    return _formulas.ter_scores(totals)


def _accuracy_stats(
    preds: Sequence[str], refs: Sequence[str], _labels: Sequence[str]
) -> np.ndarray:
    return np.asarray([[float(p == r)] for p, r in zip(preds, refs, strict=True)]).reshape(-1, 1)


def _counted(
    stats: Callable[[Sequence[str], Sequence[str], Sequence[str]], np.ndarray],
) -> Callable[[Sequence[str], Sequence[str], Sequence[str]], np.ndarray]:
    def with_count(preds: Sequence[str], refs: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        base = stats(preds, refs, labels)
        return np.hstack([base, np.ones((base.shape[0], 1))])

    return with_count


def _f1_stats(preds: Sequence[str], refs: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Per item: true positives, false positives, false negatives for each label."""
    k = len(labels)
    rows = np.zeros((len(preds), 3 * k))
    index = {label: i for i, label in enumerate(labels)}
    for row, (pred, ref) in enumerate(zip(preds, refs, strict=True)):
        if pred == ref:
            rows[row, index[ref]] = 1
        else:
            rows[row, 2 * k + index[ref]] = 1  # a miss for the true class
            if pred in index:  # an unparseable answer is nobody's false positive
                rows[row, k + index[pred]] = 1
    return rows


def _invalid_stats(
    preds: Sequence[str], _refs: Sequence[str], _labels: Sequence[str]
) -> np.ndarray:
    return np.asarray([[float(p == INVALID_LABEL)] for p in preds]).reshape(-1, 1)


_REGISTRY: dict[str, Callable[[], Metric]] = {
    "chrf++": lambda: _sacrebleu_metric("chrf++", "chrF++", True, _chrf_plus_plus, _chrf_scores),
    "bleu": lambda: _sacrebleu_metric("bleu", "BLEU", True, _bleu, _bleu_scores),
    "ter": lambda: _sacrebleu_metric("ter", "TER", False, _ter, _ter_scores),
    "accuracy": lambda: Metric(
        "accuracy",
        "classification",
        True,
        "Accuracy",
        _counted(_accuracy_stats),
        _formulas.percent_scores,
    ),
    "macro_f1": lambda: Metric(
        "macro_f1", "classification", True, "Macro-F1", _f1_stats, _formulas.macro_f1_scores
    ),
    "unparseable": lambda: Metric(
        "unparseable",
        "classification",
        False,
        "Unparseable answers (%)",
        _counted(_invalid_stats),
        _formulas.percent_scores,
    ),
}


def known_metrics(task: str | None = None) -> list[str]:
    """Names of the registered metrics, optionally only those for ``task``."""
    return sorted(name for name in _REGISTRY if task is None or get_metric(name).task == task)


def get_metric(name: str) -> Metric:
    """Look a metric up by name.

    Raises:
        KeyError: unknown name; the message lists the known ones.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"Unknown metric {name!r}. Known metrics: {', '.join(sorted(_REGISTRY))}."
        ) from None
    return factory()
