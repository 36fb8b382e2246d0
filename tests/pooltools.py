"""Helpers for fault tests of volunteer pools: the platform under gunicorn, agents as processes.

The platform runs as the production entry point (gunicorn with
``infra/gunicorn.conf.py``) on 127.0.0.1, so a test can SIGKILL it and start
it again on the same port; agents are real ``sabha worker run`` processes
with the stand-in engine (``workers/standin.py``: no Ray or vLLM, a fixed
latency per item), so they can be killed and restarted many times.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from apitools import api_settings
from conftest import REPO, generation_items, write_benchmark
from sqlalchemy.engine import Engine

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job

GUNICORN_CONFIG = REPO / "infra" / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_job(db: Engine, root: Path, items: int, shard_size: int) -> None:
    """One generation job (Hindi and Swahili items) on a model the stand-in never loads."""
    settings = api_settings(db, root)
    loaded = load_benchmark_file(write_benchmark(root / "bench", generation_items(items)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, settings.resolved_artifacts_dir)
        model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
        create_job(session, model, benchmark, shard_size)


class Platform:
    """The platform under gunicorn on a fixed loopback port; ``start`` again after ``kill``."""

    def __init__(self, db: Engine, root: Path, lease_seconds: int, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SABHA_DATA_DIR": str(root / "data"),  # where prepare_job put the artifacts
            "SABHA_DATABASE_URL": db.url.render_as_string(hide_password=False),
            "SABHA_BIND": f"127.0.0.1:{self.port}",
            "SABHA_WORKERS": "1",
            "SABHA_THREADS": "8",
            "SABHA_LEASE_SECONDS": str(lease_seconds),
            "SABHA_LOCAL_POOL_MEMORY_GB": "8",
            # One owner's pool is trusted here: these tests are about faults, not replicas.
            "SABHA_REPLICATION_NEW_POOL_SHARDS": "0",
            "SABHA_REPLICATION_FRACTION": "0",
            "SABHA_REPLICATION_AUDIT_JOBS": "false",
            # Limits are not what these tests are about; the lease protocol's own
            # budget (SABHA_RATE_LIMIT_WORKER) is tested in test_web_security.py.
            "SABHA_RATE_LIMITS": "false",
            **env,
        }
        self.log = root / "gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.args: list[str] = []  # more gunicorn arguments (another app: a platform of old)

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), *self.args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # SIGKILL reaches its workers too
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                requests.get(f"{self.url}/api/v1/benchmarks", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer within 60 s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def agent(
    url: str,
    credential: tuple[str, str],
    name: str,
    root: Path,
    seconds_per_item: float,
    *extra: str,
) -> subprocess.Popen[bytes]:
    """``sabha worker run`` with the stand-in engine; its spool is ``root/spool-<name>``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SABHA_DATABASE_URL", "SABHA_POOL_CLIENT_ID", "SABHA_POOL_CLIENT_SECRET")
    }
    env.update(
        SABHA_DATA_DIR=str(root / f"agent-{name}"),
        SABHA_POOL_CLIENT_ID=credential[0],
        SABHA_POOL_CLIENT_SECRET=credential[1],
    )
    with (root / f"agent-{name}.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sabha.platform.cli",
                "worker",
                "run",
                "--server",
                url,
                "--name",
                name,
                "--spool",
                str(root / f"spool-{name}"),
                "--stand-in-engine",
                str(seconds_per_item),
                *extra,
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def rows(db: Engine, sql: str, **params: Any) -> list[Any]:
    with db.connect() as connection:
        return list(connection.execute(sa.text(sql), params).all())


def wait_for(what: str, check: Callable[[], bool], seconds: float, *alive: Any) -> None:
    """Poll ``check`` every 50 ms; fail naming ``what``, or at once if a process died."""
    deadline = time.monotonic() + seconds
    while not check():
        for process in alive:
            assert process.poll() is None, f"a process exited ({process.returncode}) while {what}"
        assert time.monotonic() < deadline, f"timed out after {seconds} s: {what}"
        time.sleep(0.05)


def job_done(db: Engine) -> bool:
    """Every shard has an accepted run and the job was scored."""
    open_shards = rows(db, "SELECT count(*) FROM shard WHERE accepted_run_id IS NULL")[0][0]
    return open_shards == 0 and rows(db, "SELECT count(*) FROM score")[0][0] > 0


def scores(db: Engine) -> dict[tuple[str, str, str], float]:
    return {
        (m, b, g): v
        for m, b, g, v in rows(db, 'SELECT metric, breakdown, "group", value FROM score')
    }


def check_every_shard_counted_once(db: Engine, items: int) -> None:
    """One accepted run per shard; its outputs cover every item exactly once."""
    shards = rows(db, "SELECT id, accepted_run_id FROM shard")
    accepted = dict(
        rows(
            db,
            "SELECT shard_id, count(*) FROM shard_run WHERE status = 'accepted' GROUP BY shard_id",
        )
    )
    assert all(run for _, run in shards), shards
    assert accepted == {shard: 1 for shard, _ in shards}
    counted = rows(
        db,
        "SELECT count(*), count(DISTINCT o.item_id) FROM output o "
        "JOIN shard s ON s.accepted_run_id = o.shard_run_id",
    )[0]
    assert tuple(counted) == (items, items)


def stop_agent(process: subprocess.Popen[bytes]) -> int:
    """Ctrl-C (SIGINT) an agent and wait for it; returns its exit status."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    return process.wait(timeout=60)
