"""The values a status column may hold, roles and scopes, and which splits are public."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AnnotationTaskType",
    "CheckReason",
    "JobStatus",
    "JudgingKind",
    "PUBLIC_SPLITS",
    "PoolKind",
    "PoolStatus",
    "ROLE_SCOPES",
    "ReviewVerdict",
    "Role",
    "RunStatus",
    "RunVerdict",
    "ShardStatus",
    "SubmissionStatus",
    "TokenScope",
]


PUBLIC_SPLITS = ("test", "dev")
"""Splits whose items may appear in pages, exports and API answers. Any other
split (a private held-out split) is used only for evaluation on the server."""


class JobStatus(StrEnum):
    """Values of ``Job.status``."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ShardStatus(StrEnum):
    """Values of ``Shard.status``: queued (leasable), leased (a run holds it), completed."""

    QUEUED = "queued"
    LEASED = "leased"
    COMPLETED = "completed"


class RunStatus(StrEnum):
    """Values of ``ShardRun.status``.

    ``leased``: a pool holds the lease. ``accepted``: its outputs count.
    ``submitted``: results are in, waiting for replicas to agree, or another
    run was accepted (a replica; ``verdict`` says how it compared).
    ``expired``: the deadline passed without results. ``late``: results came
    after the deadline; kept as an extra attempt, never counted. ``released``:
    the pool handed the lease back (Ctrl-C, engine failure).
    """

    LEASED = "leased"
    ACCEPTED = "accepted"
    SUBMITTED = "submitted"
    EXPIRED = "expired"
    LATE = "late"
    RELEASED = "released"


class RunVerdict(StrEnum):
    """Values of ``ShardRun.verdict``: what replication made of a run's results.

    None: not compared (yet). ``agreed``: it agreed with the runs that were
    accepted. ``disagreed``: it lost a majority vote; never counted.
    ``withdrawn``: its pool was quarantined before anyone verified it; never counted.
    """

    AGREED = "agreed"
    DISAGREED = "disagreed"
    WITHDRAWN = "withdrawn"


class CheckReason(StrEnum):
    """Values of ``ShardRun.check_reason``: why a result waited for another owner's replica.

    ``new_pool``: its pool had not yet earned trust. ``sample``: drawn for a
    check after it arrived. ``audit``: the job's audit picked it before
    scoring. None: accepted at once (or the operator's own pool).
    """

    NEW_POOL = "new_pool"
    SAMPLE = "sample"
    AUDIT = "audit"


class PoolKind(StrEnum):
    """Values of ``Pool.kind``."""

    LOCAL = "local"
    REMOTE = "remote"


class PoolStatus(StrEnum):
    """Values of ``Pool.status``."""

    ACTIVE = "active"
    QUARANTINED = "quarantined"


class Role(StrEnum):
    """What a user may do; an admin grants roles (``RoleGrant``)."""

    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    MAINTAINER = "maintainer"
    SUBMITTER = "submitter"
    VOLUNTEER = "volunteer"
    ADMIN = "admin"


class TokenScope(StrEnum):
    """The powers a personal access token can carry."""

    SUBMIT = "submit"
    ANNOTATE = "annotate"
    REVIEW = "review"
    MAINTAIN = "maintain"
    ADMIN = "admin"


ROLE_SCOPES: dict[Role, frozenset[TokenScope]] = {
    Role.ANNOTATOR: frozenset({TokenScope.ANNOTATE}),
    Role.REVIEWER: frozenset({TokenScope.REVIEW, TokenScope.ANNOTATE}),
    Role.MAINTAINER: frozenset({TokenScope.MAINTAIN}),
    Role.SUBMITTER: frozenset({TokenScope.SUBMIT}),
    Role.VOLUNTEER: frozenset(),  # volunteers use pool credentials, not tokens
    Role.ADMIN: frozenset(TokenScope),
}
"""The token scopes each role allows. A token's scopes must stay within the
scopes its user's roles allow, when it is made and each time it is used."""


class SubmissionStatus(StrEnum):
    """Values of ``Submission.status``."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AnnotationTaskType(StrEnum):
    """Values of ``AnnotationProject.task_type``: what annotators do."""

    QA = "qa"  # write the answer to a question
    TRANSLATION = "translation"  # translate a source text
    POST_EDIT = "post_edit"  # correct a machine translation
    LABEL = "label"  # choose a hazard category and safe/unsafe
    RATING = "rating"  # rate a model response 1-5 against a rubric
    PAIRWISE = "pairwise"  # prefer one of two responses
    SAFETY = "safety"  # judge a response to a safety prompt


class ReviewVerdict(StrEnum):
    """Values of ``AnnotationReview.verdict``."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class JudgingKind(StrEnum):
    """Values of ``JudgingProject.kind``: how people judge model answers."""

    RATING = "rating"  # rate one response 1-5 against a rubric
    PAIRWISE = "pairwise"  # prefer one of two models' responses to the same item
    SAFETY = "safety"  # judge a response to a safe or unsafe prompt
