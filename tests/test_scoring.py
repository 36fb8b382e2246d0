"""Metrics agree with sacrebleu's own API; bootstrap CIs are seeded; ranks respect CIs."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF, TER

from sabha.leaderboards.bootstrap import bootstrap_estimate, resample_counts
from sabha.leaderboards.extraction import extract_label
from sabha.leaderboards.metrics import INVALID_LABEL, get_metric, known_metrics
from sabha.leaderboards.ranking import rank_by_interval
from sabha.leaderboards.scoring import (
    ScoredItem,
    group_members,
    score_from_item_stats,
    score_items,
)

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


def test_bootstrap_interval_is_seeded_and_brackets_the_value_on_real_data() -> None:
    metric = get_metric("chrf++")
    stats = metric.item_stats(HYPOTHESES * 4, REFERENCES * 4)
    first = bootstrap_estimate(metric, stats, seed=3)
    again = bootstrap_estimate(metric, stats, seed=3)
    other = bootstrap_estimate(metric, stats, seed=4)
    assert first == again
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low <= first.value <= first.ci_high
    assert first.ci_high - first.ci_low > 1.0
    assert first.n == len(HYPOTHESES) * 4


def test_interval_is_the_plain_percentile_range_even_when_it_excludes_the_value() -> None:
    # Ten rare labels answered unparseably, ten common ones right: with every
    # label present the macro-F1 is 100/11, but a resample almost never draws
    # all ten rare items, so nearly every resampled score is at least 100/10.
    labels = ["common", *(f"rare{i}" for i in range(10))]
    golds = ["common"] * 10 + labels[1:]
    predictions = ["common"] * 10 + [INVALID_LABEL] * 10
    metric = get_metric("macro_f1")
    estimate = bootstrap_estimate(metric, metric.item_stats(predictions, golds, labels), labels)
    assert estimate.value == pytest.approx(100 / 11)
    assert estimate.resamples is not None
    assert (estimate.ci_low, estimate.ci_high) == tuple(
        np.percentile(estimate.resamples, [2.5, 97.5])
    )
    assert estimate.ci_low > estimate.value


def test_bootstrap_interval_agrees_with_sacrebleus_bootstrap() -> None:
    # sacrebleu's own bootstrap (seed 12345) reports a 95% half-width; ours is
    # a percentile interval with the same resampling scheme, so widths agree.
    ref = CHRF(word_order=2).corpus_score(HYPOTHESES * 4, [REFERENCES * 4], n_bootstrap=1000)
    metric = get_metric("chrf++")
    ours = bootstrap_estimate(metric, metric.item_stats(HYPOTHESES * 4, REFERENCES * 4))
    assert (ours.ci_high - ours.ci_low) / 2 == pytest.approx(ref._ci, rel=0.25)


def test_default_answer_rule_reads_one_label_from_the_first_line() -> None:
    labels = ["safe", "unsafe"]
    assert extract_label("Unsafe.", labels) == "unsafe"
    assert extract_label("  safe\nbecause unsafe things", labels) == "safe"
    assert extract_label("label: SAFE", labels) == "safe"
    assert extract_label("safe or unsafe", labels) == INVALID_LABEL
    assert extract_label("I cannot answer", labels) == INVALID_LABEL
    assert extract_label("", labels) == INVALID_LABEL
    assert extract_label("unsafety", labels) == INVALID_LABEL


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


def test_macro_f1_leaves_out_labels_absent_from_gold_and_predictions() -> None:
    items = [
        ScoredItem(answer, label=gold, groups={"language": language})
        for answer, gold, language in [
            ("safe", "safe", "hi-Deva"),
            ("safe", "safe", "hi-Deva"),
            ("unsafe", "safe", "hi-Deva"),
            ("safe", "safe", "sw-Latn"),
            ("safe", "safe", "sw-Latn"),
            ("no idea", "safe", "sw-Latn"),
        ]
    ]
    rows = {
        r.group: r.value
        for r in score_items(
            "classification", ["macro_f1"], items, labels=["safe", "unsafe"], min_items=1
        )
        if r.metric == "macro_f1"
    }
    # hi-Deva: 'unsafe' is predicted once, so it counts (F1 0); safe F1 = 4/5.
    assert rows["hi-Deva"] == pytest.approx(40.0)
    # sw-Latn: 'unsafe' is neither gold nor predicted, so only safe's F1 = 4/5 counts.
    assert rows["sw-Latn"] == pytest.approx(80.0)


def test_groups_below_the_minimum_are_flagged_without_an_interval() -> None:
    items = [
        ScoredItem(h, r, groups={"language": "xx-Latn" if i < 3 else "yy-Latn"})
        for i, (h, r) in enumerate(zip(HYPOTHESES, REFERENCES, strict=True))
    ]
    rows = {r.group: r for r in score_items("generation", ["chrf++"], items, min_items=4)}
    small = rows["xx-Latn"]
    assert small.too_few and small.n == 3 and small.resamples is None
    assert small.ci_low == small.ci_high == small.value
    expected = sacrebleu.corpus_chrf(HYPOTHESES[:3], [REFERENCES[:3]], word_order=2).score
    assert small.value == pytest.approx(expected)
    assert not rows["yy-Latn"].too_few and rows["yy-Latn"].ci_low < rows["yy-Latn"].ci_high
    assert not rows["all"].too_few and rows["all"].resamples is not None

    tiny = score_items("generation", ["chrf++"], items[:2], breakdowns=[])
    assert tiny[0].too_few and tiny[0].n == 2


def test_stored_item_statistics_give_the_same_scores_as_the_outputs() -> None:
    items = [
        ScoredItem(h, r, groups={"language": "xx-Latn" if i % 2 else "yy-Latn"})
        for i, (h, r) in enumerate(zip(HYPOTHESES, REFERENCES, strict=True))
    ]
    direct = score_items("generation", ["chrf++", "ter"], items, min_items=2)
    stats = {
        name: get_metric(name).item_stats(HYPOTHESES, REFERENCES) for name in ["chrf++", "ter"]
    }
    stored = score_from_item_stats(
        "generation", ["chrf++", "ter"], stats, [item.groups for item in items], min_items=2
    )
    assert stored == direct
    for ours, theirs in zip(stored, direct, strict=True):
        assert ours.resamples is not None and theirs.resamples is not None
        assert np.array_equal(ours.resamples, theirs.resamples)


def test_resamples_come_from_the_seeded_counts_of_the_group_size() -> None:
    metric = get_metric("ter")
    stats = metric.item_stats(HYPOTHESES, REFERENCES)
    rows = score_from_item_stats(
        "generation",
        ["chrf++", "ter"],
        {"chrf++": get_metric("chrf++").item_stats(HYPOTHESES, REFERENCES), "ter": stats},
        [{}] * len(HYPOTHESES),
        breakdowns=[],
        seed=9,
    )
    counts = resample_counts(len(HYPOTHESES), seed=9)
    ter_row = next(r for r in rows if r.metric == "ter")
    assert ter_row.resamples is not None
    assert np.array_equal(ter_row.resamples, metric.scores_from_totals(counts @ stats))


def test_stored_statistics_must_match_the_items() -> None:
    stats = {"chrf++": np.zeros((3, 24))}
    with pytest.raises(ValueError, match="one row per item"):
        score_from_item_stats("generation", ["chrf++"], stats, [{}] * 4)
    with pytest.raises(ValueError, match="classification tasks"):
        score_from_item_stats("generation", ["accuracy"], {"accuracy": np.ones((4, 2))}, [{}] * 4)


def test_group_members_lists_each_group_in_item_order() -> None:
    groups = [{"language": "b", "region": None}, {"language": "a"}, {"language": "b"}, {}]
    members = group_members(groups, ["language", "region"])
    assert [(b, g, list(m)) for b, g, m in members] == [
        ("overall", "all", [0, 1, 2, 3]),
        ("language", "a", [1]),
        ("language", "b", [0, 2]),
    ]


def test_scores_break_down_by_language_and_attribute() -> None:
    crops = ["wheat", "wheat", "rice", "wheat", "rice", "rice", "wheat", "rice"]
    items = [
        ScoredItem(
            h,
            r,
            groups={
                "language": "xx-Latn" if i % 2 else "yy-Latn",
                "region": None,
                "crop": crops[i],
            },
        )
        for i, (h, r) in enumerate(zip(HYPOTHESES, REFERENCES, strict=True))
    ]
    rows = score_items(
        "generation", ["chrf++"], items, breakdowns=["language", "region", "crop"], min_items=2
    )
    groups = {(r.breakdown, r.group): r for r in rows}
    assert {key: row.n for key, row in groups.items()} == {
        ("overall", "all"): 8,
        ("language", "xx-Latn"): 4,
        ("language", "yy-Latn"): 4,
        ("crop", "rice"): 4,
        ("crop", "wheat"): 4,
    }
    rice = [i for i, crop in enumerate(crops) if crop == "rice"]
    expected = sacrebleu.corpus_chrf(
        [HYPOTHESES[i] for i in rice], [[REFERENCES[i] for i in rice]], word_order=2
    ).score
    assert groups[("crop", "rice")].value == pytest.approx(expected)


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


def test_benchmark_files_and_scoring_know_the_same_metrics() -> None:
    from sabha.platform.benchmarks._schema import METRIC_TASKS

    assert {name: get_metric(name).task for name in known_metrics()} == METRIC_TASKS
