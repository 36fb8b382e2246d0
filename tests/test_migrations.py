"""A database the 0001 demo filled upgrades to the current schema with nothing lost.

``tests/data/demo-0001.sql`` is the SQLite database that ``sabha demo
--no-serve`` filled at schema revision 0001 (two tiny models on both starter
benchmarks). The same rows are copied into a PostgreSQL schema for the
PostgreSQL run.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import REPO, run_sabha
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from sabha.platform.db import (
    current_revision,
    head_revision,
    make_engine,
    session_scope,
    upgrade_database,
)
from sabha.platform.domain import (
    Benchmark,
    Job,
    JobStatus,
    Output,
    Pool,
    Role,
    RunStatus,
    Score,
    ScoringRun,
    Shard,
    ShardRun,
    ShardStatus,
    Submission,
    SubmissionJob,
    User,
    id_of,
)
from sabha.platform.services.accounts import create_user
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import lease_next_shard

pytestmark = pytest.mark.postgresql

FIXTURE = REPO / "tests" / "data" / "demo-0001.sql"
TABLES_0001 = [
    "dataset",
    "model",
    "dataset_version",
    "benchmark",
    "item",
    "job",
    "shard",
    "output",
    "score",
]


def _fixture_rows(tmp_path: Path) -> dict[str, list[dict[str, object]]]:
    path = tmp_path / "demo-0001.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(FIXTURE.read_text(encoding="utf-8"))
    source = sa.create_engine(f"sqlite:///{path}")
    metadata = sa.MetaData()
    metadata.reflect(source)
    rows = {}
    with source.connect() as connection:
        for name in TABLES_0001:
            rows[name] = [
                dict(r._mapping) for r in connection.execute(metadata.tables[name].select())
            ]
    source.dispose()
    return rows


@pytest.fixture
def demo_0001(database_url: str, tmp_path: Path) -> Engine:
    """The demo's 0001 database, on SQLite or PostgreSQL, not yet upgraded.

    Two things a 0001 database could hold are added: a benchmark definition
    that differs from kisan-advisory only in its description (0001 made a new
    row and a new job for it), and an interrupted shard.
    """
    engine = make_engine(database_url)
    upgrade_database(engine, "0001")
    rows = _fixture_rows(tmp_path)
    kisan = next(r for r in rows["benchmark"] if r["name"] == "kisan-advisory")
    reworded = {**kisan, "id": 100, "description": "Reworded.", "definition_hash": "f" * 64}
    rows["benchmark"].append(reworded)
    first_job = next(j for j in rows["job"] if j["benchmark_id"] == kisan["id"])
    rows["job"].append(
        {**first_job, "id": 100, "benchmark_id": 100, "status": "queued", "decoding_hash": "x"}
    )
    interrupted = max(rows["shard"], key=lambda s: s["id"])
    interrupted.update(status="leased", finished_at=None)
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.begin() as connection:
        for name in TABLES_0001:
            connection.execute(metadata.tables[name].insert(), rows[name])
        if connection.dialect.name == "postgresql":
            for name in TABLES_0001:
                connection.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )
    engine.info = {"interrupted_shard": interrupted["id"], "rows": rows}  # type: ignore[misc]
    return engine


def test_demo_database_upgrades_with_jobs_and_scores_intact(demo_0001: Engine) -> None:
    rows = demo_0001.info["rows"]  # type: ignore[index]
    before = {
        (s["job_id"], s["metric"], s["breakdown"], s["group"]): s["value"] for s in rows["score"]
    }
    upgrade_database(demo_0001)
    assert current_revision(demo_0001) == head_revision()
    with demo_0001.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
    with Session(demo_0001) as session:
        after = {
            (run.job_id, s.metric, s.breakdown, s.group): s.value
            for s, run in session.exec(
                select(Score, ScoringRun).join(
                    ScoringRun, col(ScoringRun.id) == Score.scoring_run_id
                )
            )
        }
        assert after == before and len(after) == 162
        benchmarks = session.exec(select(Benchmark)).all()
        assert sorted((b.name, b.version, b.is_current) for b in benchmarks) == [
            ("indic-safety", "1", True),
            ("kisan-advisory", "1", True),
        ]
        kisan = next(b for b in benchmarks if b.name == "kisan-advisory")
        assert kisan.description == "Reworded."  # the newest wording is kept
        jobs = {j.id: j for j in session.exec(select(Job))}
        assert len(jobs) == 5
        assert jobs[100].superseded_by_id is not None  # kept, never counted
        assert jobs[jobs[100].superseded_by_id].status == JobStatus.COMPLETED
        assert all(j.benchmark_id in {b.id for b in benchmarks} for j in jobs.values())
        interrupted = session.get(Shard, demo_0001.info["interrupted_shard"])  # type: ignore[index]
        assert interrupted is not None
        assert interrupted.status == ShardStatus.QUEUED and interrupted.accepted_run_id is None
        runs = session.exec(select(ShardRun)).all()
        assert sorted(r.status for r in runs).count(RunStatus.RELEASED) == 1
        assert len(session.exec(select(Output)).all()) == len(rows["output"]) == 456
        assert all(o.shard_run_id for o in session.exec(select(Output)))


def test_upgraded_demo_database_serves_its_leaderboards(
    tmp_path: Path, isolated_settings: Path
) -> None:
    """`sabha db upgrade` on the demo's SQLite file: the leaderboards come back."""
    isolated_settings.mkdir(parents=True)
    with sqlite3.connect(isolated_settings / "sabha.db") as connection:
        connection.executescript(FIXTURE.read_text(encoding="utf-8"))
    result = run_sabha("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"revision {head_revision()}" in result.stdout
    from sabha.platform.app import create_app
    from sabha.platform.settings import Settings

    client = create_app(Settings(data_dir=isolated_settings)).test_client()
    board = client.get("/api/v1/benchmarks/kisan-advisory/leaderboard").get_json()
    assert {row["model"]["name"] for row in board["rows"]} == {"tiny-chat", "tiny-base"}
    chat = next(r for r in board["rows"] if r["model"]["name"] == "tiny-chat")
    assert chat["scores"]["chrf++"]["n"] == 108
    run = client.get(f"/api/v1/jobs/{chat['job_id']}/results").get_json()
    assert run["outputs"] == 108 and run["pools"] == ["local"]
    listing = run_sabha("jobs", "list")
    assert listing.returncode == 0 and listing.stdout.count("completed") == 4
    shards = run_sabha("jobs", "show", str(chat["job_id"]))
    assert "shard   0   64 items  completed  #1 accepted by local" in shards.stdout


def test_populated_0002_database_upgrades_to_accounts(demo_0001: Engine) -> None:
    """0003 adds the account tables to a 0002 database and leaves every row as it was."""
    upgrade_database(demo_0001, "0002")
    metadata = sa.MetaData()
    metadata.reflect(demo_0001)
    with demo_0001.connect() as connection:
        before = {
            name: sorted(map(tuple, connection.execute(table.select()).all()))
            for name, table in metadata.tables.items()
            if name != "alembic_version"
        }
    upgrade_database(demo_0001, "0003")
    assert current_revision(demo_0001) == "0003"
    with demo_0001.connect() as connection:  # the columns 0002 had, row for row
        for name, rows in before.items():
            after = connection.execute(metadata.tables[name].select()).all()
            assert sorted(map(tuple, after)) == rows, name
        owners = connection.execute(sa.text("SELECT owner_id FROM pool")).scalars().all()
        assert owners == [None] * len(before["pool"]) and owners
    upgrade_database(demo_0001)  # the models below are the current schema's
    with session_scope(demo_0001) as session:
        user = create_user(session, "asha", roles=[Role.SUBMITTER])
        job = session.exec(select(Job)).first()
        assert job is not None
        submission = Submission(
            user_id=id_of(user), model_id=job.model_id, license="apache-2.0", benchmarks=["x"]
        )
        session.add(submission)
        session.flush()
        session.add(SubmissionJob(submission_id=id_of(submission), job_id=id_of(job)))
        pool = session.exec(select(Pool)).first()
        assert pool is not None and pool.owner_id is None
        pool.owner_id = user.id


def test_populated_0004_database_upgrades_to_verification(demo_0001: Engine) -> None:
    """0005 adds verdicts, agreement counts and memory estimates; every row stays as it was."""
    upgrade_database(demo_0001, "0004")
    metadata = sa.MetaData()
    metadata.reflect(demo_0001)
    with demo_0001.connect() as connection:
        before = {
            name: sorted(map(tuple, connection.execute(table.select()).all()))
            for name, table in metadata.tables.items()
            if name != "alembic_version"
        }
    upgrade_database(demo_0001, "0005")
    assert current_revision(demo_0001) == "0005"
    with demo_0001.connect() as connection:
        for name, rows in before.items():
            after = connection.execute(metadata.tables[name].select()).all()
            assert sorted(map(tuple, after)) == rows, name
        counts = connection.execute(sa.text("SELECT agreements, disagreements FROM pool")).all()
        assert counts and {tuple(c) for c in counts} == {(0, 0)}
        verdicts = connection.execute(sa.text("SELECT verdict FROM shard_run")).scalars().all()
        assert verdicts and set(verdicts) == {None}
    with pytest.raises(sa.exc.IntegrityError), demo_0001.begin() as connection:
        connection.execute(sa.text("UPDATE shard_run SET verdict = 'maybe'"))
    with session_scope(demo_0001) as session:
        job = session.exec(select(Job)).first()
        assert job is not None and job.memory_bytes is None
        job.memory_bytes = 5_000_000_000  # more than 32 bits
    with Session(demo_0001) as session:
        assert session.exec(select(Job.memory_bytes).where(Job.id == job.id)).one() == 5_000_000_000


def test_populated_0006_database_upgrades_to_annotators_and_held_out_shards(
    demo_0001: Engine,
) -> None:
    """0007 adds each user's languages (none yet) and server-only shards (none yet)."""
    upgrade_database(demo_0001, "0006")
    with demo_0001.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO user_account (username, username_key, is_active, created_at) "
                "VALUES ('प्रिया', 'प्रिया', :active, :now)"
            ),
            {"active": True, "now": datetime.now(UTC)},
        )
    metadata = sa.MetaData()
    metadata.reflect(demo_0001)
    with demo_0001.connect() as connection:
        before = {
            name: sorted(map(tuple, connection.execute(table.select()).all()))
            for name, table in metadata.tables.items()
            if name != "alembic_version"
        }
    upgrade_database(demo_0001, "0007")
    assert current_revision(demo_0001) == "0007"
    with demo_0001.connect() as connection:
        for name, rows in before.items():
            after = connection.execute(metadata.tables[name].select()).all()
            assert sorted(map(tuple, after)) == rows, name
    with Session(demo_0001) as session:
        assert session.exec(select(User.languages)).all() == [[]]
        shards = session.exec(select(Shard.server_only)).all()
        assert shards and set(shards) == {False}


