"""Several shard results in one post (``POST /api/v1/results/batch``, protocol 1.2).

Each result of a batch is checked exactly as a single post of it is: the lease
must be the calling pool's own (another pool's is refused before its token is
looked at), the token that lease's, the items the shard's. The service
functions are tested on SQLite and PostgreSQL; the attacks over HTTP against
gunicorn with the shipped config, as a cheater with curl would send them; and
a real agent (``sabha worker run`` with the stand-in engine) against a
platform without the endpoint still finishes its job, one result per post.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from apitools import bearer, pool_credential
from pooltools import (
    Platform,
    agent,
    check_every_shard_counted_once,
    job_done,
    prepare_job,
    rows,
    stop_agent,
    wait_for,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.platform.db import session_scope
from sabha.platform.domain import Pool, PoolCredential, RunStatus
from sabha.platform.errors import NotFoundError, PermissionDenied
from sabha.platform.services.pools import (
    lease_for_credential,
    register_credential_pool,
    submit_own_results,
)
from sabha.platform.services.queue import LeaseLost, PoolNotActive, ResultRejected, SubmitOutcome
from sabha.platform.services.verification import VerificationPolicy, quarantine_pool
from sabha.platform.wire import (
    PROTOCOL_HEADER,
    EngineInfo,
    GenerationResult,
    PoolCapabilities,
    PoolRegistration,
    ShardLease,
    ShardResult,
)
from sabha.workers.spool import Spool

TRUSTING = VerificationPolicy(new_pool_shards=0, fraction=0.0, audit_jobs=False)


def _pool(db: Engine, owner: str) -> int:
    """A volunteer's registered pool; returns its credential id."""
    client_id, _ = pool_credential(db, owner)
    with Session(db) as session:
        credential = session.exec(
            select(PoolCredential).where(PoolCredential.client_id == client_id)
        ).one()
        credential_id = int(credential.id or 0)
    register_credential_pool(
        db, credential_id, PoolRegistration(name=f"{owner}-pool", capabilities=PoolCapabilities())
    )
    return credential_id


def _lease(db: Engine, credential_id: int) -> ShardLease:
    lease = lease_for_credential(db, credential_id, policy=TRUSTING)
    assert lease is not None
    return lease


def _answer(lease: ShardLease, token: str | None = None) -> ShardResult:
    return ShardResult(
        run_id=lease.run_id,
        token=lease.token if token is None else token,
        results=[GenerationResult(item_id=r.item_id, text="jibu") for r in lease.requests],
        executed_on=EngineInfo(host="h"),
    )


def _statuses(db: Engine) -> dict[int, str]:
    return {run_id: status for run_id, status in rows(db, "SELECT id, status FROM shard_run")}


def _outputs(db: Engine) -> int:
    return int(rows(db, "SELECT count(*) FROM output")[0][0])


