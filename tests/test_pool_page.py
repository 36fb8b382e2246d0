"""A volunteer's account page shows what their pools did, and each pool's own page why
(machines, leases now, reputation and why, results waiting for a replica, credit), on
SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from verifytools import ALL_NEW, _answer, _benchmark_and_job, forged, honest
from webtools import make_web_app, sign_in

from sabha.platform.db import session_scope
from sabha.platform.domain import Output, Pool, PoolKind, Role, RunStatus, ShardRun, User
from sabha.platform.services.accounts import create_admin, create_user
from sabha.platform.services.pools import pool_activity, register_pool
from sabha.platform.services.queue import lease_next_shard
from sabha.platform.services.verification import quarantine_pool, reputation_of

PASSWORD = "correct horse battery"
H100_POOL = {"device": "cuda", "gpus": 2, "gpu_name": "NVIDIA H100", "memory_bytes": 80 * 10**9}
TWO_MACHINES = {
    **H100_POOL,
    "ray_nodes": 2,
    "gpus_per_node": 1,
    "memory_bytes_per_gpu": 80 * 10**9,
    "engines": 2,
    "vllm": "0.32.0",
}


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
    assert f'<a href="/pools/{gpu}" dir="auto">alice-gpu</a>' in page and "alice-idle" in page
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


def _client(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, username, PASSWORD)
    return client


def _main(page: str) -> str:
    """What a page says (its header holds a fresh CSRF token each time)."""
    found = re.search(r"<main>(.*)</main>", page, re.S)
    assert found, page[:500]
    return found.group(1)


def _rows(page: str) -> dict[str, str]:
    """A page's row headings and their cells' text (tags stripped)."""
    return {
        re.sub(r"<[^>]+>", "", heading).strip(): re.sub(r"<[^>]+>", "", cell).strip()
        for heading, cell in re.findall(
            r'<tr><th scope="row">(.*?)</th><td[^>]*>(.*?)</td></tr>', page, re.S
        )
    }


@pytest.mark.postgresql  # the page's queries, on both databases
def test_a_pool_page_shows_machines_leases_reputation_waiting_results_and_credit(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    _benchmark_and_job(db, tmp_path, n_items=6)  # three shards of two items
    alice, bob = _user(db, "alice"), _user(db, "bob")
    gpu = register_pool(db, "alice-gpu", PoolKind.REMOTE, TWO_MACHINES, alice)
    bob_pool = register_pool(db, "bob-gpu", PoolKind.REMOTE, H100_POOL, bob)
    # alice's first result waits for a replica (a new pool); she holds the next shard.
    assert _answer(db, gpu, honest, ALL_NEW, engine_seconds=90.0) == RunStatus.SUBMITTED
    held = lease_next_shard(db, gpu, policy=ALL_NEW)
    assert held is not None
    alice_client = _client(app, "alice")
    page = alice_client.get(f"/pools/{gpu}").get_data(as_text=True)
    rows = _rows(page)
    assert rows["Machines (Ray nodes)"] == "2"
    assert rows["Device"] == "2 × NVIDIA H100 (up to 1 on one machine)"
    assert rows["Engines"] == "2" and rows["Software"] == "vLLM 0.32.0"
    leases = re.search(r'<table class="leases">(.*?)</table>', page, re.S)
    assert leases, "no table of leases"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", leases.group(1))
    assert cells[:5] == [str(held.shard_index), str(held.job_id), "<code>tiny-gen</code>", "m", "2"]
    assert "New pool: each of its results waits" in page
    assert "After 20 more verified results it is proven" in page  # the app's policy
    assert "Reputation: 1.00" in page and "(0 + 1) / (0 + 0 + 1)" in page
    assert rows["Waiting for a replica"] == "1"
    assert "<td>a new pool's result</td>" in page  # why the waiting result is checked
    assert "Your results count once another volunteer's pool has run the same shards" in page
    assert rows["Accepted shards"] == "0" and rows["Items answered"] == "0"  # no credit yet
    assert "bob-gpu" not in page

    # bob's pool runs the same shard and agrees: alice's result counts and earns credit.
    assert _answer(db, bob_pool, honest, ALL_NEW) is not None
    page = alice_client.get(f"/pools/{gpu}").get_data(as_text=True)
    rows = _rows(page)
    assert rows["Shards verified: agreed with another owner's pool"] == "1"
    assert rows["Results that count (accepted shards)"] == "1"
    assert rows["Waiting for a replica"] == "0"
    assert "None of this pool's results waits now." in page
    assert "(1 + 1) / (1 + 0 + 1)" in page and "After 19 more verified results" in page
    assert rows["Accepted shards"] == "1" and rows["Items answered"] == "2"
    assert rows["Engine time (h)"] == "0.00"  # measured (at most the lease's few ms), reported


def test_a_quarantined_pool_page_says_why_and_lists_what_did_not_count(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    _benchmark_and_job(db, tmp_path, n_items=2)
    mallory = _user(db, "mallory")
    bad = register_pool(db, "mallory-gpu", PoolKind.REMOTE, H100_POOL, mallory)
    assert _answer(db, bad, forged, ALL_NEW) == RunStatus.SUBMITTED
    with session_scope(db) as session:
        pool = session.get(Pool, bad)
        assert pool is not None
        quarantine_pool(session, pool, "its outputs disagreed with two other owners' pools")
    page = _client(app, "mallory").get(f"/pools/{bad}").get_data(as_text=True)
    assert "Quarantined: its outputs disagreed with two other owners&#39; pools." in page
    assert "A quarantined pool leases nothing" in page
    assert _rows(page)["Withdrawn when the pool was quarantined"] == "1"
    disputed = re.search(r'<table class="disputed">(.*?)</table>', page, re.S)
    assert disputed and "<td>withdrawn</td>" in disputed.group(1)


def test_only_the_owner_and_admins_see_a_pool(app: Flask, db: Engine, tmp_path: Path) -> None:
    alice, _ = _user(db, "alice"), _user(db, "bob")
    with session_scope(db) as session:
        create_admin(session, "root", PASSWORD)
    gpu = register_pool(db, "alice-gpu", PoolKind.REMOTE, H100_POOL, alice)
    local = register_pool(db, "operator-local")  # no owner: the operator's own
    bob = _client(app, "bob")
    never_used = bob.get(f"/pools/{gpu + 1000}")
    assert never_used.status_code == 404
    for pool_id in (gpu, local):  # someone else's reads exactly as one never used
        refused = bob.get(f"/pools/{pool_id}")
        assert refused.status_code == 404
        text = refused.get_data(as_text=True)
        assert "alice-gpu" not in text and "operator-local" not in text
        assert _main(text).replace(f"pool {pool_id} ", "pool N ") == _main(
            never_used.get_data(as_text=True)
        ).replace(f"pool {gpu + 1000} ", "pool N ")
    for path in ("/pools/0", "/pools/-1", "/pools/99999999999999999999999", "/pools/abc"):
        assert bob.get(path).status_code == 404, path
    signed_out = app.test_client().get(f"/pools/{gpu}")
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]
    assert _client(app, "alice").get(f"/pools/{gpu}").status_code == 200
    admin = _client(app, "root")
    assert "alice-gpu" in admin.get(f"/pools/{gpu}").get_data(as_text=True)
    trusted = admin.get(f"/pools/{local}").get_data(as_text=True)
    assert "The operator's own pool: its results count at once." in trusted