def test_populated_0007_database_upgrades_to_the_lease_index(demo_0001: Engine) -> None:
    """0008 adds a partial index of the queued shards in lease order; rows stay as they were."""
    upgrade_database(demo_0001, "0007")
    metadata = sa.MetaData()
    metadata.reflect(demo_0001)
    with demo_0001.connect() as connection:
        before = {
            name: sorted(map(tuple, connection.execute(table.select()).all()))
            for name, table in metadata.tables.items()
            if name != "alembic_version"
        }
    upgrade_database(demo_0001, "0008")
    assert current_revision(demo_0001) == "0008"
    with demo_0001.connect() as connection:
        for name, rows in before.items():
            after = connection.execute(metadata.tables[name].select()).all()
            assert sorted(map(tuple, after)) == rows, name
        if connection.dialect.name == "postgresql":
            definition = connection.execute(
                sa.text(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_shard_queued' "
                    "AND schemaname = current_schema()"
                )
            ).scalar_one()
        else:
            definition = connection.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = 'ix_shard_queued'")
            ).scalar_one()
    assert "job_id" in definition and "index" in definition
    assert "WHERE" in definition.upper() and "queued" in definition
    with session_scope(demo_0001) as session:  # a queued shard of the upgraded data is leasable
        shard = session.exec(select(Shard).where(Shard.status == ShardStatus.QUEUED)).first()
        if shard is None:
            shard = session.exec(select(Shard)).first()
            assert shard is not None
            shard.status = ShardStatus.QUEUED
            shard.accepted_run_id = None
        job = session.get(Job, shard.job_id)
        assert job is not None
        job.status = JobStatus.QUEUED
        job_id = id_of(job)
    pool = register_pool(demo_0001, "after-0008")
    lease = lease_next_shard(demo_0001, pool, [job_id])
    assert lease is not None and lease.job_id == job_id


def test_populated_0008_database_upgrades_to_engine_seconds(demo_0001: Engine) -> None:
    """0009 adds each run's engine seconds, unknown (NULL) for the runs already there."""
    upgrade_database(demo_0001, "0008")
    metadata = sa.MetaData()
    metadata.reflect(demo_0001)
    with demo_0001.connect() as connection:
        before = {
            name: sorted(map(tuple, connection.execute(table.select()).all()))
            for name, table in metadata.tables.items()
            if name != "alembic_version"
        }
    upgrade_database(demo_0001, "0009")
    assert current_revision(demo_0001) == "0009"
    with demo_0001.connect() as connection:
        for name, rows in before.items():
            after = connection.execute(metadata.tables[name].select()).all()
            assert sorted(map(tuple, after)) == rows, name
        measured = connection.execute(sa.text("SELECT engine_seconds FROM shard_run")).all()
        assert measured and {m for (m,) in measured} == {None}
