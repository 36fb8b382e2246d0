"""One person, one vote: which annotations count, and which version of one a review saw.

Label Studio lets a person annotate the same task more than once (a second
annotation through the API, or a copy in the labeling interface). Sabha counts
people, not annotations: for every item, each person's *latest* annotation
(the one Label Studio changed last; skips never count) is their vote, and the
others are superseded. Gates, agreement, gold answers, data cards, credit and
community judgements all count votes.

A review is tied to the version of the annotation it saw: the SHA-256 of the
annotation's result as Label Studio holds it (``annotation_version``). An edit
that changes the result gives a new version, and every review of the old one
stops counting: the annotation is unreviewed again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

__all__ = ["MIN_VERSION_PREFIX", "annotation_version", "version_matches", "votes_of"]

MIN_VERSION_PREFIX = 8
"""The fewest characters of a version a reviewer may give (the command line shows 12)."""


class _Annotated(Protocol):
    item_id: int
    labelstudio_user_id: int
    labelstudio_annotation_id: int
    was_cancelled: bool
    updated_at: datetime


A = TypeVar("A", bound=_Annotated)


def annotation_version(result: Sequence[dict[str, Any]]) -> str:
    """The version of an annotation: SHA-256 (hex) of its result in canonical JSON."""
    canonical = json.dumps(list(result), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def version_matches(given: str, current: str) -> bool:
    """Whether ``given`` (a version, or its first 8 or more characters) names ``current``."""
    given = given.strip().lower()
    return len(given) >= MIN_VERSION_PREFIX and current.startswith(given)


def votes_of(annotations: Iterable[A]) -> list[A]:
    """Each person's latest annotation of each item (skipped ones never count).

    Latest is the one Label Studio changed last (``updated_at``), then the
    higher Label Studio id. The votes come back ordered by item, then Label
    Studio id.
    """
    chosen: dict[tuple[int, int], A] = {}
    for annotation in annotations:
        if annotation.was_cancelled:
            continue
        key = (annotation.item_id, annotation.labelstudio_user_id)
        held = chosen.get(key)
        if held is None or _recency(annotation) > _recency(held):
            chosen[key] = annotation
    return sorted(chosen.values(), key=lambda a: (a.item_id, a.labelstudio_annotation_id))


def _recency(annotation: _Annotated) -> tuple[float, int]:
    # SQLite hands back naive datetimes and PostgreSQL aware ones; within one
    # database they are all of one kind, so timestamps compare.
    return annotation.updated_at.timestamp(), annotation.labelstudio_annotation_id
