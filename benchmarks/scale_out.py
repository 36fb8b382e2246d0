"""Scale-out of volunteer pools: one platform over HTTP, 1, 2, 4 and 8 pools on one job.

The platform is gunicorn with the shipped config (``infra/gunicorn.conf.py``)
on 127.0.0.1; each pool is a real ``sabha worker run`` process with the
stand-in engine (``--stand-in-engine SECONDS``, ``workers/standin.py``: a
fixed latency per item, no Ray or vLLM), so the figure measures what the
platform and the lease protocol add, not a model. The job is the
kisan-advisory test split (108 items) in shards of ``--shard-size``. For each
N the agents are started and registered first, then the job is created, and
the time runs from its creation until every shard has an accepted run and
the job is scored.

Replication is off (``SABHA_REPLICATION_NEW_POOL_SHARDS=0``) so each shard is
run once, and rate limits are off: the shipped per-token write limit (60 a
minute) would hold each pool to about 20 shards a minute.

    .venv/bin/python benchmarks/scale_out.py [--pools 1 2 4 8] [--seconds-per-item 1.0]
        [--shard-size 1] [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Goal: 8 pools finish the job >= 6x faster than 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import sqlalchemy as sa
from settings_changed import NO_RATE_LIMITS, NO_VERIFICATION, announce  # noqa: E402

CHANGED = {**NO_VERIFICATION, **NO_RATE_LIMITS}

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database(url: str | None, root: Path) -> tuple[str, sa.Engine]:
    """A fresh migrated database: a SQLite file, or a new PostgreSQL schema."""
    from sabha.platform.db import make_engine, upgrade_database

    if url is None:
        url = f"sqlite:///{root / 'scale.db'}"
    else:
        schema = f"sabha_scale_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(url)
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        url = f"{url}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    upgrade_database(engine)
    return url, engine


def _scalar(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(sql)).scalar_one())


def run(pools: int, args: argparse.Namespace) -> float:
    """Seconds ``pools`` agents take to finish the job."""
    from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
    from sabha.platform.catalog import add_model
    from sabha.platform.db import session_scope
    from sabha.platform.domain import Role
    from sabha.platform.services.accounts import create_pool_credential, create_user
    from sabha.platform.services.benchmarks import register_benchmark
    from sabha.platform.services.queue import create_job
    from sabha.platform.settings import Settings

    root = Path(tempfile.mkdtemp(prefix=f"sabha-scale-{pools}-", dir="/tmp"))
    url, engine = _database(args.url, root)
    settings = Settings(data_dir=root / "data", database_url=url)
    credentials = []
    with session_scope(engine) as session:
        for n in range(pools):
            user = create_user(session, f"donor{n}", roles=[Role.VOLUNTEER])
            credential, secret = create_pool_credential(session, user, "bench")
            credentials.append((credential.client_id, secret))
    port = _free_port()
    env = {
        **os.environ,
        "SABHA_DATA_DIR": str(root / "data"),
        "SABHA_DATABASE_URL": url,
        "SABHA_BIND": f"127.0.0.1:{port}",
        "SABHA_WORKERS": str(args.server_workers),
        "SABHA_THREADS": "8",
        **CHANGED,
    }
    log = (root / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(REPO / "infra" / "gunicorn.conf.py")],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    agents: list[subprocess.Popen[bytes]] = []
    finished = False
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/benchmarks", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(
                        f"gunicorn did not start; see {root / 'gunicorn.log'}"
                    ) from None
                time.sleep(0.2)
        for n, (client_id, secret) in enumerate(credentials):
            agent_env = {
                **os.environ,
                "SABHA_DATA_DIR": str(root / f"agent{n}"),
                "SABHA_POOL_CLIENT_ID": client_id,
                "SABHA_POOL_CLIENT_SECRET": secret,
            }
            agent_env.pop("SABHA_DATABASE_URL", None)
            agents.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "sabha.platform.cli",
                        "worker",
                        "run",
                        "--server",
                        f"http://127.0.0.1:{port}",
                        "--name",
                        f"pool{n}",
                        "--exit-when-idle",  # polls every 2 s when idle (10 s otherwise)
                        "--stand-in-engine",
                        str(args.seconds_per_item),
                    ],
                    cwd=REPO,
                    env=agent_env,
                    stdout=(root / f"agent{n}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        while _scalar(engine, "SELECT count(*) FROM pool") < pools:
            if any(a.poll() is not None for a in agents):
                raise SystemExit(f"an agent exited; see {root}/agent*.log")
            time.sleep(0.1)
        source = next(p for p in starter_benchmark_paths() if "kisan" in p.name)
        with session_scope(engine) as session:
            benchmark, _ = register_benchmark(
                session, load_benchmark_file(source), settings.resolved_artifacts_dir
            )
            model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
            start = time.monotonic()
            create_job(session, model, benchmark, args.shard_size)
        while _scalar(
            engine, "SELECT count(*) FROM shard WHERE accepted_run_id IS NULL"
        ) or not _scalar(engine, "SELECT count(*) FROM score"):
            if any(a.poll() is not None for a in agents):
                raise SystemExit(f"an agent exited; see {root}/agent*.log")
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        shards = _scalar(engine, "SELECT count(*) FROM shard")
        used = _scalar(engine, "SELECT count(DISTINCT pool_id) FROM shard_run")
        print(f"{pools} pool(s): {elapsed:6.1f} s for {shards} shards ({used} pools took work)")
        finished = True
        return elapsed
    finally:
        for agent in agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGINT)
        for agent in agents:
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        engine.dispose()
        if finished:  # else keep the logs
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds-per-item", type=float, default=1.0)
    parser.add_argument("--shard-size", type=int, default=1)
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--url", help="a PostgreSQL URL (default: a SQLite file)")
    args = parser.parse_args()
    announce(
        CHANGED, "throughput counts each shard once; a load test outruns the per-address limit"
    )
    times = {}
    for n in args.pools:
        times[n] = run(n, args)
        sys.stdout.flush()
    if 1 in times:
        for n, seconds in times.items():
            print(f"{n} pool(s): {times[1] / seconds:4.1f}x one pool")
    if 1 in times and 8 in times:
        ratio = times[1] / times[8]
        print(f"8 pools vs 1: {ratio:.1f}x (goal >= 6x): {'met' if ratio >= 6 else 'NOT met'}")


if __name__ == "__main__":
    main()
