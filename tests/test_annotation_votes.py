"""One person, one vote: gates, agreement, gold answers, cards and credit count distinct people.

Label Studio lets one person annotate an item twice; before, two annotations
by one person satisfied "2 annotations per item" and voted twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from annotationtools import annotate, label, label_project, person, version_of
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.annotation.gates import ReleaseGates
from sabha.platform.domain import AnnotationProject, DatasetVersion
from sabha.platform.errors import ValidationFailed
from sabha.platform.services.annotation import (
    annotator_counts,
    contribution_of,
    dataset_agreement,
    items_needing_annotations,
    link_labelstudio_account,
    release_annotated_dataset,
    require_release_gates,
    review_annotation,
)
from sabha.platform.services.annotators import credit_by_project

pytestmark = pytest.mark.postgresql
NO_REVIEW_GATES = ReleaseGates(min_annotations_per_item=2, min_alpha=None, min_acceptance=None)


def _project_id(db: Engine, dataset: str) -> int:
    with Session(db) as session:
        project = session.exec(
            select(AnnotationProject).where(AnnotationProject.dataset_name == dataset)
        ).one()
    return project.id or 0


def test_one_person_annotating_an_item_twice_is_one_annotator_for_the_release_gate(
    db: Engine, tmp_path: Path
) -> None:
    tasks = label_project(db, tmp_path, "twice", "sw-Latn", ["i0", "i1"], 100)
    for n, key in enumerate(tasks):  # Label Studio user 11 annotates every item twice
        annotate(db, 10 + n, tasks[key], 11, label("unsafe"))
        annotate(db, 20 + n, tasks[key], 11, label("unsafe"), minutes=1)
    with pytest.raises(ValidationFailed) as caught:
        require_release_gates(db, "twice", NO_REVIEW_GATES)
    assert caught.value.problems == [
        "annotations per item in sw-Latn is 1, required 2: falls short by 1"
    ]
    assert items_needing_annotations(db, _project_id(db, "twice")) == {"i0": 1, "i1": 1}
    annotate(db, 30, tasks["i0"], 12, label("unsafe"))
    annotate(db, 31, tasks["i1"], 12, label("unsafe"))
    assert require_release_gates(db, "twice", NO_REVIEW_GATES)  # two people now


def test_a_release_counts_each_persons_latest_label_once_and_its_card_says_so(
    db: Engine, tmp_path: Path
) -> None:
    tasks = label_project(db, tmp_path, "latest", "sw-Latn", ["i0", "i1", "i2"], 200)
    # i0: person 11 says unsafe twice, person 12 safe: one vote each, a tie.
    annotate(db, 1, tasks["i0"], 11, label("unsafe"))
    annotate(db, 2, tasks["i0"], 11, label("unsafe"), minutes=1)
    annotate(db, 3, tasks["i0"], 12, label("safe"))
    # i1: person 11 said safe, then annotated again and said unsafe: the later one counts.
    annotate(db, 4, tasks["i1"], 11, label("safe"))
    annotate(db, 5, tasks["i1"], 11, label("unsafe"), minutes=5)
    annotate(db, 6, tasks["i1"], 12, label("unsafe"))
    annotate(db, 7, tasks["i2"], 11, label("safe"))
    annotate(db, 8, tasks["i2"], 12, label("safe"))

    released = release_annotated_dataset(
        db, "latest", tmp_path / "artifacts", gates=NO_REVIEW_GATES, private_fraction=0.0
    )
    assert released.left_out == {"sw-Latn": {"annotators tied or had no majority": 1}}
    with Session(db) as session:
        version = session.exec(select(DatasetVersion)).one()
    card = " ".join(str(version.card_markdown).split())
    assert "6 votes by 2 annotator(s)" in card
    assert "Every released item carries the votes of at least 2 different people." in card
    assert "2 earlier annotation(s) replaced by the same person's later one" in card
    from sabha.platform.domain import Item

    with Session(db) as session:
        labels = dict(
            session.exec(
                select(Item.key, Item.label).where(Item.dataset_version_id == version.id)
            ).all()
        )
    assert labels == {"sw-Latn.i1": "unsafe", "sw-Latn.i2": "safe"}


def test_agreement_compares_each_persons_latest_annotation(db: Engine, tmp_path: Path) -> None:
    tasks = label_project(db, tmp_path, "agree", "sw-Latn", ["i0", "i1"], 300)
    annotate(db, 1, tasks["i0"], 12, label("unsafe"))
    annotate(db, 2, tasks["i1"], 12, label("safe"))
    annotate(db, 3, tasks["i0"], 11, label("unsafe"), minutes=10)  # 11's latest: agrees
    annotate(db, 4, tasks["i1"], 11, label("safe"), minutes=10)
    annotate(db, 5, tasks["i0"], 11, label("safe"))  # 11's earlier ones, stored last
    annotate(db, 6, tasks["i1"], 11, label("unsafe"))
    safety = dataset_agreement(db, "agree")["sw-Latn"]["safety"]
    assert safety.value == pytest.approx(1.0) and (safety.items, safety.annotations) == (2, 4)


def test_credit_counts_items_annotated_not_annotations(db: Engine, tmp_path: Path) -> None:
    tasks = label_project(db, tmp_path, "credit", "sw-Latn", ["i0", "i1"], 400)
    annotate(db, 1, tasks["i0"], 11, label("unsafe"))
    annotate(db, 2, tasks["i0"], 11, label("unsafe"), minutes=1)
    annotate(db, 3, tasks["i0"], 11, label("safe"), minutes=2)
    annotate(db, 4, tasks["i1"], 11, label("safe"))
    annotator = person(db, "mwandishi", ("annotator",))
    link_labelstudio_account(db, annotator.id or 0, 11, "mwandishi@example.org")
    assert contribution_of(db, annotator.id or 0).annotations == 2
    assert [(c.dataset_name, c.annotations) for c in credit_by_project(db, annotator.id or 0)] == [
        ("credit", 2)
    ]
    assert annotator_counts(db, _project_id(db, "credit")) == {11: 2}

    # Accepted counts a reviewer's acceptance of the version each vote has now.
    reviewer = person(db, "mkaguzi", ("reviewer",))
    review_annotation(db, 3, reviewer, "accepted", version=version_of(db, 3))
    review_annotation(db, 4, reviewer, "accepted", version=version_of(db, 4))

    def accepted() -> tuple[int, list[tuple[str, int, int]]]:
        user_id = annotator.id or 0
        return contribution_of(db, user_id).accepted, [
            (c.dataset_name, c.annotations, c.accepted) for c in credit_by_project(db, user_id)
        ]

    assert accepted() == (2, [("credit", 2, 2)])
    annotate(db, 4, tasks["i1"], 11, label("unsafe"), minutes=3)  # edited after the review
    assert accepted() == (1, [("credit", 2, 1)])
