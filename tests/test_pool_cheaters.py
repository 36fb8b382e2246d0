"""Cheating volunteers against the platform as it is deployed: gunicorn, real agents, HTTP.

Two honest volunteers run real ``sabha worker run`` agents (the stand-in
engine; the second drifts as another honest setup would). Cheaters use the
same HTTP client with their own valid pool credentials and post what they
like: a rusher, a reference copier, a pool running another model, a sleeper
that is honest until it is trusted, and a quarantined pool that keeps
posting. A watcher reads the public leaderboard API all along: no forged
score may ever appear on it. At the end the honest pools are active, every
cheater is quarantined, and every job is scored from honest outputs only.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from apitools import pool_credential
from conftest import write_benchmark
from pooltools import Platform, agent, rows, stop_agent, wait_for
from sacrebleu.metrics import CHRF
from sqlalchemy.engine import Engine

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import Benchmark, id_of
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job
from sabha.platform.settings import Settings
from sabha.platform.wire import (
    EngineInfo,
    GenerationResult,
    PoolCapabilities,
    PoolRegistration,
    ShardLease,
    ShardResult,
)
from sabha.workers.platform_client import HttpPlatformClient, PlatformRefused
from sabha.workers.standin import WORDS, stand_in_answer

pytestmark = pytest.mark.slow

ITEMS, SHARD_SIZE = 16, 4  # jobs of 4 shards
MODELS = 9  # three jobs at the start, three for the sleeper to earn trust, three to forge
SECONDS_PER_ITEM = 0.05
TEMPLATE = "Question: {question}\nAnswer:"
HONEST = {"alice-pool", "bob-pool"}
CHEATERS = ("rusher", "copier", "other-model", "sleeper")
SETTINGS = {
    "SABHA_REPLICATION_NEW_POOL_SHARDS": "3",
    "SABHA_REPLICATION_FRACTION": "0.1",
    "SABHA_REPLICATION_AUDIT_JOBS": "true",
}


def _items() -> list[dict[str, Any]]:
    """Sixteen distinct questions in Swahili and Hindi."""
    items = []
    for i in range(ITEMS):
        if i % 2:
            question = f"Swali {i}: mahindi yapandwe lini baada ya mvua ya kwanza shambani {i}?"
            reference, language = "Panda mahindi mvua za kwanza zikianza kunyesha.", "sw-Latn"
        else:
            question = f"प्रश्न {i}: गेहूं की पहली सिंचाई कब करनी चाहिए खेत {i} में?"
            reference, language = "पहली सिंचाई बुवाई के तीन सप्ताह बाद करें।", "hi-Deva"
        items.append(
            {
                "id": f"q-{i:03d}",
                "language": language,
                "split": "test",
                "input": {"question": question},
                "reference": reference,
            }
        )
    return items


def _honest_range() -> tuple[float, float]:
    """chrF++ of the job answered wholly by each honest setup: published values lie between."""
    items = _items()
    prompts = [TEMPLATE.format(**item["input"]) for item in items]
    references = [[item["reference"] for item in items]]
    values = [
        CHRF(word_order=2).corpus_score([stand_in_answer(p, v) for p in prompts], references).score
        for v in (0, 1)
    ]
    return min(values) - 0.3, max(values) + 0.3


class Watcher(threading.Thread):
    """Reads the public leaderboard (and each row's run) until stopped; keeps what it saw."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stopped = threading.Event()
        self.low, self.high = _honest_range()
        self.forged: list[str] = []
        self.reads = 0
        self.published: set[int] = set()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.check()
            except requests.RequestException:
                pass  # the platform restarting; the next read sees it
            self.stopped.wait(0.1)

    def check(self) -> None:
        board = requests.get(f"{self.url}/api/v1/benchmarks/tiny-gen/leaderboard", timeout=10)
        board.raise_for_status()
        for row in board.json()["rows"]:
            value = row["scores"]["chrf++"]["value"]
            run = requests.get(f"{self.url}/api/v1/jobs/{row['job_id']}/results", timeout=10).json()
            # A cheater's result may count only where an honest pool's replica agreed with it
            # (the sleeper's honest shards, run before it turned).
            unverified = [
                (s["shard"], s["pool"])
                for s in run["shards"]
                if s["pool"] not in HONEST and not set(s["verified_by"]) & HONEST
            ]
            if unverified or not self.low <= value <= self.high:
                self.forged.append(f"job {row['job_id']}: chrF++ {value:.2f}, {unverified}")
            self.published.add(row["job_id"])
        self.reads += 1


class Site:
    """The platform under gunicorn, and new jobs (new models submitted) on demand."""

    def __init__(self, db: Engine, root: Path) -> None:
        self.db = db
        settings = Settings(data_dir=root / "data")
        loaded = load_benchmark_file(write_benchmark(root / "bench", _items()))
        with session_scope(db) as session:
            self.benchmark_id = id_of(
                register_benchmark(session, loaded, settings.resolved_artifacts_dir)[0]
            )
        self.models = 0
        self.platform = Platform(db, root, lease_seconds=30, **SETTINGS)

    @property
    def url(self) -> str:
        return self.platform.url

    def add_jobs(self, count: int) -> None:
        with session_scope(self.db) as session:
            benchmark = session.get_one(Benchmark, self.benchmark_id)
            for _ in range(count):
                name = f"m{self.models}"
                self.models += 1
                model = add_model(session, name, repo_id=f"org/{name}", revision="a" * 40)
                create_job(session, model, benchmark, SHARD_SIZE)


@pytest.fixture
def site(db: Engine, tmp_path: Path) -> Iterator[Site]:
    served = Site(db, tmp_path)
    served.add_jobs(3)
    served.platform.start()
    try:
        yield served
    finally:
        served.platform.stop()


class Cheater:
    """A pool with a valid credential that posts whatever ``answer`` says, over HTTP."""

    def __init__(self, url: str, db: Engine, name: str, answer: Callable[[str, int], str]) -> None:
        client_id, secret = pool_credential(db, f"{name}-owner")
        self.client = HttpPlatformClient(url, client_id, secret)
        self.name = name
        self.answer = answer
        self.info = self.client.register(
            PoolRegistration(name=name, capabilities=PoolCapabilities(device="cpu"))
        )

    def post(self, lease: ShardLease) -> str:
        result = ShardResult(
            run_id=lease.run_id,
            token=lease.token,
            results=[
                GenerationResult(
                    item_id=r.item_id, prompt=r.text, text=self.answer(r.text, r.item_id)
                )
                for r in lease.requests
            ],
            executed_on=EngineInfo(host=self.name, device="cpu", vllm="0.32.0", dtype="bfloat16"),
        )
        return self.client.submit(result).status

    def rush(self) -> list[str]:
        """Lease and post as fast as the platform lets it; the statuses it got."""
        statuses = []
        while (lease := self.client.lease()) is not None:
            statuses.append(self.post(lease))
        return statuses

    def proven(self) -> bool:
        self.info = self.client.register(
            PoolRegistration(name=self.name, capabilities=PoolCapabilities(device="cpu"))
        )
        return self.info.verifications_needed == 0


def _runs(db: Engine) -> list[Any]:
    """Every run with its pool and verdict: what a failure message shows."""
    return rows(
        db,
        "SELECT r.id, r.job_id, r.shard_id, p.name, r.status, r.verdict, r.check_reason "
        "FROM shard_run r JOIN pool p ON p.id = r.pool_id ORDER BY r.id",
    )


def _quarantined(db: Engine, name: str) -> bool:
    return rows(db, "SELECT status FROM pool WHERE name = :n", n=name) == [("quarantined",)]


def _all_jobs_scored(db: Engine) -> bool:
    done = rows(db, "SELECT count(DISTINCT job_id) FROM scoring_run")[0][0]
    jobs = rows(db, "SELECT count(*) FROM job")[0][0]
    return int(done) == int(jobs)


def _garbage(prompt: str, item: int) -> str:
    return "Maji mengi sana kwa kila shamba."


def _other_model(prompt: str, item: int) -> str:
    digest = hashlib.sha256(f"another model:{prompt}".encode()).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in digest[:7])


