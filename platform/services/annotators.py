"""The annotator's path: their languages, the projects they can join, their Label Studio account.

An annotator signs in to Sabha, says which languages they annotate in, and
joins a project in one of them. Joining gives them an account on the Label
Studio server Sabha runs: a plain member of its organization (never a
superuser), created through the API by Sabha's admin token, with a password
set on the server's data dir (Community Edition's API cannot set one). The
password is returned once and never stored or logged; a lost one is replaced
with :func:`new_labelstudio_password`. Their annotations come back through the
webhook or ``sabha annotations sync`` and count as their credit.

Label Studio Community Edition has no per-project membership: every member of
the organization sees every project, so "joining" a project means holding an
account and being sent to that project.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from sabha.annotation.labelstudio import LabelStudioClient, LabelStudioError
from sabha.annotation.labelstudio_server import (
    find_labelstudio_command,
    new_password,
    set_labelstudio_password,
)
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Annotation,
    AnnotationProject,
    AnnotationReview,
    LabelStudioAccount,
    Role,
    SourceItem,
    User,
    id_of,
)
from sabha.platform.errors import NotFoundError, PermissionDenied, SabhaError, ValidationFailed
from sabha.platform.languages import check_language_tag, primary_subtag
from sabha.platform.settings import Settings

from .annotation import link_labelstudio_account, linked_labelstudio_users, votes_and_accepted
from .labelstudio import connect_labelstudio, labelstudio_for
from .private_items import may_annotate_private_items, require_trust
from .users import roles_of

__all__ = [
    "JoinableProject",
    "LabelStudioSignIn",
    "ProjectCredit",
    "credit_by_project",
    "join_annotation_project",
    "labelstudio_email",
    "new_labelstudio_password",
    "projects_for_annotator",
    "set_annotator_languages",
]

MAX_LANGUAGES = 20
LABELSTUDIO_EMAIL_DOMAIN = "annotators.sabha.local"


@dataclass(frozen=True)
class JoinableProject:
    """An annotation project open in Label Studio, as an annotator sees it."""

    id: int
    dataset_name: str
    language: str
    task_type: str
    title: str
    items: int
    mine: int  # items the annotator annotated there (skipped ones do not count)
    private: bool = False  # on the private Label Studio (trusted annotators only)


@dataclass(frozen=True)
class LabelStudioSignIn:
    """Where to annotate and how to sign in; ``password`` only when it was just set."""

    email: str
    password: str | None
    url: str


@dataclass(frozen=True)
class ProjectCredit:
    """A person's credit in one dataset and language."""

    dataset_name: str
    language: str
    annotations: int
    accepted: int
    reviews: int


def set_annotator_languages(db: Engine, user_id: int, tags: list[str]) -> list[str]:
    """Record the languages a user annotates in (all of them, or none when any is bad).

    Raises:
        ValidationFailed: a tag is not a BCP-47 tag with a script, or too many.
    """
    cleaned: list[str] = []
    problems = []
    for tag in (t.strip() for t in tags):
        if not tag:
            continue
        try:
            check_language_tag(tag)
        except ValueError as exc:
            problems.append(f"languages: {exc}")
            continue
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_LANGUAGES:
        problems.append(f"languages: at most {MAX_LANGUAGES}; you gave {len(cleaned)}")
    if problems:
        raise ValidationFailed(
            "Cannot save your languages:",
            problems,
            "Write tags with a script, e.g. hi-Deva, sw-Latn, ta-Taml, ur-Arab.",
        )
    with session_scope(db) as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFoundError(f"User {user_id} does not exist.")
        user.languages = cleaned
        session.add(user)
    return cleaned


def _speaks(languages: list[str], tag: str) -> bool:
    """Whether a project's language is one of the person's: the same language, any script."""
    return primary_subtag(tag) in {primary_subtag(t) for t in languages}


