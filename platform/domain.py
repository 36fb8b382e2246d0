"""The domain model: SQLModel tables shared by every part of Sabha.

Datasets and their immutable versions feed benchmarks; a job is one model on
one generation identity, cut into shards; a pool leases a shard as a shard
run, whose outputs count once the shard accepts that run; a scoring run scores
a job's accepted outputs under one scoring identity and owns its scores; the
leaderboard entries are the read model the site pages through.

Accounts: a user holds role grants, links to external identities (OpenID
Connect), personal access tokens and, as a volunteer, pool credentials
(OAuth2 clients) whose short-lived worker tokens lease work. A submission is
a user's request to evaluate a model on some benchmarks; it owns the jobs it
created through ``submission_job``. Secrets are stored only as hashes.

Annotation: a project per dataset and language in Label Studio, its source
items and the annotations synced from there. A judging project is such a
project whose tasks show a finished job's accepted outputs
(``judged_response``); its judgements become ``community_score`` rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "PUBLIC_SPLITS",
    "ROLE_SCOPES",
    "AccessToken",
    "Annotation",
    "AnnotationAssignment",
    "AnnotationProject",
    "AnnotationReview",
    "AnnotationTaskType",
    "Benchmark",
    "CheckReason",
    "CommunityScore",
    "Dataset",
    "DatasetVersion",
    "Identity",
    "Item",
    "Job",
    "JudgedResponse",
    "JudgingKind",
    "JudgingProject",
    "JobStatus",
    "LabelStudioAccount",
    "LeaderboardEntry",
    "Model",
    "Output",
    "OutputStat",
    "Pool",
    "PoolCredential",
    "PoolKind",
    "PoolStatus",
    "ReviewVerdict",
    "Role",
    "RoleGrant",
    "RunStatus",
    "RunVerdict",
    "Score",
    "ScoringRun",
    "Shard",
    "ShardRun",
    "ShardStatus",
    "SourceItem",
    "Submission",
    "SubmissionJob",
    "SubmissionStatus",
    "TokenScope",
    "User",
    "WebSession",
    "WithdrawnItem",
    "WorkerToken",
    "id_of",
    "utcnow",
]


def id_of(row: SQLModel) -> int:
    """The primary key of a row that has been flushed (SQLModel types it as optional)."""
    value = getattr(row, "id", None)
    if not isinstance(value, int):
        raise ValueError(f"{type(row).__name__} has no id yet; flush the session first")
    return value


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _json(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_type=sa.JSON, nullable=nullable)


def _when(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=sa.DateTime(timezone=True), nullable=True)
    return Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)


def _text(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_type=sa.Text, nullable=nullable)


PUBLIC_SPLITS = ("test", "dev")
"""Splits whose items may appear in pages, exports and API answers. Any other
split (a private held-out split) is used only for evaluation on the server."""


def _status_check(column: str, enum: type[StrEnum], name: str) -> sa.CheckConstraint:
    values = ", ".join(f"'{member.value}'" for member in enum)
    return sa.CheckConstraint(f"{column} IN ({values})", name=name)


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


class Dataset(SQLModel, table=True):
    """A named dataset; its content lives in immutable versions."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=100)
    title: str = Field(max_length=200)
    license: str = Field(max_length=50)
    created_at: datetime = _when()


