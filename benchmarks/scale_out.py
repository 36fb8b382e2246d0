"""Scale-out of volunteer pools: one platform over HTTP, 1, 2, 4 and 8 pools on one job.

The platform is gunicorn with the shipped config (``infra/gunicorn.conf.py``)
on 127.0.0.1; each pool is a real ``sabha worker run`` process with the
stand-in engine (``--stand-in-engine SECONDS``, ``workers/standin.py``: a
fixed latency per item, no Ray or vLLM), so the figure measures what the
platform and the lease protocol add, not a model. The job is the
kisan-advisory test split (108 items), or with ``--items N`` a synthetic
benchmark of N items (``synthetic.py``), in shards of ``--shard-size``. For
each N the agents are started and registered first, then the job is created,
and the time runs from its creation until every shard has an accepted run and
the job is scored. Each run also says when the first shard was leased and the
last result stored, so the fixed costs (an idle agent's poll before the first
lease, scoring after the last result) show apart from the shards' own time,
and how many result posts (batches and single posts) the platform answered.

Replication is off (``SABHA_REPLICATION_NEW_POOL_SHARDS=0``) so each shard is
run once, and rate limits are off: the shipped per-token write limit (60 a
minute) would hold each pool to about 20 shards a minute.
``--max-results-per-post 1`` sets ``SABHA_MAX_RESULTS_PER_POST=1`` on the
platform, so agents post one result per call (as before protocol 1.2), for
comparison.

    .venv/bin/python benchmarks/scale_out.py [--pools 1 2 4 8] [--seconds-per-item 1.0]
        [--shard-size 1] [--items N] [--max-results-per-post N]
        [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Goal: 8 pools finish the job >= 7x faster than 1 with 0.25 s shards.
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
from datetime import UTC, datetime
from pathlib import Path

import requests
import sqlalchemy as sa
from processes import stop_groups  # noqa: E402
from settings_changed import NO_RATE_LIMITS, NO_VERIFICATION, announce  # noqa: E402
from synthetic import write_benchmark  # noqa: E402

CHANGED = {**NO_VERIFICATION, **NO_RATE_LIMITS}
GOAL = 7.0

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
        if args.items:
            source = _synthetic_benchmark(root, args.items)
        else:
            source = next(p for p in starter_benchmark_paths() if "kisan" in p.name)
        with session_scope(engine) as session:
            benchmark, _ = register_benchmark(
                session, load_benchmark_file(source), settings.resolved_artifacts_dir
            )
            model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
            start, created = time.monotonic(), datetime.now(UTC)
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
        first, last_start, last = _timeline(engine, created)
        print(
            f"{pools} pool(s): {elapsed:6.1f} s for {shards} shards ({used} pools took work): "
            f"first lease after {first:.1f} s (the last pool's first after {last_start:.1f} s), "
            f"last result at {last:.1f} s "
            f"({shards / max(last - first, 1e-9):.1f} shards/s between), "
            f"scored {elapsed - last:.1f} s later; {_posts(root / 'gunicorn.log')}"
        )
        finished = True
        return elapsed
    finally:
        stop_groups(agents, signal.SIGINT)  # Ctrl-C: each agent hands back its leases
        stop_groups([server])
        engine.dispose()
        if finished:  # else keep the logs
            shutil.rmtree(root, ignore_errors=True)


def _synthetic_benchmark(root: Path, items: int) -> Path:
    """A generation benchmark of ``items`` short Hindi and Swahili questions."""
    rows = [
        {
            "id": f"q-{i:06d}",
            "language": "hi-Deva" if i % 2 else "sw-Latn",
            "split": "test",
            "input": {"question": f"Swali {i}: mahindi yapandwe lini shambani {i}?"},
            "reference": "Panda mahindi mvua za kwanza zikianza kunyesha.",
        }
        for i in range(items)
    ]
    return write_benchmark(root / "bench", "scale-out", "Scale-out", ["hi-Deva", "sw-Latn"], rows)


def _timeline(engine: sa.Engine, created: datetime) -> tuple[float, float, float]:
    """Seconds from the job's creation to its first lease, to the last pool's first lease
    (an idle agent asks for work every 2 s), and to its last stored result."""
    from sabha.platform.domain import as_utc

    def seconds(value: datetime | str) -> float:
        if isinstance(value, str):  # SQLite, read without the model's column types
            value = datetime.fromisoformat(value)
        return (as_utc(value) - created).total_seconds()

    with engine.connect() as connection:
        starts = connection.execute(
            sa.text("SELECT min(leased_at) FROM shard_run GROUP BY pool_id")
        ).scalars()
        firsts = [seconds(value) for value in starts]
        last = connection.execute(sa.text("SELECT max(finished_at) FROM shard_run")).scalar_one()
    return min(firsts), max(firsts), seconds(last)


def _posts(log: Path) -> str:
    """How many result posts gunicorn's access log shows: batches and single posts."""
    text = log.read_text(errors="replace")
    batches = text.count("POST /api/v1/results/batch ")
    singles = sum(
        1 for line in text.splitlines() if "POST /api/v1/leases/" in line and "/result " in line
    )
    return f"{batches} batch post(s), {singles} single post(s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds-per-item", type=float, default=1.0)
    parser.add_argument("--shard-size", type=int, default=1)
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--url", help="a PostgreSQL URL (default: a SQLite file)")
    parser.add_argument(
        "--items", type=int, help="a synthetic benchmark of this many items (default: kisan, 108)"
    )
    parser.add_argument(
        "--max-results-per-post",
        type=int,
        help="SABHA_MAX_RESULTS_PER_POST on the platform (1: one result per post)",
    )
    args = parser.parse_args()
    if args.max_results_per_post is not None:
        CHANGED["SABHA_MAX_RESULTS_PER_POST"] = str(args.max_results_per_post)
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
        verdict = "met" if ratio >= GOAL else "NOT met"
        print(f"8 pools vs 1: {ratio:.1f}x (goal >= {GOAL:g}x): {verdict}")


if __name__ == "__main__":
    main()
