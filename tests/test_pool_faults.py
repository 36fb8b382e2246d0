"""Faults of volunteer pools over real HTTP: agents SIGKILLed, the platform killed and restarted.

The platform is gunicorn with the shipped config on 127.0.0.1; agents are
real ``sabha worker run`` processes with the **stand-in engine**
(``--stand-in-engine``, ``workers/standin.py``: deterministic answers after a
fixed time per item, no Ray or vLLM), because a vLLM engine costs ~20 s per
start on CPU and these tests restart agents many times. What is under test is
the lease protocol, the spool and the queue's bookkeeping; the real engine in
an agent is tested in ``test_volunteer_pools.py``. Both tests compare the
job's scores with a clean run (one agent, no faults) of the same job. On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apitools import pool_credential
from pooltools import (
    Platform,
    agent,
    check_every_shard_counted_once,
    job_done,
    prepare_job,
    rows,
    scores,
    stop_agent,
    wait_for,
)
from sqlalchemy.engine import Engine

from sabha.platform.db import make_engine, upgrade_database

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]

ITEMS, SHARD_SIZE = 96, 4  # 24 shards
SECONDS_PER_ITEM = 0.25  # 1 s a shard: a lease is held well beyond an HTTP round trip


@pytest.fixture(scope="module")
def clean_scores(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], float]:
    """The job's scores from one agent that nothing disturbs."""
    root = tmp_path_factory.mktemp("clean")
    db = make_engine(f"sqlite:///{root / 'clean.db'}")
    upgrade_database(db)
    prepare_job(db, root, ITEMS, SHARD_SIZE)
    platform = Platform(db, root, lease_seconds=60)
    platform.start()
    worker = agent(platform.url, pool_credential(db, "clean"), "clean", root, SECONDS_PER_ITEM)
    try:
        wait_for("the clean run finished", lambda: job_done(db), 300, worker)
        assert stop_agent(worker) == 0
        check_every_shard_counted_once(db, ITEMS)
        result = scores(db)
    finally:
        stop_agent(worker)
        platform.stop()
        db.dispose()
    assert result
    return result


@pytest.fixture
def platform(db: Engine, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Platform]:
    prepare_job(db, tmp_path, ITEMS, SHARD_SIZE)
    served = Platform(db, tmp_path, lease_seconds=request.param)
    served.start()
    try:
        yield served
    finally:
        served.stop()


def _last_run(db: Engine) -> int:
    return int(rows(db, "SELECT coalesce(max(id), 0) FROM shard_run")[0][0])


def _statuses_since(db: Engine, run_id: int) -> list[str]:
    return [s for (s,) in rows(db, "SELECT status FROM shard_run WHERE id > :i", i=run_id)]


@pytest.mark.parametrize("platform", [5], indirect=True)  # leases of the dead come back in 5 s
def test_an_agent_sigkilled_five_times_while_holding_leases_loses_nothing(
    platform: Platform,
    db: Engine,
    tmp_path: Path,
    clean_scores: dict[tuple[str, str, str], float],
) -> None:
    credential = pool_credential(db, "asha")
    held_at_kill = []
    for _ in range(5):
        before = _last_run(db)
        worker = agent(platform.url, credential, "asha", tmp_path, SECONDS_PER_ITEM)

        def working(before: int = before) -> bool:
            statuses = _statuses_since(db, before)
            return "accepted" in statuses and "leased" in statuses

        wait_for("the agent finished a shard and held leases", working, 120, worker)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        time.sleep(0.5)  # a request the agent sent just before dying still lands
        held = _statuses_since(db, before).count("leased")
        assert held, "the agent held no lease when it was killed: nothing was tested"
        held_at_kill.append(held)
        assert not job_done(db), "the job finished before the fifth kill: make it longer"
    worker = agent(platform.url, credential, "asha", tmp_path, SECONDS_PER_ITEM)
    wait_for("the job completed after five kills", lambda: job_done(db), 300, worker)
    assert stop_agent(worker) == 0
    check_every_shard_counted_once(db, ITEMS)
    statuses = [s for (s,) in rows(db, "SELECT status FROM shard_run")]
    # The killed agents' leases expired, or their spooled results were posted after the expiry.
    assert statuses.count("expired") + statuses.count("late") >= 5, statuses
    assert not list((tmp_path / "spool-asha").glob("*.json"))  # everything posted
    assert scores(db) == clean_scores


@pytest.mark.parametrize("platform", [60], indirect=True)
def test_the_platform_killed_mid_job_gets_the_spooled_results_after_its_restart(
    platform: Platform,
    db: Engine,
    tmp_path: Path,
    clean_scores: dict[tuple[str, str, str], float],
) -> None:
    names = ("asha", "bahati")
    workers = [
        agent(platform.url, pool_credential(db, name), name, tmp_path, SECONDS_PER_ITEM)
        for name in names
    ]
    spools = [tmp_path / f"spool-{name}" for name in names]

    def working() -> bool:
        statuses = _statuses_since(db, 0)
        return statuses.count("accepted") >= 4 and "leased" in statuses

    wait_for("the agents finished shards and held leases", working, 120, *workers)
    platform.kill()
    wait_for(
        "the agents spooled results while the platform was down",
        lambda: sum(len(list(s.glob("*.json"))) for s in spools) >= 2,
        60,
        *workers,
    )
    time.sleep(2)  # let the agents hit the dead platform a while longer
    spooled = sorted(int(p.stem) for s in spools for p in s.glob("*.json"))
    assert not job_done(db)
    on_record = dict(rows(db, "SELECT id, status FROM shard_run"))
    # Only the spools have them; a result the platform stored just before it died but never
    # answered for is in a spool too, and posting it again later changes nothing.
    assert any(on_record[run] == "leased" for run in spooled), (spooled, on_record)
    assert {on_record[run] for run in spooled} <= {"leased", "accepted"}

    platform.start()  # same port, same database
    wait_for("the job completed after the restart", lambda: job_done(db), 300, *workers)
    assert [stop_agent(w) for w in workers] == [0, 0]
    check_every_shard_counted_once(db, ITEMS)
    after = dict(rows(db, "SELECT id, status FROM shard_run"))
    assert {after[run] for run in spooled} == {"accepted"}  # posted after the restart, counted
    assert not [p for s in spools for p in s.glob("*.json")]
    assert scores(db) == clean_scores
