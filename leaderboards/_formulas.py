"""Corpus scores from summed statistics, vectorised over many sets of items at once.

Each function takes ``totals`` of shape (R, k), one row per set of items (for
instance one row per bootstrap resample), and returns the R scores. The
sacrebleu formulas repeat sacrebleu's arithmetic step by step, in the same
order, so every row agrees with sacrebleu's ``_compute_score_from_stats`` to
rounding (``tests/test_vectorised_metrics.py`` checks this).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# sacrebleu's ``my_log(0.0)``: the log of a zero BLEU precision.
_BLEU_LOG_OF_ZERO = -9999999999.0


def _zeros_like_rows(totals: np.ndarray) -> np.ndarray:
    return np.zeros(totals.shape[0], dtype=np.float64)


def chrf_scores(totals: np.ndarray, order: int, beta: int) -> np.ndarray:
    """chrF / chrF++ without eps smoothing (sacrebleu's default, effective order).

    Args:
        totals: Summed ``[hyp, ref, match]`` counts for each of the ``order``
            character then word n-gram orders, shape (R, 3 * order).
        order: Character plus word n-gram orders (6 + 2 for chrF++).
        beta: Weight of recall against precision.
    """
    factor = beta**2
    sum_prec = _zeros_like_rows(totals)
    sum_rec = _zeros_like_rows(totals)
    effective_order = _zeros_like_rows(totals)
    for i in range(order):
        n_hyp, n_ref, n_match = totals[:, 3 * i], totals[:, 3 * i + 1], totals[:, 3 * i + 2]
        # Only orders seen on both sides count; adding 0.0 elsewhere leaves the sums unchanged.
        both = (n_hyp > 0) & (n_ref > 0)
        sum_prec += np.divide(n_match, n_hyp, out=_zeros_like_rows(totals), where=both)
        sum_rec += np.divide(n_match, n_ref, out=_zeros_like_rows(totals), where=both)
        effective_order += both
    seen = effective_order > 0
    avg_prec = np.divide(sum_prec, effective_order, out=_zeros_like_rows(totals), where=seen)
    avg_rec = np.divide(sum_rec, effective_order, out=_zeros_like_rows(totals), where=seen)
    numerator = (1 + factor) * avg_prec * avg_rec
    denominator = (factor * avg_prec) + avg_rec
    positive = (avg_prec + avg_rec) > 0
    score = np.divide(numerator, denominator, out=_zeros_like_rows(totals), where=positive)
    return 100 * score


def bleu_scores(totals: np.ndarray, max_ngram_order: int) -> np.ndarray:
    """BLEU with 'exp' smoothing and no effective order (sacrebleu's corpus defaults).

    Args:
        totals: Summed ``[sys_len, ref_len, correct_1..N, total_1..N]``, shape (R, 2 + 2N).
        max_ngram_order: N, the highest n-gram order.
    """
    sys_len, ref_len = totals[:, 0], totals[:, 1]
    correct = totals[:, 2 : 2 + max_ngram_order]
    total = totals[:, 2 + max_ngram_order : 2 + 2 * max_ngram_order]

    short = (sys_len < ref_len) & (sys_len > 0)
    ratio = np.divide(ref_len, sys_len, out=_zeros_like_rows(totals), where=short)
    bp = np.where(short, np.exp(1 - ratio), np.where(sys_len < ref_len, 0.0, 1.0))

    log_sum = _zeros_like_rows(totals)
    smooth = np.ones(totals.shape[0])
    reached = np.ones(totals.shape[0], dtype=bool)  # sacrebleu stops at the first empty order
    for n in range(max_ngram_order):
        reached &= total[:, n] > 0
        no_match = correct[:, n] == 0
        smooth = np.where(reached & no_match, smooth * 2, smooth)
        smoothed = np.divide(
            100.0, smooth * total[:, n], out=_zeros_like_rows(totals), where=reached
        )
        plain = np.divide(
            100.0 * correct[:, n], total[:, n], out=_zeros_like_rows(totals), where=reached
        )
        precision = np.where(no_match, smoothed, plain)
        log_sum += np.log(
            precision, out=np.full(totals.shape[0], _BLEU_LOG_OF_ZERO), where=precision != 0.0
        )
    score = bp * np.exp(log_sum / max_ngram_order)
    # sacrebleu returns 0 outright when no n-gram of any order matches (its issue #141).
    return np.where((correct != 0).any(axis=1), score, 0.0)


def ter_scores(totals: np.ndarray) -> np.ndarray:
    """TER from summed ``[edits, reference length]``, shape (R, 2)."""
    edits, ref_len = totals[:, 0], totals[:, 1]
    rate = np.divide(edits, ref_len, out=_zeros_like_rows(totals), where=ref_len > 0)
    # Empty references: any edit is a rate of 1, no edit a rate of 0.
    rate = np.where(ref_len > 0, rate, np.where(edits > 0, 1.0, 0.0))
    return 100 * rate


def percent_scores(totals: np.ndarray, _labels: Sequence[str] = ()) -> np.ndarray:
    """Statistics ``[hits, n]`` as a percentage (0 for an empty set)."""
    hits, n = totals[:, 0], totals[:, 1]
    return np.divide(100.0 * hits, n, out=_zeros_like_rows(totals), where=n > 0)


def macro_f1_scores(totals: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Mean F1 over the labels present in gold answers or predictions of each row.

    A label that neither occurs in the gold answers nor is predicted has no F1
    (its true positives, false positives and false negatives are all zero) and
    is left out of the mean rather than counted as 0.

    Args:
        totals: Summed ``[tp_1..k, fp_1..k, fn_1..k]``, shape (R, 3k).
        labels: The k labels.
    """
    k = len(labels)
    tp, fp, fn = totals[:, :k], totals[:, k : 2 * k], totals[:, 2 * k : 3 * k]
    denominators = 2 * tp + fp + fn
    present = denominators > 0
    f1 = np.divide(2 * tp, denominators, out=np.zeros_like(tp, dtype=np.float64), where=present)
    n_present = present.sum(axis=1)
    mean = np.divide(f1.sum(axis=1), n_present, out=_zeros_like_rows(totals), where=n_present > 0)
    return 100.0 * mean
