"""A thousand volunteer pools against two platform processes over one PostgreSQL, on loopback.

Creates a PostgreSQL database of its own (``sabha_thousand_<pid>``, dropped at
the end) next to the one ``--url`` names, migrates it, registers a synthetic
benchmark (``synthetic.py``) and enough jobs of it (one per model) for the
run, and ``--pools`` volunteers, each with the volunteer role and a pool
credential of their own. Then it starts two platforms (two gunicorn masters
with ``infra/gunicorn.conf.py`` on two ports: two stateless web processes over
one database, as two machines behind a load balancer would be) and simulates
the pools in one asyncio process: each pool fetches a worker token
(``/oauth/token``), registers, and then leases a shard, "works" on it for
``--work-seconds`` (an ``asyncio.sleep``, ±20%; a heartbeat every third of
the lease as the agent does, at most every minute), posts the answers the
stand-in engine (``workers/standin.py``) gives, and leases again. The pools
start spread over one work time, so the load is steady. At the end every pool
still working hands its lease back, as an agent stopped with Ctrl-C does.

The verification policy is the shipped one: every pool is new, so each
result waits for a replica from another owner's pool, and a pool may have
at most ``SABHA_REPLICATION_NEW_POOL_SHARDS`` results waiting.

Printed: the machine's load at the start; requests by kind, their rates and
their client-side latencies (p50, p95, p99, max; leases and result posts
separately, each timed from sending to the last byte of the answer); errors by
status; the CPU time of the platform's processes, of PostgreSQL's backends for
this database and of the simulation; the database's commits and rows written
(``pg_stat_database``, ``pg_stat_user_tables``) per posted result; and
"nothing lost": every result the platform acknowledged is in the database once
with all its items, no shard had two leases at once, and every lease the pools
were given was posted, handed back or is accounted for.

    .venv/bin/python benchmarks/thousand_pools.py [--pools 1000] [--seconds 60]
        [--work-seconds 20] [--shard-size 16] [--server-workers N]
        [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Goal: leases and result posts with p99 < 100 ms, nothing lost.

The lease and the result post are each one small function (``lease_shard``,
``post_result``), so the batch calls can replace them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import sqlalchemy as sa
from processes import stop_groups
from settings_changed import NO_RATE_LIMITS, announce
from synthetic import write_benchmark

from sabha.platform.wire import (
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    EngineInfo,
    LeaseRelease,
    LeaseToken,
    ShardLease,
    ShardResult,
)
from sabha.workers.standin import stand_in_results

REPO = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL_P99_MS = 100.0
CHANGED = {**NO_RATE_LIMITS, "SABHA_PASSWORD_HASHING": "fast-insecure-for-tests"}
WHY = (
    "every pool shares one loopback address, and the shipped limits allow one address 600 "
    "requests and 30 token requests a minute; the cheapest Argon2 makes 1,000 pool secrets "
    "in seconds (a real pool's token request costs one strong Argon2 check every 15 minutes)"
)
LANGUAGES = ["hi-Deva", "ta-Taml", "sw-Latn", "yo-Latn"]
ITEMS_PER_JOB = 512
HEARTBEAT_SECONDS = 60.0  # the agent's most time between heartbeats
IDLE_POLL_SECONDS = 2.0  # an idle pool asks again after this long
RESULT_STATUSES = ("accepted", "submitted", "late")


@dataclass
class Pool:
    """One simulated volunteer pool: its credential and the platform it talks to."""

    number: int
    client_id: str
    secret: str
    server: str
    token: str = ""


@dataclass
class Tally:
    """What the simulation saw, per kind of request and per lease."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    window: tuple[float, float] = (0.0, math.inf)  # monotonic: latencies timed only within
    posted_in_window: int = 0
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    leased: dict[int, tuple[int, int]] = field(default_factory=dict)  # run -> (shard, items)
    acknowledged: dict[int, int] = field(default_factory=dict)  # run -> items posted
    released: set[int] = field(default_factory=set)
    unanswered_leases: int = 0  # lease requests that got no answer (a lease may exist)
    unacknowledged: set[int] = field(default_factory=set)  # results posted without a receipt
    empty_leases: int = 0
    problems: list[str] = field(default_factory=list)  # the first few refusals' bodies


