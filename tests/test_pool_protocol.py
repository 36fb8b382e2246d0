"""The lease protocol over HTTP on loopback: tokens, pool binding, validation, agents.

A real HTTP server (werkzeug) on 127.0.0.1 serves the app on SQLite and
PostgreSQL; agents talk to it through ``HttpPlatformClient`` with the scripted
engine standing in for vLLM (these tests are about the protocol and the
agent, not about generation).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import requests
from apitools import PROBLEM, api_settings, bearer, pool_credential
from conftest import ScriptedEngine, generation_items, write_benchmark
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from werkzeug.serving import make_server

from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Pool,
    PoolCredential,
    RunStatus,
    ScoringRun,
    Shard,
    ShardRun,
    ShardStatus,
    User,
    id_of,
)
from sabha.platform.services.accounts import revoke_pool_credential
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import create_job, lease_next_shard
from sabha.platform.services.verification import quarantine_pool
from sabha.platform.wire import (
    PROTOCOL_HEADER,
    ModelSource,
    PoolCapabilities,
    PoolRegistration,
    ShardLease,
    protocol_refusal,
)
from sabha.workers.agent import Agent, AgentOptions
from sabha.workers.platform_client import HttpPlatformClient, PlatformRefused
from sabha.workers.spool import Spool

CAPS = PoolCapabilities(device="cpu", memory_bytes=16 * 10**9).model_dump()


@pytest.fixture
def served(db: Engine, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The app on a real HTTP server on 127.0.0.1 with one job of 4 shards."""
    settings = api_settings(db, tmp_path, max_result_bytes=20_000)
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(8)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, settings.resolved_artifacts_dir)
        create_job(
            session, add_model(session, "m", repo_id="org/m", revision="a" * 40), benchmark, 2
        )
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}", "db": db}
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _token(url: str, client_id: str, secret: str) -> str:
    answer = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "worker"},
        auth=(client_id, secret),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _pool(url: str, owner: str, db: Engine) -> tuple[str, dict[str, str]]:
    client_id, secret = pool_credential(db, owner)
    headers = bearer(_token(url, client_id, secret))
    answer = requests.post(
        f"{url}/api/v1/pools",
        json={"name": f"{owner}-pool", "capabilities": CAPS},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return client_id, headers


def _runs(db: Engine) -> list[tuple[int, str]]:
    with Session(db) as session:
        return [(r.id, r.status) for r in session.exec(select(ShardRun).order_by(col(ShardRun.id)))]


def test_every_call_needs_a_valid_worker_token(served: dict[str, Any]) -> None:
    url, db = served["url"], served["db"]
    client_id, secret = pool_credential(db, "asha")
    for headers in ({}, bearer("sabha_wkr_nope_nope")):
        answer = requests.post(f"{url}/api/v1/leases", headers=headers, timeout=30)
        assert answer.status_code == 401 and answer.headers["Content-Type"] == PROBLEM
    token = _token(url, client_id, secret)
    with session_scope(db) as session:
        credential = session.exec(select(PoolCredential)).one()
        owner = session.get_one(User, credential.owner_id)
        revoke_pool_credential(session, owner, id_of(credential))
    answer = requests.post(f"{url}/api/v1/leases", headers=bearer(token), timeout=30)
    assert answer.status_code == 401
    assert _runs(db) == []


def test_a_lease_is_bound_to_its_pool(served: dict[str, Any]) -> None:
    url, db = served["url"], served["db"]
    _, asha = _pool(url, "asha", db)
    _, bahati = _pool(url, "bahati", db)
    lease = requests.post(f"{url}/api/v1/leases", headers=asha, timeout=30).json()
    body = {"token": lease["token"]}
    for action in ("heartbeat", "release"):
        answer = requests.post(
            f"{url}/api/v1/leases/{lease['run_id']}/{action}", json=body, headers=bahati, timeout=30
        )
        assert answer.status_code == 403, answer.text
        assert "another pool" in answer.json()["detail"]
    result = {
        "run_id": lease["run_id"],
        "token": lease["token"],
        "executed_on": {},
        "results": [{"item_id": r["item_id"], "text": "x"} for r in lease["requests"]],
    }
    answer = requests.post(
        f"{url}/api/v1/leases/{lease['run_id']}/result", json=result, headers=bahati, timeout=30
    )
    assert answer.status_code == 403
    assert _runs(db) == [(lease["run_id"], RunStatus.LEASED)]  # nothing changed
    answer = requests.post(
        f"{url}/api/v1/leases/{lease['run_id']}/heartbeat", json=body, headers=asha, timeout=30
    )
    assert answer.status_code == 200 and "expires_at" in answer.json()


def test_malformed_or_oversized_results_are_refused_naming_the_field(
    served: dict[str, Any],
) -> None:
    url, db = served["url"], served["db"]
    _, asha = _pool(url, "asha", db)
    lease = requests.post(f"{url}/api/v1/leases", headers=asha, timeout=30).json()
    target = f"{url}/api/v1/leases/{lease['run_id']}/result"
    good = [{"item_id": r["item_id"], "text": "x"} for r in lease["requests"]]
    base = {"run_id": lease["run_id"], "token": lease["token"], "executed_on": {}}
    cases = [
        (
            {**base, "results": [{**good[0], "num_tokens": -1}, good[1]]},
            422,
            "body.results.0.num_tokens",
        ),
        ({**base, "results": good, "surprise": 1}, 422, "body.surprise"),
        ({**base, "results": good[:1]}, 422, "body.results"),
        ({**base, "results": [{**good[0], "text": "x" * 30_000}, good[1]]}, 413, None),
    ]
    json_headers = {**asha, "Content-Type": "application/json"}
    for body, status, field in cases:
        answer = requests.post(target, data=json.dumps(body), headers=json_headers, timeout=30)
        assert answer.status_code == status, answer.text
        assert answer.headers["Content-Type"] == PROBLEM
        if field:
            assert field in [e["field"] for e in answer.json()["errors"]], answer.json()
    plain = json.dumps({**base, "results": good})  # no Content-Type
    untyped = requests.post(target, data=plain, headers=asha, timeout=30)
    assert untyped.status_code == 415 and "application/json" in untyped.json()["fix"]
    with Session(db) as session:
        assert session.exec(select(ShardRun.status)).all() == [RunStatus.LEASED]
        assert session.exec(select(Shard.accepted_run_id)).all() == [None] * 4


def test_two_agents_finish_a_job_over_http(served: dict[str, Any], tmp_path: Path) -> None:
    """Two new pools verify each other's shards; each agent says what is happening."""
    url, db = served["url"], served["db"]
    summaries = []
    said: dict[str, list[str]] = {"asha": [], "bahati": []}

    def agent(owner: str) -> None:
        client_id, secret = pool_credential(db, owner)
        client = HttpPlatformClient(url, client_id, secret, retry_seconds=10)
        options = AgentOptions(
            pool_name=f"{owner}-pool", poll_seconds=0.1, exit_when_idle=True, idle_seconds=2
        )
        summaries.append(
            Agent(
                client,
                lambda *_: ScriptedEngine(),
                Spool(tmp_path / owner),
                options,
                report=said[owner].append,
            ).run()
        )

    threads = [threading.Thread(target=agent, args=(o,)) for o in ("asha", "bahati")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(s.posted for s in summaries) >= 4 and all(not s.refused for s in summaries)
    with Session(db) as session:
        shards = session.exec(select(Shard)).all()
        assert {s.status for s in shards} == {ShardStatus.COMPLETED}
        scoring = session.exec(select(ScoringRun)).one()  # the platform scored the job
        assert set(scoring.pools) <= {"asha-pool", "bahati-pool"} and scoring.pools
    lines = said["asha"] + said["bahati"]
    assert "the next 20 verified result(s) make this pool proven" in said["asha"][1]
    assert any("waits for another volunteer's pool" in line for line in lines)
    assert any("agreed with another volunteer's run of the same shard" in line for line in lines)
    assert any(line.startswith("Leased shard") for line in said["asha"])
    # Running out of work is said once per wait (these agents exit when idle), not per poll.
    asha = said["asha"]
    waits = [i for i, line in enumerate(asha) if line.startswith("Waiting: no shard to lease")]
    leases = [i for i, line in enumerate(asha) if line.startswith("Leased shard")]
    assert 1 <= len(waits) <= len(leases) + 1  # once per wait, however many polls it took
    assert waits[-1] > leases[-1] and "leased so far, none in hand" in asha[waits[-1]]


def test_a_revoked_credential_stops_the_agent_with_a_clear_error(
    served: dict[str, Any], tmp_path: Path
) -> None:
    client = HttpPlatformClient(served["url"], "sabha_pc_unknown", "nope", retry_seconds=5)
    options = AgentOptions(pool_name="ghost", exit_when_idle=True)
    with pytest.raises(PlatformRefused, match="refused the pool credential"):
        Agent(client, lambda *_: ScriptedEngine(), Spool(tmp_path / "s"), options).run()


def test_a_quarantined_pool_is_forbidden_work_with_the_reason_and_the_fix(
    served: dict[str, Any], tmp_path: Path
) -> None:
    url, db = served["url"], served["db"]
    client_id, secret = pool_credential(db, "asha")
    asha = bearer(_token(url, client_id, secret))
    registration = {"name": "asha-pool", "capabilities": CAPS}
    assert requests.post(f"{url}/api/v1/pools", json=registration, headers=asha, timeout=30).ok
    with session_scope(db) as session:
        pool = session.exec(select(Pool).where(Pool.name == "asha-pool")).one()
        quarantine_pool(session, pool, "उत्तर दूसरे पूल से मेल नहीं खाते")  # any script
    answer = requests.post(f"{url}/api/v1/leases", headers=asha, timeout=30)
    assert answer.status_code == 403 and answer.headers["Content-Type"] == PROBLEM
    problem = answer.json()
    assert problem["type"] == "urn:sabha:problem:pool-quarantined"
    assert "quarantined" in problem["detail"] and "उत्तर दूसरे पूल" in problem["detail"]
    assert "reinstate" in problem["fix"]
    assert _runs(db) == []
    client = HttpPlatformClient(url, client_id, secret)
    options = AgentOptions(pool_name="asha-pool", exit_when_idle=True)
    with pytest.raises(PlatformRefused, match="quarantined") as refused:
        Agent(client, lambda *_: ScriptedEngine(), Spool(tmp_path / "s"), options).run()
    assert refused.value.status == 403 and "reinstate" in str(refused.value)


def test_results_are_settled_by_the_apps_replication_policy(db: Engine, tmp_path: Path) -> None:
    """An app told not to replicate accepts a new pool's result at once (not the env default)."""
    settings = api_settings(db, tmp_path, replication_new_pool_shards=0, replication_fraction=0.0)
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(2)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, settings.resolved_artifacts_dir)
        create_job(
            session, add_model(session, "m", repo_id="org/m", revision="a" * 40), benchmark, 2
        )
    client = create_app(settings).test_client()
    client_id, secret = pool_credential(db, "asha")
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "worker"},
        auth=(client_id, secret),
    ).get_json()["access_token"]
    headers = bearer(token)
    client.post("/api/v1/pools", json={"name": "asha-pool", "capabilities": CAPS}, headers=headers)
    lease = client.post("/api/v1/leases", headers=headers).get_json()
    result = {
        "run_id": lease["run_id"],
        "token": lease["token"],
        "executed_on": {},
        "results": [{"item_id": r["item_id"], "text": "x"} for r in lease["requests"]],
    }
    answer = client.post(f"/api/v1/leases/{lease['run_id']}/result", json=result, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["status"] == RunStatus.ACCEPTED
    # The job's only shard is then audited (re-opened for another owner's replica)
    # before the job is scored: a proven pool never gets a job scored on its word alone.
    assert answer.get_json()["job_complete"] is False
    assert _runs(db) == [(lease["run_id"], RunStatus.SUBMITTED)]


def test_the_lease_protocol_has_its_own_budget_not_the_people_write_limit(
    db: Engine, tmp_path: Path
) -> None:
    """A busy pool's leases are not held to 2 writes a minute; its own limit holds."""
    settings = api_settings(
        db,
        tmp_path,
        rate_limits=True,
        rate_limit_write="2 per minute",
        rate_limit_worker="6 per minute",
    )
    client = create_app(settings).test_client()
    client_id, secret = pool_credential(db, "asha")
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "worker"},
        auth=(client_id, secret),
    ).get_json()["access_token"]
    headers = bearer(token)
    registered = client.post(
        "/api/v1/pools", json={"name": "asha-pool", "capabilities": CAPS}, headers=headers
    )
    assert registered.status_code in (200, 201), registered.get_json()
    # No job is queued: each lease call is answered "nothing to do", well past 2 writes;
    # a batch of results (here of a run that does not exist) counts once, on the same budget.
    codes = [client.post("/api/v1/leases", headers=headers).status_code for _ in range(3)]
    assert set(codes) == {204}
    batch = {"results": [{"run_id": 1, "token": "t", "executed_on": {}, "results": []}]}
    for _ in range(2):
        posted = client.post("/api/v1/results/batch", json=batch, headers=headers)
        assert posted.status_code == 200, posted.get_json()
        assert posted.get_json()["outcomes"][0]["refusal"]["status"] == 404
    refused = client.post("/api/v1/leases", headers=headers)
    assert refused.status_code == 429 and refused.mimetype == PROBLEM


