"""Local pools (`sabha eval` processes) and volunteer agents on one job: shared helpers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REPO

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


def eval_items(n: int) -> list[dict[str, object]]:
    """``n`` Hindi and Swahili advisory questions, each distinct."""
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


RAY_DIRS: list[str] = []


@pytest.fixture(scope="module")
def remove_ray_dirs() -> Iterator[None]:
    """Remove the Ray temp dirs ``user_env`` made (use it in modules that start Ray)."""
    yield
    for folder in RAY_DIRS:
        shutil.rmtree(folder, ignore_errors=True)


def user_env(root: Path, name: str, database_url: str, **extra: str) -> dict[str, str]:
    """A user's environment: own HOME and Ray temp dir (so each pool has its own Ray)."""
    ray_tmp = tempfile.mkdtemp(prefix=f"ray-{name}-", dir="/tmp")  # Unix sockets: short paths
    RAY_DIRS.append(ray_tmp)
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


def sabha_ok(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``sabha`` CLI in ``env``; it must succeed."""
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


def read_scores(database_url: str) -> dict[tuple[str, str, str], float]:
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text('SELECT metric, breakdown, "group", value FROM score')
        ).all()
    engine.dispose()
    return {(m, b, g): v for m, b, g, v in rows}


def read_runs(database_url: str) -> list[tuple[int, str, str]]:
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


def check_every_shard_counted_once(database_url: str, expected: int) -> None:
    """One accepted run per shard; the outputs that count cover ``expected`` items once each."""
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
    assert tuple(counted) == (items, items) == (expected, expected)