@pytest.mark.postgresql
def test_each_result_of_a_batch_is_checked_on_its_own(db: Engine, tmp_path: Path) -> None:
    """Mixing another pool's lease (right or wrong token) into a batch stores none of it."""
    prepare_job(db, tmp_path, items=10, shard_size=2)
    asha, bahati = _pool(db, "asha"), _pool(db, "bahati")
    mine, wrong_token, foreign, stolen = (
        _lease(db, asha),
        _lease(db, asha),
        _lease(db, bahati),
        _lease(db, bahati),
    )
    batch = [
        _answer(mine),
        _answer(foreign),  # another pool's lease with its right token (stolen from its spool)
        _answer(wrong_token, "guessed"),
        _answer(stolen, "guessed"),
        _answer(mine).model_copy(update={"run_id": 999_999}),
    ]
    outcomes = submit_own_results(db, asha, batch, TRUSTING)
    assert isinstance(outcomes[0], SubmitOutcome) and outcomes[0].status == RunStatus.ACCEPTED
    assert not outcomes[0].duplicate
    assert isinstance(outcomes[1], PermissionDenied) and "another pool" in outcomes[1].message
    assert isinstance(outcomes[2], LeaseLost)
    assert isinstance(outcomes[3], PermissionDenied)
    assert isinstance(outcomes[4], NotFoundError)
    statuses = _statuses(db)
    assert statuses[mine.run_id] == RunStatus.ACCEPTED
    for lease in (wrong_token, foreign, stolen):
        assert statuses[lease.run_id] == RunStatus.LEASED
    assert _outputs(db) == 2  # the one valid result's two items
    # A replayed batch changes nothing and says so.
    again = submit_own_results(db, asha, batch, TRUSTING)
    assert isinstance(again[0], SubmitOutcome) and again[0].duplicate
    assert _statuses(db) == statuses and _outputs(db) == 2
    # The owner's own pool posts its results; the stolen token bought the cheater nothing.
    own = submit_own_results(db, bahati, [_answer(foreign), _answer(stolen)], TRUSTING)
    assert all(isinstance(o, SubmitOutcome) and not o.duplicate for o in own)


@pytest.mark.postgresql
def test_a_refused_result_leaves_the_rest_of_its_batch_stored(db: Engine, tmp_path: Path) -> None:
    prepare_job(db, tmp_path, items=6, shard_size=2)
    asha = _pool(db, "asha")
    first, second, third = (_lease(db, asha) for _ in range(3))
    short = _answer(second).model_copy(update={"results": _answer(second).results[:1]})
    outcomes = submit_own_results(db, asha, [_answer(third), short, _answer(first)], TRUSTING)
    assert isinstance(outcomes[1], ResultRejected)
    assert [o.status for o in (outcomes[0], outcomes[2]) if isinstance(o, SubmitOutcome)] == [
        RunStatus.ACCEPTED,
        RunStatus.ACCEPTED,
    ]
    assert _statuses(db)[second.run_id] == RunStatus.LEASED and _outputs(db) == 4
    # The last shard completes the job: it is scored once, and the outcome says so.
    done = submit_own_results(db, asha, [_answer(second)], TRUSTING)
    assert isinstance(done[0], SubmitOutcome) and done[0].job_complete
    assert rows(db, "SELECT status FROM job")[0][0] == "completed"
    assert rows(db, "SELECT count(*) FROM score")[0][0] > 0


@pytest.mark.postgresql
def test_a_quarantined_pool_has_every_result_of_a_batch_refused(db: Engine, tmp_path: Path) -> None:
    prepare_job(db, tmp_path, items=4, shard_size=2)
    asha = _pool(db, "asha")
    leases = [_lease(db, asha), _lease(db, asha)]
    with session_scope(db) as session:
        pool = session.exec(select(Pool).where(Pool.name == "asha-pool")).one()
        quarantine_pool(session, pool, "posted garbage")
    outcomes = submit_own_results(db, asha, [_answer(lease) for lease in leases], TRUSTING)
    assert all(isinstance(o, PoolNotActive) and "posted garbage" in o.message for o in outcomes)
    assert _outputs(db) == 0


# -- over HTTP, against gunicorn ----------------------------------------------------------


@pytest.fixture
def site(db: Engine, tmp_path: Path) -> Any:
    """gunicorn (shipped config) with a job of 5 two-item shards; batches of 3, 12 kB at most."""
    prepare_job(db, tmp_path, items=10, shard_size=2)
    platform = Platform(
        db,
        tmp_path,
        lease_seconds=300,
        SABHA_MAX_RESULTS_PER_POST="3",
        SABHA_MAX_RESULT_BYTES="12000",
    )
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


