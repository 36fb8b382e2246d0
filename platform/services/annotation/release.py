"""Releasing an annotated dataset: gates checked per language, gold answers, a dataset version.

``release_annotated_dataset`` checks every gate, turns the accepted
annotations into items (``sabha.annotation.gold`` has the rules), keeps a
private held-out split in the database only, and releases an immutable
version with its data card through ``release_dataset_version``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from sabha.annotation.cards import AgreementRow, AnnotationFacts
from sabha.annotation.configs import LabelingOptions, task_fields
from sabha.annotation.gates import GateResult, ReleaseGates, check_gates, failed_gates_message
from sabha.annotation.gold import (
    PRIVATE_SPLIT,
    AnnotatedItem,
    ReviewedAnnotation,
    gold_items,
    labels_of,
)
from sabha.annotation.release import release_dataset_version
from sabha.annotation.votes import votes_of
from sabha.platform.benchmarks import CardText, DatasetContent
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Annotation,
    AnnotationProject,
    AnnotationReview,
    AnnotationTaskType,
    ReviewVerdict,
    SourceItem,
    id_of,
)
from sabha.platform.errors import ValidationFailed

from .agreement import dataset_agreement
from .review import current_reviews, votes_and_accepted

__all__ = [
    "AnnotatedRelease",
    "Contribution",
    "DatasetVotes",
    "annotated_items",
    "check_release_gates",
    "contribution_of",
    "dataset_votes",
    "gate_inputs",
    "release_annotated_dataset",
    "require_release_gates",
]

GOLD_RULE = (
    "Gold answers: each person has one vote per item, their latest annotation of it; a vote "
    "counts unless it was skipped or a reviewer rejected the version it has now. A label is "
    "the one a strict majority of the counting votes chose (ties are left out); a free-text "
    "reference is the answer a reviewer accepted (with several, the one most reviewers "
    "accepted, then the earliest)."
)


@dataclass
class DatasetVotes:
    """A dataset's projects, items and the votes that count, with their current reviews.

    Attributes:
        projects: The dataset's projects, by language.
        items: Every source item.
        votes: Each person's latest annotation per item (``votes_of``).
        superseded: Annotations replaced by the same person's later one.
        reviews: Per annotation row id, the reviews of its current version.
    """

    projects: list[AnnotationProject]
    items: list[SourceItem]
    votes: list[Annotation]
    superseded: int
    reviews: dict[int, list[AnnotationReview]]

    def language_of(self, item: SourceItem) -> str:
        """The language of an item's project."""
        return next(p.language for p in self.projects if p.id == item.project_id)

    def voters(self) -> dict[int, set[int]]:
        """Per item id, the distinct people whose vote it has (empty sets included)."""
        found: dict[int, set[int]] = {id_of(i): set() for i in self.items}
        for vote in self.votes:
            found[vote.item_id].add(vote.labelstudio_user_id)
        return found


def dataset_votes(session: Session, dataset_name: str) -> DatasetVotes:
    """Load what every gate, count and gold answer of a dataset is computed from."""
    projects = list(
        session.exec(
            select(AnnotationProject)
            .where(AnnotationProject.dataset_name == dataset_name)
            .order_by(col(AnnotationProject.language))
        ).all()
    )
    items = list(
        session.exec(
            select(SourceItem)
            .where(col(SourceItem.project_id).in_([id_of(p) for p in projects]))
            .order_by(col(SourceItem.id))
        ).all()
    )
    annotations = session.exec(
        select(Annotation).where(col(Annotation.item_id).in_([id_of(i) for i in items]))
    ).all()
    votes = votes_of(annotations)
    reviews = current_reviews(session, votes)
    counted = sum(not a.was_cancelled for a in annotations)
    return DatasetVotes(projects, items, votes, counted - len(votes), reviews)