def test_no_cheater_gets_a_forged_score_published_and_honest_pools_stay_trusted(
    site: Site, db: Engine, tmp_path: Path
) -> None:
    references = dict(rows(db, "SELECT id, reference FROM item"))
    watcher = Watcher(site.url)
    watcher.start()
    honest = [
        agent(site.url, pool_credential(db, "alice"), "alice-pool", tmp_path, SECONDS_PER_ITEM),
        agent(
            site.url,
            pool_credential(db, "bob"),
            "bob-pool",
            tmp_path,
            SECONDS_PER_ITEM,
            "--stand-in-variant",
            "1",  # another honest setup: about one answer in four differs
        ),
    ]
    try:
        # 1. A rusher posts made-up results as fast as it can: three wait, then it gets nothing.
        rusher = Cheater(site.url, db, "rusher", _garbage)
        assert rusher.info.verifications_needed == 3
        assert rusher.rush() == ["submitted"] * 3
        wait_for("the rusher was outvoted", lambda: _quarantined(db, "rusher"), 120, *honest)

        # 2. A pool copying the public references, 3. a pool running another model.
        copier = Cheater(site.url, db, "copier", lambda _p, item: references[item])
        other = Cheater(site.url, db, "other-model", _other_model)
        for cheater in (copier, other):
            assert set(cheater.rush()) == {"submitted"}
        for name in ("copier", "other-model"):
            wait_for(f"{name} was outvoted", lambda n=name: _quarantined(db, n), 120, *honest)

        # 4. A sleeper: honest until it is trusted, then it forges everything. New models
        # are submitted as it starts, and again once it is trusted, so it finds work.
        site.add_jobs(3)
        sleeper = Cheater(site.url, db, "sleeper", lambda p, _i: stand_in_answer(p))
        deadline = time.monotonic() + 180
        while not sleeper.proven():
            assert time.monotonic() < deadline, ("the sleeper never earned trust", _runs(db))
            lease = sleeper.client.lease()
            if lease is not None:
                sleeper.post(lease)
            else:
                time.sleep(0.2)
        sleeper.answer = _garbage
        first_new_job = int(rows(db, "SELECT max(id) FROM job")[0][0]) + 1
        site.add_jobs(3)
        deadline = time.monotonic() + 180
        kept = None  # 5. a lease it holds and posts only after it is quarantined
        forged_statuses = []
        while not _quarantined(db, "sleeper"):
            assert time.monotonic() < deadline, ("the sleeper was never caught", _runs(db))
            try:
                lease = sleeper.client.lease()
            except PlatformRefused:
                break  # quarantined between the check and the lease
            if lease is None:
                time.sleep(0.2)
            elif lease.job_id < first_new_job:  # forging where it was honest is a gamble
                sleeper.client.release(lease.run_id, lease.token)
            elif kept is None:
                kept = lease
            else:
                try:
                    forged_statuses.append(sleeper.post(lease))
                except PlatformRefused:
                    break  # quarantined between the check and the post
        # Trusted, its forgeries count at once unless drawn for a check; either a draw or the
        # job's audit before scoring catches it, before any of them reaches a leaderboard.
        # (A pool that forges only some of its shards in a job escapes one job's audit with
        # the share of its shards it left honest: docs/verification.md.)
        # (It is caught as soon as a forgery meets an honest run: a draw, the audit, or a
        # shard it took that was waiting for a replica.)
        assert forged_statuses and set(forged_statuses) <= {"accepted", "submitted"}
        wait_for("the sleeper was caught", lambda: _quarantined(db, "sleeper"), 120, *honest)

        # 5. A quarantined pool that keeps posting and leasing is refused, and nothing changes.
        assert kept is not None
        # The honest pools keep working meanwhile: count what the sleeper's runs hold.
        sleepers_outputs = (
            "SELECT count(*) FROM output o JOIN shard_run r ON r.id = o.shard_run_id "
            "JOIN pool p ON p.id = r.pool_id WHERE p.name = 'sleeper'"
        )
        runs_before = rows(db, sleepers_outputs)
        with pytest.raises(PlatformRefused) as refused:
            sleeper.post(kept)
        assert refused.value.status == 403 and "quarantined" in str(refused.value)
        with pytest.raises(PlatformRefused) as refused:
            sleeper.client.lease()
        assert refused.value.status == 403
        assert rows(db, sleepers_outputs) == runs_before

        wait_for("every job was scored", lambda: _all_jobs_scored(db), 300, *honest)
        watcher.check()  # one last read, after the last job was published
    finally:
        watcher.stopped.set()
        watcher.join(timeout=30)
        for process in honest:
            stop_agent(process)
    assert watcher.reads > 20 and watcher.published == set(range(1, MODELS + 1))
    assert watcher.forged == [], (watcher.forged[:3], _runs(db))
    statuses = dict(rows(db, "SELECT name, status FROM pool WHERE kind = 'remote'"))
    assert statuses == {
        "alice-pool": "active",
        "bob-pool": "active",
        **dict.fromkeys(CHEATERS, "quarantined"),
    }
    counted = rows(
        db,
        "SELECT p.name, r.verdict FROM shard s JOIN shard_run r ON r.id = s.accepted_run_id "
        "JOIN pool p ON p.id = r.pool_id",
    )
    assert all(name in HONEST or verdict == "agreed" for name, verdict in counted), counted