def _http_pool(
    url: str, db: Engine, owner: str, credential: tuple[str, str] | None = None
) -> dict[str, str]:
    """Register ``owner``'s pool (named ``owner``) over HTTP; returns the calls' headers."""
    client_id, secret = credential or pool_credential(db, owner)
    token = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "worker"},
        auth=(client_id, secret),
        timeout=30,
    ).json()["access_token"]
    headers = bearer(token)
    answer = requests.post(
        f"{url}/api/v1/pools",
        json={"name": owner, "capabilities": {}},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return headers


def _http_lease(url: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = requests.post(f"{url}/api/v1/leases", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _http_answer(lease: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    return {
        "run_id": lease["run_id"],
        "token": lease["token"] if token is None else token,
        "executed_on": {},
        "results": [{"item_id": r["item_id"], "text": "jibu"} for r in lease["requests"]],
    }


@pytest.mark.slow
def test_a_cheater_mixing_another_pools_lease_into_a_batch_stores_only_its_own(
    site: Platform, db: Engine
) -> None:
    url = site.url
    cheater, honest = _http_pool(url, db, "cheater"), _http_pool(url, db, "honest")
    mine = _http_lease(url, cheater)
    theirs = [_http_lease(url, honest), _http_lease(url, honest)]
    batch = {
        "results": [
            _http_answer(mine),
            _http_answer(theirs[0]),  # the honest pool's right token
            _http_answer(theirs[1], "guessed"),
        ]
    }
    target = f"{url}/api/v1/results/batch"
    answer = requests.post(target, json=batch, headers=cheater, timeout=30)
    assert answer.status_code == 200, answer.text
    outcomes = answer.json()["outcomes"]
    assert [o["run_id"] for o in outcomes] == [mine["run_id"], *(t["run_id"] for t in theirs)]
    assert outcomes[0]["outcome"] == "accepted" and outcomes[0]["receipt"]["duplicate"] is False
    for refused in outcomes[1:]:
        assert refused["outcome"] == "refused" and refused["receipt"] is None
        assert refused["refusal"]["status"] == 403
        assert "another pool's lease" in refused["refusal"]["detail"]
        assert refused["refusal"]["fix"]
    statuses = _statuses(db)
    assert statuses[mine["run_id"]] == RunStatus.ACCEPTED
    assert [statuses[t["run_id"]] for t in theirs] == [RunStatus.LEASED] * 2
    assert _outputs(db) == 2
    # Replayed: nothing counted twice.
    again = requests.post(target, json=batch, headers=cheater, timeout=30).json()["outcomes"]
    assert again[0]["outcome"] == "accepted" and again[0]["receipt"]["duplicate"] is True
    assert [o["outcome"] for o in again[1:]] == ["refused", "refused"]
    assert _statuses(db) == statuses and _outputs(db) == 2
    # A wrong token on one's own lease is told apart from the right one's.
    own = _http_lease(url, cheater)
    answer = requests.post(
        target, json={"results": [_http_answer(own, "guessed")]}, headers=cheater, timeout=30
    )
    refusal = answer.json()["outcomes"][0]["refusal"]
    assert refusal["status"] == 409 and refusal["type"] == "urn:sabha:problem:lease-lost"
    # The honest pool's results still count when it posts them.
    answer = requests.post(
        target, json={"results": [_http_answer(t) for t in theirs]}, headers=honest, timeout=30
    )
    assert [o["outcome"] for o in answer.json()["outcomes"]] == ["accepted", "accepted"]


@pytest.mark.slow
def test_a_batch_too_large_or_malformed_is_refused_whole_naming_the_field(
    site: Platform, db: Engine
) -> None:
    url = site.url
    headers = _http_pool(url, db, "asha")
    leases = [_http_lease(url, headers) for _ in range(4)]
    good = [_http_answer(lease) for lease in leases]
    bad_item = {**good[1], "results": [{**good[1]["results"][0], "num_tokens": -1}]}
    huge = {**good[0], "results": [{**r, "text": "x" * 7_000} for r in good[0]["results"]]}
    cases = [
        ({"results": good}, 422, "body.results"),  # 4 > SABHA_MAX_RESULTS_PER_POST=3
        ({"results": [good[0], good[1], good[0]]}, 422, "body.results.2.run_id"),
        ({"results": [good[0], bad_item]}, 422, "body.results.1.results.0.num_tokens"),
        ({"results": [good[0]], "surprise": 1}, 422, "body.surprise"),
        ({"results": []}, 422, "body.results"),
        ({"results": [good[0], {**good[1], "run_id": "seven"}]}, 422, "body.results.1.run_id"),
        ({"results": [huge]}, 413, None),  # the whole body over SABHA_MAX_RESULT_BYTES
    ]
    json_headers = {**headers, "Content-Type": "application/json"}
    target = f"{url}/api/v1/results/batch"
    for body, status, field in cases:
        answer = requests.post(target, data=json.dumps(body), headers=json_headers, timeout=30)
        assert answer.status_code == status, (body.keys(), answer.text)
        assert answer.headers["Content-Type"] == "application/problem+json"
        if field:
            problem = answer.json()
            assert field in [e["field"] for e in problem["errors"]], problem
            assert all(e["fix"] for e in problem["errors"])
    untyped = requests.post(target, data=json.dumps({"results": good[:1]}), headers=headers)
    assert untyped.status_code == 415
    too_old = requests.post(
        target, json={"results": good[:1]}, headers={**headers, PROTOCOL_HEADER: "1.0"}
    )
    assert too_old.status_code == 426
    anonymous = requests.post(target, json={"results": good[:1]}, timeout=30)
    assert anonymous.status_code == 401
    assert set(_statuses(db).values()) == {RunStatus.LEASED} and _outputs(db) == 0


OLD_PLATFORM = '''
"""The platform as it was before protocol 1.2: no batch endpoint (404 as for any unknown path)."""
import json

from sabha.platform.wsgi import app as platform

NOT_FOUND = json.dumps(
    {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "Not found."}
).encode()


def app(environ, start_response):
    if environ.get("PATH_INFO", "").startswith("/api/v1/results"):
        start_response(
            "404 NOT FOUND",
            [("Content-Type", "application/problem+json"), ("Content-Length", str(len(NOT_FOUND)))],
        )
        return [NOT_FOUND]
    return platform(environ, start_response)
'''


@pytest.mark.slow
def test_an_agent_posts_one_by_one_to_a_platform_without_batches(
    db: Engine, tmp_path: Path
) -> None:
    """A real agent (stand-in engine) against gunicorn serving a platform of protocol 1.1."""
    prepare_job(db, tmp_path, items=12, shard_size=1)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "old_platform.py").write_text(OLD_PLATFORM)
    platform = Platform(db, tmp_path, lease_seconds=60)
    platform.args = ["--pythonpath", str(tmp_path / "old"), "old_platform:app"]
    platform.start()
    credential = pool_credential(db, "volunteer")
    worker = None
    try:
        # The agent stopped before posting three finished shards: they wait in its spool.
        headers = _http_pool(platform.url, db, "old", credential)
        spool = Spool(tmp_path / "spool-old")
        for _ in range(3):
            lease = ShardLease.model_validate(_http_lease(platform.url, headers), strict=False)
            spool.put(_answer(lease))
        worker = agent(platform.url, credential, "old", tmp_path, 0.02, "--exit-when-idle")
        wait_for("the job to finish", lambda: job_done(db), 120, worker)
        assert stop_agent(worker) == 0
    finally:
        if worker is not None and worker.poll() is None:
            stop_agent(worker)
        platform.stop()
    check_every_shard_counted_once(db, 12)
    assert len(spool) == 0
    log = platform.log.read_text()
    assert log.count('"POST /api/v1/results/batch HTTP/1.1" 404') == 1, log[-3000:]  # remembered
    assert log.count('/result HTTP/1.1" 200') == 12, log[-3000:]
