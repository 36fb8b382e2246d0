"""Sabha's per-item chrF++/BLEU/TER statistics are sacrebleu's, number for number.

``leaderboards._sacrebleu_stats`` caches each reference's analysis and redoes
TER's beam edit distance; every row must equal what sacrebleu's own
``_extract_corpus_statistics`` gives for the same hypothesis and reference,
on hostile multilingual strings as on plain ones.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sacrebleu.metrics import BLEU, CHRF, TER, lib_ter

from sabha.leaderboards import _sacrebleu_stats
from sabha.leaderboards.metrics import get_metric

SACREBLEU = [
    ("chrf++", lambda: CHRF(word_order=2)),
    ("bleu", lambda: BLEU(effective_order=False)),
    ("ter", TER),
]

HINDI = "पहली सिंचाई बुवाई के 20-25 दिन बाद करें। खाद (यूरिया) दो बार डालें!"
TAMIL = "நெல் வயலில் தண்ணீர் 5 செ.மீ. அளவில் வைக்கவும்; களை எடுக்கவும்."
URDU = "گندم کی بوائی نومبر میں کریں، اور پانی ۲۰ دن بعد دیں۔"
SWAHILI = "Panda mahindi mwanzoni mwa msimu wa mvua, kisha palilia baada ya wiki tatu."
EMOJI = "🌾🌧️ mvua 👍🏽 ok!! 🇮🇳 👨‍👩‍👧 (rain) … «quoted»"

PAIRS = [
    (HINDI, HINDI),
    ("सिंचाई करें। पहली बुवाई के बाद 20-25 दिन", HINDI),  # shuffled: TER shifts
    (TAMIL, TAMIL[::-1]),
    (URDU, "گندم کی بوائی نومبر میں"),
    (SWAHILI, "mvua wa msimu mwanzoni mahindi Panda, palilia kisha tatu wiki baada ya."),
    (EMOJI, EMOJI + " " + EMOJI),
    ("", HINDI),
    (HINDI, ""),
    ("", ""),
    ("   \t\n  ", "   "),
    (" \u00a0\u2003 ", SWAHILI),  # non-breaking and em spaces only
    ("a . b , c ; d", "a. b, c; d"),
    ("THE Cat the cat", "the cat THE CAT"),  # TER lowercases, BLEU and chrF do not
    ("&amp; &lt;tag&gt; \"q\" 'a'", "& <tag> \"q\" 'a'"),
    ("x", " ".join(["word"] * 120)),  # length ratio far past the beam: a wider beam
    (" ".join(["word"] * 120), "x"),
    (SWAHILI * 12, (SWAHILI + " " + HINDI) * 6),  # long: the shift search's candidate cap
    ("\u0915\u094d\u200d\u0937 क्ष", "क्ष \u0915\u094d\u200d\u0937"),  # zero-width joiner
    ("tab\there\r\nnew line", "tab here new line"),
    ("a" * 500, "a" * 499),  # one very long word
]


def _three_words(seed: int) -> tuple[str, str]:
    rng = random.Random(seed)
    n = rng.choice([30, 40, 50, 60])
    hyp, ref = ([rng.choice(["खाद", "पानी", "बीज"]) for _ in range(n)] for _ in range(2))
    return " ".join(hyp), " ".join(ref)


# Long texts of three words: TER's shift search stops at its 1,000-candidate
# cap while a shift would still help, and its row cache fills its 10,000 rows
# (lib_ter's limits).
PAIRS.append(_three_words(0))


def _sacrebleu_rows(factory: Any, hyps: list[str], refs: list[str]) -> np.ndarray:
    rows = factory()._extract_corpus_statistics(hyps, [refs])
    return np.asarray(rows, dtype=np.float64).reshape(len(hyps), -1)


def _assert_same(name: str, factory: Any, hyps: list[str], refs: list[str]) -> None:
    _sacrebleu_stats.clear_reference_cache()
    ours = get_metric(name).item_stats(hyps, refs)
    theirs = _sacrebleu_rows(factory, hyps, refs)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs), (name, np.argwhere(ours != theirs)[:5])
    again = get_metric(name).item_stats(hyps, refs)  # every reference cached now
    assert np.array_equal(again, theirs)


@pytest.mark.parametrize(("name", "factory"), SACREBLEU)
def test_hostile_pairs_equal_sacrebleu(name: str, factory: Any) -> None:
    hyps, refs = [h for h, _ in PAIRS], [r for _, r in PAIRS]
    _assert_same(name, factory, hyps, refs)


@pytest.mark.parametrize(("name", "factory"), SACREBLEU)
def test_shuffled_and_edited_references_equal_sacrebleu(name: str, factory: Any) -> None:
    # Permuted, cut and partly replaced references: TER's shifts, ties and trace all run.
    rng = random.Random(7)
    refs, hyps = [], []
    for text in [HINDI, TAMIL, URDU, SWAHILI, EMOJI] * 8:
        words = text.split() * rng.randint(1, 4)
        edited = list(words)
        for _ in range(rng.randint(0, 6)):
            action = rng.choice(["swap", "drop", "replace", "move"])
            if len(edited) < 2:
                break
            i, j = sorted(rng.sample(range(len(edited)), 2))
            if action == "swap":
                edited[i], edited[j] = edited[j], edited[i]
            elif action == "drop":
                del edited[i]
            elif action == "replace":
                edited[i] = rng.choice(words) + "x"
            else:
                edited[i:i] = edited[j : j + rng.randint(1, 4)]
        refs.append(" ".join(words))
        hyps.append(" ".join(edited))
    _assert_same(name, factory, hyps, refs)


WORDS = st.sampled_from(
    [*HINDI.split(), *TAMIL.split(), *URDU.split(), *SWAHILI.split(), *EMOJI.split(), ".", ","]
)
TEXT = st.one_of(
    st.lists(WORDS, max_size=40).map(" ".join),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
    st.sampled_from(["", " ", "\n\t ", "\u200b"]),
)


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(pairs=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=6))
def test_generated_strings_equal_sacrebleu(pairs: list[tuple[str, str]]) -> None:
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    for name, factory in SACREBLEU:
        _assert_same(name, factory, hyps, refs)


def test_a_full_reference_cache_drops_the_oldest_and_stays_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_sacrebleu_stats, "REFERENCE_CACHE_SIZE", 3)
    _sacrebleu_stats.clear_reference_cache()
    hyps, refs = [h for h, _ in PAIRS], [r for _, r in PAIRS]
    for name, factory in SACREBLEU:
        ours = get_metric(name).item_stats(hyps, refs)
        assert np.array_equal(ours, _sacrebleu_rows(factory, hyps, refs))
        assert len(_sacrebleu_stats._references[name]) == 3
        assert list(_sacrebleu_stats._references[name]) == refs[-3:]


def test_ter_edit_distance_equals_sacrebleus_with_its_trace() -> None:
    # The distance and the trace of every call, cache included, as in lib_ter.
    rng = random.Random(3)
    vocabulary = SWAHILI.split()
    for _ in range(200):
        ref = [rng.choice(vocabulary) for _ in range(rng.randint(1, 70))]
        theirs, ours = lib_ter.BeamEditDistance(ref), _sacrebleu_stats._EditDistance(ref)
        length = rng.randint(0, 70)
        for _ in range(5):  # the same length, as during TER's shift search
            hyp = [rng.choice(vocabulary) for _ in range(length)]
            assert ours(hyp) == theirs(hyp)
