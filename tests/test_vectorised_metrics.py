"""Vectorised scores agree with sacrebleu on every resample; per-item stats in processes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sacrebleu.metrics import BLEU, CHRF, TER
from test_scoring import HYPOTHESES, REFERENCES

from sabha.leaderboards import metrics as metrics_module
from sabha.leaderboards.bootstrap import resample_counts
from sabha.leaderboards.metrics import get_metric
from sabha.leaderboards.parallel_stats import item_stats_parallel

SACREBLEU = [("chrf++", lambda: CHRF(word_order=2)), ("bleu", BLEU), ("ter", TER)]

EDGE_CASES = {
    "zero matches": (["xyz qqq", "www"], ["abc def", "ghi jkl"]),
    "empty predictions": (["", ""], ["पहली सिंचाई करें।", "Panda mahindi."]),
    "one word, no higher n-grams": (["Panda", "mvua"], ["Panda mahindi", "mvua"]),
    "empty references": (["some words here", "more"], ["", ""]),
    "everything empty": ([""], [""]),
}


def _sacrebleu_scores(reference: Any, totals: np.ndarray) -> list[float]:
    rows = [[int(v) if float(v).is_integer() else float(v) for v in row] for row in totals]
    return [reference._compute_score_from_stats(row).score for row in rows]


@pytest.mark.parametrize(("name", "factory"), SACREBLEU)
def test_every_resample_score_equals_sacrebleus(name: str, factory: Any) -> None:
    metric = get_metric(name)
    stats = metric.item_stats(HYPOTHESES, REFERENCES)
    counts = resample_counts(len(HYPOTHESES), n_resamples=50, seed=11)
    ours = metric.scores_from_totals(counts @ stats)
    assert ours == pytest.approx(_sacrebleu_scores(factory(), counts @ stats), abs=1e-9)
    # and against sacrebleu's corpus score of the resampled sentences themselves
    for row, counted in enumerate(counts[:3].astype(int)):
        indices = np.repeat(np.arange(len(HYPOTHESES)), counted)
        hyps, refs = [HYPOTHESES[i] for i in indices], [REFERENCES[i] for i in indices]
        assert ours[row] == pytest.approx(factory().corpus_score(hyps, [refs]).score, abs=1e-9)


@pytest.mark.parametrize(("name", "factory"), SACREBLEU)
@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_equal_sacrebleu(name: str, factory: Any, case: str) -> None:
    hyps, refs = EDGE_CASES[case]
    metric = get_metric(name)
    ours = metric.score_from_stats(metric.item_stats(hyps, refs).sum(axis=0))
    assert ours == pytest.approx(factory().corpus_score(hyps, [refs]).score, abs=1e-9)


@pytest.mark.parametrize(("name", "factory"), SACREBLEU)
def test_random_statistics_with_many_zeros_equal_sacrebleu(name: str, factory: Any) -> None:
    # Arbitrary count vectors reach every branch: empty orders, no matches, short output.
    width = get_metric(name).item_stats(["a b"], ["a b"]).shape[1]
    rng = np.random.default_rng(5)
    totals = rng.integers(0, 4, size=(400, width)) * rng.integers(0, 2, size=(400, width))
    if name == "chrf++":  # matches never exceed either side's count
        totals[:, 2::3] = np.minimum(totals[:, 2::3], np.minimum(totals[:, 0::3], totals[:, 1::3]))
    if name == "bleu":
        totals[:, 2:6] = np.minimum(totals[:, 2:6], totals[:, 6:10])
    ours = get_metric(name).scores_from_totals(totals.astype(np.float64))
    assert ours == pytest.approx(_sacrebleu_scores(factory(), totals), abs=1e-9)


def test_vectorised_formulas_use_the_factories_settings() -> None:
    chrf, bleu = metrics_module._chrf_plus_plus(), metrics_module._bleu()
    assert (chrf.order, chrf.beta, chrf.eps_smoothing) == (
        metrics_module.CHRF_ORDER,
        metrics_module.CHRF_BETA,
        False,
    )
    assert (bleu.max_ngram_order, bleu.smooth_method, bleu.effective_order) == (
        metrics_module.BLEU_MAX_NGRAM_ORDER,
        "exp",
        False,
    )


def test_one_row_and_many_rows_agree() -> None:
    metric = get_metric("bleu")
    stats = metric.item_stats(HYPOTHESES, REFERENCES)
    counts = resample_counts(len(HYPOTHESES), n_resamples=20, seed=2)
    many = metric.scores_from_totals(counts @ stats)
    assert list(many) == [metric.score_from_stats(row) for row in counts @ stats]


@pytest.mark.parametrize("name", ["chrf++", "ter"])
def test_parallel_item_stats_equal_sequential_and_sum_to_corpus_score(name: str) -> None:
    hyps, refs = HYPOTHESES * 5, REFERENCES * 5
    metric = get_metric(name)
    parallel = item_stats_parallel(name, hyps, refs, processes=2, sequential_below=0)
    assert np.array_equal(parallel, metric.item_stats(hyps, refs))
    reference = dict(SACREBLEU)[name]()
    expected = reference.corpus_score(hyps, [refs]).score
    assert metric.score_from_stats(parallel.sum(axis=0)) == pytest.approx(expected, abs=1e-9)


def test_parallel_item_stats_for_classification_labels() -> None:
    labels = ["safe", "unsafe"]
    preds, golds = ["safe", "unsafe", "safe"] * 10, ["safe", "safe", "unsafe"] * 10
    parallel = item_stats_parallel("macro_f1", preds, golds, labels, sequential_below=0)
    assert np.array_equal(parallel, get_metric("macro_f1").item_stats(preds, golds, labels))


def test_parallel_item_stats_reject_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="one reference per prediction"):
        item_stats_parallel("ter", ["a", "b"], ["a"])
