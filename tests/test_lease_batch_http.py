"""``POST /api/v1/leases/batch`` under gunicorn: strangers are refused before any waiting,
bad values are refused naming the field, long-polls end as work arrives, the waiter cap holds.

The platform runs as in production (gunicorn with ``infra/gunicorn.conf.py``,
one process of 8 threads) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from apitools import PROBLEM, bearer, pool_credential
from pooltools import Platform, prepare_job, rows
from sqlalchemy.engine import Engine

from sabha.platform.wire import PROTOCOL_HEADER

pytestmark = pytest.mark.postgresql

CAPS = {"device": "cpu", "memory_bytes": 16 * 10**9}
GRANT = {"grant_type": "client_credentials", "scope": "worker"}


@pytest.fixture
def platform(db: Engine, tmp_path: Path) -> Iterator[Platform]:
    """gunicorn with 2 waiting places and 3 shards a batch at most."""
    served = Platform(
        db, tmp_path, lease_seconds=300, SABHA_LEASE_WAITERS="2", SABHA_LEASE_MAX_SHARDS="3"
    )
    served.start()
    try:
        yield served
    finally:
        served.stop()


def _pool(url: str, db: Engine, owner: str) -> dict[str, str]:
    """A registered pool's headers (bearer token, protocol version)."""
    client_id, secret = pool_credential(db, owner)
    token = requests.post(f"{url}/oauth/token", data=GRANT, auth=(client_id, secret), timeout=30)
    assert token.status_code == 200, token.text
    headers = bearer(token.json()["access_token"])
    registered = requests.post(
        f"{url}/api/v1/pools",
        json={"name": f"{owner}-pool", "capabilities": CAPS},
        headers=headers,
        timeout=30,
    )
    assert registered.status_code == 200, registered.text
    return headers


def _batch(url: str, headers: dict[str, str], body: Any, timeout: float = 30) -> Any:
    return requests.post(f"{url}/api/v1/leases/batch", json=body, headers=headers, timeout=timeout)


def test_strangers_and_bad_values_are_refused_at_once_and_change_nothing(
    platform: Platform, db: Engine, tmp_path: Path
) -> None:
    url = platform.url
    prepare_job(db, tmp_path, items=4, shard_size=1)
    asha = _pool(url, db, "asha")
    waiting = {"max_shards": 8, "wait_seconds": 20}
    strangers = [
        {},
        {"Authorization": "Bearer sabha_wkr_nope_nope"},
        {"Authorization": "Basic YTpi"},
        {"Authorization": "Bearer " + "x" * 5000},
    ]
    for headers in strangers:
        began = time.monotonic()
        answer = _batch(url, {**headers, PROTOCOL_HEADER: "1.2"}, waiting)
        assert time.monotonic() - began < 1.0
        assert answer.status_code == 401 and answer.headers["Content-Type"] == PROBLEM
    for version, status in (("1.0", 426), ("0.9", 426), ("one", 426)):
        began = time.monotonic()
        answer = _batch(url, {**asha, PROTOCOL_HEADER: version}, waiting)
        assert answer.status_code == status and time.monotonic() - began < 1.0
        assert "must be upgraded" in answer.json()["detail"]
    cases = [
        ({"max_shards": 10**9}, "body.max_shards"),
        ({"max_shards": 0}, "body.max_shards"),
        ({"max_shards": -3}, "body.max_shards"),
        ({"max_shards": 2.5}, "body.max_shards"),
        ({"max_shards": "8"}, "body.max_shards"),
        ({"max_shards": True}, "body.max_shards"),
        ({}, "body.max_shards"),
        ({"max_shards": 2, "wait_seconds": 21}, "body.wait_seconds"),
        ({"max_shards": 2, "wait_seconds": -1}, "body.wait_seconds"),
        ({"max_shards": 2, "wait_seconds": "5"}, "body.wait_seconds"),
        ({"max_shards": 2, "job_ids": []}, "body.job_ids"),
        ({"max_shards": 2, "job_ids": [2**31]}, "body.job_ids.0"),
        ({"max_shards": 2, "surprise": 1}, "body.surprise"),
    ]
    for body, field in cases:
        began = time.monotonic()
        answer = _batch(url, asha, body)
        assert time.monotonic() - began < 1.0
        assert answer.status_code == 422, (body, answer.text)
        problem = answer.json()
        assert field in [e["field"] for e in problem["errors"]], (body, problem)
    assert rows(db, "SELECT count(*) FROM shard_run")[0][0] == 0
    # A 1.1 agent is still served (one minor version behind), and gets at most 3 shards.
    answer = _batch(url, {**asha, PROTOCOL_HEADER: "1.1"}, {"max_shards": 64})
    assert answer.status_code == 200, answer.text
    assert [lease["shard_index"] for lease in answer.json()["leases"]] == [0, 1, 2]
    assert rows(db, "SELECT count(*) FROM shard_run")[0][0] == 3


def test_a_long_poll_ends_when_work_arrives_and_the_waiter_cap_holds(
    platform: Platform, db: Engine, tmp_path: Path
) -> None:
    url = platform.url
    pools = [_pool(url, db, name) for name in ("asha", "bahati", "chiku")]
    began = time.monotonic()
    empty = _batch(url, pools[0], {"max_shards": 2, "wait_seconds": 0.5})
    assert empty.status_code == 200 and empty.json() == {"leases": [], "retry_after": None}
    assert 0.5 <= time.monotonic() - began < 2.0
    # Two pools wait (the process's 2 places); a third is told at once to come back,
    # and so is a pool that already waits (while a place is free).
    answers: dict[int, tuple[float, Any]] = {}

    def wait(number: int) -> None:
        answer = _batch(url, pools[number], {"max_shards": 2, "wait_seconds": 20})
        answers[number] = (time.monotonic(), answer)

    waiters = [threading.Thread(target=wait, args=(n,)) for n in (0, 1)]
    waiters[0].start()
    time.sleep(1.0)  # asha waits now
    began = time.monotonic()
    twice = _batch(url, pools[0], {"max_shards": 2, "wait_seconds": 20})
    assert time.monotonic() - began < 1.0
    assert twice.status_code == 200 and twice.json()["leases"] == []
    assert twice.json()["retry_after"] == int(twice.headers["Retry-After"]) > 0
    waiters[1].start()
    time.sleep(1.0)  # bahati waits too: both places are taken
    began = time.monotonic()
    turned_away = _batch(url, pools[2], {"max_shards": 2, "wait_seconds": 20})
    assert time.monotonic() - began < 1.0
    assert turned_away.json() == twice.json() and "Retry-After" in turned_away.headers
    # Other calls still have threads; the work that arrives goes to the waiters at once.
    created = time.monotonic()
    prepare_job(db, tmp_path, items=4, shard_size=1)
    for thread in waiters:
        thread.join(timeout=30)
    for number in (0, 1):
        answered, answer = answers[number]
        assert answer.status_code == 200 and len(answer.json()["leases"]) == 2
        assert answered - created < 2.0, answered - created
    leased = rows(db, "SELECT shard_id FROM shard_run")
    assert len(leased) == 4 and len(set(leased)) == 4