def test_an_outage_longer_than_a_lease_completes_with_two_owners(
    db: Engine, tmp_path: Path
) -> None:
    """Both agents hold leases and spool results while the platform is down past the leases'
    deadline; back up, the job completes from the two owners' replicas."""
    settings = Settings(data_dir=tmp_path / "data")
    loaded = load_benchmark_file(write_benchmark(tmp_path / "bench", _items()))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, settings.resolved_artifacts_dir)
        model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
        create_job(session, model, benchmark, SHARD_SIZE)
    platform = Platform(db, tmp_path, lease_seconds=5, **SETTINGS)
    platform.start()
    names = ("asha", "bahati")
    workers = [
        agent(platform.url, pool_credential(db, n), f"{n}-pool", tmp_path, 0.5) for n in names
    ]
    try:
        wait_for(
            "both agents held leases",
            lambda: (
                rows(db, "SELECT count(DISTINCT pool_id) FROM shard_run WHERE status = 'leased'")
                == [(2,)]
            ),
            60,
            *workers,
        )
        platform.kill()
        time.sleep(8)  # longer than a lease: every lease is past its deadline
        platform.start()
        wait_for("the job was scored", lambda: _all_jobs_scored_one(db), 180, *workers)
    finally:
        for process in workers:
            stop_agent(process)
        platform.stop()
    statuses = dict(rows(db, "SELECT name, status FROM pool WHERE kind = 'remote'"))
    assert statuses == {"asha-pool": "active", "bahati-pool": "active"}


def _all_jobs_scored_one(db: Engine) -> bool:
    return int(rows(db, "SELECT count(*) FROM scoring_run")[0][0]) >= 1
