"""The volunteer's agent: leases shards from the platform and runs them on the pool's engines.

``Agent.run`` is the loop behind ``sabha worker run``:

- it registers the pool's capabilities, then leases shards while an engine
  has room (``shards_per_engine`` each: one runs while the next waits);
- each engine slot is one long-lived engine (a vLLM actor on one GPU, on
  ``k`` GPUs of one node with tensor parallelism, or on the CPU) with one
  thread feeding it; a model is loaded once and reused for every shard of
  it; a shard of another model goes to an idle slot, whose least recently
  used model is closed to make room;
- GPUs are accounted per node: loading a ``k``-GPU engine closes idle engines,
  least recently used first, until ``k`` GPUs of one node are free, and
  otherwise waits (its lease held, heartbeats going on, no new leases taken)
  while busy engines finish; it never takes more GPUs than a node has. A
  lease the pool cannot run at all (``gpus_for`` raises) is handed back with
  the reason;
- a heartbeat thread keeps the leases in flight alive;
- every finished shard is written to the spool first, then posted by the
  poster thread, which retries until the platform answers, so an outage or a
  restart of the platform (or of the agent) loses nothing; results waiting
  in the spool are posted before any new lease is taken, so after an outage
  the platform hears of finished shards before it hands out their leases'
  successors;
- ``report`` (the CLI prints it) says what the agent does as it does it:
  registered, leased, posted and whether a result counts now or waits for
  another volunteer's pool to verify it.
- an engine that fails hands its leases back with the reason; Ctrl-C (or
  ``stop``) hands back every lease not yet finished and stops cleanly.

The loop decides retries: engines are built with ``max_task_retries=0``, and
a shard whose engine failed is released, never silently rerun.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sabha.platform.wire import (
    CANNOT_RUN_HERE,
    ChatTemplatePolicy,
    DecodingParams,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
    ModelSource,
    PoolCapabilities,
    PoolInfo,
    PoolRegistration,
    ShardLease,
    ShardResult,
    SubmitReceipt,
)

from .busy import BusyClock
from .platform_client import LeaseGone, PlatformClient, PlatformRefused, PlatformUnavailable
from .spool import Spool

__all__ = [
    "Agent",
    "AgentOptions",
    "AgentSummary",
    "Engine",
    "EngineFactory",
    "EnginePlacement",
    "GpusFor",
]

log = logging.getLogger("sabha.worker")

Work = tuple[ShardLease, list[GenerationRequest], DecodingParams, ChatTemplatePolicy]


class Engine(Protocol):
    """An engine the agent feeds (``workers.client.EngineClient`` is the real one).

    ``generate_shards`` pulls work lazily and yields each shard's results when
    it is done. The agent's work may yield None, meaning "no lease right now,
    more may come": the engine goes on with what it has and asks again.
    """

    def info(self) -> EngineInfo: ...

    def generate_shards(
        self, work: Iterable[Work | None], max_in_flight: int = 256
    ) -> Iterator[tuple[ShardLease, list[GenerationResult]]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EnginePlacement:
    """Where the agent put an engine.

    Attributes:
        tensor_parallel_size: GPUs the engine spans (1 on CPU).
        node: The Ray node address it must run on (None: anywhere, CPU pools).
    """

    tensor_parallel_size: int = 1
    node: str | None = None


EngineFactory = Callable[[ModelSource, int, int, EnginePlacement], Engine]
"""Builds an engine for ``(model, max_model_len, slot index, placement)``."""

GpusFor = Callable[[ShardLease], int]
"""GPUs one engine for a lease's model needs (raises ``SabhaError`` when none fits)."""


