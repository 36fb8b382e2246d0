"""Labeling configs: valid XML for every task type, any script or character, taken by LS."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sabha.annotation.configs import (
    LabelingOptions,
    labeling_config,
    result_values,
    task_fields,
)
from sabha.platform.domain import AnnotationTaskType

AWKWARD = ("हिंसा", "வன்முறை", "تشدد", '<weather & "soil">', "it's")
OPTIONS = LabelingOptions(
    instructions="जवाब हिंदी में लिखें & <explain>",
    hazards=AWKWARD,
    rubric=tuple(f'{n}: «{n}» <ok> & "fine"' for n in range(1, 6)),
)


@pytest.mark.parametrize("task_type", list(AnnotationTaskType))
def test_every_task_type_has_a_config_naming_its_fields(task_type: AnnotationTaskType) -> None:
    root = ET.fromstring(labeling_config(task_type, OPTIONS))
    variables = {e.get("value") for e in root.iter("Text")}
    assert variables == {f"${name}" for name in task_fields(task_type)}
    # text is shown with per-paragraph direction (the CSS form of dir="auto")
    shown = [v for v in root.iter("View") if v.find("Text") is not None]
    assert shown and all("unicode-bidi: plaintext" in (v.get("style") or "") for v in shown)


def test_labels_in_any_script_and_with_markup_characters_survive_escaping() -> None:
    root = ET.fromstring(labeling_config(AnnotationTaskType.LABEL, OPTIONS))
    hazards = root.find("Choices[@name='hazard']")
    assert hazards is not None
    assert [c.get("value") for c in hazards] == list(AWKWARD)
    headers = [h.get("value") for h in root.iter("Header")]
    assert "जवाब हिंदी में लिखें & <explain>" in headers


def test_rating_shows_the_rubric_and_asks_for_one_to_five() -> None:
    root = ET.fromstring(labeling_config(AnnotationTaskType.RATING, OPTIONS))
    assert root.find("Rating[@maxRating='5']") is not None
    headers = [h.get("value") for h in root.iter("Header")]
    assert all(line in headers for line in OPTIONS.rubric)


@pytest.mark.parametrize(
    ("task_type", "options", "message"),
    [
        (AnnotationTaskType.LABEL, LabelingOptions(), "at least one hazard"),
        (AnnotationTaskType.LABEL, LabelingOptions(hazards=("a", "a")), "repeat"),
        (AnnotationTaskType.RATING, LabelingOptions(rubric=("1", "2")), "1-5"),
    ],
)
def test_bad_options_are_refused_with_the_reason(
    task_type: AnnotationTaskType, options: LabelingOptions, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        labeling_config(task_type, options)


def test_result_values_reads_text_choices_and_ratings() -> None:
    result = [
        {"from_name": "answer", "type": "textarea", "value": {"text": ["line 1", "line 2"]}},
        {"from_name": "hazard", "type": "choices", "value": {"choices": ["தீ"]}},
        {"from_name": "rating", "type": "rating", "value": {"rating": 4}},
    ]
    assert result_values(result) == {"answer": "line 1\nline 2", "hazard": "தீ", "rating": 4}


@pytest.mark.slow
def test_label_studio_accepts_every_config(labelstudio) -> None:  # type: ignore[no-untyped-def]
    client = labelstudio.client()
    for task_type in AnnotationTaskType:
        config = labeling_config(task_type, OPTIONS)
        project_id = client.create_project(f"config {task_type}", config)
        try:
            stored = ET.fromstring(client.label_config(project_id))
            assert stored.find(".//Choices[@name='hazard']") is not None or (
                task_type is not AnnotationTaskType.LABEL
            )
            data = {name: f"{name}: नमस्ते <b>&</b>" for name in task_fields(task_type)}
            assert len(client.import_tasks(project_id, [{"data": data}])) == 1
        finally:
            client.delete_project(project_id)


def test_results_outside_the_labeling_config_are_named_with_their_control() -> None:
    from sabha.annotation.configs import result_problems

    options = LabelingOptions(hazards=("pests", "weather"))

    def choice(name: str, *values: str) -> dict[str, object]:
        return {
            "from_name": name,
            "to_name": "text",
            "type": "choices",
            "value": {"choices": list(values)},
        }

    def problems(*regions: object) -> list[str]:
        return result_problems(AnnotationTaskType.LABEL, options, list(regions))

    assert problems(choice("hazard", "pests"), choice("safety", "safe")) == []
    assert problems(choice("hazard", "pests"), choice("safety", "MAYBE")) == [
        "control 'safety' chose 'MAYBE', which is not one of 'safe', 'unsafe'"
    ]
    assert problems(choice("hazard", "pests", "weather"), choice("safety", "safe")) == [
        "control 'hazard' needs exactly one choice"
    ]
    assert problems(choice("hazard", "pests")) == ["required control 'safety' is not answered"]
    assert problems(choice("hazard", "pests"), choice("safety", "safe"), choice("mood", "x"))[
        0
    ] == (
        "region 3 answers control 'mood', which the labeling config does not have "
        "(it has hazard, safety)"
    )
    twice = problems(choice("hazard", "pests"), choice("safety", "safe"), choice("safety", "safe"))
    assert twice == ["control 'safety' is answered more than once"]
    aimed = {**choice("safety", "safe"), "to_name": "elsewhere"}
    assert problems(choice("hazard", "pests"), aimed) == [
        "control 'safety' points at 'elsewhere', not 'text'"
    ]
    assert result_problems(AnnotationTaskType.LABEL, options, "text") == [
        "the result is not a list of regions"
    ]

    rating = LabelingOptions()
    for value, expected in ((5, []), (6, ["control 'rating' rated 6, outside 1 to 5"])):
        found = result_problems(
            AnnotationTaskType.RATING, rating, [{"from_name": "rating", "value": {"rating": value}}]
        )
        assert found == expected
    assert result_problems(
        AnnotationTaskType.RATING, rating, [{"from_name": "rating", "value": {"rating": True}}]
    ) == ["control 'rating' needs a whole rating from 1 to 5"]
    answer = [{"from_name": "answer", "to_name": "question", "value": {"text": ["Panda mapema"]}}]
    assert result_problems(AnnotationTaskType.QA, rating, answer) == []
    assert result_problems(AnnotationTaskType.QA, rating, answer, max_text_chars=5) == [
        "control 'answer' has 12 characters, more than 5"
    ]
    blank = [{"from_name": "answer", "value": {"text": ["  "]}}]
    assert result_problems(AnnotationTaskType.QA, rating, blank) == ["control 'answer' is empty"]
