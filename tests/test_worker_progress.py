"""`sabha worker run` says what it does as it works: registered, leased, posted, waiting.

A real agent process (the stand-in engine: no Ray or vLLM) against the platform
under gunicorn on 127.0.0.1, its output going to a file as it would to a pipe
or a systemd journal: each line must be there while the agent still runs, not
only at exit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from apitools import pool_credential
from pooltools import Platform, agent, prepare_job, rows, stop_agent, wait_for
from sqlalchemy.engine import Engine

pytestmark = pytest.mark.slow

ITEMS, SHARD_SIZE = 4, 2  # two shards
SECONDS_PER_ITEM = 0.5  # a shard takes a second: its lease line comes well before its result

REGISTERED = re.compile(r"Registered pool 'asha' \(id (\d+); active; 0 result\(s\) verified")
LEASED = re.compile(r"Leased shard (\d) of job (\d+) \(tiny-gen\): 2 items, model m\.$")
POSTED = re.compile(r"Posted run (\d+) \(2 outputs\): it counts now\.$")
WAITING = re.compile(r"Waiting: no shard to lease now \(2 leased so far, none in hand\)")
SUMMARY = "Leased 2 shard(s), finished 2, posted 2, handed back 0."


@pytest.fixture
def platform(db: Engine, tmp_path: Path) -> Iterator[Platform]:
    prepare_job(db, tmp_path, ITEMS, SHARD_SIZE)
    served = Platform(db, tmp_path, lease_seconds=60)
    served.start()
    try:
        yield served
    finally:
        served.stop()


def _lines(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def _index(lines: list[str], pattern: re.Pattern[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if pattern.search(line)]


def test_the_agent_says_registered_leased_posted_and_waiting_as_it_happens(
    platform: Platform, db: Engine, tmp_path: Path
) -> None:
    worker = agent(platform.url, pool_credential(db, "asha"), "asha", tmp_path, SECONDS_PER_ITEM)
    log = tmp_path / "agent-asha.log"
    try:
        # Each line is there while the agent works: printed and flushed as it happens.
        wait_for("it said it leased a shard", lambda: _index(_lines(log), LEASED), 120, worker)
        wait_for("it said it is waiting", lambda: _index(_lines(log), WAITING), 120, worker)
        assert worker.poll() is None and SUMMARY not in _lines(log)
    finally:
        assert stop_agent(worker) == 0
    lines = _lines(log)
    registered, leased = _index(lines, REGISTERED), _index(lines, LEASED)
    posted, waiting = _index(lines, POSTED), _index(lines, WAITING)
    # Once per event: one registration, each shard leased and posted once, one wait.
    assert len(registered) == 1 and len(leased) == 2 and len(posted) == 2 and len(waiting) == 1
    assert registered[0] < leased[0] < posted[0] and max(leased + posted) < waiting[0]
    assert lines[-1] == SUMMARY and waiting[0] < len(lines) - 1
    # The lines name what the platform recorded: the pool, the shards, the runs.
    match = REGISTERED.search(lines[registered[0]])
    assert match
    assert rows(db, "SELECT id FROM pool WHERE name = 'asha'") == [(int(match.group(1)),)]
    shards = sorted(LEASED.search(lines[i]).group(1) for i in leased)  # type: ignore[union-attr]
    assert shards == ["0", "1"]
    runs = {int(POSTED.search(lines[i]).group(1)) for i in posted}  # type: ignore[union-attr]
    accepted = rows(db, "SELECT id FROM shard_run WHERE status = 'accepted'")
    assert runs == {run for (run,) in accepted}