@dataclass
class Seeded:
    """The database the run uses and the pools' credentials."""

    url: str
    database: str
    jobs: int
    shards: int
    credentials: list[tuple[str, str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def seed(
    url: str, root: Path, pools: int, shards: int, shard_size: int, label: str | None = None
) -> Seeded:
    """A fresh database next to ``url`` with ``shards`` queued shards and ``pools`` credentials."""
    from sabha.platform.benchmarks import load_benchmark_file
    from sabha.platform.catalog import add_model
    from sabha.platform.db import make_engine, session_scope, upgrade_database
    from sabha.platform.domain import Role
    from sabha.platform.services.accounts import create_pool_credential, create_user
    from sabha.platform.services.benchmarks import register_benchmark
    from sabha.platform.services.queue import create_job

    database = f"sabha_thousand_{label or os.getpid()}"
    admin = _admin(url)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    own = sa.engine.make_url(url).set(database=database).render_as_string(hide_password=False)
    engine = make_engine(own)
    upgrade_database(engine)
    per_job = max(1, ITEMS_PER_JOB // shard_size)
    items = [
        {
            "id": f"{tag}-{i:04d}",
            "language": tag,
            "split": "test",
            "input": {"question": f"Swali la {i} kuhusu mvua na shamba katika {tag}"},
            "reference": f"Jibu {i}: panda mwanzoni mwa mvua.",
        }
        for i in range(per_job * shard_size // len(LANGUAGES) + 1)
        for tag in LANGUAGES
    ][: per_job * shard_size]
    path = write_benchmark(root / "benchmark", "thousand", "A thousand pools", LANGUAGES, items)
    jobs = math.ceil(shards / per_job)
    credentials = []
    with session_scope(engine) as session:
        benchmark, _ = register_benchmark(session, load_benchmark_file(path), root / "artifacts")
        for n in range(jobs):
            model = add_model(session, f"model-{n:04d}", repo_id=f"org/m{n}", revision="a" * 40)
            create_job(session, model, benchmark, shard_size)
        for n in range(pools):
            user = create_user(session, f"donor{n:04d}", roles=[Role.VOLUNTEER])
            credential, secret = create_pool_credential(session, user, "thousand")
            credentials.append((credential.client_id, secret))
    with engine.connect() as connection:
        total = int(connection.execute(sa.text("SELECT count(*) FROM shard")).scalar_one())
    engine.dispose()
    return Seeded(own, database, jobs, total, credentials)


def drop(url: str, database: str) -> None:
    """Drop the run's database (after its connections are gone)."""
    admin = _admin(url)
    with admin.connect() as connection:
        connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": database},
        )
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))
    admin.dispose()


# -- the platform: two gunicorn masters over one database -----------------------------------


def start_platforms(
    url: str, root: Path, count: int, workers: int | None, lease_seconds: int | None
) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """``count`` gunicorns with the shipped config, one port each, sharing ``url``."""
    env = {
        **os.environ,
        **CHANGED,
        "SABHA_DATA_DIR": str(root / "data"),
        "SABHA_DATABASE_URL": url,
        "SABHA_SECRET_KEY": os.urandom(32).hex(),  # one key for every process, as in production
    }
    if workers:
        env["SABHA_WORKERS"] = str(workers)
    if lease_seconds:
        env["SABHA_LEASE_SECONDS"] = str(lease_seconds)
    servers, processes = [], []
    for n in range(count):
        port = _free_port()
        log = (root / f"gunicorn{n}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(REPO / "infra" / "gunicorn.conf.py")],
                cwd=REPO,
                env={**env, "SABHA_BIND": f"127.0.0.1:{port}"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        servers.append(f"http://127.0.0.1:{port}")
    import requests

    deadline = time.monotonic() + 90
    for server, process in zip(servers, processes, strict=True):
        while True:
            try:
                requests.get(f"{server}/api/v1/benchmarks", timeout=5).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    stop_groups(processes)
                    raise SystemExit(f"gunicorn did not start; see {root}/gunicorn*.log") from None
                time.sleep(0.2)
    return processes, servers


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def platform_cpu(masters: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds of the gunicorn masters and their workers so far."""
    found = []
    for master in masters:
        process = psutil.Process(master.pid)
        found += [process, *process.children(recursive=True)]
    return _cpu_seconds(found)


def database_cpu(admin_url: str, database: str) -> float:
    """CPU seconds of PostgreSQL's backends serving ``database`` so far (they live as long as
    the platforms' connection pools)."""
    admin = _admin(admin_url)
    with admin.connect() as connection:
        pids = connection.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": database}
        ).scalars()
        found = []
        for pid in pids:
            try:
                found.append(psutil.Process(pid))
            except psutil.Error:
                continue
    admin.dispose()
    return _cpu_seconds(found)


def database_counters(url: str) -> dict[str, int]:
    """Commits and rows written in this database, and rows written per table, so far."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
        ).one()
        counters = dict(row._mapping)
        for name, written in connection.execute(
            sa.text("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables")
        ):
            counters[f"table:{name}"] = int(written)
    engine.dispose()
    return {key: int(value) for key, value in counters.items()}


_ACCESS = re.compile(
    r'"POST /api/v1/leases(?:/\d+/(heartbeat|result|release))? [^"]*" (\d+) \S+ (\d+)'
)


def server_times(root: Path) -> dict[str, list[float]]:
    """Milliseconds gunicorn took for each lease-protocol request of the whole run, by kind
    (its access logs: ``%(D)s``, from reading the request to sending the answer)."""
    times: dict[str, list[float]] = defaultdict(list)
    for log in root.glob("gunicorn*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if match := _ACCESS.search(line):
                times[match.group(1) or "lease"].append(int(match.group(3)) / 1000)
    return times


# -- one pool's calls --------------------------------------------------------------------------


async def _call(
    http: aiohttp.ClientSession,
    tally: Tally,
    kind: str,
    url: str,
    pool: Pool,
    body: bytes | None = None,
) -> tuple[int, bytes] | None:
    """POST ``body`` (JSON) with the pool's token; the status and body, or None (no answer)."""
    headers = {
        "Authorization": f"Bearer {pool.token}",
        PROTOCOL_HEADER: PROTOCOL_VERSION,
        "User-Agent": "sabha-thousand-pools",
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    began = time.perf_counter()
    timed = tally.window[0] <= time.monotonic() < tally.window[1] or kind == "release"
    try:
        async with http.post(url, data=body, headers=headers) as response:
            answer = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.answers[(kind, type(exc).__name__)] += 1
        return None
    if timed:
        tally.latencies[kind].append((time.perf_counter() - began) * 1000)
    tally.answers[(kind, str(status))] += 1
    if status >= 400 and len(tally.problems) < 10:
        tally.problems.append(f"{kind} {status}: {answer[:300].decode(errors='replace')}")
    return status, answer


async def lease_shard(http: aiohttp.ClientSession, tally: Tally, pool: Pool) -> ShardLease | None:
    """``POST /api/v1/leases``: one shard, or None (no work now, or no answer)."""
    answer = await _call(http, tally, "lease", f"{pool.server}/api/v1/leases", pool)
    if answer is None:
        tally.unanswered_leases += 1
        return None
    status, body = answer
    if status != 200:
        tally.empty_leases += status == 204
        return None
    lease = ShardLease.model_validate_json(body)
    tally.leased[lease.run_id] = (lease.shard_id, len(lease.requests))
    return lease


async def post_result(
    http: aiohttp.ClientSession, tally: Tally, pool: Pool, lease: ShardLease, seconds: float
) -> bool:
    """``POST /api/v1/leases/<run>/result``: the stand-in engine's answers; True once
    acknowledged (retried like the agent, it is idempotent)."""
    result = ShardResult(
        run_id=lease.run_id,
        token=lease.token,
        results=stand_in_results(lease.requests, lease.decoding),
        executed_on=EngineInfo(host=f"pool{pool.number}", device="stand-in", vllm="none"),
        engine_seconds=seconds,
    )
    body = result.model_dump_json().encode()
    url = f"{pool.server}/api/v1/leases/{lease.run_id}/result"
    for attempt in range(4):
        answer = await _call(http, tally, "result", url, pool, body)
        if answer is not None and answer[0] == 200:
            tally.acknowledged[lease.run_id] = len(result.results)
            tally.posted_in_window += tally.window[0] <= time.monotonic() < tally.window[1]
            tally.unacknowledged.discard(lease.run_id)
            return True
        if answer is not None and answer[0] < 500 and answer[0] != 429:
            break  # refused for good
        tally.unacknowledged.add(lease.run_id)
        await asyncio.sleep(0.5 * 2**attempt)
    return False


async def _heartbeat(
    http: aiohttp.ClientSession, tally: Tally, pool: Pool, lease: ShardLease
) -> None:
    body = LeaseToken(token=lease.token).model_dump_json().encode()
    url = f"{pool.server}/api/v1/leases/{lease.run_id}/heartbeat"
    await _call(http, tally, "heartbeat", url, pool, body)


async def _release(
    http: aiohttp.ClientSession, tally: Tally, pool: Pool, lease: ShardLease
) -> None:
    body = LeaseRelease(token=lease.token, reason="the simulation ended").model_dump_json()
    url = f"{pool.server}/api/v1/leases/{lease.run_id}/release"
    answer = await _call(http, tally, "release", url, pool, body.encode())
    if answer is not None and answer[0] == 200:
        tally.released.add(lease.run_id)


async def _connect(http: aiohttp.ClientSession, tally: Tally, pool: Pool) -> None:
    """The pool's worker token and its registration (before the measured time)."""
    began = time.perf_counter()
    async with http.post(
        f"{pool.server}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "worker"},
        headers={"Authorization": aiohttp.encode_basic_auth(pool.client_id, pool.secret)},
    ) as response:
        response.raise_for_status()
        pool.token = (await response.json())["access_token"]
    tally.latencies["token"].append((time.perf_counter() - began) * 1000)
    registration = {
        "name": f"pool-{pool.number:04d}",
        "capabilities": {
            "device": "cuda",
            "gpus": 1,
            "gpu_name": "NVIDIA H100 80GB HBM3",
            "memory_bytes_per_gpu": 85_000_000_000,
            "total_memory_bytes": 85_000_000_000,
            "memory_bytes": 76_000_000_000,
            "gpus_per_node": 1,
        },
    }
    url = f"{pool.server}/api/v1/pools"
    answer = await _call(http, tally, "register", url, pool, json.dumps(registration).encode())
    if answer is None or answer[0] != 200:
        raise SystemExit(f"pool {pool.number} could not register: {answer}")


async def _run_pool(
    http: aiohttp.ClientSession,
    tally: Tally,
    pool: Pool,
    work_seconds: float,
    start: float,
    end: float,
    rng: random.Random,
) -> None:
    """Lease, work, post, repeat until ``end``; a lease held at ``end`` is handed back."""
    await asyncio.sleep(max(0.0, start + rng.uniform(0, work_seconds) - time.monotonic()))
    while time.monotonic() < end:
        lease = await lease_shard(http, tally, pool)
        if lease is None:
            await asyncio.sleep(IDLE_POLL_SECONDS)
            continue
        seconds = work_seconds * rng.uniform(0.8, 1.2)
        done = time.monotonic() + seconds
        span = (lease.expires_at.timestamp() - time.time()) / 3
        beat = min(HEARTBEAT_SECONDS, max(1.0, span))
        while (now := time.monotonic()) < min(done, end):
            await asyncio.sleep(min(beat, done - now, end - now))
            if time.monotonic() < min(done, end):
                await _heartbeat(http, tally, pool, lease)
        if time.monotonic() >= end and time.monotonic() < done:
            await _release(http, tally, pool, lease)
            return
        await post_result(http, tally, pool, lease, seconds)


async def simulate(
    servers: list[str],
    credentials: list[tuple[str, str]],
    warmup: float,
    seconds: float,
    work_seconds: float,
    measure: Callable[[], dict[str, Any]],
) -> tuple[Tally, dict[str, Any], dict[str, Any]]:
    """Every pool connects, then works for ``warmup`` and ``seconds`` more (the measured
    window); returns the tally and what ``measure`` said at the window's two ends."""
    pools = [
        Pool(n, client_id, secret, servers[n % len(servers)])
        for n, (client_id, secret) in enumerate(credentials)
    ]
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        gate = asyncio.Semaphore(32)

        async def connect(pool: Pool) -> None:
            async with gate:
                await _connect(http, tally, pool)

        await asyncio.gather(*(connect(pool) for pool in pools))
        rng = random.Random(16)
        start = time.monotonic()
        tally.window = (start + warmup, start + warmup + seconds)

        async def at_edges() -> list[dict[str, Any]]:
            marks = []
            for edge in tally.window:
                await asyncio.sleep(edge - time.monotonic())
                marks.append(await asyncio.to_thread(measure))
            return marks

        first, last = (
            await asyncio.gather(
                at_edges(),
                *(
                    _run_pool(
                        http,
                        tally,
                        pool,
                        work_seconds,
                        start,
                        tally.window[1],
                        random.Random(rng.random()),
                    )  # fmt: skip
                    for pool in pools
                ),
            )
        )[0]
    return tally, first, last


# -- what the database says --------------------------------------------------------------------


@dataclass
class Check:
    """One "nothing lost" check: its name, whether it held, and what was found."""

    name: str
    held: bool
    found: str


def check_nothing_lost(url: str, tally: Tally, pools: int) -> list[Check]:
    """Compare what the pools were told with what the database holds."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        runs = {
            run_id: (status, outputs, distinct)
            for run_id, status, outputs, distinct in connection.execute(
                sa.text(
                    "SELECT r.id, r.status, count(o.id), count(DISTINCT o.item_id) "
                    "FROM shard_run r LEFT JOIN output o ON o.shard_run_id = r.id "
                    "GROUP BY r.id, r.status"
                )
            )
        }
        overlaps = int(
            connection.execute(
                sa.text(
                    "SELECT count(*) FROM shard_run a JOIN shard_run b "
                    "ON a.shard_id = b.shard_id AND a.id <> b.id "
                    "AND b.leased_at >= a.leased_at "
                    "AND b.leased_at < coalesce(a.finished_at, 'infinity')"
                )
            ).scalar_one()
        )
        registered = int(
            connection.execute(
                sa.text("SELECT count(*) FROM pool WHERE kind = 'remote'")
            ).scalar_one()
        )
    engine.dispose()
    missing = [
        run_id
        for run_id, items in tally.acknowledged.items()
        if run_id not in runs
        or runs[run_id][0] not in RESULT_STATUSES
        or runs[run_id][1] != items
        or runs[run_id][2] != items
    ]
    unknown = sorted(set(runs) - set(tally.leased))
    still_leased = [r for r, (status, _, _) in runs.items() if status == "leased"]
    released = [r for r, (status, _, _) in runs.items() if status == "released"]
    unaccounted = set(tally.leased) - set(tally.acknowledged) - tally.released
    return [
        Check("pools registered", registered == pools, f"{registered} of {pools}"),
        Check(
            "every acknowledged result is in the database once, all its items",
            not missing,
            f"{len(tally.acknowledged) - len(missing)} of {len(tally.acknowledged)}",
        ),
        Check("no shard leased to two pools at once", overlaps == 0, f"{overlaps} overlaps"),
        Check(
            "every run in the database was a lease a pool received",
            not unknown and tally.unanswered_leases == 0,
            f"{len(unknown)} runs no pool heard of, {tally.unanswered_leases} lease requests "
            "without an answer (an overloaded platform: such a lease expires unused)",
        ),
        Check(
            "every lease was posted or handed back; none left leased",
            not unaccounted and not still_leased and len(released) == len(tally.released),
            f"{len(tally.acknowledged)} posted, {len(tally.released)} handed back, "
            f"{len(unaccounted)} neither, {len(still_leased)} still leased",
        ),
    ]


# -- the report ------------------------------------------------------------------------------


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def report(
    tally: Tally,
    window: float,
    pools: int,
    work_seconds: float,
    cpu: dict[str, float],
    counters: dict[str, int],
    checks: list[Check],
) -> bool:
    """Print the figures; True when the goal is met."""
    offered = pools / work_seconds
    print(
        f"offered: {pools} pools / {work_seconds:g} s a shard = {offered:.1f} shards/s "
        f"= {2 * offered:.1f} lease and result requests/s"
    )
    print(f"window: {window:.1f} s")
    print(f"{'kind':<10} {'requests':>8} {'per s':>7} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>8}")  # fmt: skip
    met = True
    for kind in ("token", "register", "lease", "heartbeat", "result", "release"):
        values = tally.latencies.get(kind, [])
        if not values:
            continue
        per_second = (
            "" if kind in ("token", "register", "release") else f"{len(values) / window:7.1f}"
        )
        p99 = _percentile(values, 0.99)
        print(
            f"{kind:<10} {len(values):>8} {per_second:>7} {statistics.median(values):7.1f} "
            f"{_percentile(values, 0.95):7.1f} {p99:7.1f} {max(values):8.1f}"
        )
        if kind in ("lease", "result"):
            met = met and p99 < GOAL_P99_MS
    answers = ", ".join(
        f"{kind} {status}: {n}" for (kind, status), n in sorted(tally.answers.items())
    )
    print(f"answers by status: {answers}")
    errors = {k: n for k, n in tally.answers.items() if k[1] not in ("200", "204")}
    print(f"errors: {sum(errors.values())}" + (f" ({errors})" if errors else ""))
    for problem in tally.problems:
        print(f"  {problem}")
    posted = tally.posted_in_window
    print(
        f"in all: {len(tally.leased)} leases ({tally.empty_leases} lease requests answered 204: "
        f"nothing for that pool now), {len(tally.acknowledged)} results acknowledged, "
        f"{len(tally.released)} leases handed back at the end; in the window: {posted} results "
        f"acknowledged ({posted / window:.1f} shards/s)"
    )
    if posted:
        print(
            f"CPU: platform {cpu['platform']:.1f} s ({cpu['platform'] / window:.2f} cores; "
            f"{1000 * cpu['platform'] / posted:.1f} ms a shard), PostgreSQL "
            f"{cpu['database']:.1f} s ({1000 * cpu['database'] / posted:.1f} ms a shard), "
            f"simulation {cpu['simulation']:.1f} s"
        )
        tables = sorted(
            ((k.split(":", 1)[1], v) for k, v in counters.items() if k.startswith("table:") and v),
            key=lambda kv: -kv[1],
        )
        rows = counters["tup_inserted"] + counters["tup_updated"] + counters["tup_deleted"]
        print(
            f"database in the window: {counters['xact_commit']} commits "
            f"({counters['xact_commit'] / posted:.1f} a posted shard), {rows} rows written "
            f"({counters['tup_inserted']} inserted, {counters['tup_updated']} updated, "
            f"{counters['tup_deleted']} deleted; {rows / posted:.1f} a posted shard); by table: "
            + ", ".join(f"{name} {n}" for name, n in tables)
        )
    for check in checks:
        print(f"{'ok  ' if check.held else 'FAIL'} {check.name}: {check.found}")
    lost = not all(check.held for check in checks)
    verdict = met and not lost
    print(
        f"leases and results p99 < {GOAL_P99_MS:.0f} ms: {'met' if met else 'NOT met'}; "
        f"nothing lost: {'yes' if not lost else 'NO'}; {'PASS' if verdict else 'FAIL'}"
    )
    return verdict


def run(args: argparse.Namespace) -> bool:
    """Seed, start the platforms, simulate, check and report; True on PASS."""
    changed = dict(CHANGED)
    if args.lease_seconds:
        changed["SABHA_LEASE_SECONDS"] = str(args.lease_seconds)
    announce(changed, WHY)
    os.environ.update(CHANGED)  # the pool secrets are made here with the same hasher
    warmup = args.warmup if args.warmup is not None else max(args.work_seconds, 5.0)
    runs = args.pools * ((warmup + args.seconds) / args.work_seconds + 1)
    root = Path(tempfile.mkdtemp(prefix="sabha-thousand-", dir="/tmp"))
    began = time.monotonic()
    seeded = seed(args.url, root, args.pools, math.ceil(runs * 1.5), args.shard_size)
    print(
        f"seeded in {time.monotonic() - began:.0f} s: {seeded.jobs} jobs, {seeded.shards} shards "
        f"of {args.shard_size} items, {args.pools} volunteers with a pool credential each"
    )
    masters: list[subprocess.Popen[bytes]] = []
    ok = False
    try:
        masters, servers = start_platforms(
            seeded.url, root, 2, args.server_workers, args.lease_seconds
        )
        workers = sum(len(psutil.Process(m.pid).children()) for m in masters)
        print(f"platforms: {len(masters)} gunicorn masters, {workers} workers in all")

        def measure() -> dict[str, Any]:
            return {
                "counters": database_counters(seeded.url),
                "platform": platform_cpu(masters),
                "database": database_cpu(args.url, seeded.database),
                "simulation": time.process_time(),
            }

        tally, first, last = asyncio.run(
            simulate(servers, seeded.credentials, warmup, args.seconds, args.work_seconds, measure)
        )
        stop_groups(masters)
        cpu = {key: last[key] - first[key] for key in ("platform", "database", "simulation")}
        counters = {k: v - first["counters"].get(k, 0) for k, v in last["counters"].items()}
        checks = check_nothing_lost(seeded.url, tally, args.pools)
        print(f"warm-up {warmup:g} s (not timed), then the measured window:")
        ok = report(tally, args.seconds, args.pools, args.work_seconds, cpu, counters, checks)
        served = server_times(root)
        print(
            "server-side (gunicorn's own time, whole run): "
            + "; ".join(
                f"{kind} p50 {statistics.median(v):.1f} ms, p99 {_percentile(v, 0.99):.1f} ms"
                for kind, v in sorted(served.items())
            )
        )
        return ok
    finally:
        stop_groups(masters)
        drop(args.url, seeded.database)
        if ok or not args.keep_logs_on_failure:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL (its server is used)")
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured time")
    parser.add_argument("--work-seconds", type=float, default=20.0, help="time a shard takes")
    parser.add_argument("--shard-size", type=int, default=16, help="items a shard")
    parser.add_argument(
        "--server-workers", type=int, help="gunicorn workers each (shipped: 2/core+1)"
    )
    parser.add_argument("--lease-seconds", type=int, help="SABHA_LEASE_SECONDS (shipped: 300)")
    parser.add_argument("--warmup", type=float, help="seconds before the window (one work time)")
    parser.add_argument("--keep-logs-on-failure", action="store_true")
    args = parser.parse_args()
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    main()