def test_an_agent_too_old_for_the_protocol_is_told_to_upgrade_and_changes_nothing(
    served: dict[str, Any], tmp_path: Path
) -> None:
    url, db = served["url"], served["db"]
    client_id, secret = pool_credential(db, "asha")
    token = _token(url, client_id, secret)
    for version in (None, "0.9", "2.0", "one.two"):
        headers = {"Authorization": f"Bearer {token}"}
        if version is not None:
            headers[PROTOCOL_HEADER] = version
        answer = requests.post(f"{url}/api/v1/leases", headers=headers, timeout=30)
        assert answer.status_code == 426 and answer.headers["Content-Type"] == PROBLEM
        problem = answer.json()
        assert "must be upgraded" in problem["detail"] and "make setup" in problem["fix"]
    assert _runs(db) == []
    # The real agent sends its version with every call, and hears the platform out.
    client = HttpPlatformClient(url, client_id, secret, retry_seconds=5)
    client.register(PoolRegistration(name="asha-pool", capabilities=PoolCapabilities()))
    lease = client.lease()
    assert lease is not None and _runs(db) == [(lease.run_id, RunStatus.LEASED)]


def test_the_platform_serves_agents_one_minor_version_behind() -> None:
    assert protocol_refusal("1.0", platform="1.1") is None
    assert protocol_refusal("1.1", platform="1.1") is None
    assert protocol_refusal("1.2", platform="1.1") is None  # a newer agent: served
    assert "1.1 or newer" in str(protocol_refusal("1.0", platform="1.2"))
    assert "speaks 1.3" in str(protocol_refusal("1.3", platform="2.0"))
    assert "older than protocol versions" in str(protocol_refusal(None, platform="1.0"))


