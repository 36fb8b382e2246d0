"""The agent leases in batches and long-polls: new work reaches an idle agent at once.

A real ``sabha worker run`` process (stand-in engine) against the platform
under gunicorn; and an agent against a platform without batch leasing (an
older one, simulated by answering 404 to the batch call), which it leases
from one shard a call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from apitools import api_settings, pool_credential
from pooltools import Platform, agent, job_done, prepare_job, rows, stop_agent, wait_for
from sqlalchemy.engine import Engine
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from sabha.platform.app import create_app
from sabha.workers.agent import Agent, AgentOptions
from sabha.workers.platform_client import HttpPlatformClient
from sabha.workers.spool import Spool
from sabha.workers.standin import StandInEngine

pytestmark = pytest.mark.postgresql


def test_an_idle_agent_gets_a_new_job_at_once_and_stops_promptly(
    db: Engine, tmp_path: Path
) -> None:
    platform = Platform(db, tmp_path, lease_seconds=300)
    platform.start()
    credential = pool_credential(db, "asha")
    worker = agent(platform.url, credential, "asha", tmp_path, 0.001)
    try:
        wait_for(
            "the agent to register",
            lambda: rows(db, "SELECT count(*) FROM pool")[0][0] == 1,
            60,
            worker,
        )
        log = tmp_path / "agent-asha.log"
        wait_for(
            "the agent to wait for work", lambda: "Waiting: no shard" in log.read_text(), 60, worker
        )
        time.sleep(1.0)  # well into a long-poll
        prepare_job(db, tmp_path, items=8, shard_size=2)  # its shards are queued as it returns
        created = time.monotonic()
        wait_for(
            "a lease", lambda: rows(db, "SELECT count(*) FROM shard_run")[0][0] > 0, 10, worker
        )
        leased_after = time.monotonic() - created
        wait_for("the job to be done", lambda: job_done(db), 60, worker)
        assert leased_after < 1.5, leased_after  # the idle poll was 2 s (10 s for a worker)
        time.sleep(1.0)  # in a long-poll again
        began = time.monotonic()
        assert stop_agent(worker) in (0, 130)
        assert time.monotonic() - began < 5.0  # Ctrl-C ends the long-poll, it does not sit it out
        assert "the platform hands some over as soon as it arrives" in log.read_text()
    finally:
        stop_agent(worker)
        platform.stop()


class _OlderPlatform:
    """The app as a 1.1 platform would answer: no batch leasing (404), every call counted."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.calls: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/api/v1/leases/batch":
            return Response("Not Found", status=404)(environ, start_response)
        return self.app(environ, start_response)


def test_an_agent_leases_one_shard_a_call_from_a_platform_without_batch_leasing(
    db: Engine, tmp_path: Path
) -> None:
    settings = api_settings(db, tmp_path, replication_new_pool_shards=0, replication_fraction=0.0)
    prepare_job(db, tmp_path, items=8, shard_size=2)
    older = _OlderPlatform(
        create_app(settings.model_copy(update={"replication_audit_jobs": False}))
    )
    server = make_server("127.0.0.1", 0, older, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client_id, secret = pool_credential(db, "asha")
        client = HttpPlatformClient(
            f"http://127.0.0.1:{server.server_port}", client_id, secret, retry_seconds=10
        )
        options = AgentOptions(
            pool_name="asha-pool", poll_seconds=0.1, exit_when_idle=True, idle_seconds=1
        )
        summary = Agent(client, lambda *_: StandInEngine(), Spool(tmp_path / "s"), options).run()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert summary.leased == 4 and summary.posted == 4 and not summary.refused
    assert older.calls.count("/api/v1/leases/batch") == 1  # asked once, then never again
    assert older.calls.count("/api/v1/leases") >= 5  # one shard a call, then none left
    assert job_done(db)