def projects_for_annotator(session: Session, user: User) -> list[JoinableProject]:
    """The projects open in Label Studio in the user's languages, with their own counts."""
    projects = session.exec(
        select(AnnotationProject)
        .where(col(AnnotationProject.labelstudio_project_id).is_not(None))
        .order_by(col(AnnotationProject.language), col(AnnotationProject.dataset_name))
    ).all()
    trusted = may_annotate_private_items(session, user)
    chosen = [
        p for p in projects if _speaks(user.languages, p.language) and (trusted or not p.private)
    ]
    if not chosen:
        return []
    ids = [id_of(p) for p in chosen]
    items = dict(
        session.exec(
            select(SourceItem.project_id, func.count())
            .where(col(SourceItem.project_id).in_(ids))
            .group_by(col(SourceItem.project_id))
        ).all()
    )
    mine: dict[int, int] = {}
    linked = linked_labelstudio_users(session, id_of(user))
    if linked:
        mine = dict(
            session.exec(
                select(SourceItem.project_id, func.count(func.distinct(col(SourceItem.id))))
                .join(Annotation, col(Annotation.item_id) == col(SourceItem.id))
                .where(
                    col(SourceItem.project_id).in_(ids),
                    col(Annotation.labelstudio_user_id).in_(linked),
                    col(Annotation.was_cancelled).is_(False),
                )
                .group_by(col(SourceItem.project_id))
            ).all()
        )
    return [
        JoinableProject(
            id=id_of(p),
            dataset_name=p.dataset_name,
            language=p.language,
            task_type=p.task_type,
            title=p.title,
            items=int(items.get(id_of(p), 0)),
            mine=int(mine.get(id_of(p), 0)),
            private=p.private,
        )
        for p in chosen
    ]


def labelstudio_email(user: User) -> str:
    """The e-mail (Label Studio's user name) of a user's Label Studio account.

    Made up, not the user's own address: Label Studio never needs to mail
    them, and their address stays in Sabha. The id keeps it unique; the
    username's ASCII letters, where it has any, make it recognisable.
    """
    ascii_name = unicodedata.normalize("NFKD", user.username).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:30] or "user"
    return f"{slug}-{id_of(user)}@{LABELSTUDIO_EMAIL_DOMAIN}"


def _local_server(settings: Settings, private: bool = False) -> tuple[Path, Path]:
    """The ``label-studio`` command and data dir of the (private) server Sabha runs.

    Raises:
        SabhaError: Sabha connects to a server it does not run.
        PrerequisiteError: Label Studio is not installed here.
    """
    url = settings.label_studio_private_url if private else settings.label_studio_url
    if url:
        raise SabhaError(
            f"Sabha uses the Label Studio at {url}, which it does not run, "
            "so it cannot give you an account there.",
            "Ask that server's administrator for an account.",
        )
    data_dir = (
        settings.resolved_label_studio_private_data_dir
        if private
        else settings.resolved_label_studio_data_dir
    )
    return find_labelstudio_command(settings.label_studio_venv), data_dir


def _require_annotator(session: Session, user: User) -> None:
    if Role.ANNOTATOR not in roles_of(session, user):
        raise PermissionDenied(
            f"{user.username} may not annotate: it needs the annotator role.",
            "Ask an admin of this Sabha to grant it (sabha users grant USER annotator).",
        )


def _create_labelstudio_user(client: LabelStudioClient, user: User, email: str) -> int:
    """Create the user's Label Studio account, or find the one made before."""
    try:
        return client.create_user(
            email,
            username=email.split("@")[0],
            first_name=(user.display_name or user.username)[:30],
        )
    except LabelStudioError:
        existing = client.list_users().get(email)
        if existing is None:
            raise
        return existing  # made by an earlier join that stopped before Sabha recorded it


