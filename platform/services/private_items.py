"""Items of the private held-out split stay out of untrusted annotators' reach.

Label Studio Community (1.23.2) is no boundary inside one server: every member
of its organization sees every project, and its organizations do not separate
either (``Project.has_permission`` lets any member of any organization read a
project by id: "LSO always runs a single organization, so cross-org access
does not exist by design"). So a private item is never imported into the
community server. A dataset's private items go into its private project (one
per language, ``AnnotationProject.private``), which lives on a second, private
Label Studio server where only trusted annotators get accounts: people who
hold the annotator role and a role that sees held-out items anyway (reviewer,
maintainer or admin).

The two servers' ids never overlap (``PRIVATE_ID_BASE``), so their
annotations share Sabha's tables, and a release takes a dataset's private
project with its community ones.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from sabha.annotation.gold import PRIVATE_SPLIT
from sabha.annotation.labelstudio import LabelStudioClient
from sabha.annotation.upload import SourceRow
from sabha.platform.domain import AnnotationProject, Role, User
from sabha.platform.errors import PermissionDenied, SabhaError, ValidationFailed

from .accounts import roles_of

__all__ = [
    "PRIVATE_SPLIT",
    "TRUSTED_ROLES",
    "check_private_split",
    "check_server_of",
    "may_annotate_private_items",
    "require_trust",
]

TRUSTED_ROLES = frozenset({Role.REVIEWER, Role.MAINTAINER, Role.ADMIN})
"""Roles whose holders (with the annotator role) may annotate private items."""


def check_private_split(project: AnnotationProject, path: Path, rows: list[SourceRow]) -> None:
    """Refuse private items for a community project, and other items for a private one.

    Raises:
        ValidationFailed: naming every such line; nothing is imported.
    """
    if project.private:
        wrong = [
            f"line {r.line}: field 'split' is {r.split!r}, but this project holds the "
            "private held-out split only"
            for r in rows
            if r.split != PRIVATE_SPLIT
        ]
        fix = "Upload public items to the dataset's community project (without --private)."
    else:
        wrong = [
            f"line {r.line}: field 'split' is 'private', but this project is on the community "
            "Label Studio, where every annotator can read it"
            for r in rows
            if r.split == PRIVATE_SPLIT
        ]
        fix = (
            "Put the private items in a file of their own and upload it to the dataset's "
            "private project (sabha annotations create ... --private, then upload --private)."
        )
    if wrong:
        raise ValidationFailed(
            f"{path}: {len(wrong)} problem(s); nothing was imported.", wrong[:50], fix
        )


def check_server_of(project: AnnotationProject, client: LabelStudioClient) -> None:
    """Refuse to open a project on the other server (a private one on the community server).

    Raises:
        SabhaError: the client is not the project's server.
    """
    if project.private and not client.private:
        raise SabhaError(
            f"{project.title} holds private items; the community Label Studio at {client.url} "
            "would show them to every annotator.",
            "Open it on the private Label Studio (sabha labelstudio start --private, or "
            "SABHA_LABEL_STUDIO_PRIVATE_URL).",
        )
    if client.private and not project.private:
        raise SabhaError(
            f"{project.title} is a community project; the private Label Studio at {client.url} "
            "is for private items only.",
            "Open it on the community Label Studio.",
        )


def may_annotate_private_items(session: Session, user: User) -> bool:
    """Whether a user may see and annotate private items (annotator and a trusted role)."""
    roles = roles_of(session, user)
    return Role.ANNOTATOR in roles and bool(TRUSTED_ROLES & roles)


def require_trust(session: Session, user: User, project: AnnotationProject) -> None:
    """Refuse an untrusted user a private project.

    Raises:
        PermissionDenied: the project is private and the user may not see its items.
    """
    if project.private and not may_annotate_private_items(session, user):
        raise PermissionDenied(
            f"{project.title} holds private held-out items; only trusted annotators "
            "(annotator and reviewer, maintainer or admin) may annotate them.",
            "Ask an admin of this Sabha if you should be one.",
        )