def test_an_agent_reads_a_newer_platforms_answers_leaving_out_what_it_does_not_know(
    served: dict[str, Any],
) -> None:
    """A platform one minor version ahead may add optional fields; the agent ignores them."""
    from unittest import mock

    url, db = served["url"], served["db"]
    client_id, secret = pool_credential(db, "asha")
    client = HttpPlatformClient(url, client_id, secret, retry_seconds=5)
    client.register(PoolRegistration(name="asha-pool", capabilities=PoolCapabilities()))
    real_send = client._send

    def newer(*args: Any, **kwargs: Any) -> Any:
        answer = real_send(*args, **kwargs)
        if isinstance(answer, dict) and "requests" in answer:
            answer["future_field"] = {"from": "1.1"}
            answer["requests"][0]["future_hint"] = "ignored"
            answer["model"]["future_source"] = "ignored"
        return answer

    with mock.patch.object(client, "_send", side_effect=newer):
        lease = client.lease()
    assert lease is not None and lease.requests and lease.model.name == "m"
    with pytest.raises(ValidationError):  # what it does know is still checked strictly
        ShardLease.model_validate({**lease.model_dump(), "run_id": "seven"})


class AgentModelSource10(BaseModel):
    """The model source of a lease as an agent of protocol 1.0 reads it (as it shipped)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    source: Literal["local", "hub"]
    path: str | None = None
    repo_id: str | None = None
    revision: str | None = None


def test_leases_keep_the_model_source_of_protocol_1_0_both_ways(db: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    (folder / "tokenizer.json").write_text("{}")
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(2)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        for model in (
            add_model(session, "hub-m", repo_id="org/m", revision="a" * 40),
            add_model(session, "local-m", path=folder),
        ):
            create_job(session, model, benchmark, 2)
    pool = register_pool(db, "here")
    sent = {}
    for _ in range(2):
        lease = lease_next_shard(db, pool)
        assert lease is not None
        sent[lease.model.source] = json.loads(lease.model_dump_json())["model"]
    assert sent["hub"] == {
        "name": "hub-m",
        "source": "hub",
        "path": None,
        "repo_id": "org/m",
        "revision": "a" * 40,
    }
    assert sent["local"] == {
        "name": "local-m",
        "source": "local",
        "path": str(folder.resolve()),
        "repo_id": None,
        "revision": None,
    }
    for model in sent.values():
        # An agent one minor version behind reads what this platform sends...
        assert AgentModelSource10.model_validate(model).model_dump() == model
        # ...and this agent reads what a 1.0 platform sent (the same five keys).
        old = AgentModelSource10.model_validate(model).model_dump(mode="json")
        assert TypeAdapter(ModelSource).validate_python(old).model_dump() == model
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TypeAdapter(ModelSource).validate_python({**sent["hub"], "path": "/elsewhere"})
    # The hub's oldest models have no owner (gpt2); rows of older databases still lease.
    legacy = {**sent["hub"], "name": "old", "repo_id": "gpt2"}
    assert TypeAdapter(ModelSource).validate_python(legacy).model_dump() == legacy