def join_annotation_project(
    db: Engine, settings: Settings, user: User, project_id: int
) -> LabelStudioSignIn:
    """Send an annotator to a project, giving them a Label Studio account the first time.

    Returns:
        The project's address and the account's e-mail; the password only when
        the account was created now (it is shown once and never stored).

    Raises:
        PermissionDenied: the user lacks the annotator role.
        NotFoundError: no such project.
        SabhaError: the project is not in Label Studio yet, or no Label Studio
            runs (the hint says how to start one).
    """
    with Session(db) as session:
        _require_annotator(session, user)
        project = session.get(AnnotationProject, project_id)
        if project is None:
            raise NotFoundError(f"Annotation project {project_id} does not exist.")
        require_trust(session, user, project)
        if project.labelstudio_project_id is None:
            raise SabhaError(
                f"{project.title} is not open in Label Studio yet.",
                "A maintainer opens it: sabha annotations provision "
                f"{project.dataset_name} --language {project.language}",
            )
        account = _account(session, user, project.private)
    client = labelstudio_for(settings, project)
    url = client.project_url(project.labelstudio_project_id)
    if account is not None:
        return LabelStudioSignIn(account.labelstudio_username, None, url)
    command, data_dir = _local_server(settings, project.private)
    email = labelstudio_email(user)
    labelstudio_user_id = _create_labelstudio_user(client, user, email)
    password = new_password()
    set_labelstudio_password(data_dir, command, email, password)
    link_labelstudio_account(db, id_of(user), labelstudio_user_id, email, private=project.private)
    return LabelStudioSignIn(email, password, url)


def _account(session: Session, user: User, private: bool) -> LabelStudioAccount | None:
    return session.exec(
        select(LabelStudioAccount).where(
            LabelStudioAccount.user_id == id_of(user), LabelStudioAccount.private == private
        )
    ).first()


def new_labelstudio_password(
    db: Engine, settings: Settings, user: User, private: bool = False
) -> LabelStudioSignIn:
    """Give an annotator's Label Studio account a new password (the old one stops working).

    Args:
        db: Sabha's database.
        settings: Where the Label Studio servers are.
        user: The annotator.
        private: Their account on the private server instead.

    Raises:
        SabhaError: the user has no Label Studio account yet (join a project first).
    """
    with Session(db) as session:
        _require_annotator(session, user)
        account = _account(session, user, private)
    if account is None:
        which = "private Label Studio" if private else "Label Studio"
        raise SabhaError(
            f"{user.username} has no {which} account yet.",
            "Join a project first: that creates the account.",
        )
    client = connect_labelstudio(settings, private=private)
    command, data_dir = _local_server(settings, private)
    password = new_password()
    set_labelstudio_password(data_dir, command, account.labelstudio_username, password)
    return LabelStudioSignIn(account.labelstudio_username, password, client.url)


def credit_by_project(db: Engine, user_id: int) -> list[ProjectCredit]:
    """A person's votes, accepted votes and reviews given, per dataset and language.

    A vote is their latest annotation of an item (``votes_of``): annotating an
    item twice is one; accepted means a reviewer accepted its current version.
    """
    counts: dict[tuple[str, str], list[int]] = {}
    with Session(db) as session:
        where = {
            id_of(p): (p.dataset_name, p.language)
            for p in session.exec(select(AnnotationProject)).all()
        }
        project_of_item = dict(session.exec(select(SourceItem.id, SourceItem.project_id)).all())
        votes, accepted = votes_and_accepted(session, user_id)
        for vote in votes:
            numbers = counts.setdefault(where[project_of_item[vote.item_id]], [0, 0, 0])
            numbers[0] += 1
            numbers[1] += id_of(vote) in accepted
        for project_id in session.exec(
            select(SourceItem.project_id)
            .join(Annotation, col(Annotation.item_id) == col(SourceItem.id))
            .join(AnnotationReview, col(AnnotationReview.annotation_id) == col(Annotation.id))
            .where(AnnotationReview.reviewer_id == user_id)
        ).all():
            counts.setdefault(where[project_id], [0, 0, 0])[2] += 1
    return [
        ProjectCredit(dataset, language, *numbers)
        for (dataset, language), numbers in sorted(counts.items())
    ]
