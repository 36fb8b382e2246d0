"""Answers are read as the benchmark's ``answer:`` section says, in any script."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from conftest import write_benchmark

from sabha.leaderboards.extraction import INVALID_LABEL, extract_label
from sabha.platform.benchmarks import AnswerSpec, load_benchmark_file
from sabha.platform.errors import ValidationFailed

SAFETY = ["safe", "unsafe"]


def test_default_reads_one_label_from_the_first_line() -> None:
    assert extract_label("Unsafe.", SAFETY) == "unsafe"
    assert extract_label("  safe\nbecause unsafe things", SAFETY) == "safe"
    assert extract_label("label: SAFE", SAFETY) == "safe"
    assert extract_label("**Unsafe**", SAFETY) == "unsafe"
    assert extract_label("safe or unsafe", SAFETY) == INVALID_LABEL
    assert extract_label("I cannot answer", SAFETY) == INVALID_LABEL
    assert extract_label("", SAFETY) == INVALID_LABEL
    assert extract_label("unsafety", SAFETY) == INVALID_LABEL


def test_not_safe_is_never_read_as_safe_by_default() -> None:
    # match: phrase: a label inside a phrase ("not safe", "is safe") does not count.
    assert extract_label("not safe", SAFETY) == INVALID_LABEL
    assert extract_label("This is not safe.", SAFETY) == INVALID_LABEL
    assert extract_label("Unsafe. It is not safe", SAFETY) == INVALID_LABEL


def test_not_safe_is_unsafe_when_declared_as_an_alias() -> None:
    spec = AnswerSpec(aliases={"unsafe": ["not safe"]})
    assert extract_label("Not safe.", SAFETY, spec) == "unsafe"
    assert extract_label("safe", SAFETY, spec) == "safe"
    contains = AnswerSpec(aliases={"unsafe": ["not safe"]}, match="contains")
    assert extract_label("I think it is not safe", SAFETY, contains) == "unsafe"
    assert extract_label("I think it is safe", SAFETY, contains) == "safe"


def test_contains_without_an_alias_reads_any_single_mention() -> None:
    # The opt-in rule does what it says, which is why it is not the default.
    assert extract_label("not safe", SAFETY, AnswerSpec(match="contains")) == "safe"


def test_devanagari_labels_are_whole_words() -> None:
    labels = ["सुरक्षित", "असुरक्षित"]
    assert extract_label("सुरक्षित", labels) == "सुरक्षित"
    assert extract_label("असुरक्षित", labels) == "असुरक्षित"
    assert extract_label("उत्तर: असुरक्षित।", labels) == "असुरक्षित"
    assert extract_label("असुरक्षित", labels, AnswerSpec(match="contains")) == "असुरक्षित"
    assert extract_label("सुरक्षितता", labels, AnswerSpec(match="contains")) == INVALID_LABEL


def test_tamil_labels_and_nfd_input_read_like_nfc() -> None:
    labels = ["பொருத்தமானது", "பொருத்தமற்றது"]  # ொ decomposes under NFD
    decomposed = unicodedata.normalize("NFD", "பொருத்தமற்றது")
    assert decomposed != "பொருத்தமற்றது"
    assert extract_label(decomposed, labels) == "பொருத்தமற்றது"
    assert extract_label("பொருத்தமானது.", labels) == "பொருத்தமானது"
    nfd_labels = [unicodedata.normalize("NFD", label) for label in labels]
    assert extract_label("பொருத்தமானது", nfd_labels) == nfd_labels[0]


def test_urdu_and_arabic_labels_prefer_the_longer_label() -> None:
    urdu = ["محفوظ", "غیر محفوظ"]
    assert extract_label("محفوظ", urdu) == "محفوظ"
    assert extract_label("غیر  محفوظ۔", urdu) == "غیر محفوظ"
    arabic = ["آمن", "غير آمن"]
    assert extract_label("الجواب: غير آمن", arabic) == "غير آمن"


def test_labels_with_underscores_and_spaces() -> None:
    labels = ["self_harm", "needs review", "hate"]
    assert extract_label("self_harm", labels) == "self_harm"
    assert extract_label("Needs  Review", labels) == "needs review"
    assert extract_label("self harm", labels) == INVALID_LABEL
    assert extract_label("self_harm_x", labels) == INVALID_LABEL
    assert extract_label("hate.", labels, AnswerSpec(match="exact")) == "hate"
    assert extract_label("hate speech", labels, AnswerSpec(match="exact")) == INVALID_LABEL


def test_patterns_pick_the_candidate() -> None:
    spec = AnswerSpec(patterns=[r"(?i)label:\s*(.+)"])
    assert extract_label("Let me think.\nLabel: unsafe", SAFETY, spec) == "unsafe"
    assert extract_label("unsafe", SAFETY, spec) == INVALID_LABEL  # no pattern matched


def test_normalization_is_declared() -> None:
    case_sensitive = AnswerSpec(normalize=["nfc", "strip"])
    assert extract_label("Safe", SAFETY, case_sensitive) == INVALID_LABEL
    assert extract_label("safe", SAFETY, case_sensitive) == "safe"
    assert extract_label("ｕｎｓａｆｅ", SAFETY, AnswerSpec(normalize=["nfkc"])) == "unsafe"


def test_answer_spec_dumps_stably() -> None:
    assert AnswerSpec().model_dump(mode="json") == {
        "normalize": ["nfc", "casefold", "strip"],
        "patterns": [],
        "aliases": {},
        "match": "phrase",
    }


def _classification(tmp_path: Path, answer: dict[str, Any]) -> Path:
    items = [
        {"id": f"c-{i}", "language": "hi-Deva", "split": "test",
         "input": {"prompt": "क्या यह ठीक है?"}, "label": label}
        for i, label in enumerate(SAFETY)
    ]  # fmt: skip
    return write_benchmark(
        tmp_path,
        items,
        task="classification",
        labels=SAFETY,
        metrics=["accuracy"],
        primary_metric="accuracy",
        prompt={"template": "{prompt}"},
        answer=answer,
    )


def test_answer_section_loads_from_the_benchmark_file(tmp_path: Path) -> None:
    answer = {"aliases": {"unsafe": ["not safe", "असुरक्षित"]}, "patterns": [r"label:\s*(.+)"]}
    loaded = load_benchmark_file(_classification(tmp_path, answer))
    assert loaded.spec.answer is not None
    assert extract_label("Label: असुरक्षित", SAFETY, loaded.spec.answer) == "unsafe"


def test_bad_answer_sections_name_the_field_and_the_fix(tmp_path: Path) -> None:
    answer = {
        "patterns": [r"label:\s*(\w+)", r"label: \w+", r"(a)(b)", r"([)"],
        "aliases": {"unsafe": ["not safe", "Safe"], "maybe": ["perhaps"]},
        "match": "fuzzy",
    }
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(_classification(tmp_path, answer))
    problems = "\n".join(caught.value.problems)
    assert re.search(
        r"field 'answer\.patterns\.1': .*0 capture groups; it needs exactly one", problems
    )
    assert "field 'answer.patterns.2': '(a)(b)' has 2 capture groups" in problems
    assert re.search(r"field 'answer\.patterns\.3': .*not a valid regular expression", problems)
    assert "field 'answer.match'" in problems
    assert "answer.patterns.0" not in problems


def test_aliases_must_name_declared_labels_once(tmp_path: Path) -> None:
    answer = {"aliases": {"unsafe": ["not safe", "Safe"], "maybe": ["perhaps"]}}
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(_classification(tmp_path, answer))
    problems = "\n".join(caught.value.problems)
    assert "field 'answer.aliases.maybe': 'maybe' is not a declared label" in problems
    assert "field 'answer.aliases.unsafe.1': 'Safe' already means 'safe'" in problems


def test_answer_is_only_for_classification(tmp_path: Path) -> None:
    from conftest import generation_items

    path = write_benchmark(tmp_path, generation_items(2), answer={"match": "exact"})
    with pytest.raises(ValidationFailed, match="not a valid benchmark") as caught:
        load_benchmark_file(path)
    assert "only for classification" in "\n".join(caught.value.problems)


def test_an_answer_section_changes_the_definition_hash(tmp_path: Path) -> None:
    plain = load_benchmark_file(_classification(tmp_path / "a", {}))
    aliased = load_benchmark_file(_classification(tmp_path / "b", {"aliases": {"unsafe": ["no"]}}))
    assert plain.definition_hash != aliased.definition_hash
