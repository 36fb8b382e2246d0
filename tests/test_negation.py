"""A negated label never counts as that label, in each language's own word order."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from conftest import write_benchmark

from sabha.leaderboards.extraction import INVALID_LABEL, extract_label
from sabha.platform.benchmarks import (
    AnswerSpec,
    NegationSpec,
    joined_spellings,
    load_benchmark_file,
    starter_benchmark_paths,
)
from sabha.platform.benchmarks._negation import resolve_negation
from sabha.platform.errors import ValidationFailed

SAFETY = ["safe", "unsafe"]
ALIASES = {
    "safe": ["सुरक्षित", "surakshit", "பாதுகாப்பானது", "নিরাপদ", "salama"],
    "unsafe": ["असुरक्षित", "asurakshit", "பாதுகாப்பற்றது", "অনিরাপদ", "hatari"],
}
LANGUAGES = ["hi-Deva", "hi-Latn", "ta-Taml", "bn-Beng", "sw-Latn"]


def _spec(opposites: bool = True, **answer: Any) -> AnswerSpec:
    """The answer rule a benchmark in LANGUAGES gets from its file."""
    negation = NegationSpec(opposites={"safe": "unsafe", "unsafe": "safe"} if opposites else {})
    return AnswerSpec(aliases=ALIASES, negation=resolve_negation(negation, LANGUAGES), **answer)


def _read(text: str, language: str, spec: AnswerSpec | None = None) -> str:
    return extract_label(text, SAFETY, spec or _spec(), language)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("सुरक्षित नहीं है", "unsafe"),  # the finding: read as सुरक्षित before
        ("सुरक्षित नही है", "unsafe"),  # the common spelling without the anusvara
        ("सुरक्षित बिल्कुल नहीं", "unsafe"),
        ("नहीं सुरक्षित", "unsafe"),
        ("न सुरक्षित", "unsafe"),
        ("मत सुरक्षित", "unsafe"),
        ("गैर-सुरक्षित", "unsafe"),
        ("असुरक्षित नहीं है", "safe"),
        ("सुरक्षित है", "safe"),
        ("सुरक्षित है न?", "safe"),  # tag question: "it's safe, isn't it?"
        ("नहीं, सुरक्षित है।", "safe"),  # "No, it is safe": the comma ends the clause
        ("असुरक्षित", "unsafe"),
        ("not safe", "unsafe"),  # English applies to every item
    ],
)
def test_hindi_negation_before_and_after(text: str, expected: str) -> None:
    assert _read(text, "hi-Deva") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("safe nahi hai", "unsafe"),
        ("surakshit nahin", "unsafe"),
        ("nahi safe", "unsafe"),
        ("safe hai na?", "safe"),
        ("asurakshit", "unsafe"),
    ],
)
def test_romanised_hindi_negation(text: str, expected: str) -> None:
    assert _read(text, "hi-Latn") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("பாதுகாப்பானது அல்ல", "unsafe"),
        ("பாதுகாப்பானது இல்லை", "unsafe"),
        ("பாதுகாப்பானது கிடையாது", "unsafe"),
        ("பாதுகாப்பானதல்ல", "unsafe"),  # அல்ல written onto the word (sandhi)
        ("பாதுகாப்பானதில்லை", "unsafe"),
        ("பாதுகாப்பற்றது அல்ல", "safe"),
        ("பாதுகாப்பானது", "safe"),
        ("பாதுகாப்பானது.", "safe"),
        ("பாதுகாப்பானது அல்லது பாதுகாப்பற்றது", INVALID_LABEL),  # அல்லது is "or"
    ],
)
def test_tamil_negation_after_and_joined(text: str, expected: str) -> None:
    assert _read(text, "ta-Taml") == expected


def test_tamil_sandhi_spellings() -> None:
    assert "பாதுகாப்பானதல்ல" in joined_spellings("பாதுகாப்பானது", "அல்ல")
    assert "பாதுகாப்பில்லை" in joined_spellings("பாதுகாப்பு", "இல்லை")
    assert "நல்லவையல்ல" in joined_spellings("நல்லவை", "அல்ல")
    assert "நலமில்லை" in joined_spellings("நலம்", "இல்லை")
    assert joined_spellings("safe", "not") == ["safenot"]  # no sandhi outside Tamil


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("নিরাপদ নয়", "unsafe"),
        ("নিরাপদ ন\u09df", "unsafe"),  # য় as one code point: NFC spells it য + nukta
        ("নিরাপদ না", "unsafe"),
        ("নিরাপদ নেই", "unsafe"),
        ("অনিরাপদ নয়", "safe"),
        ("নিরাপদ", "safe"),
        ("অনিরাপদ", "unsafe"),
    ],
)
def test_bengali_negation_after(text: str, expected: str) -> None:
    assert unicodedata.normalize("NFC", "ন\u09df") != "ন\u09df"
    assert _read(text, "bn-Beng") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("si salama", "unsafe"),
        ("Sio salama.", "unsafe"),
        ("haiko salama", "unsafe"),
        ("hakuna salama", "unsafe"),
        ("bila hatari", "safe"),
        ("salama", "safe"),
        ("salama na inafaa", "safe"),  # na is "and" in Swahili
        ("hatari", "unsafe"),
    ],
)
def test_swahili_negation_before(text: str, expected: str) -> None:
    assert _read(text, "sw-Latn") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not safe", "unsafe"),
        ("Not safe.", "unsafe"),
        ("isn't safe", "unsafe"),
        ("Isn’t safe", "unsafe"),
        ("not very safe", "unsafe"),
        ("not unsafe", "safe"),
        ("unsafe", "unsafe"),
        ("No, safe.", "safe"),
        ("safe", "safe"),
        ("This is not safe", INVALID_LABEL),  # phrase: the answer does not begin with it
    ],
)
def test_english_negation_before(text: str, expected: str) -> None:
    assert _read(text, "en-Latn") == expected


def test_a_negated_label_without_an_opposite_is_unparseable() -> None:
    plain = _spec(opposites=False)
    assert _read("सुरक्षित नहीं है", "hi-Deva", plain) == INVALID_LABEL
    assert _read("not safe", "hi-Deva", plain) == INVALID_LABEL
    assert _read("পাপ", "bn-Beng", plain) == INVALID_LABEL
    assert _read("নিরাপদ", "bn-Beng", plain) == "safe"


def test_negation_words_are_those_of_the_items_language() -> None:
    # Romanised Hindi's "na" negates; Swahili's "na" means "and".
    assert _read("na safe", "hi-Latn") == "unsafe"
    assert _read("na salama", "sw-Latn", _spec(match="contains")) == "safe"


def test_contains_and_exact_read_negation_too() -> None:
    contains = _spec(match="contains")
    assert _read("मेरे हिसाब से यह सुरक्षित नहीं है", "hi-Deva", contains) == "unsafe"
    assert _read("I think it is not safe", "en-Latn", contains) == "unsafe"
    exact = _spec(match="exact")
    assert _read("सुरक्षित नहीं", "hi-Deva", exact) == "unsafe"
    assert _read("பாதுகாப்பானதல்ல", "ta-Taml", exact) == "unsafe"
    assert _read("सुरक्षित।", "hi-Deva", exact) == "safe"
    assert _read("सुरक्षित नहीं है", "hi-Deva", exact) == INVALID_LABEL


def test_a_label_that_is_a_negation_word_reads_as_the_label() -> None:
    spec = AnswerSpec(negation=resolve_negation(None, ["hi-Deva"]))
    assert extract_label("नहीं", ["हाँ", "नहीं"], spec, "hi-Deva") == "नहीं"
    assert extract_label("हाँ", ["हाँ", "नहीं"], spec, "hi-Deva") == "हाँ"


def test_the_starter_benchmark_reads_negation_in_its_languages() -> None:
    loaded = load_benchmark_file(next(p for p in starter_benchmark_paths() if "safety" in p.stem))
    assert loaded.spec.version == "2"
    answer = loaded.spec.answer
    assert answer is not None and answer.negation is not None
    assert set(answer.negation.cues) == {"hi-Deva", "hi-Latn", "ta-Taml", "bn-Beng", "en-Latn"}
    labels = loaded.spec.labels
    for text, language in [
        ("सुरक्षित नहीं है", "hi-Deva"),
        ("safe nahi hai", "hi-Latn"),
        ("பாதுகாப்பானது அல்ல", "ta-Taml"),
        ("নিরাপদ নয়", "bn-Beng"),
        ("not safe", "bn-Beng"),
    ]:
        assert extract_label(text, labels, answer, language) == "unsafe", text
    # The resolved words are part of the stored rule, hence of the scoring identity.
    assert "नहीं" in str(loaded.answer_spec)


def _classification(tmp_path: Path, answer: dict[str, Any] | None) -> Path:
    items = [
        {"id": f"c-{i}", "language": "hi-Deva", "split": "test",
         "input": {"prompt": "क्या यह ठीक है?"}, "label": label}
        for i, label in enumerate(SAFETY)
    ]  # fmt: skip
    extra = {} if answer is None else {"answer": answer}
    return write_benchmark(
        tmp_path,
        items,
        task="classification",
        labels=SAFETY,
        languages=["hi-Deva"],
        metrics=["accuracy"],
        primary_metric="accuracy",
        prompt={"template": "{prompt}"},
        **extra,
    )


def test_a_benchmark_without_an_answer_section_reads_negation(tmp_path: Path) -> None:
    loaded = load_benchmark_file(_classification(tmp_path, None))
    answer = loaded.spec.answer
    assert answer is not None and answer.negation is not None
    assert set(answer.negation.cues) == {"hi-Deva", "en-Latn"}
    assert extract_label("safe नहीं", SAFETY, answer, "hi-Deva") == INVALID_LABEL
    assert extract_label("safe", SAFETY, answer, "hi-Deva") == "safe"


def test_own_negation_words_replace_the_builtin_ones_for_their_language(tmp_path: Path) -> None:
    answer = {"negation": {"cues": {"hi-Deva": {"after": ["नइखे"]}}, "every_item": []}}
    spec = load_benchmark_file(_classification(tmp_path, answer)).spec.answer
    assert spec is not None
    assert extract_label("safe नइखे", SAFETY, spec, "hi-Deva") == INVALID_LABEL
    assert extract_label("safe नहीं", SAFETY, spec, "hi-Deva") == "safe"  # theirs, not Sabha's


def test_bad_negation_sections_name_the_field_and_line(tmp_path: Path) -> None:
    answer = {
        "negation": {
            "opposites": {"safe": "maybe", "perhaps": "unsafe"},
            "cues": {"hi-Deva": {"after": ["नहीं है"]}},
            "reach_after": 9,
        }
    }
    path = _classification(tmp_path, answer)
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(path)
    problems = "\n".join(caught.value.problems)
    assert re.search(
        r":\d+: field 'answer\.negation\.cues\.hi-Deva\.after\.0': .*not one word", problems
    )
    assert re.search(r":\d+: field 'answer\.negation\.reach_after'", problems)
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(_classification(tmp_path / "b", {"negation": answer["negation"] | {
            "cues": {}, "reach_after": 1}}))  # fmt: skip
    problems = "\n".join(caught.value.problems)
    assert "field 'answer.negation.opposites.safe': 'maybe' is not a declared label" in problems
    assert "field 'answer.negation.opposites.perhaps': 'perhaps' is not a declared" in problems


def test_definitions_stored_before_negation_keep_their_rule_and_identity() -> None:
    # A stored answer rule without negation reads as it did when it was scored.
    stored = {"normalize": ["nfc", "casefold", "strip"], "patterns": [], "aliases": {
        "safe": ["सुरक्षित"]}, "match": "phrase"}  # fmt: skip
    spec = AnswerSpec.model_validate(stored)
    assert spec.model_dump(mode="json") == stored
    assert extract_label("सुरक्षित नहीं है", SAFETY, spec, "hi-Deva") == "safe"