@dataclass(frozen=True)
class AgentOptions:
    """How the agent works.

    Attributes:
        pool_name: The pool's name on the platform.
        engines: Engine slots of a pool without ``gpus_per_node`` (1 on CPU;
            tests use more): one unit each, on one node.
        gpus_per_node: ``(Ray node address, GPUs)`` of each node of a GPU pool;
            one slot per GPU, and a ``k``-GPU engine takes ``k`` of one node.
        shards_per_engine: Leases each slot holds at least (one runs while the
            next waits).
        items_per_engine: Items a slot keeps in hand once its engine is loaded
            (default: twice the engine's batch, ``max_num_seqs``), taking more
            leases than ``shards_per_engine`` to get there.
        poll_seconds: Wait between lease requests when there is no work.
        heartbeat_seconds: Most time between heartbeats of the leases in flight
            (shorter when the platform's leases are short: a third of a lease).
        exit_when_idle: Stop once there has been no work for ``idle_seconds``
            with nothing in flight and the spool empty (batch use and tests;
            shards can come back: a replica, an expired lease); otherwise run
            until stopped.
        idle_seconds: See ``exit_when_idle``.
    """

    pool_name: str
    engines: int = 1
    gpus_per_node: tuple[tuple[str | None, int], ...] = ()
    shards_per_engine: int = 2
    items_per_engine: int | None = None
    poll_seconds: float = 10.0
    heartbeat_seconds: float = 60.0
    exit_when_idle: bool = False
    idle_seconds: float = 30.0


@dataclass
class AgentSummary:
    """What the agent did."""

    leased: int = 0
    finished: int = 0
    posted: int = 0
    refused: int = 0
    released: int = 0
    engine_failures: list[str] = field(default_factory=list)
    cannot_run: list[str] = field(default_factory=list)


def _model_key(lease: ShardLease) -> tuple[str, str | None, int]:
    return (lease.model.target, lease.model.revision, lease.max_model_len)


def _posted_line(run_id: int, receipt: SubmitReceipt) -> str:
    """What a posted result's receipt means, for the volunteer."""
    if receipt.verdict == "agreed":
        meaning = "it agreed with another volunteer's run of the same shard: verified" + (
            ", and it counts" if receipt.status == "accepted" else ""
        )
    elif receipt.verdict in ("disagreed", "withdrawn"):
        meaning = f"{receipt.verdict}: it does not count"
    else:
        meaning = {
            "accepted": "it counts now",
            "submitted": "it waits for another volunteer's pool to run the same shard; "
            "it counts once they agree",
            "late": "the shard was finished by another pool meanwhile; kept, not counted",
        }.get(receipt.status, receipt.status)
    again = " (posted before)" if receipt.duplicate else ""
    return f"Posted run {run_id}{again}: {meaning}."


