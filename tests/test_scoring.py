"""Metrics agree with sacrebleu's own API; bootstrap CIs are seeded; ranks respect CIs."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF, TER

from sabha.leaderboards.bootstrap import bootstrap_estimate
from sabha.leaderboards.metrics import INVALID_LABEL, get_metric, known_metrics, parse_label
from sabha.leaderboards.ranking import rank_by_interval
from sabha.leaderboards.scoring import ScoredItem, score_items

HYPOTHESES = [
    "गेहूं की पहली सिंचाई बुवाई के तीन हफ्ते बाद करें।",
    "Panda mahindi mvua zikianza.",
    "நெல் வயலில் தண்ணீர் தேங்காமல் பார்த்துக் கொள்ளுங்கள்.",
    "खाद डालने से पहले मिट्टी की जांच कराएं।",
    "Hifadhi mbegu mahali pakavu.",
    "completely unrelated text",
    "நிலத்தை உழுது தயார் செய்யவும்",
    "बीज को छाया में सुखाएं",
]
REFERENCES = [
    "पहली सिंचाई बुवाई के लगभग तीन सप्ताह बाद करें।",
    "Panda mahindi mwanzoni mwa mvua.",
    "வயலில் தண்ணீர் தேங்காமல் கவனித்துக் கொள்ளுங்கள்.",
    "मिट्टी की जांच के बाद ही खाद डालें।",
    "Hifadhi mbegu mahali pakavu na safi.",
    "Ask the local extension officer.",
    "நிலத்தை நன்கு உழுது தயார் செய்யுங்கள்.",
    "बीज को धूप में नहीं, छाया में सुखाएं।",
]


@pytest.mark.parametrize(
    ("name", "reference_metric"),
    [("chrf++", CHRF(word_order=2)), ("bleu", BLEU()), ("ter", TER())],
)
def test_corpus_value_equals_sacrebleu(name: str, reference_metric: object) -> None:
    metric = get_metric(name)
    stats = metric.item_stats(HYPOTHESES, REFERENCES)
    ours = metric.score_from_stats(stats.sum(axis=0))
    theirs = reference_metric.corpus_score(HYPOTHESES, [REFERENCES]).score  # type: ignore[attr-defined]
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert metric.signature() == str(reference_metric.get_signature())  # type: ignore[attr-defined]


def test_chrf_plus_plus_matches_the_functional_api() -> None:
    rows = score_items(
        "generation",
        ["chrf++"],
        [ScoredItem(h, r) for h, r in zip(HYPOTHESES, REFERENCES, strict=True)],
        breakdowns=[],
    )
    assert rows[0].value == pytest.approx(
        sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES], word_order=2).score
    )
    assert rows[0].signature is not None and "nw:2" in rows[0].signature


def test_each_bootstrap_resample_equals_sacrebleu_on_that_resample() -> None:
    metric = get_metric("chrf++")
    stats = metric.item_stats(HYPOTHESES, REFERENCES)
    rng = np.random.default_rng(7)
    for _ in range(5):
        sample = rng.integers(0, len(HYPOTHESES), size=len(HYPOTHESES))
        ours = metric.score_from_stats(stats[sample].sum(axis=0))
        theirs = sacrebleu.corpus_chrf(
            [HYPOTHESES[i] for i in sample], [[REFERENCES[i] for i in sample]], word_order=2
        ).score
        assert ours == pytest.approx(theirs, abs=1e-9)


def test_bootstrap_interval_is_seeded_and_brackets_the_value() -> None:
    metric = get_metric("chrf++")
    stats = metric.item_stats(HYPOTHESES, REFERENCES)
    first = bootstrap_estimate(metric, stats, seed=3)
    again = bootstrap_estimate(metric, stats, seed=3)
    other = bootstrap_estimate(metric, stats, seed=4)
    assert first == again
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low <= first.value <= first.ci_high
    assert first.ci_high - first.ci_low > 1.0
    assert first.n == len(HYPOTHESES)


def test_bootstrap_interval_agrees_with_sacrebleus_bootstrap() -> None:
    # sacrebleu's own bootstrap (seed 12345) reports a 95% half-width; ours is
    # a percentile interval with the same resampling scheme, so widths agree.
    ref = CHRF(word_order=2).corpus_score(HYPOTHESES * 4, [REFERENCES * 4], n_bootstrap=1000)
    metric = get_metric("chrf++")
    ours = bootstrap_estimate(metric, metric.item_stats(HYPOTHESES * 4, REFERENCES * 4))
    assert (ours.ci_high - ours.ci_low) / 2 == pytest.approx(ref._ci, rel=0.25)


def test_parse_label_reads_one_label_from_the_first_line() -> None:
    labels = ["safe", "unsafe"]
    assert parse_label("Unsafe.", labels) == "unsafe"
    assert parse_label("  safe\nbecause unsafe things", labels) == "safe"
    assert parse_label("label: SAFE", labels) == "safe"
    assert parse_label("safe or unsafe", labels) == INVALID_LABEL
    assert parse_label("I cannot answer", labels) == INVALID_LABEL
    assert parse_label("", labels) == INVALID_LABEL
    assert parse_label("unsafety", labels) == INVALID_LABEL


def test_classification_scores_count_unparseable_answers_as_wrong() -> None:
    golds = ["safe", "safe", "unsafe", "unsafe", "unsafe"]
    answers = ["safe", "unsafe", "unsafe", "no idea", "safe"]
    items = [
        ScoredItem(a, label=g, groups={"language": "hi-Deva"})
        for a, g in zip(answers, golds, strict=True)
    ]
    rows = {
        (r.metric, r.breakdown): r
        for r in score_items(
            "classification", ["accuracy", "macro_f1"], items, labels=["safe", "unsafe"]
        )
    }
    assert rows[("accuracy", "overall")].value == pytest.approx(40.0)
    # safe: tp=1 fp=1 fn=1 -> F1 0.5; unsafe: tp=1 fp=1 fn=2 -> F1 0.4
    assert rows[("macro_f1", "overall")].value == pytest.approx(45.0)
    assert rows[("unparseable", "overall")].value == pytest.approx(20.0)
    assert rows[("accuracy", "language")].group == "hi-Deva"


def test_scores_break_down_by_language_and_attribute() -> None:
    items = [
        ScoredItem(h, r, groups={"language": "xx-Latn" if i % 2 else "yy-Latn", "region": None})
        for i, (h, r) in enumerate(zip(HYPOTHESES, REFERENCES, strict=True))
    ]
    rows = score_items("generation", ["chrf++"], items, breakdowns=["language", "region"])
    groups = {(r.breakdown, r.group): r.n for r in rows}
    assert groups == {("overall", "all"): 8, ("language", "xx-Latn"): 4, ("language", "yy-Latn"): 4}


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="Known metrics: .*chrf\\+\\+"):
        get_metric("rouge")
    assert "macro_f1" in known_metrics("classification")


def test_overlapping_intervals_share_a_rank() -> None:
    ranked = rank_by_interval(
        [("a", 50, 45, 55), ("b", 48, 44, 52), ("c", 30, 28, 33), ("d", 10, 5, 12)]
    )
    assert [(r.key, r.rank) for r in ranked] == [("a", 1), ("b", 1), ("c", 3), ("d", 4)]


def test_lower_is_better_ranks_ascending() -> None:
    ranked = rank_by_interval([("a", 80, 70, 90), ("b", 20, 15, 25)], higher_is_better=False)
    assert [(r.key, r.rank) for r in ranked] == [("b", 1), ("a", 2)]
