"""What still blocks a dataset's release, per language: the maintainer's view.

``release_blockers`` computes from the same votes and reviews as the release
itself (``release.dataset_votes``): items short of distinct
annotators, agreement per field against its gate, the share of votes no
reviewer has reviewed in their current version, reviewer acceptance, and the
items the gold rules would leave out. The page ``/annotations/datasets`` and
``sabha annotations blockers`` show it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.gates import GateResult, ReleaseGates, check_gates
from sabha.annotation.gold import RELEASABLE_TASKS, gold_items
from sabha.platform.domain import AnnotationProject, AnnotationTaskType, id_of
from sabha.platform.errors import NotFoundError

from .agreement import dataset_agreement
from .release import annotated_items, dataset_votes, gate_inputs

__all__ = [
    "DatasetBlockers",
    "DatasetBlockersPublic",
    "LanguageBlockers",
    "annotated_datasets",
    "release_blockers",
]

SHOWN_SHORT_ITEMS = 20


@dataclass
class LanguageBlockers:
    """One language of a dataset: where it stands against the gates.

    Attributes:
        language: The BCP-47 tag.
        items: Source items.
        short_items: Items with fewer distinct annotators than the gate needs.
        shortest: Up to 20 of them: (key, distinct annotators it has).
        votes: One per person and item.
        unreviewed: Votes no reviewer reviewed in their current version.
        left_out: Reason -> items the gold rules would leave out now.
        gates: Every gate of this language, passed or not.
    """

    language: str
    items: int
    short_items: int
    shortest: list[tuple[str, int]]
    votes: int
    unreviewed: int
    left_out: dict[str, int] = field(default_factory=dict)
    gates: list[GateResult] = field(default_factory=list)

    @property
    def unreviewed_share(self) -> float | None:
        """Share of votes without a review of their current version (None: no votes)."""
        return self.unreviewed / self.votes if self.votes else None

    @property
    def blocked(self) -> bool:
        """Whether any gate of this language fails."""
        return any(not g.passed for g in self.gates)


@dataclass
class DatasetBlockers:
    """A dataset's languages against the gates; ``releasable`` when none blocks."""

    dataset: str
    task_type: str
    gates: ReleaseGates
    languages: list[LanguageBlockers]

    @property
    def releasable(self) -> bool:
        """Whether every gate of every language passes."""
        return bool(self.languages) and not any(lang.blocked for lang in self.languages)


def annotated_datasets(session: Session) -> list[str]:
    """The datasets with annotation projects that are released as data, by name."""
    return sorted(
        set(
            session.exec(
                select(AnnotationProject.dataset_name).where(
                    col(AnnotationProject.task_type).in_([t.value for t in RELEASABLE_TASKS])
                )
            ).all()
        )
    )


def release_blockers(db: Engine, dataset_name: str, gates: ReleaseGates) -> DatasetBlockers:
    """Where each language of a dataset stands against ``gates``.

    Raises:
        NotFoundError: the dataset has no annotation projects.
    """
    agreement = dataset_agreement(db, dataset_name)  # raises NotFoundError
    with Session(db) as session:
        data = dataset_votes(session, dataset_name)
    if not data.projects:
        raise NotFoundError(f"Dataset {dataset_name!r} has no annotation projects.")
    kind = AnnotationTaskType(data.projects[0].task_type)
    fewest, acceptance = gate_inputs(data)
    results = check_gates(
        gates,
        fewest_annotations=fewest,
        agreement={k: v for k, v in agreement.items() if k != "overall"},
        acceptance=acceptance,
    )
    left_out: dict[str, Counter[str]] = {}
    if kind in RELEASABLE_TASKS:
        outcome, _problems = gold_items(
            kind,
            dataset_name,
            annotated_items(data),
            min_votes=gates.min_annotations_per_item or 1,
        )
        left_out = outcome.left_out
    voters = data.voters()
    need = gates.min_annotations_per_item or 0
    languages = []
    for project in data.projects:
        items = [i for i in data.items if i.project_id == project.id]
        short = sorted(
            ((i.key, len(voters[id_of(i)])) for i in items if len(voters[id_of(i)]) < need),
            key=lambda pair: (pair[1], pair[0]),
        )
        votes = [v for v in data.votes if v.item_id in {id_of(i) for i in items}]
        languages.append(
            LanguageBlockers(
                language=project.language,
                items=len(items),
                short_items=len(short),
                shortest=short[:SHOWN_SHORT_ITEMS],
                votes=len(votes),
                unreviewed=sum(not data.reviews.get(id_of(v)) for v in votes),
                left_out=dict(left_out.get(project.language, {})),
                gates=[r for r in results if r.language == project.language],
            )
        )
    return DatasetBlockers(dataset_name, kind.value, gates, languages)


class GatePublic(BaseModel):
    """One gate in one language."""

    gate: str
    required: float
    actual: float | None
    passed: bool
    says: str = Field(description="The gate in words, with its shortfall")


class LanguageBlockersPublic(BaseModel):
    """One language of a dataset against the gates."""

    language: str
    items: int
    short_items: int = Field(description="Items with fewer distinct annotators than required")
    shortest: list[tuple[str, int]] = Field(
        description="Up to 20 of them: item key and the distinct annotators it has"
    )
    votes: int = Field(description="One per person and item: their latest annotation")
    unreviewed: int = Field(description="Votes nobody reviewed in their current version")
    unreviewed_share: float | None
    left_out: dict[str, int] = Field(description="Items the gold rules would leave out now")
    gates: list[GatePublic]
    blocked: bool


class DatasetBlockersPublic(BaseModel):
    """What blocks a dataset's release, per language."""

    dataset: str
    task_type: str
    releasable: bool
    languages: list[LanguageBlockersPublic]

    @classmethod
    def of(cls, blockers: DatasetBlockers) -> DatasetBlockersPublic:
        """The public shape of ``release_blockers``' answer."""
        return cls(
            dataset=blockers.dataset,
            task_type=blockers.task_type,
            releasable=blockers.releasable,
            languages=[
                LanguageBlockersPublic(
                    language=lang.language,
                    items=lang.items,
                    short_items=lang.short_items,
                    shortest=lang.shortest,
                    votes=lang.votes,
                    unreviewed=lang.unreviewed,
                    unreviewed_share=lang.unreviewed_share,
                    left_out=lang.left_out,
                    gates=[
                        GatePublic(
                            gate=g.gate,
                            required=g.required,
                            actual=g.actual,
                            passed=g.passed,
                            says=g.describe(),
                        )
                        for g in lang.gates
                    ],
                    blocked=lang.blocked,
                )
                for lang in blockers.languages
            ],
        )
