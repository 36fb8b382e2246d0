"""A volunteer's account page shows what their pools did, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from verifytools import ALL_NEW, _answer, _benchmark_and_job, forged, honest
from webtools import make_web_app, sign_in

from sabha.platform.db import session_scope
from sabha.platform.domain import Output, Pool, PoolKind, Role, RunStatus, ShardRun, User
from sabha.platform.services.accounts import create_user
from sabha.platform.services.pools import pool_activity, register_pool
from sabha.platform.services.verification import quarantine_pool, reputation_of

PASSWORD = "correct horse battery"
H100_POOL = {"device": "cuda", "gpus": 2, "gpu_name": "NVIDIA H100", "memory_bytes": 80 * 10**9}


def _user(db: Engine, name: str) -> int:
    with session_scope(db) as session:
        user = create_user(session, name, password=PASSWORD, roles=[Role.VOLUNTEER])
        session.flush()
        assert user.id is not None
        return user.id


def _user_id(session: Session, username: str) -> int:
    user = session.exec(select(User).where(User.username == username)).one()
    assert user.id is not None
    return user.id


@pytest.fixture
def app(db: Engine, tmp_path: Path) -> Flask:
    return make_web_app(db, tmp_path)


def _page(app: Flask, username: str) -> str:
    client = app.test_client()
    sign_in(client, username, PASSWORD)
    return client.get("/account").get_data(as_text=True)


def test_volunteer_sees_what_their_pools_did(app: Flask, db: Engine, tmp_path: Path) -> None:
    _benchmark_and_job(db, tmp_path, n_items=4)  # two shards of two items
    alice, bob = _user(db, "alice"), _user(db, "bob")
    _user(db, "carol")
    gpu = register_pool(db, "alice-gpu", PoolKind.REMOTE, H100_POOL, alice)
    idle = register_pool(db, "alice-idle", PoolKind.REMOTE, {"device": "cpu"}, alice)
    bob_pool = register_pool(db, "bob-gpu", PoolKind.REMOTE, H100_POOL, bob)
    # Every shard is run by alice then verified by bob; each result agrees.
    # alice's agent measured 900 s of engine time per shard; bob's did not report any
    assert _answer(db, gpu, honest, ALL_NEW, engine_seconds=900.0) == RunStatus.SUBMITTED
    assert _answer(db, gpu, honest, ALL_NEW, engine_seconds=900.0) == RunStatus.SUBMITTED
    assert _answer(db, bob_pool, honest, ALL_NEW) == RunStatus.SUBMITTED
    assert _answer(db, bob_pool, honest, ALL_NEW) == RunStatus.SUBMITTED
    with session_scope(db) as session:  # each of alice's runs took 900 s, 450 s of engine time
        for run in session.exec(select(ShardRun).where(ShardRun.pool_id == gpu)).all():
            assert run.finished_at is not None
            run.leased_at = run.finished_at - timedelta(seconds=900)
            run.engine_seconds = 450.0
        outputs = session.exec(
            select(Output).join(ShardRun, col(ShardRun.id) == Output.shard_run_id)
        ).all()
        for output in outputs:
            output.num_tokens = 700
    with Session(db) as session:
        activity = pool_activity(session, alice)
        assert pool_activity(session, _user_id(session, "carol")) == []
    assert [a.name for a in activity] == ["alice-gpu", "alice-idle"]
    busy, quiet = activity
    assert busy.accepted_shards == 2 and busy.total_runs == 2
    assert busy.runs == {RunStatus.ACCEPTED: 2}
    assert busy.items == 4 and busy.output_tokens == 2800
    assert busy.lease_seconds == pytest.approx(1800, abs=0.01)
    assert (busy.engine_seconds, busy.measured_runs) == (pytest.approx(900.0), 2)
    assert (busy.agreements, busy.disagreements) == (2, 0)
    assert busy.reputation == pytest.approx(reputation_of(2, 0))
    assert (busy.gpus, busy.gpu_name, busy.device) == (2, "NVIDIA H100", "cuda")
    assert (quiet.total_runs, quiet.items, quiet.lease_seconds, quiet.id) == (0, 0, 0.0, idle)
    assert (quiet.engine_seconds, quiet.measured_runs) == (0.0, 0)

    page = _page(app, "alice")
    assert "Your pools" in page
    assert '<td dir="auto">alice-gpu</td>' in page and "alice-idle" in page
    assert "bob-gpu" not in page  # another owner's pool
    assert '2 × <span dir="auto">NVIDIA H100</span>, 80 GB' in page
    assert '<td class="num">2,800</td>' in page  # output tokens, grouped
    assert '<td class="num">0.50</td>' in page  # 1,800 s of lease time, in hours
    assert '<td class="num">0.25</td>' in page  # 900 s of engine time, in hours
    assert "not reported" in page  # alice-idle measured nothing
    assert "quarantined" not in page
    assert "Your pools" not in _page(app, "carol")  # no pools, no section


def test_a_quarantined_pool_shows_its_reason(app: Flask, db: Engine, tmp_path: Path) -> None:
    _benchmark_and_job(db, tmp_path, n_items=2)
    mallory, honest_owner = _user(db, "mallory"), _user(db, "dave")
    bad = register_pool(db, "mallory-gpu", PoolKind.REMOTE, H100_POOL, mallory)
    good = register_pool(db, "dave-gpu", PoolKind.REMOTE, H100_POOL, honest_owner)
    assert _answer(db, bad, forged, ALL_NEW) == RunStatus.SUBMITTED
    assert _answer(db, good, honest, ALL_NEW) == RunStatus.SUBMITTED
    with session_scope(db) as session:
        pool = session.get(Pool, bad)
        assert pool is not None
        quarantine_pool(session, pool, "Its outputs disagreed with other pools.")
    with Session(db) as session:
        (activity,) = pool_activity(session, mallory)
    assert activity.status == "quarantined" and activity.total_runs == 1
    page = _page(app, "mallory")
    assert '<span class="badge">quarantined</span>' in page
    assert "Its outputs disagreed with other pools." in page
    assert "dave-gpu" not in page
