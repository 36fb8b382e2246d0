"""Two local pools on one job: real `sabha eval` processes, each with its own Ray and vLLM.

Both pools share the job's shards through the queue; the scores equal a
single-pool run. A pool killed with SIGKILL mid-job loses nothing: its leases
expire, another run takes the shards, and nothing is counted twice. On SQLite
and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REPO, write_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.postgresql]

QUESTIONS = [
    ("hi-Deva", "गेहूँ की फसल में पहली सिंचाई कब करें?", "बुवाई के लगभग तीन सप्ताह बाद।"),
    ("hi-Deva", "धान की रोपाई के लिए पौध कितने दिन की हो?", "लगभग तीन से चार सप्ताह की।"),
    ("sw-Latn", "Ni wakati gani mzuri wa kupanda mahindi?", "Mwanzoni mwa msimu wa mvua."),
    (
        "sw-Latn",
        "Nihifadhi vipi maharagwe baada ya kuvuna?",
        "Kausha vizuri na hifadhi mahali pakavu.",
    ),
]


def _items(n: int) -> list[dict[str, object]]:
    items = []
    for i in range(n):
        language, question, reference = QUESTIONS[i % len(QUESTIONS)]
        items.append(
            {
                "id": f"p-{i:04d}",
                "language": language,
                "split": "test",
                "input": {"question": f"{question} ({i})"},
                "reference": reference,
            }
        )
    return items


_RAY_DIRS: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _remove_ray_dirs() -> Iterator[None]:
    yield
    for folder in _RAY_DIRS:
        shutil.rmtree(folder, ignore_errors=True)


def _env(root: Path, name: str, database_url: str, **extra: str) -> dict[str, str]:
    """A user's environment: own HOME and Ray temp dir (so each pool has its own Ray)."""
    ray_tmp = tempfile.mkdtemp(prefix=f"ray-{name}-", dir="/tmp")  # Unix sockets: short paths
    _RAY_DIRS.append(ray_tmp)
    env = {
        **os.environ,
        "SABHA_DATA_DIR": str(root / "data"),
        "SABHA_DATABASE_URL": database_url,
        "SABHA_SHARD_SIZE": "16",
        "HOME": str(root / f"home-{name}"),
        "RAY_TMPDIR": ray_tmp,
        "RAY_USAGE_STATS_ENABLED": "0",
        **extra,
    }
    return env


def _sabha(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sabha.platform.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _pool(env: dict[str, str], batch: int = 16) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sabha.platform.cli",
            "eval",
            "--model",
            "tiny",
            "--benchmark",
            "tiny-gen",
            "--batch-size",
            str(batch),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # SIGKILL reaches its Ray processes too
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The benchmark file and a tiny model folder, made once."""
    root = tmp_path_factory.mktemp("pools")
    bench = write_benchmark(root / "bench", _items(480), decoding={"max_tokens": 48})
    env = _env(root / "maker", "maker", f"sqlite:///{root / 'maker.db'}")
    _sabha(env, "db", "upgrade")
    _sabha(env, "models", "make-tiny", "tiny", "--seed", "5")
    yield bench, root / "maker" / "data" / "models" / "tiny"


def _prepare(env: dict[str, str], bench: Path, model: Path) -> None:
    _sabha(env, "db", "upgrade")
    _sabha(env, "benchmarks", "load", str(bench))
    _sabha(env, "models", "add", "tiny", "--path", str(model))


def _scores(database_url: str) -> dict[tuple[str, str, str], float]:
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text('SELECT metric, breakdown, "group", value FROM score')
        ).all()
    engine.dispose()
    return {(m, b, g): v for m, b, g, v in rows}


def _runs(database_url: str) -> list[tuple[int, str, str]]:
    """``(shard id, run status, pool name)`` of every shard run."""
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT r.shard_id, r.status, p.name FROM shard_run r JOIN pool p "
                "ON p.id = r.pool_id ORDER BY r.id"
            )
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _check_every_shard_counted_once(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        shards = connection.execute(
            sa.text("SELECT id, accepted_run_id, item_ids FROM shard")
        ).all()
        accepted = connection.execute(
            sa.text(
                "SELECT shard_id, count(*) FROM shard_run WHERE status = 'accepted' "
                "GROUP BY shard_id"
            )
        ).all()
        counted = connection.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT o.item_id) FROM output o "
                "JOIN shard s ON s.accepted_run_id = o.shard_run_id"
            )
        ).one()
    engine.dispose()
    assert all(accepted_run for _, accepted_run, _ in shards)
    assert {shard: n for shard, n in accepted} == {shard: 1 for shard, _, _ in shards}
    items = sum(len(json.loads(ids) if isinstance(ids, str) else ids) for _, _, ids in shards)
    assert tuple(counted) == (items, items) == (480, 480)


@pytest.fixture(scope="module")
def single_pool_scores(
    setup: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str, str], float]:
    root = tmp_path_factory.mktemp("single")
    url = f"sqlite:///{root / 'single.db'}"
    env = _env(root, "single", url)
    _prepare(env, *setup)
    _sabha(env, "eval", "--model", "tiny", "--benchmark", "tiny-gen", "--batch-size", "16")
    scores = _scores(url)
    assert scores
    return scores


def test_two_pools_share_a_job_and_score_like_one(
    setup: tuple[Path, Path],
    single_pool_scores: dict[tuple[str, str, str], float],
    database_url: str,
    tmp_path: Path,
) -> None:
    _prepare(_env(tmp_path, "prep", database_url), *setup)
    pools = [_pool(_env(tmp_path, name, database_url)) for name in ("a", "b")]
    outputs = [pool.communicate(timeout=900)[0] for pool in pools]
    assert [pool.returncode for pool in pools] == [0, 0], "\n".join(outputs)
    _check_every_shard_counted_once(database_url)
    runs = _runs(database_url)
    by_pool = {name for _, status, name in runs if status == "accepted"}
    assert len(by_pool) == 2, f"only {by_pool} took shards: {runs}"
    assert _scores(database_url) == single_pool_scores


def test_a_pool_killed_mid_job_loses_nothing(
    setup: tuple[Path, Path],
    single_pool_scores: dict[tuple[str, str, str], float],
    database_url: str,
    tmp_path: Path,
) -> None:
    _prepare(_env(tmp_path, "prep", database_url), *setup)
    victim = _pool(_env(tmp_path, "victim", database_url, SABHA_LEASE_SECONDS="10"))
    deadline = time.monotonic() + 600
    while not any(status == "accepted" for _, status, _ in _runs(database_url)):
        assert victim.poll() is None, victim.communicate()[0]
        assert time.monotonic() < deadline, "the pool never finished a shard"
        time.sleep(0.5)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    held = [shard for shard, status, _ in _runs(database_url) if status == "leased"]
    assert held, "the killed pool held no lease; nothing was tested"
    _sabha(
        _env(tmp_path, "rescuer", database_url, SABHA_LEASE_SECONDS="10"),
        "eval",
        "--model",
        "tiny",
        "--benchmark",
        "tiny-gen",
        "--batch-size",
        "16",
    )
    _check_every_shard_counted_once(database_url)
    statuses = [status for _, status, _ in _runs(database_url)]
    assert "expired" in statuses or "late" in statuses
    assert _scores(database_url) == single_pool_scores
