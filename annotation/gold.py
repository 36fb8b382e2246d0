"""From annotations to released items: which annotation becomes an item's gold answer.

The rules (documented in ``annotation/README.md``):

- An annotation *counts* when it was not skipped and no reviewer rejected it.
- Label tasks (``label``): each field (``safety``, ``hazard``) takes the label
  a strict majority of the counting annotations chose. An item needs at
  least ``min_votes`` counting annotations; a tie in any field leaves the
  item out (reported as a tie), never broken by chance.
- Free-text tasks (``qa``, ``translation``, ``post_edit``): the answer a
  reviewer accepted becomes the reference; with several accepted answers,
  the one with most accepting reviews, then the earliest (lowest Label Studio
  id). An item without an accepted answer is left out.
- Judgements of model answers (``rating``, ``pairwise``, ``safety``) are not
  datasets; they are aggregated on the leaderboard instead.

The released id of an item is ``<language>.<key>`` (keys are unique per
project, i.e. per language). A private held-out split is chosen by the
upload (``split: private``) or, for a fraction of the rest, by the SHA-256 of
the dataset name and the item id, so the same fraction always picks the same
items.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from sabha.platform.benchmarks import ItemSpec
from sabha.platform.domain import PUBLIC_SPLITS, AnnotationTaskType

from .configs import SAFETY_LABELS, result_values, task_fields

__all__ = [
    "PRIVATE_SPLIT",
    "RELEASABLE_TASKS",
    "SOURCE_SPLITS",
    "AnnotatedItem",
    "GoldOutcome",
    "ReviewedAnnotation",
    "gold_items",
    "is_held_out",
    "labels_of",
]

PRIVATE_SPLIT = "private"
SOURCE_SPLITS = (*PUBLIC_SPLITS, PRIVATE_SPLIT)
"""The splits an uploaded item may have: the public ones and the private held-out split."""
RELEASABLE_TASKS = (
    AnnotationTaskType.QA,
    AnnotationTaskType.TRANSLATION,
    AnnotationTaskType.POST_EDIT,
    AnnotationTaskType.LABEL,
)
_ANSWER_FIELD = {
    AnnotationTaskType.QA: "answer",
    AnnotationTaskType.TRANSLATION: "translation",
    AnnotationTaskType.POST_EDIT: "translation",
}


@dataclass(frozen=True)
class ReviewedAnnotation:
    """One annotation with its reviews: ``result`` as stored from Label Studio."""

    labelstudio_id: int
    result: Sequence[dict[str, Any]]
    accepted: int = 0
    rejected: int = 0
    cancelled: bool = False

    @property
    def counts(self) -> bool:
        """Not skipped and not rejected by any reviewer."""
        return not self.cancelled and not self.rejected


@dataclass(frozen=True)
class AnnotatedItem:
    """A source item of one language with every annotation made on it."""

    key: str
    language: str
    split: str
    data: dict[str, Any]
    annotations: Sequence[ReviewedAnnotation]


@dataclass
class GoldOutcome:
    """The released items and why the others were left out.

    Attributes:
        items: Items with a gold answer (public and private ones).
        left_out: Per language, reason -> count of items left out.
    """

    items: list[ItemSpec] = field(default_factory=list)
    left_out: dict[str, Counter[str]] = field(default_factory=dict)

    def leave_out(self, language: str, reason: str) -> None:
        """Count one item of ``language`` left out for ``reason``."""
        self.left_out.setdefault(language, Counter())[reason] += 1


def is_held_out(dataset_name: str, item_id: str, fraction: float) -> bool:
    """Whether an item falls in the private fraction (SHA-256 of name and id, read as [0, 1))."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{dataset_name}\x00{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _majority(values: list[Any]) -> Any | None:
    """The value a strict majority chose, else None (a tie or no majority)."""
    ranked = Counter(values).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0] if ranked[0][1] * 2 > len(values) else None


def _answer(
    kind: AnnotationTaskType, item: AnnotatedItem, min_votes: int
) -> tuple[dict[str, Any], str | None]:
    """The item's gold fields (``reference``, ``label``, ``attributes``), or why it is left out."""
    counting = [a for a in item.annotations if a.counts]
    if kind is AnnotationTaskType.LABEL:
        if len(counting) < min_votes:
            return {}, f"fewer than {min_votes} accepted annotations"
        votes = [result_values(a.result) for a in counting]
        safety = _majority([v.get("safety") for v in votes])
        hazard = _majority([v.get("hazard") for v in votes])
        if safety is None or hazard is None:
            return {}, "annotators tied or had no majority"
        return {"label": str(safety), "attributes": {"hazard": str(hazard)}}, None
    name = _answer_field(kind)
    accepted = sorted(
        (a for a in counting if a.accepted),
        key=lambda a: (-a.accepted, a.labelstudio_id),
    )
    texts = [str(result_values(a.result).get(name) or "").strip() for a in accepted]
    texts = [t for t in texts if t]
    if not texts:
        return {}, "no reviewer-accepted answer"
    return {"reference": texts[0]}, None


def _answer_field(kind: AnnotationTaskType) -> str:
    if kind not in _ANSWER_FIELD:
        raise ValueError(
            f"{kind.value} annotations judge model answers and are not released as a dataset"
        )
    return _ANSWER_FIELD[kind]


def gold_items(
    kind: AnnotationTaskType,
    dataset_name: str,
    items: Sequence[AnnotatedItem],
    *,
    min_votes: int,
    private_fraction: float = 0.0,
) -> tuple[GoldOutcome, list[str]]:
    """Turn annotated items into released items by the rules of this module.

    Returns:
        The outcome, and problems (item and field) with items that cannot
        be released as they are: an unknown split, an id or text over the limits.

    Raises:
        ValueError: a task type that is not released as a dataset.
    """
    if kind not in RELEASABLE_TASKS:
        _answer_field(kind)
    outcome = GoldOutcome()
    problems: list[str] = []
    fields = task_fields(kind)
    for item in sorted(items, key=lambda i: (i.language, i.key)):
        gold, reason = _answer(kind, item, min_votes)
        if reason:
            outcome.leave_out(item.language, reason)
            continue
        item_id = f"{item.language}.{item.key}"
        if item.split not in (*PUBLIC_SPLITS, PRIVATE_SPLIT):
            problems.append(
                f"{item_id}: field 'split': {item.split!r} is not one of "
                f"{', '.join((*PUBLIC_SPLITS, PRIVATE_SPLIT))}; upload it again with one of them"
            )
            continue
        try:
            spec = ItemSpec.model_validate(
                {
                    "id": item_id,
                    "language": item.language,
                    "split": "test" if item.split == PRIVATE_SPLIT else item.split,
                    "input": {name: item.data.get(name) for name in fields},
                    **gold,
                }
            )
        except ValidationError as exc:
            problems.extend(
                f"{item_id}: field '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}"
                for e in exc.errors()
            )
            continue
        private = item.split == PRIVATE_SPLIT or (
            item.split == "test" and is_held_out(dataset_name, item_id, private_fraction)
        )
        outcome.items.append(spec.model_copy(update={"split": PRIVATE_SPLIT}) if private else spec)
    return outcome, problems


def labels_of(kind: AnnotationTaskType) -> list[str]:
    """The labels a released dataset of ``kind`` has (none for free text)."""
    return list(SAFETY_LABELS) if kind is AnnotationTaskType.LABEL else []
