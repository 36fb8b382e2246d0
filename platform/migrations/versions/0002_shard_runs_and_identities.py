"""shard runs, pools, scoring runs, split identities, leaderboard entries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Upgrades a populated 0001 database without losing jobs, outputs or scores:

- every benchmark row gets an explicit version, its generation and scoring
  identities and ``is_current``; rows that differed only in wording are
  merged into the newest (their jobs follow it);
- every job gets its generation identity; older duplicate jobs of the same
  model and identity are kept, marked ``superseded_by_id``;
- the outputs of each shard become a shard run of the pool ``local``: the run
  of a completed shard is its accepted run; partial outputs of an unfinished
  shard become a released run (kept, not counted: the shard is queued again);
- every job's scores become one scoring run under its benchmark's scoring
  identity.

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from sabha.platform.benchmarks import (
    definition_identity,
    generation_identity,
    scoring_identity,
)

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_WHEN = sa.DateTime(timezone=True)
_UNNAMED = {"uq": "uq_%(table_name)s_%(column_0_name)s"}

benchmark_t = sa.table(
    "benchmark",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("task", sa.String),
    sa.column("dataset_version_id", sa.Integer),
    sa.column("prompt_template", sa.Text),
    sa.column("system_prompt", sa.Text),
    sa.column("labels", sa.JSON),
    sa.column("metrics", sa.JSON),
    sa.column("breakdowns", sa.JSON),
    sa.column("decoding", sa.JSON),
    sa.column("answer", sa.JSON),
    sa.column("version", sa.String),
    sa.column("is_current", sa.Boolean),
    sa.column("chat_template", sa.String),
    sa.column("max_model_len", sa.Integer),
    sa.column("generation_hash", sa.String),
    sa.column("scoring_hash", sa.String),
    sa.column("definition_hash", sa.String),
)
version_t = sa.table("dataset_version", sa.column("id", sa.Integer), sa.column("content_hash"))
job_t = sa.table(
    "job",
    sa.column("id", sa.Integer),
    sa.column("model_id", sa.Integer),
    sa.column("benchmark_id", sa.Integer),
    sa.column("decoding", sa.JSON),
    sa.column("status", sa.String),
    sa.column("started_at", _WHEN),
    sa.column("generation_hash", sa.String),
    sa.column("generation", sa.JSON),
    sa.column("superseded_by_id", sa.Integer),
)
pool_t = sa.table(
    "pool",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("kind", sa.String),
    sa.column("status", sa.String),
    sa.column("capabilities", sa.JSON),
    sa.column("reputation", sa.Float),
    sa.column("created_at", _WHEN),
)
shard_t = sa.table(
    "shard",
    sa.column("id", sa.Integer),
    sa.column("job_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("attempts", sa.Integer),
    sa.column("executed_on", sa.JSON),
    sa.column("finished_at", _WHEN),
    sa.column("accepted_run_id", sa.Integer),
    sa.column("replicas", sa.Integer),
)
run_t = sa.table(
    "shard_run",
    sa.column("id", sa.Integer),
    sa.column("shard_id", sa.Integer),
    sa.column("job_id", sa.Integer),
    sa.column("pool_id", sa.Integer),
    sa.column("replica", sa.Integer),
    sa.column("attempt", sa.Integer),
    sa.column("token_hash", sa.String),
    sa.column("status", sa.String),
    sa.column("leased_at", _WHEN),
    sa.column("expires_at", _WHEN),
    sa.column("finished_at", _WHEN),
    sa.column("executed_on", sa.JSON),
)
output_t = sa.table(
    "output",
    sa.column("id", sa.Integer),
    sa.column("shard_id", sa.Integer),
    sa.column("replica", sa.Integer),
    sa.column("shard_run_id", sa.Integer),
)
score_t = sa.table(
    "score",
    sa.column("id", sa.Integer),
    sa.column("job_id", sa.Integer),
    sa.column("metric", sa.String),
    sa.column("breakdown", sa.String),
    sa.column("n", sa.Integer),
    sa.column("signature", sa.Text),
    sa.column("created_at", _WHEN),
    sa.column("scoring_run_id", sa.Integer),
    sa.column("too_few", sa.Boolean),
)
scoring_t = sa.table(
    "scoring_run",
    sa.column("id", sa.Integer),
    sa.column("job_id", sa.Integer),
    sa.column("scoring_hash", sa.String),
    sa.column("spec", sa.JSON),
    sa.column("signatures", sa.JSON),
    sa.column("n_resamples", sa.Integer),
    sa.column("seed", sa.Integer),
    sa.column("confidence", sa.Float),
    sa.column("items", sa.Integer),
    sa.column("failed_items", sa.Integer),
    sa.column("failure_reasons", sa.JSON),
    sa.column("pools", sa.JSON),
    sa.column("created_at", _WHEN),
)


def _check(values: Sequence[str], column: str = "status") -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _unnamed_unique(table: str, columns: Sequence[str]) -> str:
    """The name of a 0001 unique constraint that was created without one."""
    if op.get_bind().dialect.name == "postgresql":
        return f"{table}_{'_'.join(columns)}_key"
    return f"uq_{table}_{columns[0]}"


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)

    # -- pools ------------------------------------------------------------------
    op.create_table(
        "pool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _S(length=200), nullable=False),
        sa.Column("kind", _S(length=10), nullable=False),
        sa.Column("status", _S(length=20), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("reputation", sa.Float(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("last_seen_at", _WHEN, nullable=True),
        sa.CheckConstraint(_check(["local", "remote"], "kind"), name="ck_pool_kind"),
        sa.CheckConstraint(_check(["active", "quarantined"]), name="ck_pool_status"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pool_name", "pool", ["name"], unique=True)
    conn.execute(
        pool_t.insert().values(
            name="local",
            kind="local",
            status="active",
            capabilities={},
            reputation=1.0,
            created_at=now,
        )
    )
    local_pool = conn.execute(sa.select(pool_t.c.id).where(pool_t.c.name == "local")).scalar_one()

    # -- benchmarks: explicit versions and the two identities -------------------------
    with op.batch_alter_table("benchmark") as batch:
        batch.add_column(sa.Column("version", _S(length=50), nullable=True))
        batch.add_column(sa.Column("is_current", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("chat_template", _S(length=10), nullable=True))
        batch.add_column(sa.Column("max_model_len", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("answer", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("generation_hash", _S(length=64), nullable=True))
        batch.add_column(sa.Column("scoring_hash", _S(length=64), nullable=True))

    benchmarks = conn.execute(
        sa.select(benchmark_t, version_t.c.content_hash)
        .join(version_t, version_t.c.id == benchmark_t.c.dataset_version_id)
        .order_by(benchmark_t.c.id)
    ).all()
    identities: dict[int, tuple[str, str]] = {}
    for row in benchmarks:
        identities[row.id] = (
            generation_identity(
                row.content_hash, row.prompt_template, row.system_prompt, row.decoding, "auto", 2048
            ),
            scoring_identity(row.task, row.metrics, row.labels, {}, row.breakdowns),
        )
    keeper: dict[tuple[str, str, str], int] = {}
    for row in benchmarks:  # the newest row of an identity keeps its wording
        keeper[(row.name, *identities[row.id])] = row.id
    merged_into = {row.id: keeper[(row.name, *identities[row.id])] for row in benchmarks}
    for old, new in merged_into.items():
        if old != new:
            conn.execute(job_t.update().where(job_t.c.benchmark_id == old).values(benchmark_id=new))
            conn.execute(benchmark_t.delete().where(benchmark_t.c.id == old))
    kept = [row for row in benchmarks if merged_into[row.id] == row.id]
    newest = {row.name: row.id for row in kept}
    counters: dict[str, int] = defaultdict(int)
    for row in kept:
        counters[row.name] += 1
        generation_hash, scoring_hash = identities[row.id]
        conn.execute(
            benchmark_t.update()
            .where(benchmark_t.c.id == row.id)
            .values(
                version=str(counters[row.name]),
                is_current=newest[row.name] == row.id,
                chat_template="auto",
                max_model_len=2048,
                answer={},
                generation_hash=generation_hash,
                scoring_hash=scoring_hash,
                definition_hash=definition_identity(row.name, generation_hash, scoring_hash),
            )
        )
    with op.batch_alter_table("benchmark") as batch:
        for column in ("version", "is_current", "chat_template", "max_model_len", "answer"):
            batch.alter_column(column, nullable=False)
        batch.alter_column("generation_hash", nullable=False)
        batch.alter_column("scoring_hash", nullable=False)
        batch.create_unique_constraint("uq_benchmark_name_version", ["name", "version"])
        batch.create_unique_constraint(
            "uq_benchmark_name_identities", ["name", "generation_hash", "scoring_hash"]
        )
        batch.create_index("ix_benchmark_generation_hash", ["generation_hash"])
        batch.create_index("ix_benchmark_scoring_hash", ["scoring_hash"])

    # -- jobs: keyed by model and generation identity ----------------------------------
    with op.batch_alter_table("job", naming_convention=_UNNAMED) as batch:
        batch.add_column(sa.Column("generation_hash", _S(length=64), nullable=True))
        batch.add_column(sa.Column("generation", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("superseded_by_id", sa.Integer(), nullable=True))
    by_id = {row.id: row for row in kept}
    jobs = conn.execute(sa.select(job_t).order_by(job_t.c.id)).all()
    live: dict[tuple[int, str], Any] = {}
    superseded: dict[int, int] = {}
    for job in jobs:
        bench = by_id[job.benchmark_id]
        generation_hash = generation_identity(
            bench.content_hash,
            bench.prompt_template,
            bench.system_prompt,
            job.decoding,
            "auto",
            2048,
        )
        conn.execute(
            job_t.update()
            .where(job_t.c.id == job.id)
            .values(
                generation_hash=generation_hash,
                generation={
                    "dataset_version_id": bench.dataset_version_id,
                    "prompt_template": bench.prompt_template,
                    "system_prompt": bench.system_prompt,
                    "chat_template": "auto",
                    "max_model_len": 2048,
                },
            )
        )
        key = (job.model_id, generation_hash)
        current = live.get(key)
        if current is None:
            live[key] = job
        elif job.status == "completed" and current.status != "completed":
            superseded[current.id] = job.id
            live[key] = job
        else:
            superseded[job.id] = current.id
    for old, new in superseded.items():
        while new in superseded:
            new = superseded[new]
        conn.execute(job_t.update().where(job_t.c.id == old).values(superseded_by_id=new))
    with op.batch_alter_table("job", naming_convention=_UNNAMED) as batch:
        batch.drop_constraint(
            _unnamed_unique("job", ["model_id", "benchmark_id", "decoding_hash"]), type_="unique"
        )
        batch.drop_column("decoding_hash")
        batch.alter_column("generation_hash", nullable=False)
        batch.alter_column("generation", nullable=False)
        batch.create_foreign_key("fk_job_superseded_by", "job", ["superseded_by_id"], ["id"])
        batch.create_index("ix_job_generation_hash", ["generation_hash"])
        batch.create_check_constraint(
            "ck_job_status", _check(["queued", "running", "completed", "failed", "cancelled"])
        )
    op.create_index(
        "uq_job_model_generation_live",
        "job",
        ["model_id", "generation_hash"],
        unique=True,
        sqlite_where=sa.text("superseded_by_id IS NULL"),
        postgresql_where=sa.text("superseded_by_id IS NULL"),
    )

    # -- shard runs ----------------------------------------------------------------
    op.create_table(
        "shard_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shard_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("replica", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("token_hash", _S(length=64), nullable=False),
        sa.Column("status", _S(length=20), nullable=False),
        sa.Column("leased_at", _WHEN, nullable=False),
        sa.Column("heartbeat_at", _WHEN, nullable=True),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.Column("executed_on", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            _check(["leased", "accepted", "submitted", "expired", "late", "released"]),
            name="ck_shard_run_status",
        ),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.ForeignKeyConstraint(["pool_id"], ["pool.id"]),
        sa.ForeignKeyConstraint(["shard_id"], ["shard.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_shard_run_job_id", "shard_run", ["job_id"])
    op.create_index("ix_shard_run_pool_id", "shard_run", ["pool_id"])
    op.create_index("ix_shard_run_shard_id", "shard_run", ["shard_id"])
    op.create_index("ix_shard_run_status_expires", "shard_run", ["status", "expires_at"])

    started = {job.id: job.started_at for job in jobs}
    replicas_of: dict[int, set[int]] = defaultdict(set)
    for shard_id, replica in conn.execute(
        sa.select(output_t.c.shard_id, output_t.c.replica).distinct()
    ).all():
        replicas_of[shard_id].add(replica)
    run_of: dict[tuple[int, int], int] = {}
    shards = conn.execute(
        sa.select(
            shard_t.c.id,
            shard_t.c.job_id,
            shard_t.c.status,
            shard_t.c.attempts,
            shard_t.c.executed_on,
            shard_t.c.finished_at,
        ).order_by(shard_t.c.id)
    ).all()
    for shard in shards:
        completed = shard.status == "completed"
        replicas = set(replicas_of.get(shard.id, ())) | ({0} if completed else set())
        for replica in sorted(replicas):
            when = started.get(shard.job_id) or shard.finished_at or now
            status = ("accepted" if replica == 0 else "submitted") if completed else "released"
            run_id = conn.execute(
                run_t.insert()
                .values(
                    shard_id=shard.id,
                    job_id=shard.job_id,
                    pool_id=local_pool,
                    replica=replica,
                    attempt=max(shard.attempts or 0, 1),
                    token_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
                    status=status,
                    leased_at=when,
                    expires_at=when,
                    finished_at=shard.finished_at,
                    executed_on=shard.executed_on,
                )
                .returning(run_t.c.id)
            ).scalar_one()
            run_of[(shard.id, replica)] = run_id

    # -- outputs belong to a shard run ---------------------------------------------------
    with op.batch_alter_table("output", naming_convention=_UNNAMED) as batch:
        batch.add_column(sa.Column("shard_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
    for (shard_id, replica), run_id in run_of.items():
        conn.execute(
            output_t.update()
            .where(output_t.c.shard_id == shard_id, output_t.c.replica == replica)
            .values(shard_run_id=run_id)
        )
    with op.batch_alter_table("output", naming_convention=_UNNAMED) as batch:
        batch.drop_constraint(
            _unnamed_unique("output", ["job_id", "item_id", "replica"]), type_="unique"
        )
        batch.drop_index("ix_output_shard_id")
        if conn.dialect.name == "postgresql":
            batch.drop_constraint("output_shard_id_fkey", type_="foreignkey")
        batch.drop_column("shard_id")
        batch.drop_column("replica")
        batch.drop_column("attempt")
        batch.alter_column("shard_run_id", nullable=False)
        batch.create_foreign_key("fk_output_shard_run", "shard_run", ["shard_run_id"], ["id"])
        batch.create_unique_constraint("uq_output_run_item", ["shard_run_id", "item_id"])
        batch.create_index("ix_output_shard_run_id", ["shard_run_id"])

    # -- shards: the accepted run, no inline lease ------------------------------------------
    with op.batch_alter_table("shard") as batch:
        batch.add_column(sa.Column("accepted_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("replicas", sa.Integer(), nullable=True))
    conn.execute(shard_t.update().values(replicas=1))
    for shard in shards:
        accepted = run_of.get((shard.id, 0)) if shard.status == "completed" else None
        conn.execute(
            shard_t.update()
            .where(shard_t.c.id == shard.id)
            .values(
                accepted_run_id=accepted,
                status="completed" if accepted else "queued",
            )
        )
    with op.batch_alter_table("shard") as batch:
        batch.drop_column("attempts")
        batch.drop_column("lease_owner")
        batch.drop_column("lease_expires_at")
        batch.drop_column("executed_on")
        batch.alter_column("replicas", nullable=False)
        batch.create_foreign_key("fk_shard_accepted_run", "shard_run", ["accepted_run_id"], ["id"])
        batch.create_check_constraint("ck_shard_status", _check(["queued", "leased", "completed"]))

    # -- scoring runs own their scores ------------------------------------------------------
    op.create_table(
        "scoring_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("scoring_hash", _S(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("signatures", sa.JSON(), nullable=False),
        sa.Column("n_resamples", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("failed_items", sa.Integer(), nullable=False),
        sa.Column("failure_reasons", sa.JSON(), nullable=False),
        sa.Column("pools", sa.JSON(), nullable=False),
        sa.Column("overall_resamples", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "scoring_hash"),
    )
    op.create_index("ix_scoring_run_job_id", "scoring_run", ["job_id"])
    op.create_index("ix_scoring_run_scoring_hash", "scoring_run", ["scoring_hash"])

    with op.batch_alter_table("score", naming_convention=_UNNAMED) as batch:
        batch.add_column(sa.Column("scoring_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("too_few", sa.Boolean(), nullable=True))
    job_bench = {job.id: by_id[job.benchmark_id] for job in jobs}
    scores_by_job: dict[int, list[Any]] = defaultdict(list)
    for score in conn.execute(sa.select(score_t)).all():
        scores_by_job[score.job_id].append(score)
    for job_id, scores in scores_by_job.items():
        bench = job_bench[job_id]
        primary_n = max((s.n for s in scores if s.breakdown == "overall"), default=0)
        scoring_id = conn.execute(
            scoring_t.insert()
            .values(
                job_id=job_id,
                scoring_hash=identities[bench.id][1],
                spec={
                    "task": bench.task,
                    "metrics": bench.metrics,
                    "labels": bench.labels,
                    "answer": {},
                    "breakdowns": bench.breakdowns,
                },
                signatures={s.metric: s.signature for s in scores if s.signature},
                n_resamples=1000,
                seed=12345,
                confidence=0.95,
                items=primary_n,
                failed_items=0,
                failure_reasons={},
                pools=["local"],
                created_at=min(s.created_at for s in scores),
            )
            .returning(scoring_t.c.id)
        ).scalar_one()
        conn.execute(
            score_t.update()
            .where(score_t.c.job_id == job_id)
            .values(scoring_run_id=scoring_id, too_few=False)
        )
    with op.batch_alter_table("score", naming_convention=_UNNAMED) as batch:
        batch.drop_constraint(
            _unnamed_unique("score", ["job_id", "metric", "breakdown", "group"]), type_="unique"
        )
        batch.drop_index("ix_score_job_id")
        if conn.dialect.name == "postgresql":
            batch.drop_constraint("score_job_id_fkey", type_="foreignkey")
        batch.drop_column("job_id")
        batch.alter_column("scoring_run_id", nullable=False)
        batch.alter_column("too_few", nullable=False)
        batch.create_foreign_key("fk_score_scoring_run", "scoring_run", ["scoring_run_id"], ["id"])
        batch.create_unique_constraint(
            "uq_score_run_metric_group", ["scoring_run_id", "metric", "breakdown", "group"]
        )
        batch.create_index("ix_score_scoring_run_id", ["scoring_run_id"])

    # -- per-item statistics and the leaderboard read model ------------------------------
    op.create_table(
        "output_stat",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("output_id", sa.Integer(), nullable=False),
        sa.Column("metric", _S(length=30), nullable=False),
        sa.Column("stats", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["output_id"], ["output.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("output_id", "metric"),
    )
    op.create_index("ix_output_stat_output_id", "output_stat", ["output_id"])
    op.create_table(
        "leaderboard_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("benchmark_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("scoring_run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("tied_with", sa.JSON(), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.Column("cells", sa.JSON(), nullable=False),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["benchmark_id"], ["benchmark.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"]),
        sa.ForeignKeyConstraint(["scoring_run_id"], ["scoring_run.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("benchmark_id", "model_id"),
    )
    op.create_index(
        "ix_leaderboard_entry_benchmark_rank", "leaderboard_entry", ["benchmark_id", "position"]
    )
    op.create_index("ix_leaderboard_entry_job_id", "leaderboard_entry", ["job_id"])
    op.create_index("ix_leaderboard_entry_model_id", "leaderboard_entry", ["model_id"])


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0002 has no downgrade: restore the database backup taken before upgrading."
    )
