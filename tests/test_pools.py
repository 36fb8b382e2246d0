"""Two local pools on one job: real `sabha eval` processes sharing the queue.

Both pools share the job's shards through the queue; the scores equal a
single-pool run. A pool killed with SIGKILL mid-job loses nothing: its leases
expire, another run takes the shards, and nothing is counted twice. On SQLite
and PostgreSQL. The pools answer with the stand-in engine (``sabha eval
--stand-in-engine``): this is about the queue, not vLLM, whose own end-to-end
paths are the demo (test_inference.py), `sabha submit` then `sabha eval`
(test_cli_remote.py) and the volunteer agents (test_volunteer_pools.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, write_benchmark
from evaltools import (
    check_every_shard_counted_once,
    eval_items,
    read_runs,
    read_scores,
    sabha_ok,
    user_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]

ITEMS = 480
SECONDS_PER_ITEM = "0.02"  # a shard of 16 takes a third of a second: leases are held a while
EVAL = ("eval", "--model", "tiny", "--benchmark", "tiny-gen", "--batch-size", "16")


def _pool(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sabha.platform.cli", *EVAL, "--stand-in-engine", SECONDS_PER_ITEM],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("pools")
    yield write_benchmark(root / "bench", eval_items(ITEMS), decoding={"max_tokens": 48})


def _prepare(env: dict[str, str], bench: Path) -> None:
    sabha_ok(env, "db", "upgrade")
    sabha_ok(env, "benchmarks", "load", str(bench))
    sabha_ok(env, "models", "add", "tiny", "--hub", "org/tiny", "--revision", "5" * 40)


@pytest.fixture(scope="module")
def single_pool_scores(
    bench: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str, str], float]:
    root = tmp_path_factory.mktemp("single")
    url = f"sqlite:///{root / 'single.db'}"
    env = user_env(root, "single", url)
    _prepare(env, bench)
    sabha_ok(env, *EVAL, "--stand-in-engine", "0")
    scores = read_scores(url)
    assert scores
    return scores


def test_two_pools_share_a_job_and_score_like_one(
    bench: Path,
    single_pool_scores: dict[tuple[str, str, str], float],
    database_url: str,
    tmp_path: Path,
) -> None:
    _prepare(user_env(tmp_path, "prep", database_url), bench)
    pools = [_pool(user_env(tmp_path, name, database_url)) for name in ("a", "b")]
    outputs = [pool.communicate(timeout=300)[0] for pool in pools]
    assert [pool.returncode for pool in pools] == [0, 0], "\n".join(outputs)
    check_every_shard_counted_once(database_url, ITEMS)
    runs = read_runs(database_url)
    by_pool = {name for _, status, name in runs if status == "accepted"}
    assert len(by_pool) == 2, f"only {by_pool} took shards: {runs}"
    assert read_scores(database_url) == single_pool_scores


def test_a_pool_killed_mid_job_loses_nothing(
    bench: Path,
    single_pool_scores: dict[tuple[str, str, str], float],
    database_url: str,
    tmp_path: Path,
) -> None:
    _prepare(user_env(tmp_path, "prep", database_url), bench)
    victim = _pool(user_env(tmp_path, "victim", database_url, SABHA_LEASE_SECONDS="5"))
    deadline = time.monotonic() + 120
    # Killed once it has finished a shard and holds a lease on another (the agent posts
    # what waits in its spool before it leases more, so there are moments with neither).
    # Frozen first (SIGSTOP), then checked: a lease seen a moment before may have been
    # posted meanwhile; then it goes on and the next moment is tried.
    while True:
        assert victim.poll() is None, victim.communicate()[0]
        assert time.monotonic() < deadline, "the pool never finished a shard"
        if {"accepted", "leased"} <= {status for _, status, _ in read_runs(database_url)}:
            os.killpg(victim.pid, signal.SIGSTOP)
            if {"accepted", "leased"} <= {status for _, status, _ in read_runs(database_url)}:
                break
            os.killpg(victim.pid, signal.SIGCONT)
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    held = [shard for shard, status, _ in read_runs(database_url) if status == "leased"]
    assert held, "the killed pool held no lease; nothing was tested"
    sabha_ok(
        user_env(tmp_path, "rescuer", database_url, SABHA_LEASE_SECONDS="5"),
        *EVAL,
        "--stand-in-engine",
        SECONDS_PER_ITEM,
    )
    check_every_shard_counted_once(database_url, ITEMS)
    statuses = [status for _, status, _ in read_runs(database_url)]
    assert "expired" in statuses or "late" in statuses
    assert read_scores(database_url) == single_pool_scores
