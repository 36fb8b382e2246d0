"""Every project shows annotators instructions in their language: what to write, how long,
what a good answer is."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from labelstudio_fixture import LabelStudioForTests
from sqlalchemy.engine import Engine

from sabha.annotation.configs import LabelingOptions, labeling_config
from sabha.annotation.instructions import INSTRUCTION_LANGUAGES, instructions_for
from sabha.platform.domain import AnnotationTaskType
from sabha.platform.services.annotation import (
    create_annotation_project,
    provision_project,
    upload_source_items,
)

WRITING = (AnnotationTaskType.QA, AnnotationTaskType.TRANSLATION, AnnotationTaskType.POST_EDIT)
# How each language says "length" and the script its words are written in.
LENGTH = {"en": "Length:", "hi": "लंबाई:", "sw": "Urefu:", "ta": "நீளம்:"}
SCRIPT_RANGES = {"hi": (0x0900, 0x097F), "ta": (0x0B80, 0x0BFF)}


def _shown(config: str) -> list[str]:
    return [h.get("value", "") for h in ET.fromstring(config).iter("Header")]


@pytest.mark.parametrize("task_type", list(AnnotationTaskType))
@pytest.mark.parametrize(("tag", "key"), [("hi-Deva", "hi"), ("sw-Latn", "sw"), ("ta-Taml", "ta")])
def test_each_task_type_has_instructions_in_hindi_swahili_and_tamil(
    task_type: AnnotationTaskType, tag: str, key: str
) -> None:
    (block,) = instructions_for(task_type, tag)
    assert block.language == key and len(block.paragraphs) >= 2
    text = " ".join(block.paragraphs)
    if key in SCRIPT_RANGES:  # written in the language's own script, not transliterated
        low, high = SCRIPT_RANGES[key]
        letters = [c for c in text if c.isalpha() and c.isascii() is False]
        assert sum(low <= ord(c) <= high for c in letters) / len(letters) > 0.95
    if task_type in WRITING:  # what to write, how long, what good is
        assert any(p.startswith(LENGTH[key]) for p in block.paragraphs)
    if task_type is AnnotationTaskType.QA:
        assert "2" in text and "5" in text and "30" in text and "100" in text
    # The labels to choose appear as the config spells them.
    for label in {
        AnnotationTaskType.SAFETY: ("complied", "refused", "safe-completion"),
        AnnotationTaskType.PAIRWISE: ("tie",),
    }.get(task_type, ()):
        assert label in text


def test_a_language_without_translations_gets_english_naming_it() -> None:
    (block,) = instructions_for(AnnotationTaskType.QA, "bn-Beng")
    assert block.language == "en" and "in Bangla (Bangla script)" in block.paragraphs[0]
    (latin,) = instructions_for(AnnotationTaskType.QA, "hi-Latn")  # not the Devanagari text
    assert latin.language == "en" and "Hindi (Latin script)" in latin.paragraphs[0]
    judging = instructions_for(AnnotationTaskType.SAFETY, "mul-Zyyy")
    assert [b.language for b in judging] == list(INSTRUCTION_LANGUAGES)


def test_a_projects_config_shows_the_maintainers_then_the_standard_instructions() -> None:
    options = LabelingOptions(instructions="Answer for conditions in Bihar.")
    shown = _shown(labeling_config(AnnotationTaskType.QA, options, language="hi-Deva"))
    assert shown[0] == "Answer for conditions in Bihar." and shown[1] == "निर्देश"
    assert "लंबाई: 2 से 5 वाक्य (लगभग 30 से 100 शब्द)।" in shown
    assert not any("निर्देश" in h for h in _shown(labeling_config(AnnotationTaskType.QA)))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tag", "length"),
    [
        ("hi-Deva", "लंबाई: 2 से 5 वाक्य"),
        ("sw-Latn", "Urefu: sentensi 2 hadi 5"),
        ("ta-Taml", "நீளம்: 2 முதல் 5 வாக்கியங்கள்"),
    ],
)
def test_the_labelstudio_project_an_annotator_lands_in_carries_instructions_in_their_language(
    db: Engine, labelstudio: LabelStudioForTests, tmp_path: Path, tag: str, length: str
) -> None:
    project = create_annotation_project(db, f"kisan-{uuid.uuid4().hex[:8]}", tag, "qa")
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "q1", "question": "?"}) + "\n", "utf-8")
    upload_source_items(db, project.id or 0, path)
    ls_id = provision_project(db, labelstudio.client(), project.id or 0)
    shown = _shown(labelstudio.client().label_config(ls_id))
    assert any(h.startswith(length) for h in shown), shown
