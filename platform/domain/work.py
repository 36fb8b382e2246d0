"""The work queue: pools, jobs, shards, shard runs (leases) and their outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .columns import enum_column, json_column, status_check, text_column, when_column
from .statuses import (
    CheckReason,
    JobStatus,
    PoolKind,
    PoolStatus,
    RunStatus,
    RunVerdict,
    ShardStatus,
)

__all__ = ["Pool", "Job", "Shard", "ShardRun", "Output"]


class Pool(SQLModel, table=True):
    """A set of engines that leases shards: a local ``sabha eval`` or a volunteer's Ray pool.

    A remote pool belongs to the owner of the pool credential it registered
    with (``credential_id``). ``agreements`` and ``disagreements`` count how
    its replicated results compared with other owners' pools; ``reputation``
    follows from them, and a pool whose reputation falls below the threshold
    is quarantined (``status_reason`` says why).
    """

    __table_args__ = (
        status_check("kind", PoolKind, "ck_pool_kind"),
        status_check("status", PoolStatus, "ck_pool_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=200)
    kind: PoolKind = enum_column(PoolKind, length=10, default=PoolKind.LOCAL)
    status: PoolStatus = enum_column(PoolStatus, length=20, default=PoolStatus.ACTIVE)
    capabilities: dict[str, Any] = json_column()
    reputation: float = 1.0
    agreements: int = 0
    disagreements: int = 0
    status_reason: str | None = text_column(nullable=True)
    owner_id: int | None = Field(default=None, foreign_key="user_account.id", index=True)
    credential_id: int | None = Field(default=None, foreign_key="pool_credential.id", index=True)
    created_at: datetime = when_column()
    last_seen_at: datetime | None = when_column(nullable=True)


class Job(SQLModel, table=True):
    """One model on one generation identity: the outputs every scoring reuses.

    ``superseded_by_id`` marks older duplicate jobs kept from before the split
    of identities (migration 0002); at most one live job exists per model and
    generation identity.
    """

    __table_args__ = (
        status_check("status", JobStatus, "ck_job_status"),
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
    generation: dict[str, Any] = json_column()
    # A wire.DecodingParams as JSON (the keys set); read it with DecodingParams.model_validate.
    decoding: dict[str, Any] = json_column()
    superseded_by_id: int | None = Field(default=None, foreign_key="job.id")
    # Accelerator memory one engine needs for the model at the job's lengths
    # (estimated from config.json); pools with less are not given its shards.
    memory_bytes: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    status: JobStatus = enum_column(JobStatus, length=20, default=JobStatus.QUEUED, index=True)
    error: str | None = text_column(nullable=True)
    created_at: datetime = when_column()
    started_at: datetime | None = when_column(nullable=True)
    finished_at: datetime | None = when_column(nullable=True)


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
        status_check("status", ShardStatus, "ck_shard_status"),
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
    item_ids: list[int] = json_column()
    status: ShardStatus = enum_column(
        ShardStatus, length=20, default=ShardStatus.QUEUED, index=True
    )
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
    finished_at: datetime | None = when_column(nullable=True)


class ShardRun(SQLModel, table=True):
    """One lease of a shard by a pool, and what came of it.

    The lease token is stored only as its SHA-256. ``attempt`` counts leases
    of the shard; ``replica`` numbers runs meant to verify each other (how
    many runs of the shard had results when it was leased); ``verdict`` is
    what replication made of its results.
    """

    __tablename__ = "shard_run"
    __table_args__ = (
        status_check("status", RunStatus, "ck_shard_run_status"),
        status_check("verdict", RunVerdict, "ck_shard_run_verdict"),
        status_check("check_reason", CheckReason, "ck_shard_run_check_reason"),
        sa.Index("ix_shard_run_status_expires", "status", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shard_id: int = Field(foreign_key="shard.id", index=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    pool_id: int = Field(foreign_key="pool.id", index=True)
    replica: int = 0
    attempt: int = 1
    token_hash: str = Field(max_length=64, repr=False)
    status: RunStatus = enum_column(RunStatus, length=20, default=RunStatus.LEASED)
    leased_at: datetime = when_column()
    heartbeat_at: datetime | None = when_column(nullable=True)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    finished_at: datetime | None = when_column(nullable=True)
    executed_on: dict[str, Any] | None = json_column(nullable=True)
    # The run's share of its engine's busy time, as the pool reported it.
    engine_seconds: float | None = Field(default=None, sa_type=sa.Float, nullable=True)
    verdict: RunVerdict | None = enum_column(RunVerdict, length=20, nullable=True)
    check_reason: CheckReason | None = enum_column(CheckReason, length=20, nullable=True)
    error: str | None = text_column(nullable=True)


class Output(SQLModel, table=True):
    """What a run produced for one item, or why it could not (``error``)."""

    __table_args__ = (sa.UniqueConstraint("shard_run_id", "item_id", name="uq_output_run_item"),)

    id: int | None = Field(default=None, primary_key=True)
    shard_run_id: int = Field(foreign_key="shard_run.id", index=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    prompt: str = text_column()
    text: str = text_column()
    finish_reason: str | None = Field(default=None, max_length=20)
    num_tokens: int = 0
    error: str | None = text_column(nullable=True)
    created_at: datetime = when_column()