def gate_inputs(
    data: DatasetVotes,
) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Per language: the fewest distinct annotators of an item, and (accepted, reviewed)."""
    fewest: dict[str, int] = {}
    voters = data.voters()
    for item in data.items:
        language = data.language_of(item)
        fewest[language] = min(fewest.get(language, 1 << 30), len(voters[id_of(item)]))
    acceptance: dict[str, tuple[int, int]] = {}
    language_of_item = {id_of(i): data.language_of(i) for i in data.items}
    for vote in data.votes:
        language = language_of_item[vote.item_id]
        for review in data.reviews.get(id_of(vote), []):
            accepted, reviewed = acceptance.get(language, (0, 0))
            acceptance[language] = (
                accepted + (review.verdict == ReviewVerdict.ACCEPTED),
                reviewed + 1,
            )
    return fewest, acceptance


def check_release_gates(db: Engine, dataset_name: str, gates: ReleaseGates) -> list[GateResult]:
    """Every gate of a dataset in every language it is annotated in.

    Everything counts people: an item's annotations are its distinct
    annotators' votes, and only reviews of the version each vote has now count.
    """
    agreement = dataset_agreement(db, dataset_name)
    with Session(db) as session:
        fewest, acceptance = gate_inputs(dataset_votes(session, dataset_name))
    return check_gates(
        gates,
        fewest_annotations=fewest,
        agreement={k: v for k, v in agreement.items() if k != "overall"},
        acceptance=acceptance,
    )


def require_release_gates(db: Engine, dataset_name: str, gates: ReleaseGates) -> list[GateResult]:
    """Check the gates and refuse when any fails.

    Raises:
        ValidationFailed: one problem line per failed gate, with the shortfall.
    """
    results = check_release_gates(db, dataset_name, gates)
    failed = failed_gates_message(results)
    if failed:
        raise ValidationFailed(
            f"Dataset {dataset_name!r} cannot be released: {len(failed)} gate(s) failed.",
            failed,
            "Collect more annotations or reviews, or have disagreeing items annotated "
            "again; nothing was released.",
        )
    return results


@dataclass
class AnnotatedRelease:
    """What a release produced.

    Attributes:
        name: The dataset's name.
        content_hash: The version (SHA-256 of every item, private ones too).
        created: False when the same items were released before (same version).
        public_items: Items in the Parquet export.
        private_items: Items held out on the server.
        left_out: Per language, reason -> items without a gold answer.
        gates: Every gate checked, all passed.
    """

    name: str
    content_hash: str
    created: bool
    public_items: int
    private_items: int
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)
    gates: list[GateResult] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``name@hash``: how benchmark files refer to the version."""
        return f"{self.name}@{self.content_hash}"


def annotated_items(data: DatasetVotes) -> list[AnnotatedItem]:
    """Every item with its votes and their current reviews, as the gold rules read them."""
    by_item: dict[int, list[ReviewedAnnotation]] = {}
    for vote in data.votes:
        verdicts = Counter(r.verdict for r in data.reviews.get(id_of(vote), []))
        by_item.setdefault(vote.item_id, []).append(
            ReviewedAnnotation(
                vote.labelstudio_annotation_id,
                vote.result,
                accepted=verdicts[ReviewVerdict.ACCEPTED],
                rejected=verdicts[ReviewVerdict.REJECTED],
                cancelled=vote.was_cancelled,
            )
        )
    return [
        AnnotatedItem(s.key, data.language_of(s), s.split, s.data, by_item.get(id_of(s), []))
        for s in data.items
    ]


