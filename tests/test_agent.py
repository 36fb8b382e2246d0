"""The worker agent's own bookkeeping: spool, leases, heartbeats, outages, failures, Ctrl-C.

The platform side is the real queue (SQLite and PostgreSQL) called in-process
through a ``PlatformClient``; the engine is the scripted stand-in, because
these tests are about the agent's loop, not about vLLM (``test_pools.py``
runs real agents with real vLLM).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedEngine, generation_items, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import PoolKind, RunStatus, Shard, ShardRun, ShardStatus
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import (
    LeaseLost,
    SubmitOutcome,
    create_job,
    heartbeat_lease,
    lease_next_shard,
    release_lease,
    submit_shard_results,
    submit_shard_results_batch,
)
from sabha.platform.wire import (
    EngineInfo,
    GenerationResult,
    PoolInfo,
    PoolRegistration,
    ResultOutcome,
    ResultRefusal,
    ShardLease,
    ShardResult,
    SubmitReceipt,
)
from sabha.workers.agent import Agent, AgentOptions
from sabha.workers.busy import BusyClock
from sabha.workers.platform_client import LeaseGone, PlatformRefused, PlatformUnavailable
from sabha.workers.spool import Spool


class QueueClient:
    """A ``PlatformClient`` that calls the queue in-process (the HTTP layer is tested elsewhere)."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self.pool_id: int | None = None
        self.submit_outage = 0  # the next N submits find the platform down
        self.batches = False  # True: takes several results per post (protocol 1.2)
        self.batch_sizes: list[int] = []  # results per post, single posts too
        self.lease_interrupt_after: int | None = None
        self.leases = 0
        self.heartbeats = 0

    def register(self, registration: PoolRegistration) -> PoolInfo:
        caps = registration.capabilities.model_dump()
        self.pool_id = register_pool(self.db, registration.name, PoolKind.LOCAL, caps)
        return PoolInfo(
            id=self.pool_id,
            name=registration.name,
            status="active",
            reputation=1.0,
            agreements=0,
            disagreements=0,
        )

    def lease(self) -> ShardLease | None:
        if self.lease_interrupt_after is not None and self.leases >= self.lease_interrupt_after:
            raise KeyboardInterrupt
        assert self.pool_id is not None
        lease = lease_next_shard(self.db, self.pool_id)
        self.leases += lease is not None
        return lease

    def heartbeat(self, run_id: int, token: str) -> datetime:
        self.heartbeats += 1
        try:
            return heartbeat_lease(self.db, run_id, token)
        except LeaseLost as exc:
            raise LeaseGone(str(exc), status=409) from exc

    def submit(self, result: ShardResult) -> SubmitReceipt:
        self.batch_sizes.append(1)  # a single post
        if self.submit_outage:
            self.submit_outage -= 1
            raise PlatformUnavailable("the platform is down", "")
        outcome = submit_shard_results(self.db, result)
        return SubmitReceipt(
            status=outcome.status,
            duplicate=outcome.duplicate,
            job_complete=outcome.job_complete,
            verdict=outcome.verdict,
        )

    def submit_batch(self, results: Sequence[ShardResult]) -> list[ResultOutcome] | None:
        if not self.batches:
            return None  # a platform older than protocol 1.2
        self.batch_sizes.append(len(results))
        if self.submit_outage:
            self.submit_outage -= 1
            raise PlatformUnavailable("the platform is down", "")
        outcomes = []
        for result, outcome in zip(
            results, submit_shard_results_batch(self.db, results), strict=True
        ):
            if isinstance(outcome, SubmitOutcome):
                receipt = SubmitReceipt(
                    status=outcome.status,
                    duplicate=outcome.duplicate,
                    job_complete=outcome.job_complete,
                )
                outcomes.append(
                    ResultOutcome(run_id=result.run_id, outcome="accepted", receipt=receipt)
                )
            else:
                refusal = ResultRefusal(status=409, type="lease-lost", detail=outcome.message)
                outcomes.append(
                    ResultOutcome(run_id=result.run_id, outcome="refused", refusal=refusal)
                )
        return outcomes

    def release(self, run_id: int, token: str, reason: str | None = None) -> None:
        release_lease(self.db, run_id, token, reason)


def _jobs(db: Engine, tmp_path: Path, models: tuple[str, ...] = ("m",), n_items: int = 8) -> None:
    path = write_benchmark(tmp_path / "bench", generation_items(n_items))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, load_benchmark_file(path), tmp_path / "art")
        for name in models:
            create_job(
                session,
                add_model(session, name, repo_id=f"org/{name}", revision="a" * 40),
                benchmark,
                2,
            )