class _Slot:
    """One engine and the thread that feeds it."""

    def __init__(self, agent: Agent, index: int) -> None:
        self.agent = agent
        self.index = index
        self.queue: deque[ShardLease] = deque()
        self.busy = 0  # leases assigned and not finished
        self.items = 0  # their items
        self.pulled: set[int] = set()  # leases its engine took and has not finished
        self.batch: int | None = None  # the loaded engine's batch (max_num_seqs)
        self.engine: Engine | None = None
        self.model: tuple[str, str | None, int] | None = None
        self.held: tuple[int, int] | None = None  # (node index, GPUs) while an engine is loaded
        self.working = False  # feeding its engine: never evicted then
        self.expected: tuple[str, str | None, int] | None = None  # model of the last lease queued
        self.last_used = 0.0
        self.thread = threading.Thread(target=self._run, name=f"sabha-engine-{index}", daemon=True)

    def unassign(self, lease: ShardLease) -> None:
        """Forget a lease that finished or was handed back (under the agent's lock)."""
        self.busy -= 1
        self.items -= len(lease.requests)
        self.pulled.discard(lease.run_id)

    def has_room(self) -> bool:
        """Whether it may take another lease (under the agent's lock).

        Always ``shards_per_engine`` leases; once its engine is loaded, as many
        more as keep ``items_per_engine`` items (default: twice the engine's
        batch) in hand, so vLLM's batch stays full while shards come and go.
        """
        options = self.agent.options
        if self.busy < options.shards_per_engine:
            return True
        target = options.items_per_engine or (2 * self.batch if self.batch else 0)
        return self.items < target

    def _run(self) -> None:
        agent = self.agent
        while True:
            with agent.lock:
                while not self.queue and not agent.stopping.is_set():
                    agent.changed.wait()
                if agent.stopping.is_set():
                    return
                first = self.queue.popleft()
                self.working = True
            try:
                self._generate(first)
            finally:
                with agent.lock:
                    self.working = False
                    agent.changed.notify_all()

    def _take(self, key: tuple[str, str | None, int]) -> ShardLease | None:
        """The next queued lease of the model ``key``, removed from the queue (under the lock)."""
        for lease in self.queue:
            if _model_key(lease) == key:
                self.queue.remove(lease)
                return lease
        return None

    def _feed(self, first: ShardLease, clock: BusyClock) -> Iterator[Work | None]:
        """The engine's work: ``first``, then each lease of its model queued on this slot.

        It stays open while the engine has shards of the model, handing the
        engine new leases as they arrive (None while there is none yet), and
        ends when the engine has nothing left and no lease of the model waits,
        when a lease of another model waits, or when the agent stops.
        """
        agent = self.agent
        key = _model_key(first)
        lease: ShardLease | None = first
        while True:
            if lease is not None:
                with agent.lock:
                    self.pulled.add(lease.run_id)
                clock.start(lease.run_id, len(lease.requests))
                yield (lease, lease.requests, lease.decoding, lease.chat_template)
            with agent.changed:
                lease = self._take(key)
                if lease is None:
                    other = any(_model_key(queued) != key for queued in self.queue)
                    if agent.stopping.is_set() or not self.pulled or other:
                        return
                    agent.changed.wait(timeout=0.02)
                    lease = self._take(key)
            if lease is None:
                yield None

    def _give_back_model(self, first: ShardLease, reason: str) -> None:
        """Hand back ``first``, what the engine took, and every queued lease of its model."""
        agent = self.agent
        key = _model_key(first)
        with agent.lock:
            queued = [lease for lease in self.queue if _model_key(lease) == key]
            for lease in queued:
                self.queue.remove(lease)
            pulled = [agent.in_flight[r] for r in self.pulled if r in agent.in_flight]
            self.pulled.clear()
        leases = {lease.run_id: lease for lease in [first, *pulled, *queued]}
        for lease in leases.values():
            agent._give_back(self, lease, reason)

    def _generate(self, first: ShardLease) -> None:
        agent = self.agent
        key = _model_key(first)
        try:
            gpus = agent.gpus_for(first)
            if gpus > max(agent.node_gpus):
                raise ValueError(
                    f"an engine of {gpus} GPUs does not fit a node of this pool "
                    f"(at most {max(agent.node_gpus)})"
                )
        except Exception as exc:  # this pool cannot run the model: someone else may
            reason = f"{CANNOT_RUN_HERE} {' '.join(str(exc).split())[:400]}"
            log.warning("engine %d: %s", self.index, reason)
            agent.summary.cannot_run.append(reason)
            self._give_back_model(first, reason)
            return
        try:
            engine = self.engine
            if self.model != key or engine is None:
                self._close()  # the least recently used model on this slot makes room
                node = agent._acquire(self, gpus)
                placement = EnginePlacement(gpus, agent.node_names[node])
                engine = agent.engine_factory(
                    first.model, first.max_model_len, self.index, placement
                )
                with agent.lock:  # shutdown closes what it finds here, so check under the lock
                    stopping = agent.stopping.is_set()
                    if not stopping:
                        self.engine, self.model = engine, key
                if stopping:
                    engine.close()
                    raise RuntimeError("the agent is stopping")
            info = engine.info()
            with agent.lock:
                self.batch = info.max_num_seqs
                agent.changed.notify_all()  # it may take more leases now
            in_flight = agent.options.items_per_engine or 2 * (info.max_num_seqs or 128)
            self.last_used = time.monotonic()
            clock = BusyClock()
            for lease, results in engine.generate_shards(self._feed(first, clock), in_flight):
                seconds = clock.finish(lease.run_id)
                agent._finished(self, lease, results, info, seconds)
                self.last_used = time.monotonic()
        except Exception as exc:  # the engine failed: hand the shards back with the reason
            reason = f"engine failed: {' '.join(str(exc).split())[:400]}"
            if not agent.stopping.is_set():
                log.warning("engine %d: %s", self.index, reason)
                agent.summary.engine_failures.append(reason)
            self._close()
            self._give_back_model(first, reason)

    def _close(self) -> None:
        with self.agent.lock:
            engine = self._detach()
        if engine is not None:
            with contextlib.suppress(Exception):
                engine.close()

    def _detach(self) -> Engine | None:
        """Forget the engine and free its GPUs (under the agent's lock); close it after."""
        agent = self.agent
        engine, self.engine, self.model = self.engine, None, None
        if self.held is not None:
            node, gpus = self.held
            agent.free_gpus[node] += gpus
            self.held = None
            agent.changed.notify_all()
        return engine


