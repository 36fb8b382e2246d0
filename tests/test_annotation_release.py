"""Annotated releases end to end against a real Label Studio (SQLite and PostgreSQL).

Two real Label Studio users annotate every item through the SDK, a Sabha
reviewer reviews, the gates pass and the dataset is released: the Parquet
export loads with ``datasets``, the card validates, a repeated release gives
the same version, and the private split is in no export, card or page.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from labelstudio_fixture import PEOPLE, LabelStudioForTests
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.cards import validate_data_card
from sabha.annotation.configs import LabelingOptions
from sabha.annotation.gates import ReleaseGates
from sabha.platform.db import session_scope
from sabha.platform.domain import Annotation, DatasetVersion, Item, SourceItem, User
from sabha.platform.errors import ValidationFailed
from sabha.platform.services.accounts import create_user
from sabha.platform.services.annotation import (
    contribution_of,
    create_annotation_project,
    link_labelstudio_account,
    next_items_for,
    provision_project,
    release_annotated_dataset,
    review_annotation,
    sync_project,
)
from sabha.platform.services.annotation import upload_source_items as upload

pytestmark = pytest.mark.slow
HAZARDS = ("pests", "weather")
GATES = ReleaseGates(min_annotations_per_item=2, min_alpha=0.667, min_acceptance=0.8)


def _label(hazard: str, safety: str) -> list[dict[str, Any]]:
    return [
        {
            "from_name": "hazard",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [hazard]},
        },
        {
            "from_name": "safety",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [safety]},
        },
    ]


def _user(db: Engine, name: str, roles: tuple[str, ...]) -> User:
    with session_scope(db) as session:
        return create_user(session, name, password="a long password 123", roles=roles)


def _project(
    db: Engine,
    tmp_path: Path,
    dataset: str,
    language: str,
    rows: list[dict],
    private: bool = False,
) -> int:
    project = create_annotation_project(
        db, dataset, language, "label", options=LabelingOptions(hazards=HAZARDS), private=private
    )
    path = tmp_path / f"{dataset}-{language}{'-private' if private else ''}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    upload(db, project.id or 0, path)
    return project.id or 0


def _annotate(
    db: Engine,
    labelstudio: LabelStudioForTests,
    project_id: int,
    answers: dict[str, list[tuple[str, str]]],
) -> None:
    """Provision, then each annotator labels every item handed to them through the SDK."""
    provision_project(db, labelstudio.client(), project_id)
    with Session(db) as session:
        key_of = dict(
            session.exec(
                select(SourceItem.labelstudio_task_id, SourceItem.key).where(
                    SourceItem.project_id == project_id
                )
            ).all()
        )
    for who, labels in answers.items():
        client = labelstudio.client(who)
        for task in next_items_for(db, project_id, client.whoami(), n=100):
            n = int(str(key_of[task]).removeprefix("i"))
            client.create_annotation(task, _label(*labels[n]))
    sync_project(db, labelstudio.client(), project_id)


def _review_all(db: Engine, reviewer: User) -> None:
    from sabha.annotation.votes import annotation_version

    with Session(db) as session:
        shown = session.exec(select(Annotation)).all()
    for annotation in shown:
        version = annotation_version(annotation.result)
        review_annotation(
            db, annotation.labelstudio_annotation_id, reviewer, "accepted", version=version
        )


def test_an_annotated_dataset_is_released_once_with_its_card_and_no_private_item(
    db: Engine,
    migrated_url: str,
    labelstudio: LabelStudioForTests,
    labelstudio_private: LabelStudioForTests,
    tmp_path: Path,
) -> None:
    import datasets

    dataset = f"kisan-safety-{uuid.uuid4().hex[:8]}"
    secret = f"SIRI-YA-FARAGHA-{uuid.uuid4().hex}"
    rows = [{"id": f"i{n}", "text": f"Nyunyizia dawa shambani {n}"} for n in range(5)]
    labels = [("pests", "unsafe"), ("weather", "safe")] * 3
    ties = list(labels)
    ties[4] = ("weather", "unsafe")  # one disagreement: item i4 has no majority of two
    project_id = _project(db, tmp_path, dataset, "sw-Latn", rows)
    _annotate(db, labelstudio, project_id, {PEOPLE[0]: labels, PEOPLE[1]: ties})
    # The private item is annotated on the private Label Studio (its own project).
    held_out = _project(db, tmp_path, dataset, "sw-Latn", [{"id": "i5", "text": secret}], True)
    _annotate(db, labelstudio_private, held_out, {PEOPLE[0]: labels, PEOPLE[1]: ties})
    reviewer = _user(db, "mkaguzi", ("reviewer",))
    annotator = _user(db, "mwandishi", ("annotator",))
    link_labelstudio_account(
        db, annotator.id or 0, labelstudio.client(PEOPLE[0]).whoami(), PEOPLE[0]
    )
    _review_all(db, reviewer)
    gates = ReleaseGates(min_annotations_per_item=2, min_alpha=0.5, min_acceptance=0.8)

    released = release_annotated_dataset(
        db, dataset, tmp_path / "artifacts", gates=gates, version_note="First release."
    )
    assert released.created and (released.public_items, released.private_items) == (4, 1)
    assert released.left_out == {"sw-Latn": {"annotators tied or had no majority": 1}}

    with Session(db) as session:
        version = session.exec(select(DatasetVersion)).one()
        stored = session.exec(
            select(Item).where(Item.dataset_version_id == version.id).order_by(col(Item.key))
        ).all()
    assert [(i.key, i.split) for i in stored][-1] == ("sw-Latn.i5", "private")
    assert stored[-1].input == {"text": secret}  # kept on the server for evaluation
    parquet = Path(version.artifact_uri or "")
    loaded = datasets.load_dataset(
        "parquet", data_files=str(parquet), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert loaded["id"] == ["sw-Latn.i0", "sw-Latn.i1", "sw-Latn.i2", "sw-Latn.i3"]
    assert loaded["label"] == ["unsafe", "safe", "unsafe", "safe"]
    assert loaded["hazard"] == ["pests", "weather", "pests", "weather"]

    card_file = parquet.with_suffix(".README.md")
    card = validate_data_card(card_file.read_text("utf-8"))
    assert card.data.to_dict()["annotations_creators"] == ["crowdsourced"]
    text = " ".join(card.text.split())
    assert "12 votes by 2 annotator(s)" in text
    assert "at least 2 different people" in text
    assert "reviewed by 1 reviewer(s)" in text and "Krippendorff alpha" in text
    assert "1 further items are a private held-out split" in card.text
    assert PEOPLE[0] not in card.text and "mkaguzi" not in card.text  # counts, never names

    # The private item's text is in no export, card or page.
    from sabha.platform.app import create_app
    from sabha.platform.settings import Settings

    assert secret.encode() not in parquet.read_bytes()
    assert secret not in card_file.read_text("utf-8") and secret not in str(version.card_markdown)
    client = create_app(Settings(database_url=migrated_url)).test_client()
    page = client.get(f"/datasets/{dataset}/card")
    assert page.status_code == 200 and dataset in page.text and secret not in page.text
    for url in ("/api/benchmarks", "/api/v1/benchmarks"):
        answer = client.get(url)
        assert secret not in answer.text

    # Releasing the same annotations again: the same version, nothing new.
    again = release_annotated_dataset(db, dataset, tmp_path / "artifacts", gates=gates)
    assert (again.content_hash, again.created) == (released.content_hash, False)
    with Session(db) as session:
        assert len(session.exec(select(DatasetVersion)).all()) == 1

    # Credit: counts on the annotator's and reviewer's records.
    assert contribution_of(db, annotator.id or 0).annotations == 6
    assert contribution_of(db, annotator.id or 0).accepted == 6
    assert contribution_of(db, reviewer.id or 0).reviews == 12


def test_a_failing_gate_in_tamil_blocks_the_release_with_its_shortfall(
    db: Engine, labelstudio: LabelStudioForTests, tmp_path: Path
) -> None:
    dataset = f"kisan-gates-{uuid.uuid4().hex[:8]}"
    agreeing = [("pests", "unsafe"), ("weather", "safe")] * 2
    swahili = _project(
        db,
        tmp_path,
        dataset,
        "sw-Latn",
        [{"id": f"i{n}", "text": f"maandishi {n}"} for n in range(4)],
    )
    tamil = _project(
        db, tmp_path, dataset, "ta-Taml", [{"id": f"i{n}", "text": f"உரை {n}"} for n in range(4)]
    )
    _annotate(db, labelstudio, swahili, {PEOPLE[0]: agreeing, PEOPLE[1]: agreeing})
    flipped = [(h, "safe" if s == "unsafe" else "unsafe") for h, s in agreeing]
    _annotate(db, labelstudio, tamil, {PEOPLE[0]: agreeing, PEOPLE[1]: flipped})
    _review_all(db, _user(db, "mkaguzi", ("reviewer",)))

    with pytest.raises(ValidationFailed, match="cannot be released: 1 gate") as caught:
        release_annotated_dataset(db, dataset, tmp_path / "artifacts", gates=GATES)
    (problem,) = caught.value.problems
    assert problem.startswith("alpha of safety in ta-Taml is") and "falls short by" in problem
    with Session(db) as session:
        assert session.exec(select(DatasetVersion)).all() == []
    assert not (tmp_path / "artifacts").exists()


def test_a_release_refuses_a_bad_private_fraction(db: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        release_annotated_dataset(db, "nothing", tmp_path, private_fraction=1.5)
    assert "private fraction must be at least 0 and below 1" in caught.value.problems[0]