def _runs(db: Engine) -> list[ShardRun]:
    with Session(db) as session:
        return list(session.exec(select(ShardRun).order_by(col(ShardRun.id))).all())


def _shards(db: Engine) -> list[Shard]:
    with Session(db) as session:
        return list(session.exec(select(Shard).order_by(col(Shard.id))).all())


class Factory:
    """Builds scripted engines and remembers which models it loaded, in order."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.loaded: list[str] = []
        self.engines: list[ScriptedEngine] = []

    def __call__(self, model: Any, max_model_len: int, slot: int, placement: Any) -> ScriptedEngine:
        self.loaded.append(model.name)
        engine = ScriptedEngine(**self.options)
        self.engines.append(engine)
        return engine


def _agent(client: QueueClient, factory: Any, tmp_path: Path, **options: Any) -> Agent:
    options = {
        "pool_name": "volunteer",
        "poll_seconds": 0.05,
        "exit_when_idle": True,
        "idle_seconds": 0.2,
        **options,
    }
    return Agent(client, factory, Spool(tmp_path / "spool"), AgentOptions(**options))


def _lease_result(db: Engine) -> ShardResult:
    lease = lease_next_shard(db, register_pool(db, "earlier"))
    assert lease is not None
    return ShardResult(
        run_id=lease.run_id,
        token=lease.token,
        results=[GenerationResult(item_id=r.item_id, text="x") for r in lease.requests],
        executed_on=EngineInfo(host="h"),
    )


def test_spool_keeps_results_across_restarts_and_cleans_up(db: Engine, tmp_path: Path) -> None:
    _jobs(db, tmp_path, n_items=2)
    result = _lease_result(db)
    spool = Spool(tmp_path / "spool")
    path = spool.put(result)
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # it carries the lease token
    (tmp_path / "spool" / ".7.abc.tmp").write_text("half a resu")  # a crash mid-write
    (tmp_path / "spool" / "8.json").write_text("{not json")
    again = Spool(tmp_path / "spool")  # a new process
    assert again.pending() == [result]
    assert set(os.listdir(tmp_path / "spool")) == {"8.bad", f"{result.run_id}.json"}
    again.remove(result.run_id)
    assert again.pending() == [] and len(again) == 0


def test_agent_finishes_a_job_loading_each_model_once(db: Engine, tmp_path: Path) -> None:
    _jobs(db, tmp_path, n_items=8)
    client, factory = QueueClient(db), Factory()
    summary = _agent(client, factory, tmp_path, engines=2).run()
    assert summary.leased == summary.finished == summary.posted == 4
    assert all(s.status == ShardStatus.COMPLETED for s in _shards(db))
    assert len(factory.loaded) <= 2  # one engine per slot, reused for every shard
    assert len(Spool(tmp_path / "spool")) == 0


def test_results_survive_a_platform_outage(db: Engine, tmp_path: Path) -> None:
    _jobs(db, tmp_path, n_items=8)
    client = QueueClient(db)
    client.submit_outage = 3
    summary = _agent(client, Factory(), tmp_path).run()
    assert summary.finished == summary.posted == 4 and summary.refused == 0
    assert all(s.accepted_run_id is not None for s in _shards(db))
    assert len({r.shard_id for r in _runs(db)}) == len(_runs(db))  # nothing ran twice


def test_spooled_results_from_an_earlier_run_are_posted_first(db: Engine, tmp_path: Path) -> None:
    _jobs(db, tmp_path, n_items=4)
    earlier = _lease_result(db)
    Spool(tmp_path / "spool").put(earlier)  # the agent died before posting it
    summary = _agent(QueueClient(db), Factory(), tmp_path).run()
    assert summary.posted == 2 and summary.leased == 1
    runs = {r.id: r for r in _runs(db)}
    assert runs[earlier.run_id].status == RunStatus.ACCEPTED


def test_spooled_results_go_in_batches_and_leave_the_spool_only_when_answered(
    db: Engine, tmp_path: Path
) -> None:
    _jobs(db, tmp_path, n_items=8)
    spooled = [_lease_result(db) for _ in range(4)]
    spooled[1] = spooled[1].model_copy(update={"token": "not-its-token"})
    spool = Spool(tmp_path / "spool")
    for result in spooled:
        spool.put(result)
    client = QueueClient(db)
    client.batches, client.submit_outage = True, 1
    agent = _agent(client, Factory(), tmp_path, results_per_post=3)
    assert agent.post_spooled() == 0 and len(spool) == 4  # the platform was down: all kept
    assert agent.post_spooled() == 3 and len(spool) == 0
    assert client.batch_sizes == [3, 3, 1]  # the last one went alone, as a single post
    assert agent.summary.posted == 3 and agent.summary.refused == 1
    runs = {r.id: r.status for r in _runs(db)}
    assert [runs[r.run_id] for r in spooled] == [
        RunStatus.ACCEPTED,
        RunStatus.LEASED,  # the wrong token stored nothing, and the platform said so
        RunStatus.ACCEPTED,
        RunStatus.ACCEPTED,
    ]


def test_results_gather_for_one_post_while_other_shards_are_in_flight(
    db: Engine, tmp_path: Path
) -> None:
    _jobs(db, tmp_path, n_items=8)  # four shards
    client = QueueClient(db)
    client.batches = True

    class Steady(ScriptedEngine):  # one shard at a time, a fifth of a second each
        def generate_shards(self, work: Any, max_in_flight: int = 256) -> Any:
            for shard in work:
                if shard is not None:
                    time.sleep(0.2)
                    yield from super().generate_shards([shard], max_in_flight)

    started = time.monotonic()
    summary = _agent(client, lambda *_: Steady(), tmp_path, post_linger_seconds=30).run()
    assert time.monotonic() - started < 30  # the last result went once nothing was in flight
    assert summary.posted == 4 and sum(client.batch_sizes) == 4
    assert len(client.batch_sizes) < 4, client.batch_sizes
    assert all(s.accepted_run_id is not None for s in _shards(db))


def test_a_batch_refused_whole_is_posted_one_by_one(db: Engine, tmp_path: Path) -> None:
    _jobs(db, tmp_path, n_items=8)
    spool = Spool(tmp_path / "spool")
    for _ in range(3):
        spool.put(_lease_result(db))

    class SmallLimits(QueueClient):
        def submit_batch(self, results: Sequence[ShardResult]) -> list[ResultOutcome] | None:
            self.batch_sizes.append(len(results))
            raise PlatformRefused("too large", "", 413)

    client = SmallLimits(db)
    agent = _agent(client, Factory(), tmp_path, results_per_post=4)
    assert agent.post_spooled() == 3 and len(spool) == 0
    assert client.batch_sizes == [3, 1, 1, 1] and agent._batch_size == 1  # halved: 3 // 2
    assert all(r.status == RunStatus.ACCEPTED for r in _runs(db))


def test_a_failed_engine_hands_its_shards_back_and_a_new_one_takes_over(
    db: Engine, tmp_path: Path
) -> None:
    _jobs(db, tmp_path, n_items=8)
    factory = Factory(fail_after_shards=1)
    summary = _agent(QueueClient(db), factory, tmp_path, shards_per_engine=1).run()
    assert summary.engine_failures and "simulated engine crash" in summary.engine_failures[0]
    released = [r for r in _runs(db) if r.status == RunStatus.RELEASED]
    assert released and all("engine failed" in (r.error or "") for r in released)
    assert all(s.accepted_run_id is not None for s in _shards(db))
    assert len(factory.loaded) == summary.released + 1


def test_ctrl_c_hands_back_every_lease_in_flight(db: Engine, tmp_path: Path) -> None:
    _jobs(db, tmp_path, n_items=8)
    gate = threading.Event()

    class Stuck(ScriptedEngine):
        def generate_shards(self, work: Any, max_in_flight: int = 256) -> Any:
            gate.wait(30)  # still generating when Ctrl-C comes
            raise RuntimeError("cancelled")

        def close(self) -> None:
            gate.set()

    client = QueueClient(db)
    client.lease_interrupt_after = 2
    summary = _agent(client, lambda *_: Stuck(), tmp_path, shards_per_engine=3).run()
    assert summary.leased == 2 and summary.released == 2 and summary.finished == 0
    assert {r.status for r in _runs(db)} == {RunStatus.RELEASED}
    assert {s.status for s in _shards(db)} == {ShardStatus.QUEUED}


def test_heartbeats_keep_leases_alive_while_the_engine_works(db: Engine, tmp_path: Path) -> None:
    _jobs(db, tmp_path, n_items=2)
    client = QueueClient(db)
    beats_while_working: list[int] = []

    class Slow(ScriptedEngine):
        def generate_shards(self, work: Any, max_in_flight: int = 256) -> Any:
            # The engine is busy until three heartbeats went out (or 10 s passed),
            # however long the agent took to start on a loaded machine.
            start = client.heartbeats
            deadline = time.monotonic() + 10
            while client.heartbeats - start < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            beats_while_working.append(client.heartbeats - start)
            yield from super().generate_shards(work, max_in_flight)

    agent = _agent(client, lambda *_: Slow(), tmp_path, heartbeat_seconds=0.05)
    agent.run()
    assert beats_while_working and beats_while_working[0] >= 3
    assert _runs(db)[0].status == RunStatus.ACCEPTED


def test_short_leases_are_renewed_every_third_of_a_lease(db: Engine, tmp_path: Path) -> None:
    """A platform with 3-second leases: the agent (60 s heartbeats) beats every second."""
    _jobs(db, tmp_path, n_items=2)

    class ShortLeases(QueueClient):
        def lease(self) -> ShardLease | None:
            assert self.pool_id is not None
            return lease_next_shard(self.db, self.pool_id, lease_seconds=3)

        def heartbeat(self, run_id: int, token: str) -> datetime:
            self.heartbeats += 1
            return heartbeat_lease(self.db, run_id, token, lease_seconds=3)

    client = ShortLeases(db)
    beats: list[int] = []

    class Slow(ScriptedEngine):
        def generate_shards(self, work: Any, max_in_flight: int = 256) -> Any:
            start, deadline = client.heartbeats, time.monotonic() + 8  # beyond the lease
            while client.heartbeats - start < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            beats.append(client.heartbeats - start)
            yield from super().generate_shards(work, max_in_flight)

    _agent(client, lambda *_: Slow(), tmp_path, heartbeat_seconds=60).run()
    assert beats and beats[0] >= 3
    assert _runs(db)[0].status == RunStatus.ACCEPTED  # never expired


def test_a_shard_of_another_model_evicts_the_least_recently_used(
    db: Engine, tmp_path: Path
) -> None:
    _jobs(db, tmp_path, models=("first", "second"), n_items=4)
    factory = Factory()
    _agent(QueueClient(db), factory, tmp_path, engines=1, shards_per_engine=1).run()
    assert factory.loaded == ["first", "second"]
    assert factory.engines[0].closed  # evicted for the second model
    assert factory.engines[1].closed  # closed when the agent stopped


def test_each_shard_reports_its_share_of_the_engines_busy_time(db: Engine, tmp_path: Path) -> None:
    _jobs(db, tmp_path, n_items=4)  # two shards of two items

    batches: list[int] = []

    class Batching(ScriptedEngine):
        """Takes the shards it is given into one batch, works 0.4 s, then answers them."""

        def generate_shards(self, work: Any, max_in_flight: int = 256) -> Any:
            taken = []
            for shard in work:  # what is there now; None: nothing more for the moment
                if shard is None:
                    break
                taken.append(shard)
            batches.append(len(taken))
            time.sleep(0.4)
            yield from super().generate_shards(taken, max_in_flight)

    _agent(QueueClient(db), lambda *_: Batching(), tmp_path, shards_per_engine=2).run()
    runs = _runs(db)
    assert [r.status for r in runs] == [RunStatus.ACCEPTED] * 2
    seconds = [r.engine_seconds or 0.0 for r in runs]
    assert sum(batches) == 2 and all(r.engine_seconds is not None for r in runs)
    # Shards in the engine together share its busy time (by items: equal here),
    # so each reports 0.4 s / batch size, not the 0.4 s of wall time it waited.
    share = 0.4 / max(batches)
    assert all(share - 0.02 <= s < share + 0.5 for s in seconds), (batches, seconds)
    if max(batches) == 2:
        assert abs(seconds[0] - seconds[1]) < 0.05


def test_busy_time_is_shared_by_item_count_while_shards_overlap() -> None:
    now = [0.0]
    clock = BusyClock(lambda: now[0])
    clock.start("a", 3)
    now[0] = 2.0  # a alone: 2 s
    clock.start("b", 1)
    now[0] = 6.0  # a and b, 3:1: a 3 s, b 1 s
    assert clock.finish("a") == pytest.approx(5.0)
    now[0] = 7.0  # b alone: 1 s
    assert clock.finish("b") == pytest.approx(2.0)
    now[0] = 9.0  # idle time belongs to nobody
    clock.start("c", 64)
    now[0] = 9.5
    assert clock.finish("c") == pytest.approx(0.5)