class DatasetVersion(SQLModel, table=True):
    """One version of a dataset, named by its dataset and the hash of its content.

    The same items under two dataset names are two versions, each with its
    own name, licence and card. Once ``released_at`` is set, neither the
    version nor its items may change.
    """

    __tablename__ = "dataset_version"
    __table_args__ = (
        sa.UniqueConstraint("dataset_id", "content_hash", name="uq_dataset_version_dataset_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    content_hash: str = Field(max_length=64, index=True)
    item_count: int
    languages: list[str] = _json()
    artifact_uri: str | None = Field(default=None, max_length=1000)
    card_markdown: str | None = _text(nullable=True)
    created_at: datetime = _when()
    released_at: datetime | None = _when(nullable=True)


class Item(SQLModel, table=True):
    """One evaluation item of a dataset version."""

    __table_args__ = (sa.UniqueConstraint("dataset_version_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_version_id: int = Field(foreign_key="dataset_version.id", index=True)
    key: str = Field(max_length=100)
    language: str = Field(max_length=35, index=True)
    dialect: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=10)
    split: str = Field(max_length=20)
    input: dict[str, Any] = _json()
    reference: str | None = _text(nullable=True)
    label: str | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] = _json()


class Benchmark(SQLModel, table=True):
    """One definition of a benchmark: a dataset version, how to generate, how to score.

    Two identities key the work: ``generation_hash`` (dataset version, prompt
    template, system prompt, decoding, chat-template policy, maximum model
    length) keys jobs, and ``scoring_hash`` (task, metrics, labels, answer
    extraction, breakdowns) keys scoring runs. Title, description and primary
    metric are presentation: changing them updates this row in place. The row
    with ``is_current`` is the definition the site shows for ``name``.
    """

    __table_args__ = (
        sa.UniqueConstraint("name", "version", name="uq_benchmark_name_version"),
        sa.UniqueConstraint(
            "name", "generation_hash", "scoring_hash", name="uq_benchmark_name_identities"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=100)
    version: str = Field(max_length=50)
    is_current: bool = True
    title: str = Field(max_length=200)
    description: str = _text()
    task: str = Field(max_length=30)
    dataset_version_id: int = Field(foreign_key="dataset_version.id", index=True)
    prompt_template: str = _text()
    system_prompt: str | None = _text(nullable=True)
    chat_template: str = Field(default="auto", max_length=10)
    max_model_len: int = 2048
    labels: list[str] = _json()
    answer: dict[str, Any] = _json()
    metrics: list[str] = _json()
    primary_metric: str = Field(max_length=30)
    breakdowns: list[str] = _json()
    languages: list[str] = _json()
    decoding: dict[str, Any] = _json()
    generation_hash: str = Field(max_length=64, index=True)
    scoring_hash: str = Field(max_length=64, index=True)
    definition_hash: str = Field(unique=True, max_length=64)
    # The automatic judge (model, kind, rubric), or None; outside both identities.
    judge: dict[str, Any] | None = _json(nullable=True)
    created_at: datetime = _when()


class Model(SQLModel, table=True):
    """A model to evaluate: a hub repository at a pinned revision, or a local folder."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=200)
    source: str = Field(max_length=10)  # "hub" or "local"
    repo_id: str | None = Field(default=None, max_length=300)
    revision: str | None = Field(default=None, max_length=100)
    path: str | None = Field(default=None, max_length=1000)
    smoke_test: bool = False
    description: str | None = _text(nullable=True)
    created_at: datetime = _when()


class Pool(SQLModel, table=True):
    """A set of engines that leases shards: a local ``sabha eval`` or a volunteer's Ray pool.

    A remote pool belongs to the owner of the pool credential it registered
    with (``credential_id``). ``agreements`` and ``disagreements`` count how
    its replicated results compared with other owners' pools; ``reputation``
    follows from them, and a pool whose reputation falls below the threshold
    is quarantined (``status_reason`` says why).
    """

    __table_args__ = (
        _status_check("kind", PoolKind, "ck_pool_kind"),
        _status_check("status", PoolStatus, "ck_pool_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=200)
    kind: str = Field(default=PoolKind.LOCAL, max_length=10)
    status: str = Field(default=PoolStatus.ACTIVE, max_length=20)
    capabilities: dict[str, Any] = _json()
    reputation: float = 1.0
    agreements: int = 0
    disagreements: int = 0
    status_reason: str | None = _text(nullable=True)
    owner_id: int | None = Field(default=None, foreign_key="user_account.id", index=True)
    credential_id: int | None = Field(default=None, foreign_key="pool_credential.id", index=True)
    created_at: datetime = _when()
    last_seen_at: datetime | None = _when(nullable=True)


class Job(SQLModel, table=True):
    """One model on one generation identity: the outputs every scoring reuses.

    ``superseded_by_id`` marks older duplicate jobs kept from before the split
    of identities (migration 0002); at most one live job exists per model and
    generation identity.
    """

    __table_args__ = (
        _status_check("status", JobStatus, "ck_job_status"),
        sa.Index(
            "uq_job_model_generation_live",
            "model_id",
            "generation_hash",
            unique=True,
            sqlite_where=sa.text("superseded_by_id IS NULL"),
            postgresql_where=sa.text("superseded_by_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    benchmark_id: int = Field(foreign_key="benchmark.id", index=True)
    generation_hash: str = Field(max_length=64, index=True)
    generation: dict[str, Any] = _json()
    decoding: dict[str, Any] = _json()
    superseded_by_id: int | None = Field(default=None, foreign_key="job.id")
    # Accelerator memory one engine needs for the model at the job's lengths
    # (estimated from config.json); pools with less are not given its shards.
    memory_bytes: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    status: str = Field(default=JobStatus.QUEUED, max_length=20, index=True)
    error: str | None = _text(nullable=True)
    created_at: datetime = _when()
    started_at: datetime | None = _when(nullable=True)
    finished_at: datetime | None = _when(nullable=True)


class Shard(SQLModel, table=True):
    """A slice of a job's items: the unit of work a pool leases.

    ``accepted_run_id`` is the run whose outputs count; scores read only those.
    ``replicas`` is how many runs from pools of different owners must agree
    before one is accepted (1: the first result is accepted). A
    ``server_only`` shard holds items of a private held-out split: only the
    operator's own (local) pools may lease it, never a volunteer's.
    """

    __table_args__ = (
        sa.UniqueConstraint("job_id", "index"),
        _status_check("status", ShardStatus, "ck_shard_status"),
        # The lease pick walks queued shards in order; leased and finished ones
        # (nearly all of a busy queue) are not in this index.
        sa.Index(
            "ix_shard_queued",
            "job_id",
            "index",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    index: int
    item_ids: list[int] = _json()
    status: str = Field(default=ShardStatus.QUEUED, max_length=20, index=True)
    accepted_run_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer,
            sa.ForeignKey("shard_run.id", use_alter=True, name="fk_shard_accepted_run"),
            nullable=True,
        ),
    )
    replicas: int = 1
    server_only: bool = False
    finished_at: datetime | None = _when(nullable=True)


class ShardRun(SQLModel, table=True):
    """One lease of a shard by a pool, and what came of it.

    The lease token is stored only as its SHA-256. ``attempt`` counts leases
    of the shard; ``replica`` numbers runs meant to verify each other (how
    many runs of the shard had results when it was leased); ``verdict`` is
    what replication made of its results.
    """

    __tablename__ = "shard_run"
    __table_args__ = (
        _status_check("status", RunStatus, "ck_shard_run_status"),
        _status_check("verdict", RunVerdict, "ck_shard_run_verdict"),
        _status_check("check_reason", CheckReason, "ck_shard_run_check_reason"),
        sa.Index("ix_shard_run_status_expires", "status", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shard_id: int = Field(foreign_key="shard.id", index=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    pool_id: int = Field(foreign_key="pool.id", index=True)
    replica: int = 0
    attempt: int = 1
    token_hash: str = Field(max_length=64, repr=False)
    status: str = Field(default=RunStatus.LEASED, max_length=20)
    leased_at: datetime = _when()
    heartbeat_at: datetime | None = _when(nullable=True)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    finished_at: datetime | None = _when(nullable=True)
    executed_on: dict[str, Any] | None = _json(nullable=True)
    # The run's share of its engine's busy time, as the pool reported it.
    engine_seconds: float | None = Field(default=None, sa_type=sa.Float, nullable=True)
    verdict: str | None = Field(default=None, max_length=20)
    check_reason: str | None = Field(default=None, max_length=20)
    error: str | None = _text(nullable=True)


class Output(SQLModel, table=True):
    """What a run produced for one item, or why it could not (``error``)."""

    __table_args__ = (sa.UniqueConstraint("shard_run_id", "item_id", name="uq_output_run_item"),)

    id: int | None = Field(default=None, primary_key=True)
    shard_run_id: int = Field(foreign_key="shard_run.id", index=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    prompt: str = _text()
    text: str = _text()
    finish_reason: str | None = Field(default=None, max_length=20)
    num_tokens: int = 0
    error: str | None = _text(nullable=True)
    created_at: datetime = _when()


class OutputStat(SQLModel, table=True):
    """Per-item statistics of one metric for one output, computed once and reused."""

    __tablename__ = "output_stat"
    __table_args__ = (sa.UniqueConstraint("output_id", "metric"),)

    id: int | None = Field(default=None, primary_key=True)
    output_id: int = Field(foreign_key="output.id", index=True)
    metric: str = Field(max_length=30)
    stats: bytes = Field(sa_type=sa.LargeBinary, nullable=False)  # float64 values


class ScoringRun(SQLModel, table=True):
    """One scoring of a job's accepted outputs under one scoring identity.

    Rescoring with another identity adds a scoring run; earlier ones and
    their scores stay as they were.
    """

    __tablename__ = "scoring_run"
    __table_args__ = (sa.UniqueConstraint("job_id", "scoring_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    scoring_hash: str = Field(max_length=64, index=True)
    spec: dict[str, Any] = _json()
    signatures: dict[str, Any] = _json()
    n_resamples: int = 1000
    seed: int = 12345
    confidence: float = 0.95
    items: int = 0
    failed_items: int = 0
    failure_reasons: dict[str, Any] = _json()
    pools: list[str] = _json()
    overall_resamples: bytes | None = Field(default=None, sa_type=sa.LargeBinary, nullable=True)
    created_at: datetime = _when()


class Score(SQLModel, table=True):
    """One metric of a scoring run, overall or for one group of a breakdown, with its 95% CI."""

    __table_args__ = (
        sa.UniqueConstraint(
            "scoring_run_id", "metric", "breakdown", "group", name="uq_score_run_metric_group"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    scoring_run_id: int = Field(foreign_key="scoring_run.id", index=True)
    metric: str = Field(max_length=30)
    breakdown: str = Field(max_length=30)  # "overall", "language", "region", "hazard"...
    group: str = Field(max_length=100)  # "all" for overall, else the group's value
    value: float
    ci_low: float
    ci_high: float
    n: int
    too_few: bool = False
    signature: str | None = _text(nullable=True)
    created_at: datetime = _when()


class LeaderboardEntry(SQLModel, table=True):
    """One ranked row of a benchmark's leaderboard, rebuilt when a scoring run lands.

    The read path of the site: one query per page, no joins, no ranking at
    request time.
    """

    __tablename__ = "leaderboard_entry"
    __table_args__ = (
        sa.UniqueConstraint("benchmark_id", "model_id"),
        sa.Index("ix_leaderboard_entry_benchmark_rank", "benchmark_id", "position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    benchmark_id: int = Field(foreign_key="benchmark.id")
    model_id: int = Field(foreign_key="model.id", index=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    scoring_run_id: int = Field(foreign_key="scoring_run.id")
    position: int
    rank: int
    tied_with: list[str] = _json()
    model: dict[str, Any] = _json()
    cells: dict[str, Any] = _json()
    finished_at: datetime | None = _when(nullable=True)


# -- community annotation ------------------------------------------------------------------


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


class AnnotationProject(SQLModel, table=True):
    """One dataset's annotation in one language: a Label Studio project.

    ``annotations_per_item`` (k) independent annotations, from different
    annotators, are collected for every source item; Sabha tracks this itself
    because Label Studio Community Edition has no overlap setting.
    """

    __tablename__ = "annotation_project"
    __table_args__ = (
        sa.UniqueConstraint(
            "dataset_name", "language", "private", name="uq_annotation_project_language"
        ),
        _status_check("task_type", AnnotationTaskType, "ck_annotation_project_task_type"),
        sa.CheckConstraint("annotations_per_item >= 1", name="ck_annotation_project_k"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dataset_name: str = Field(max_length=100, index=True)
    language: str = Field(max_length=35)
    task_type: str = Field(max_length=20)
    title: str = Field(max_length=200)
    annotations_per_item: int = 2
    options: dict[str, Any] = _json()
    # Its items are of the private held-out split and live on the private Label
    # Studio server, where only trusted annotators have accounts.
    private: bool = False
    labelstudio_project_id: int | None = Field(default=None, unique=True)
    created_at: datetime = _when()


class SourceItem(SQLModel, table=True):
    """One uploaded row to annotate: a Label Studio task once imported."""

    __tablename__ = "source_item"
    __table_args__ = (sa.UniqueConstraint("project_id", "key", name="uq_source_item_key"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="annotation_project.id", index=True)
    key: str = Field(max_length=100)
    split: str = Field(default="test", max_length=20)
    data: dict[str, Any] = _json()
    labelstudio_task_id: int | None = Field(default=None, unique=True)
    created_at: datetime = _when()


class WithdrawnItem(SQLModel, table=True):
    """A source item a maintainer withdrew before release: what it was, why, and what it lost.

    The item, its Label Studio task and its annotations are gone; this row is
    the record that it existed.
    """

    __tablename__ = "withdrawn_item"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="annotation_project.id", index=True)
    key: str = Field(max_length=100)
    split: str = Field(max_length=20)
    data: dict[str, Any] = _json()
    reason: str = Field(max_length=500)
    annotations: int = 0
    withdrawn_at: datetime = _when()


class Annotation(SQLModel, table=True):
    """One annotation made in Label Studio, kept by its Label Studio id.

    The unique ``labelstudio_annotation_id`` makes every sync an upsert: a
    webhook and a reconciliation pull of the same annotation give one row.
    """

    id: int | None = Field(default=None, primary_key=True)
    labelstudio_annotation_id: int = Field(unique=True)
    item_id: int = Field(foreign_key="source_item.id", index=True)
    labelstudio_user_id: int = Field(index=True)
    result: list[dict[str, Any]] = _json()
    was_cancelled: bool = False
    created_at: datetime = _when()
    updated_at: datetime = _when()
    synced_at: datetime = _when()


class AnnotationReview(SQLModel, table=True):
    """A reviewer's verdict on one annotation, with a comment (one per reviewer).

    ``annotation_version`` is the version of the annotation the reviewer saw
    (``sabha.annotation.votes.annotation_version``); the review counts only
    while the annotation still has it. None: made before versions were
    recorded, with the annotation changed since (it counts for nothing).
    """

    __tablename__ = "annotation_review"
    __table_args__ = (
        sa.UniqueConstraint("annotation_id", "reviewer_id", name="uq_annotation_review_reviewer"),
        _status_check("verdict", ReviewVerdict, "ck_annotation_review_verdict"),
    )

    id: int | None = Field(default=None, primary_key=True)
    annotation_id: int = Field(foreign_key="annotation.id", index=True)
    reviewer_id: int = Field(foreign_key="user_account.id", index=True)
    verdict: str = Field(max_length=10)
    comment: str = _text()
    annotation_version: str | None = Field(default=None, max_length=64)
    created_at: datetime = _when()


class JudgingKind(StrEnum):
    """Values of ``JudgingProject.kind``: how people judge model answers."""

    RATING = "rating"  # rate one response 1-5 against a rubric
    PAIRWISE = "pairwise"  # prefer one of two models' responses to the same item
    SAFETY = "safety"  # judge a response to a safe or unsafe prompt


class JudgingProject(SQLModel, table=True):
    """An annotation project whose tasks are a finished job's answers, sampled to be judged.

    ``other_job_id`` is the second job of a pairwise project (the same items,
    another model).
    """

    __tablename__ = "judging_project"
    __table_args__ = (_status_check("kind", JudgingKind, "ck_judging_project_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    annotation_project_id: int = Field(foreign_key="annotation_project.id", unique=True)
    kind: str = Field(max_length=20)
    job_id: int = Field(foreign_key="job.id", index=True)
    other_job_id: int | None = Field(default=None, foreign_key="job.id", index=True)
    seed: int
    # The judge model's job over the same tasks (the benchmark's rubric), when asked for.
    judge_job_id: int | None = Field(default=None, foreign_key="job.id")
    created_at: datetime = _when()


class JudgedResponse(SQLModel, table=True):
    """One judging task: which accepted output(s) of which item a source item shows.

    ``swapped`` is set when a pairwise task shows the other job's response as
    response A (the order is randomised so position bias cancels out).
    """

    __tablename__ = "judged_response"

    id: int | None = Field(default=None, primary_key=True)
    source_item_id: int = Field(foreign_key="source_item.id", unique=True)
    judging_project_id: int = Field(foreign_key="judging_project.id", index=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    output_id: int = Field(foreign_key="output.id", index=True)
    other_output_id: int | None = Field(default=None, foreign_key="output.id")
    swapped: bool = False


class CommunityScore(SQLModel, table=True):
    """A score of one job from judgements of its answers, overall or for one group, with its CI.

    ``judge`` is ``"people"`` for annotators' judgements, else the judge
    model's name; ``n`` counts judged items and ``judgements`` the judgements
    behind them. A judge model's score carries its agreement with people
    (Krippendorff's alpha) on the items both judged, and over how many items.
    """

    __tablename__ = "community_score"
    __table_args__ = (
        sa.UniqueConstraint(
            "job_id", "judge", "metric", "breakdown", "group", name="uq_community_score"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    judge: str = Field(default="people", max_length=200)
    metric: str = Field(max_length=30)
    breakdown: str = Field(max_length=30)
    group: str = Field(max_length=100)
    value: float
    ci_low: float
    ci_high: float
    n: int
    judgements: int
    agreement: float | None = None
    agreement_items: int = 0
    updated_at: datetime = _when()


class LabelStudioAccount(SQLModel, table=True):
    """A Sabha user's account in Label Studio: who made which annotation, and their credit.

    One per user on the community server, and one on the private server for
    a trusted annotator (``private``); the two servers' user ids never overlap.
    """

    __tablename__ = "labelstudio_account"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "private", name="uq_labelstudio_account_user"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id")
    private: bool = False
    labelstudio_user_id: int = Field(unique=True)
    labelstudio_username: str = Field(max_length=254)
    created_at: datetime = _when()


class AnnotationAssignment(SQLModel, table=True):
    """An item handed to one annotator; at most once per item and annotator."""

    __tablename__ = "annotation_assignment"
    __table_args__ = (
        sa.UniqueConstraint("item_id", "labelstudio_user_id", name="uq_annotation_assignment"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="source_item.id", index=True)
    labelstudio_user_id: int = Field(index=True)
    assigned_at: datetime = _when()


# -- accounts ---------------------------------------------------------------------------


class User(SQLModel, table=True):
    """A person with an account: a local password, external identities, or both.

    ``username_key`` is the NFC, case-folded username: usernames are unique
    regardless of case. ``password_hash`` is an Argon2 hash, or None for a
    user who signs in only through an identity provider.
    """

    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    username_key: str = Field(unique=True, index=True, max_length=256)
    display_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320, repr=False)
    password_hash: str | None = Field(default=None, max_length=200, repr=False)
    is_active: bool = True
    # BCP-47 tags of the languages the person annotates in (the annotation page's filter).
    languages: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    created_at: datetime = _when()
    last_login_at: datetime | None = _when(nullable=True)


class Identity(SQLModel, table=True):
    """A user's link to an account at an external OpenID Connect provider.

    Users are found by (issuer, subject) only, never by email: an email
    address at one provider proves nothing about an account at another.
    """

    __tablename__ = "user_identity"
    __table_args__ = (sa.UniqueConstraint("issuer", "subject", name="uq_identity_issuer_subject"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    issuer: str = Field(max_length=500)
    subject: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=320)
    created_at: datetime = _when()


class RoleGrant(SQLModel, table=True):
    """One role held by one user, and who granted it."""

    __tablename__ = "role_grant"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "role", name="uq_role_grant_user_role"),
        _status_check("role", Role, "ck_role_grant_role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    role: str = Field(max_length=20)
    granted_by_id: int | None = Field(default=None, foreign_key="user_account.id")
    granted_at: datetime = _when()


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random session id, the table its SHA-256.

    A session ends when its user signs out or changes password
    (``ended_at``), after ``SABHA_SESSION_HOURS`` without use
    (``last_seen_at``), and ``SABHA_SESSION_MAX_HOURS`` after ``created_at``
    however it is used. The cookie proves nothing by itself: a copy of a
    signed-out cookie names a session that has ended.
    """

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    secret_hash: str = Field(unique=True, index=True, max_length=64, repr=False)
    created_at: datetime = _when()
    last_seen_at: datetime = _when()
    ended_at: datetime | None = _when(nullable=True)


class AccessToken(SQLModel, table=True):
    """A personal access token: ``sabha_pat_<lookup>_<secret>``, shown once.

    Only ``lookup`` (a public random id) and the SHA-256 of the whole token
    are stored. Tokens are long random strings, so a fast hash is enough and
    every API call stays fast.
    """

    __tablename__ = "access_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    name: str = Field(max_length=100)
    lookup: str = Field(unique=True, index=True, max_length=32)
    token_hash: str = Field(max_length=64, repr=False)
    scopes: list[str] = _json()
    created_at: datetime = _when()
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    last_used_at: datetime | None = _when(nullable=True)
    revoked_at: datetime | None = _when(nullable=True)


class PoolCredential(SQLModel, table=True):
    """An OAuth2 client of a volunteer's pool (client-credentials grant).

    The secret is stored only as an Argon2 hash: it is checked once per
    access token, so a slow hash costs nothing that matters.
    """

    __tablename__ = "pool_credential"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user_account.id", index=True)
    name: str = Field(max_length=100)
    client_id: str = Field(unique=True, index=True, max_length=64)
    secret_hash: str = Field(max_length=200, repr=False)
    scopes: list[str] = Field(default_factory=lambda: ["worker"], sa_type=sa.JSON, nullable=False)
    created_at: datetime = _when()
    revoked_at: datetime | None = _when(nullable=True)
    last_used_at: datetime | None = _when(nullable=True)


class WorkerToken(SQLModel, table=True):
    """A short-lived OAuth2 access token issued to a pool credential.

    ``sabha_wkr_<lookup>_<secret>``; only the lookup and the SHA-256 of the
    token are stored.
    """

    __tablename__ = "worker_token"
    __table_args__ = (sa.Index("ix_worker_token_expires_at", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    credential_id: int = Field(foreign_key="pool_credential.id", index=True)
    lookup: str = Field(unique=True, index=True, max_length=32)
    token_hash: str = Field(max_length=64, repr=False)
    scope: str = Field(max_length=100)
    issued_at: datetime = _when()
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    revoked_at: datetime | None = _when(nullable=True)


class Submission(SQLModel, table=True):
    """A user's request to evaluate a model on some benchmarks.

    ``counts_against_quota`` is cleared when a failure was the platform's
    fault, so it does not use up the user's quota.
    """

    __table_args__ = (_status_check("status", SubmissionStatus, "ck_submission_status"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    status: str = Field(default=SubmissionStatus.QUEUED, max_length=20, index=True)
    license: str = Field(max_length=50)
    benchmarks: list[str] = _json()
    decoding: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    estimate_bytes: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    reason: str | None = _text(nullable=True)
    counts_against_quota: bool = True
    created_at: datetime = _when()
    finished_at: datetime | None = _when(nullable=True)


class SubmissionJob(SQLModel, table=True):
    """Which jobs a submission created or reused (a job can serve many submissions)."""

    __tablename__ = "submission_job"

    submission_id: int = Field(foreign_key="submission.id", primary_key=True)
    job_id: int = Field(foreign_key="job.id", primary_key=True, index=True)