class Agent:
    """Leases shards from a platform and runs them on a pool's engines.

    Args:
        client: The platform (``HttpPlatformClient``, or a stand-in in tests).
        engine_factory: Builds an engine for a model on one slot.
        spool: Where finished results wait until the platform has them.
        options: See ``AgentOptions``.
        capabilities: What the pool registers with.
        gpus_for: GPUs (tensor-parallel size) an engine for a lease's model
            needs; default 1. ``volunteer.plan_gpus`` is the real one.
        report: Called with one line for the volunteer at each step (default:
            the ``sabha.worker`` log at INFO).
    """

    def __init__(
        self,
        client: PlatformClient,
        engine_factory: EngineFactory,
        spool: Spool,
        options: AgentOptions,
        capabilities: PoolCapabilities | None = None,
        gpus_for: GpusFor | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.report: Callable[[str], None] = report or log.info
        self.client = client
        self.engine_factory = engine_factory
        self.gpus_for: GpusFor = gpus_for or (lambda _lease: 1)
        self.spool = spool
        self.options = options
        self.capabilities = capabilities or PoolCapabilities(engines=options.engines)
        self.summary = AgentSummary()
        self.pool: PoolInfo | None = None
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.in_flight: dict[int, ShardLease] = {}
        self._releasing: set[int] = set()
        nodes = options.gpus_per_node or ((None, max(1, options.engines)),)
        self.node_names = [name for name, _ in nodes]
        self.node_gpus = [gpus for _, gpus in nodes]
        self.free_gpus = list(self.node_gpus)
        self.waiting_for_gpus = 0
        self.slots = [_Slot(self, i) for i in range(max(1, sum(self.node_gpus)))]
        self._post_now = threading.Event()
        self._post_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._beat_seconds = options.heartbeat_seconds

    # -- public ----------------------------------------------------------------------

    def run(self) -> AgentSummary:
        """Register, then work until stopped (or idle, with ``exit_when_idle``).

        Ctrl-C hands back the leases in flight; finished results not yet
        posted stay in the spool for the next start.
        """
        try:
            self.pool = self.client.register(
                PoolRegistration(name=self.options.pool_name, capabilities=self.capabilities)
            )
            self._say_registered(self.pool)
            self._start_threads()
            self._loop()
        except KeyboardInterrupt:
            log.info("stopping: handing back %d lease(s)", len(self.in_flight))
        finally:
            self._shutdown("the volunteer stopped the agent")
        return self.summary

    def stop(self) -> None:
        """Ask the loop to stop (from another thread or a signal handler)."""
        self.stopping.set()
        with self.changed:
            self.changed.notify_all()

    # -- the loop --------------------------------------------------------------------

    def _start_threads(self) -> None:
        for slot in self.slots:
            slot.thread.start()
        for target, name in ((self._beat, "heartbeat"), (self._post, "poster")):
            thread = threading.Thread(target=target, name=f"sabha-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._post_now.set()  # results left from an earlier run go first

    def _capacity(self) -> bool:
        with self.lock:
            if self.waiting_for_gpus:  # leases in hand wait for GPUs; take no more
                return False
            if any(s.held is not None and s.has_room() for s in self.slots):
                return True  # a loaded engine has room
            # A slot without an engine has room only while GPUs are free or idle.
            room = max(self.free_gpus) > 0 or any(
                s.held is not None and s.busy == 0 and not s.working for s in self.slots
            )
            return room and any(s.held is None and s.has_room() for s in self.slots)

    def _acquire(self, slot: _Slot, gpus: int) -> int:
        """Reserve ``gpus`` GPUs of one node for ``slot``; returns the node's index.

        Closes idle engines (least recently used first) when that frees
        enough GPUs on one node; otherwise waits while busy engines finish.

        Raises:
            RuntimeError: the agent is stopping.
        """
        while True:
            evicted: list[Engine] = []
            with self.changed:
                if self.stopping.is_set():
                    raise RuntimeError("the agent is stopping")
                fitting = [n for n, free in enumerate(self.free_gpus) if free >= gpus]
                if fitting:  # the fullest node that fits keeps big gaps for big engines
                    node = min(fitting, key=lambda n: self.free_gpus[n])
                    self.free_gpus[node] -= gpus
                    slot.held = (node, gpus)
                    return node
                victims = self._victims(slot, gpus)
                if victims is None:
                    self.waiting_for_gpus += 1
                    try:
                        self.changed.wait(timeout=1.0)
                    finally:
                        self.waiting_for_gpus -= 1
                    continue
                for victim in victims:
                    log.info("engine %d: closing its idle model to free GPUs", victim.index)
                    engine = victim._detach()
                    if engine is not None:
                        evicted.append(engine)
            for engine in evicted:
                with contextlib.suppress(Exception):
                    engine.close()

    def _room_for(self, gpus: int) -> bool:
        """Whether an engine of ``gpus`` GPUs could load now (free or idle GPUs); under the lock."""
        return max(self.free_gpus) >= gpus or self._victims(None, gpus) is not None

    def _victims(self, slot: _Slot | None, gpus: int) -> list[_Slot] | None:
        """The fewest idle engines (least recently used first) whose GPUs make room on one node.

        Called under the lock. None: no node can make room now.
        """
        best: list[_Slot] | None = None
        for node, free in enumerate(self.free_gpus):
            idle = sorted(
                (
                    s
                    for s in self.slots
                    if s is not slot
                    and s.held is not None
                    and s.held[0] == node
                    and s.busy == 0
                    and not s.working
                ),
                key=lambda s: s.last_used,
            )
            chosen: list[_Slot] = []
            for candidate in idle:
                if free >= gpus:
                    break
                chosen.append(candidate)
                free += candidate.held[1] if candidate.held else 0
            if free >= gpus and (best is None or len(chosen) < len(best)):
                best = chosen
        return best

    def _say_registered(self, pool: PoolInfo) -> None:
        self.report(
            f"Registered pool {pool.name!r} ({pool.status}; {pool.agreements} result(s) "
            "verified by other volunteers so far)."
        )
        if pool.verifications_needed:
            self.report(
                f"A new pool's results count once another volunteer's pool has run the same "
                f"shards and agreed: the next {pool.verifications_needed} verified result(s) "
                "make this pool proven, and then most of its results count at once."
            )

    def _loop(self) -> None:
        idle_since: float | None = None
        while not self.stopping.is_set():
            if not self._capacity():
                with self.changed:
                    self.changed.wait(timeout=1.0)
                continue
            if len(self.spool) and not self._spool_posted():
                self.stopping.wait(self.options.poll_seconds)  # the platform is away
                continue
            try:
                lease = self.client.lease()
            except PlatformUnavailable as exc:
                log.warning("%s", exc)
                self.stopping.wait(self.options.poll_seconds)
                continue
            if lease is None:
                if not self._idle():
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif (
                    self.options.exit_when_idle
                    and time.monotonic() - idle_since >= self.options.idle_seconds
                ):
                    return
                self.stopping.wait(self.options.poll_seconds)
                continue
            idle_since = None
            self.summary.leased += 1
            self.report(
                f"Leased shard {lease.shard_index} of job {lease.job_id} "
                f"({len(lease.requests)} items, {lease.model.name})"
                + (", a replica verifying another pool's run" if lease.replica else "")
                + "."
            )
            self._dispatch(lease)

    def _idle(self) -> bool:
        with self.lock:
            if self.in_flight:
                return False
        self._post_now.set()
        deadline = time.monotonic() + 5
        while len(self.spool) and time.monotonic() < deadline and not self.stopping.is_set():
            time.sleep(0.05)
        return not len(self.spool)

    def _dispatch(self, lease: ShardLease) -> None:
        """Give a lease to a slot: one with its model (loaded or coming), else an idle one (LRU).

        When the slots with a multi-GPU model are full and it is still loading,
        or no GPUs are free or idle for another copy, the lease waits behind
        them (up to twice ``shards_per_engine``) rather than on a new engine
        that would have to close theirs.
        """
        key = _model_key(lease)
        limit = self.options.shards_per_engine
        try:
            size = self.gpus_for(lease)  # outside the lock: it may read the model's config
        except Exception:  # the slot finds out again and hands the lease back
            size = 1
        expires = (
            lease.expires_at if lease.expires_at.tzinfo else lease.expires_at.replace(tzinfo=UTC)
        )
        span = (expires - datetime.now(UTC)).total_seconds()
        with self.lock:
            self._beat_seconds = min(self._beat_seconds, max(1.0, span / 3))
            self.in_flight[lease.run_id] = lease
            mine = [s for s in self.slots if s.model == key or (s.busy and s.expected == key)]
            same = [s for s in mine if s.has_room()]
            if mine and not same and size > 1:
                loading = any(s.held is None for s in mine)
                if loading or not self._room_for(size):
                    same = [s for s in mine if s.busy < 2 * limit]
            idle = sorted((s for s in self.slots if s.busy == 0), key=lambda s: s.last_used)
            free = [s for s in self.slots if s.has_room()] or list(self.slots)
            slot = (
                min(same, key=lambda s: s.busy)
                if same
                else next((s for s in idle if s.model is None), idle[0] if idle else free[0])
            )
            slot.busy += 1
            slot.items += len(lease.requests)
            slot.expected = key
            slot.queue.append(lease)
            self.changed.notify_all()

    def _finished(
        self,
        slot: _Slot,
        lease: ShardLease,
        results: list[GenerationResult],
        info: EngineInfo,
        engine_seconds: float,
    ) -> None:
        result = ShardResult(
            run_id=lease.run_id,
            token=lease.token,
            results=results,
            executed_on=info,
            engine_seconds=engine_seconds,
        )
        self.spool.put(result)  # durable before anything else
        self.summary.finished += 1
        with self.lock:
            self.in_flight.pop(lease.run_id, None)
            slot.unassign(lease)
            self.changed.notify_all()
        self._post_now.set()

    def _give_back(self, slot: _Slot | None, lease: ShardLease, reason: str) -> None:
        """Release a lease (once, whoever calls first); it stays in flight until released."""
        with self.lock:
            held = lease.run_id in self.in_flight and lease.run_id not in self._releasing
            if held:
                self._releasing.add(lease.run_id)
        if held:
            try:
                self.client.release(lease.run_id, lease.token, reason)
                self.summary.released += 1
            except (PlatformUnavailable, PlatformRefused) as exc:
                log.info("could not hand back run %d (it will expire): %s", lease.run_id, exc)
        with self.lock:
            if held:
                self.in_flight.pop(lease.run_id, None)
                self._releasing.discard(lease.run_id)
            if slot is not None:
                slot.unassign(lease)
            self.changed.notify_all()

    # -- background threads ----------------------------------------------------------

    def _beat(self) -> None:
        last = time.monotonic()
        while not self.stopping.wait(min(1.0, self._beat_seconds)):
            if time.monotonic() - last < self._beat_seconds:
                continue  # woken early: a short lease may have shortened the interval
            last = time.monotonic()
            with self.lock:
                leases = list(self.in_flight.values())
            for lease in leases:
                try:
                    self.client.heartbeat(lease.run_id, lease.token)
                except LeaseGone:
                    log.info("run %d lost its lease; its result will be sent late", lease.run_id)
                except (PlatformUnavailable, PlatformRefused) as exc:
                    log.warning("heartbeat failed: %s", exc)

    def _post(self) -> None:
        while not self.stopping.is_set():
            self._post_now.wait(timeout=self.options.poll_seconds)
            self._post_now.clear()
            self.post_spooled()

    def _spool_posted(self) -> bool:
        """Post what waits in the spool before leasing more; False while the platform is away."""
        self.post_spooled()
        return not len(self.spool)

    def post_spooled(self) -> int:
        """Post every spooled result the platform takes; returns how many were posted."""
        posted = 0
        with self._post_lock:  # the poster thread and the loop never post one result twice
            for result in self.spool.pending():
                try:
                    receipt = self.client.submit(result)
                except PlatformUnavailable as exc:
                    log.warning("%s", exc)
                    return posted  # kept; tried again later
                except PlatformRefused as exc:  # refused for good: keeping it cannot help
                    log.warning("the platform refused run %d: %s", result.run_id, exc)
                    self.summary.refused += 1
                    self.spool.remove(result.run_id)
                    continue
                self.spool.remove(result.run_id)
                self.summary.posted += 1
                posted += 1
                self.report(_posted_line(result.run_id, receipt))
        return posted

    def _shutdown(self, reason: str) -> None:
        self.stopping.set()
        self._post_now.set()
        with self.changed:
            self.changed.notify_all()
        for slot in self.slots:
            slot._close()  # cancels work in flight
        with self.lock:
            leases = list(self.in_flight.values())
        for lease in leases:
            self._give_back(None, lease, reason)
        for slot in self.slots:
            if slot.thread.is_alive():
                slot.thread.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.post_spooled()
