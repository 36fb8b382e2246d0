"""Public annotator profiles: an opt-in name, and what the profile page shows.

Nobody is public until they choose a profile name on their account page.
Until then (and after they clear it) public pages show them anonymously:
"annotator 3" in an item's history, and no profile page at all. A name that
was never chosen and a name whose owner opted out get the same answer, so the
profile pages cannot be used to find out who has an account.

A profile shows only what the leaderboard already publishes: the languages
the person annotates in, and per released dataset and language their
annotations, how many reviewers accepted, and the reviews they gave. Private
projects (the held-out split) are never counted on it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlmodel import Session, col, select

from sabha.platform.domain import (
    Annotation,
    AnnotationProject,
    AnnotationReview,
    Dataset,
    DatasetVersion,
    SourceItem,
    User,
    id_of,
)
from sabha.platform.errors import NotFoundError, ValidationFailed

from .annotation import votes_and_accepted
from .users import username_key

__all__ = [
    "PROFILE_NAME_MAX_CHARS",
    "PROFILE_NAME_MIN_CHARS",
    "AnnotatorProfile",
    "ProfileCredit",
    "check_profile_name",
    "public_names",
    "public_profile",
    "released_dataset_names",
    "set_profile_name",
]

PROFILE_NAME_MIN_CHARS = 3
PROFILE_NAME_MAX_CHARS = 40
_PUNCTUATION = frozenset("._-")
# Names that would pass for the site, its staff or the anonymous labels of public pages.
_RESERVED = frozenset(
    {"admin", "administrator", "anonymous", "moderator", "root", "sabha", "staff", "system"}
)
_LOOKS_ANONYMOUS = re.compile(r"(annotator|reviewer)[._-]*\d*")
_RULE = (
    f"Use {PROFILE_NAME_MIN_CHARS} to {PROFILE_NAME_MAX_CHARS} letters or digits of any "
    "script, '.', '_' or '-', starting with a letter or digit and with at least one letter."
)


@dataclass(frozen=True)
class ProfileCredit:
    """One released dataset and language on a public profile."""

    dataset_name: str
    language: str
    annotations: int
    accepted: int
    reviews: int


@dataclass(frozen=True)
class AnnotatorProfile:
    """What a public annotator profile shows."""

    name: str
    languages: list[str]
    credit: list[ProfileCredit]

    @property
    def accepted(self) -> int:
        """Accepted annotations, over every dataset shown."""
        return sum(c.accepted for c in self.credit)

    @property
    def reviews(self) -> int:
        """Reviews given, over every dataset shown."""
        return sum(c.reviews for c in self.credit)


def _invalid(problem: str, hint: str = _RULE) -> ValidationFailed:
    return ValidationFailed(
        "The profile name is not valid; nothing was changed.", [f"profile name: {problem}"], hint
    )


def check_profile_name(name: str) -> str:
    """``name`` NFC-normalised, if it may be a profile name.

    Raises:
        ValidationFailed: wrong length, characters outside letters, digits and
            ``._-`` (spaces, markup, control and bidirectional-override
            characters included), or a name reserved for the site.
    """
    name = unicodedata.normalize("NFC", name)
    if not PROFILE_NAME_MIN_CHARS <= len(name) <= PROFILE_NAME_MAX_CHARS:
        raise _invalid(f"it has {len(name)} characters")
    bad = sorted(
        {c for c in name if c not in _PUNCTUATION and unicodedata.category(c)[0] not in "LMN"}
    )
    if bad:
        shown = ", ".join(
            repr(c) if c.isprintable() and not c.isspace() else f"U+{ord(c):04X}" for c in bad
        )
        raise _invalid(f"it contains {shown}")
    if unicodedata.category(name[0])[0] not in "LN":
        raise _invalid(f"it starts with {name[0]!r}")
    if not any(unicodedata.category(c)[0] == "L" for c in name):
        raise _invalid("it has no letter")
    key = username_key(name)
    if key in _RESERVED or _LOOKS_ANONYMOUS.fullmatch(key):
        raise _invalid(f"{name!r} is reserved", "Choose a name of your own.")
    return name


def set_profile_name(session: Session, user: User, name: str | None) -> str | None:
    """Make a person's annotator profile public under ``name``, or private again (None).

    A name may not be another person's profile name or username in any case
    (one answer for both, so the form does not reveal usernames); a person's
    own username is allowed.

    Returns:
        The name now shown, or None when the profile is private.

    Raises:
        ValidationFailed: a bad name, or one that is taken.
    """
    stored = session.get(User, id_of(user))
    if stored is None:
        raise NotFoundError(f"User {user.id} does not exist.")
    if name is None:
        stored.profile_name = stored.profile_name_key = None
        session.add(stored)
        session.flush()
        return None
    cleaned = check_profile_name(name.strip())
    key = username_key(cleaned)
    taken = session.exec(
        select(User.id).where(
            User.id != id_of(stored),
            (col(User.profile_name_key) == key) | (col(User.username_key) == key),
        )
    ).first()
    if taken is not None:
        raise _invalid(f"{cleaned!r} is taken", "Choose another name.")
    stored.profile_name, stored.profile_name_key = cleaned, key
    session.add(stored)
    session.flush()
    return cleaned


def public_names(session: Session, user_ids: set[int]) -> dict[int, str]:
    """The profile names of those of ``user_ids`` who chose a public profile."""
    if not user_ids:
        return {}
    return {
        int(user_id or 0): str(name)
        for user_id, name in session.exec(
            select(User.id, User.profile_name).where(
                col(User.id).in_(sorted(user_ids)),
                col(User.profile_name).is_not(None),
                col(User.is_active),
            )
        ).all()
    }


def released_dataset_names(session: Session) -> set[str]:
    """Datasets with a public released version (one with a data card)."""
    return set(
        session.exec(
            select(Dataset.name)
            .join(DatasetVersion, col(DatasetVersion.dataset_id) == col(Dataset.id))
            .where(
                col(DatasetVersion.released_at).is_not(None),
                col(DatasetVersion.card_markdown).is_not(None),
            )
        ).all()
    )


def public_profile(session: Session, name: str) -> AnnotatorProfile:
    """The public profile named ``name`` (any case).

    Raises:
        NotFoundError: nobody chose that name (the same answer whether or not
            an account of that name exists).
    """
    user = session.exec(
        select(User).where(User.profile_name_key == username_key(name), col(User.is_active))
    ).first()
    if user is None or user.profile_name is None:
        raise NotFoundError(
            "There is no public annotator profile of that name.",
            "Annotators choose whether to have one; follow a link from an item's history.",
        )
    released = released_dataset_names(session)
    shown = {
        id_of(p): (p.dataset_name, p.language)
        for p in session.exec(
            select(AnnotationProject).where(col(AnnotationProject.private).is_(False))
        ).all()
        if p.dataset_name in released
    }
    counts: dict[tuple[str, str], list[int]] = {}
    votes, accepted = votes_and_accepted(session, id_of(user))
    project_of_item = dict(
        session.exec(
            select(SourceItem.id, SourceItem.project_id).where(
                col(SourceItem.id).in_([v.item_id for v in votes])
            )
        ).all()
    )
    for vote in votes:
        where = shown.get(project_of_item.get(vote.item_id, 0))
        if where is not None:
            numbers = counts.setdefault(where, [0, 0, 0])
            numbers[0] += 1
            numbers[1] += id_of(vote) in accepted
    for project_id in session.exec(
        select(SourceItem.project_id)
        .join(Annotation, col(Annotation.item_id) == col(SourceItem.id))
        .join(AnnotationReview, col(AnnotationReview.annotation_id) == col(Annotation.id))
        .where(AnnotationReview.reviewer_id == id_of(user))
    ).all():
        where = shown.get(project_id)
        if where is not None:
            counts.setdefault(where, [0, 0, 0])[2] += 1
    return AnnotatorProfile(
        name=user.profile_name,
        languages=list(user.languages),
        credit=[
            ProfileCredit(dataset, language, *numbers)
            for (dataset, language), numbers in sorted(counts.items())
        ],
    )
