"""The schema, migrations and immutability rules, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import generation_items, write_benchmark
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import ImmutableVersionError, current_revision, head_revision, session_scope
from sabha.platform.domain import (
    Benchmark,
    DatasetVersion,
    EnumText,
    Item,
    Job,
    JobStatus,
    Output,
    Pool,
    PoolKind,
    PoolStatus,
    RunStatus,
    RunVerdict,
    Shard,
    ShardRun,
    ShardStatus,
)
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job

pytestmark = pytest.mark.postgresql


def _load(db: Engine, tmp_path: Path) -> Benchmark:
    loaded = load_benchmark_file(write_benchmark(tmp_path / "bench", generation_items(6)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
    return benchmark


def test_migrations_create_the_schema_of_the_models(db: Engine) -> None:
    assert current_revision(db) == head_revision()
    with db.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def test_loading_a_benchmark_twice_changes_nothing(db: Engine, tmp_path: Path) -> None:
    first = _load(db, tmp_path)
    second = _load(db, tmp_path)
    assert first.id == second.id
    with Session(db) as session:
        assert len(session.exec(select(DatasetVersion)).all()) == 1
        assert len(session.exec(select(Item)).all()) == 6


def test_released_dataset_version_items_cannot_change(db: Engine, tmp_path: Path) -> None:
    _load(db, tmp_path)
    with pytest.raises(ImmutableVersionError, match="released"):
        with session_scope(db) as session:
            item = session.exec(select(Item)).first()
            assert item is not None
            item.reference = "edited"
    with Session(db) as session:
        assert all(i.reference != "edited" for i in session.exec(select(Item)))


def test_released_dataset_version_cannot_change_or_gain_items(db: Engine, tmp_path: Path) -> None:
    _load(db, tmp_path)
    with pytest.raises(ImmutableVersionError):
        with session_scope(db) as session:
            version = session.exec(select(DatasetVersion)).one()
            version.item_count = 99
    with pytest.raises(ImmutableVersionError):
        with session_scope(db) as session:
            version = session.exec(select(DatasetVersion)).one()
            session.add(
                Item(
                    dataset_version_id=version.id,
                    key="extra",
                    language="hi-Deva",
                    split="test",
                    input={"question": "?"},
                    reference="!",
                    attributes={},
                )
            )


def test_job_is_cut_into_shards_once_per_model_and_benchmark(db: Engine, tmp_path: Path) -> None:
    benchmark = _load(db, tmp_path)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (model_dir / "model.safetensors").write_bytes(b"x")
    (model_dir / "tokenizer.json").write_text("{}")
    with session_scope(db) as session:
        model = add_model(session, "m", path=model_dir)
        job, created = create_job(session, model, benchmark)
        again, created_again = create_job(session, model, benchmark)
        assert created and not created_again and job.id == again.id
        shards = session.exec(select(Shard).where(Shard.job_id == job.id)).all()
        assert sum(len(s.item_ids) for s in shards) == 6


def _leased_run(db: Engine, tmp_path: Path, revision: str) -> tuple[int, int, int]:
    """A job with one leased shard: ``(job id, shard run id, first item id)``."""
    from sabha.platform.services.pools import register_pool
    from sabha.platform.services.queue import lease_next_shard

    benchmark = _load(db, tmp_path)
    with session_scope(db) as session:
        model = add_model(session, "hub-model", repo_id="org/model", revision=revision)
        job, _ = create_job(session, model, benchmark)
        job_id = job.id
    lease = lease_next_shard(db, register_pool(db, "test"))
    assert lease is not None and lease.job_id == job_id
    return job_id, lease.run_id, lease.requests[0].item_id


def test_one_output_per_item_and_run(db: Engine, tmp_path: Path) -> None:
    job_id, run_id, item_id = _leased_run(db, tmp_path, "a" * 40)
    with session_scope(db) as session:
        session.add(
            Output(job_id=job_id, shard_run_id=run_id, item_id=item_id, prompt="p", text="t")
        )
    with pytest.raises(IntegrityError):
        with session_scope(db) as session:
            session.add(
                Output(job_id=job_id, shard_run_id=run_id, item_id=item_id, prompt="p", text="u")
            )
    with Session(db) as session:
        assert [o.text for o in session.exec(select(Output))] == ["t"]


def test_status_columns_refuse_unknown_values(db: Engine, tmp_path: Path) -> None:
    job_id, run_id, _ = _leased_run(db, tmp_path, "a" * 40)
    for table, row_id in (("job", job_id), ("shard_run", run_id)):
        with pytest.raises(IntegrityError):
            with db.begin() as connection:
                connection.execute(
                    sa.text(f"UPDATE {table} SET status = 'exploded' WHERE id = :id"),
                    {"id": row_id},
                )


def test_statuses_read_back_as_their_enums(db: Engine, tmp_path: Path) -> None:
    job_id, run_id, _ = _leased_run(db, tmp_path, "c" * 40)
    with session_scope(db) as session:
        run = session.get(ShardRun, run_id)
        assert run is not None and run.verdict is None
        run.verdict = RunVerdict.AGREED
    with Session(db) as session:
        job = session.get(Job, job_id)
        run = session.get(ShardRun, run_id)
        assert job is not None and run is not None
        pool = session.get(Pool, run.pool_id)
        shard = session.exec(select(Shard).where(Shard.status == ShardStatus.LEASED)).one()
        assert pool is not None
        assert isinstance(job.status, JobStatus) and job.status is JobStatus.RUNNING
        assert isinstance(shard.status, ShardStatus) and shard.status is ShardStatus.LEASED
        assert isinstance(run.status, RunStatus) and run.status is RunStatus.LEASED
        assert isinstance(run.verdict, RunVerdict) and run.verdict is RunVerdict.AGREED
        assert isinstance(pool.kind, PoolKind) and pool.status is PoolStatus.ACTIVE
        # Core reads load members too; plain strings still match in filters
        assert session.exec(select(Job.status).where(Job.status == "running")).one() is (
            JobStatus.RUNNING
        )
    with db.connect() as connection:  # a StrEnum bound in raw SQL is its value
        leased = sa.text("SELECT count(*) FROM shard_run WHERE status = :status")
        assert connection.execute(leased, {"status": RunStatus.LEASED}).scalar() == 1
        stored = sa.text("SELECT status FROM job WHERE id = :id")
        assert connection.execute(stored, {"id": job_id}).scalar() == "running"


def test_enum_columns_still_refuse_unknown_values(db: Engine, tmp_path: Path) -> None:
    job_id, _, _ = _leased_run(db, tmp_path, "d" * 40)
    with pytest.raises(IntegrityError, match="ck_job_status"):
        with session_scope(db) as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.status = "exploded"  # type: ignore[assignment]
    with Session(db) as session:
        assert session.exec(select(Job.status)).one() is JobStatus.RUNNING


def test_every_status_check_guards_an_enum_column() -> None:
    checked = {}
    for table in SQLModel.metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint) and " IN (" in str(constraint.sqltext):
                column = str(constraint.sqltext).split(" IN (")[0]
                checked[table.name, column] = str(constraint.sqltext)
    typed = {
        (table.name, column.name): column.type.enum
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, EnumText)
    }
    assert set(checked) == set(typed) and len(typed) >= 12
    for (table_name, column), enum in typed.items():
        values = ", ".join(f"'{member.value}'" for member in enum)
        assert checked[table_name, column] == f"{column} IN ({values})"


def test_unicode_text_survives_a_round_trip(db: Engine, tmp_path: Path) -> None:
    job_id, run_id, item_id = _leased_run(db, tmp_path, "b" * 40)
    text = "நெல் · धान · mpunga · ধান · اردو"
    with session_scope(db) as session:
        session.add(
            Output(job_id=job_id, shard_run_id=run_id, item_id=item_id, prompt=text, text=text)
        )
    with Session(db) as session:
        assert session.exec(select(Output.text)).one() == text
        assert session.exec(select(Job)).one().decoding["max_tokens"] == 8