def release_annotated_dataset(
    db: Engine,
    dataset_name: str,
    artifacts_dir: Path,
    *,
    gates: ReleaseGates | None = None,
    title: str | None = None,
    license: str = "CC-BY-4.0",
    summary: str | None = None,
    intended_use: str | None = None,
    limitations: str | None = None,
    version_note: str = "",
    private_fraction: float = 0.0,
) -> AnnotatedRelease:
    """Check the gates, build the items from accepted annotations, release a version.

    Items with a ``private`` split, and a ``private_fraction`` of the test
    items chosen by a hash of their ids, form a held-out split: stored as
    items for server-side evaluation, never exported, never on the card.
    Releasing the same annotations again gives the same version (and no new one).

    Raises:
        ValidationFailed: a failed gate (each with its shortfall), a bad
            fraction or card text, items that cannot be released, or none at all.
        NotFoundError: the dataset has no annotation projects.
    """
    gates = gates or ReleaseGates()
    where = f"Dataset {dataset_name!r} cannot be released:"
    if not 0.0 <= private_fraction < 1.0:
        raise ValidationFailed(
            where, [f"private fraction must be at least 0 and below 1, not {private_fraction}"]
        )
    results = require_release_gates(db, dataset_name, gates)
    agreement = dataset_agreement(db, dataset_name)
    with Session(db) as session:
        data = dataset_votes(session, dataset_name)
    projects, items = data.projects, annotated_items(data)
    kind = AnnotationTaskType(projects[0].task_type)
    try:
        outcome, problems = gold_items(
            kind,
            dataset_name,
            items,
            min_votes=gates.min_annotations_per_item or 1,
            private_fraction=private_fraction,
        )
    except ValueError as exc:
        raise ValidationFailed(where, [f"task type: {exc}"]) from None
    if problems:
        raise ValidationFailed(where, problems[:50], "Fix the items and upload them again.")
    if not outcome.items:
        raise ValidationFailed(where, ["no item has a gold answer yet"])
    public = [item for item in outcome.items if item.split != PRIVATE_SPLIT]
    if not public:
        raise ValidationFailed(where, ["every item would be private; lower the private fraction"])
    k = max(p.annotations_per_item for p in projects)
    try:
        card = CardText(
            summary=summary or f"{title or dataset_name}: items annotated by the community.",
            collection_process=(
                f"Source items were uploaded by the dataset maintainers and annotated in "
                f"Label Studio through Sabha ({kind.value}); see Annotation below."
            ),
            intended_use=intended_use or "Evaluating language models in these languages.",
            limitations=limitations
            or "Annotators are volunteers; agreement is reported per language below, and items "
            "without an agreed answer are left out.",
        )
    except ValidationError as exc:
        raise ValidationFailed(
            where, [f"card field '{e['loc'][0]}': {e['msg']}" for e in exc.errors()]
        ) from None
    hazards = LabelingOptions.from_json(projects[0].options).hazards
    content = DatasetContent(
        name=dataset_name,
        title=title or dataset_name,
        license=license,
        task="classification" if kind is AnnotationTaskType.LABEL else "generation",
        languages=sorted({item.language for item in outcome.items}),
        labels=labels_of(kind),
        attributes={"hazard": list(hazards)} if kind is AnnotationTaskType.LABEL else {},
        card=card,
        items=outcome.items,
        source=f"the annotations of {dataset_name}",
        input_fields=list(task_fields(kind)),
    )
    voters = data.voters()
    released = {item.id for item in outcome.items}
    facts = AnnotationFacts(
        task_type=kind.value,
        annotations_per_item=k,
        annotators=len({v.labelstudio_user_id for v in data.votes}),
        reviewers=len({r.reviewer_id for held in data.reviews.values() for r in held}),
        annotations=len(data.votes),
        superseded=data.superseded,
        fewest_annotators=min(
            (
                len(voters[id_of(s)])
                for s in data.items
                if f"{data.language_of(s)}.{s.key}" in released
            ),
            default=0,
        ),
        agreement=[
            AgreementRow(language, name, f.statistic, f.value, f.items, f.note)
            for language, fields in agreement.items()
            for name, f in sorted(fields.items())
        ],
        left_out={lang: dict(reasons) for lang, reasons in outcome.left_out.items()},
        gold_rule=GOLD_RULE,
        version_note=version_note.strip(),
    )
    with session_scope(db) as session:
        version, created = release_dataset_version(
            session, content, artifacts_dir, annotation=facts
        )
        digest = version.content_hash
    return AnnotatedRelease(
        name=dataset_name,
        content_hash=digest,
        created=created,
        public_items=len(public),
        private_items=len(outcome.items) - len(public),
        left_out={lang: dict(reasons) for lang, reasons in outcome.left_out.items()},
        gates=results,
    )


@dataclass(frozen=True)
class Contribution:
    """A person's credit: annotations made (not skipped) and reviews given."""

    annotations: int
    accepted: int
    reviews: int


def contribution_of(db: Engine, user_id: int) -> Contribution:
    """How much a Sabha user annotated (through their linked Label Studio account) and reviewed.

    Annotations are votes: items annotated, one per item however often the
    person annotated it; accepted ones have a reviewer's acceptance of the
    version they have now.
    """
    with Session(db) as session:
        votes, accepted = votes_and_accepted(session, user_id)
        reviews = session.exec(
            select(func.count())
            .select_from(AnnotationReview)
            .where(AnnotationReview.reviewer_id == user_id)
        ).one()
    return Contribution(len(votes), len(accepted), int(reviews))
