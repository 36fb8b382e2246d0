"""Uploading source items: all rows or none; every bad row named by line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from sabha.annotation.configs import LabelingOptions
from sabha.platform.domain import SourceItem
from sabha.platform.errors import SabhaError, ValidationFailed
from sabha.platform.services.annotation import create_annotation_project, upload_source_items


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _count(db: Engine) -> int:
    with Session(db) as session:
        return session.exec(select(func.count()).select_from(SourceItem)).one()


def test_a_good_jsonl_and_csv_upload_imports_every_row(db: Engine, tmp_path: Path) -> None:
    project = create_annotation_project(db, "kisan-advisory", "sw-Latn", "qa")
    rows = [
        {"id": f"q{i}", "question": f"Nipande mahindi lini? {i}", "region": "KE"} for i in range(3)
    ]
    assert upload_source_items(db, project.id, _jsonl(tmp_path / "a.jsonl", rows)) == 3
    csv_file = tmp_path / "b.csv"
    csv_file.write_text('id,question,split\nq9,"Mbolea gani, na lini?",dev\n', "utf-8")
    assert upload_source_items(db, project.id, csv_file) == 1
    with Session(db) as session:
        items = {i.key: i for i in session.exec(select(SourceItem)).all()}
    assert items["q9"].split == "dev" and items["q9"].data == {"question": "Mbolea gani, na lini?"}
    assert items["q0"].data["region"] == "KE"


def test_a_malformed_upload_names_each_line_and_field_and_imports_nothing(
    db: Engine, tmp_path: Path
) -> None:
    project = create_annotation_project(
        db, "safety-ta", "ta-Taml", "label", options=LabelingOptions(hazards=("violence",))
    )
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "ok-1", "text": "வணக்கம்"})
    path.write_text(
        "\n".join(
            [
                good,
                "{not json",
                json.dumps({"id": "ok-1", "text": "again"}),
                json.dumps({"id": "x", "text": ""}),
                json.dumps({"text": "no id"}),
                json.dumps({"id": "y", "text": "t", "language": "hi-Deva"}),
                json.dumps(["a", "list"]),
            ]
        )
        + "\n",
        "utf-8",
    )
    with pytest.raises(ValidationFailed) as caught:
        upload_source_items(db, project.id, path)
    problems = "\n".join(caught.value.problems)
    assert "line 2: not valid JSON" in problems
    assert "line 3: field 'id' 'ok-1' repeats line 1" in problems
    assert "line 4: field 'text' is missing or empty" in problems
    assert "line 5: field 'id' is missing" in problems
    assert "line 6: field 'language' is 'hi-Deva'" in problems
    assert "line 7: a row must be a JSON object" in problems
    assert "nothing was imported" in caught.value.message
    assert _count(db) == 0


def test_a_csv_row_with_too_many_values_is_refused(db: Engine, tmp_path: Path) -> None:
    project = create_annotation_project(db, "mt-hi", "hi-Deva", "translation")
    path = tmp_path / "bad.csv"
    path.write_text("id,source\na,hello\nb,hi,extra\n", "utf-8")
    with pytest.raises(ValidationFailed, match="1 problem") as caught:
        upload_source_items(db, project.id, path)
    assert caught.value.problems == ["line 3: more values than the header has columns"]
    assert _count(db) == 0


def test_ids_uploaded_before_are_refused_and_nothing_new_is_added(
    db: Engine, tmp_path: Path
) -> None:
    project = create_annotation_project(db, "kisan-advisory", "hi-Deva", "qa")
    upload_source_items(
        db, project.id, _jsonl(tmp_path / "a.jsonl", [{"id": "a", "question": "q"}])
    )
    second = _jsonl(
        tmp_path / "b.jsonl", [{"id": "b", "question": "q"}, {"id": "a", "question": "q"}]
    )
    with pytest.raises(ValidationFailed, match="nothing was imported") as caught:
        upload_source_items(db, project.id, second)
    assert caught.value.problems == ["line 2: field 'id' 'a' is already in the project"]
    assert _count(db) == 1


def test_project_settings_are_checked_before_anything_is_stored(db: Engine) -> None:
    with pytest.raises(ValidationFailed) as caught:
        create_annotation_project(db, "d", "hindi", "poetry", annotations_per_item=0)
    problems = "\n".join(caught.value.problems)
    assert "task type 'poetry' is unknown" in problems
    assert "between 1 and 20" in problems
    assert "language:" in problems
    create_annotation_project(db, "d", "hi-Deva", "rating")
    with pytest.raises(SabhaError, match="already has an annotation project in hi-Deva"):
        create_annotation_project(db, "d", "hi-Deva", "rating")
