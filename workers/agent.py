"""The volunteer's agent: leases shards from the platform and runs them on the pool's engines.

``Agent.run`` is the loop behind ``sabha worker run``:

- it registers the pool's capabilities, then leases shards while an engine
  has room: ``shards_per_engine`` each, and once an engine is loaded as many
  as keep twice its batch in hand. It asks for all it has room for in one
  call (``POST /api/v1/leases/batch``, protocol 1.2), which the platform holds
  while it has no work (long-poll, ``long_poll_seconds``), so the next lease
  arrives as soon as there is one; an older platform is asked for one shard
  a call, every ``poll_seconds`` while there is no work;
- each engine slot (``slots.EngineSlot``) is one long-lived engine (a vLLM
  actor on one GPU, on ``k`` GPUs of one node with tensor parallelism, or on
  the CPU) with one thread streaming leases of its model into it; a shard of
  another model goes to an idle slot, whose least recently used model is
  closed to make room;
- GPUs are accounted per node (``gpus.GpuLedger``): loading a ``k``-GPU
  engine closes idle engines, least recently used first, until ``k`` GPUs of
  one node are free, and otherwise waits (its lease held, heartbeats going
  on, no new leases taken) while busy engines finish. A lease the pool
  cannot run at all (``gpus_for`` raises) is handed back with the reason;
- a heartbeat thread keeps the leases in flight alive;
- every finished shard is written to the spool first, then posted by the
  poster thread, which retries until the platform answers, so an outage or a
  restart of the platform (or of the agent) loses nothing; results left by
  an earlier run or kept through an outage are posted before any new lease
  is taken, so the platform hears of finished shards before it hands out
  their leases' successors. What waits in the spool goes in batches (one
  call for up to ``results_per_post`` results, protocol 1.2), one by one to
  an older platform; while other shards are in flight a result may wait
  ``post_linger_seconds`` for others to share its post. A result leaves the
  spool only when the platform's answer for it says it has it or refused it
  for good;
- ``report`` (the CLI prints it) says what it does: registered, leased,
  posted, and whether a result counts now or waits for another pool's;
- an engine that fails hands its leases back with the reason; Ctrl-C (or
  ``stop``) hands back every lease not yet finished and stops cleanly.

Engines are built with ``max_task_retries=0``: a shard whose engine failed is
released, never silently rerun.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sabha.platform.wire import (
    EngineInfo,
    GenerationResult,
    PoolCapabilities,
    PoolInfo,
    PoolRegistration,
    ShardLease,
    ShardResult,
)

from .contract import AgentOptions, AgentSummary, Engine, EngineFactory, GpusFor
from .gpus import GpuLedger, HeldGpus
from .messages import leased_line, posted_line, registered_lines, waiting_line
from .platform_client import (
    BatchLeasing,
    LeaseGone,
    PlatformClient,
    PlatformRefused,
    PlatformUnavailable,
)
from .slots import EnginePlacement, EngineSlot, model_key
from .spool import MemorySpool, Spool

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

# The most bytes of results the agent puts in one batch (the platform's limit,
# SABHA_MAX_RESULT_BYTES, is 16 MB by default); a larger result goes alone.
BATCH_BYTES = 4_000_000


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
        spool: Spool | MemorySpool,
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
        self.gpus = GpuLedger([gpus for _, gpus in nodes])
        self.waiting_for_gpus = 0
        self.slots = [EngineSlot(self, i) for i in range(max(1, sum(self.gpus.total)))]
        self._post_now = threading.Event()
        self._post_lock = threading.Lock()
        self._batch_size = max(1, options.results_per_post)
        self._post_first = True  # post the spool before leasing: an earlier run's results
        self._waiting_since: float | None = None  # when the oldest unposted result was put
        self._threads: list[threading.Thread] = []
        self._beat_seconds = options.heartbeat_seconds
        self._stop_reason: str | None = None
        self._batch_leasing = True  # until the platform answers 404 to a batch lease
        self._shard_items = 64  # items of the last lease: sizes the batch asked for

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
            for line in registered_lines(self.pool):
                self.report(line)
            self._start_threads()
            self._loop()
        except KeyboardInterrupt:
            log.info("stopping: handing back %d lease(s)", len(self.in_flight))
            self.summary.interrupted = True
            self._stop_reason = self._stop_reason or "interrupted (Ctrl-C)"
        finally:
            self._shutdown(self._stop_reason or "the volunteer stopped the agent")
        return self.summary

    def stop(self, reason: str | None = None) -> None:
        """Ask the loop to stop (from another thread or a signal handler).

        ``reason`` is what the leases still in flight are handed back with.
        """
        self._stop_reason = self._stop_reason or reason
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

    def _room(self) -> int:
        """How many more leases the engines have room for now (0: take none)."""
        with self.lock:
            if self.waiting_for_gpus:  # leases in hand wait for GPUs; take no more
                return 0
            loaded = sum(s.room(self._shard_items) for s in self.slots if s.held is not None)
            # A slot without an engine has room only while GPUs are free or idle.
            if not (
                self.gpus.fits_now(1)
                or any(s.held is not None and s.busy == 0 and not s.working for s in self.slots)
            ):
                return loaded
            return loaded + sum(s.room(self._shard_items) for s in self.slots if s.held is None)

    def _acquire(self, slot: EngineSlot, gpus: int) -> int:
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
                node = self.gpus.place(gpus)
                if node is not None:
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
        return self.gpus.fits_now(gpus) or self._victims(None, gpus) is not None

    def _victims(self, slot: EngineSlot | None, gpus: int) -> list[EngineSlot] | None:
        """The slots whose idle engines to close to make room (``GpuLedger.victims``).

        Called under the lock. None: no node can make room now.
        """
        idle = [
            HeldGpus(s.index, s.held[0], s.held[1], s.last_used)
            for s in self.slots
            if s is not slot and s.held is not None and s.busy == 0 and not s.working
        ]
        chosen = self.gpus.victims(idle, gpus)
        return None if chosen is None else [self.slots[held.slot] for held in chosen]

    def _loop(self) -> None:
        idle_since: float | None = None
        while not self.stopping.is_set():
            room = self._room()
            if not room:
                with self.changed:
                    self.changed.wait(timeout=1.0)
                continue
            if self._post_first and len(self.spool) and not self._spool_posted():
                self.stopping.wait(self.options.poll_seconds)  # the platform is away
                continue
            try:
                leases, pause = self._lease(room)
            except PlatformUnavailable as exc:
                log.warning("%s", exc)
                self.stopping.wait(self.options.poll_seconds)
                continue
            if not leases:
                if not self._idle():
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                    self.report(waiting_line(pause or None, self.summary.leased))
                elif (
                    self.options.exit_when_idle
                    and time.monotonic() - idle_since >= self.options.idle_seconds
                ):
                    return
                self.stopping.wait(pause)
                continue
            idle_since = None
            for lease in leases:  # handed over even when stopping: _shutdown releases them
                self.summary.leased += 1
                self.report(leased_line(lease))
                self._dispatch(lease)

    def _lease(self, room: int) -> tuple[list[ShardLease], float]:
        """Up to ``room`` leases, and how long to wait before asking again if none came.

        A platform of protocol 1.2 leases a batch and holds the call while it
        has no work (long-poll), so the agent asks again at once; an older one
        (404 to the batch call) is asked for one shard a call, every
        ``poll_seconds`` while there is no work.
        """
        client = self.client
        if self._batch_leasing and isinstance(client, BatchLeasing):
            wait = self.options.long_poll_seconds
            if self.options.exit_when_idle:  # not held past the time it may stay idle
                wait = min(wait, self.options.idle_seconds)
            began = time.monotonic()
            batch = client.lease_batch(room, wait)
            if batch is not None:
                if batch.leases:
                    self._shard_items = len(batch.leases[-1].requests) or self._shard_items
                    return list(batch.leases), 0.0
                if batch.retry_after is not None:  # the platform had no room to hold the call
                    return [], min(float(batch.retry_after), self.options.poll_seconds)
                # It held the call for the wait (else it is not long-polling: poll instead).
                held = time.monotonic() - began >= 0.9 * wait
                return [], 0.0 if held else self.options.poll_seconds
            self._batch_leasing = False
            log.info("the platform has no batch leasing (protocol < 1.2): one shard a call")
        lease = client.lease()
        return ([lease] if lease is not None else []), self.options.poll_seconds

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
        key = model_key(lease)
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
        slot: EngineSlot,
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
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        self.summary.finished += 1
        with self.lock:
            self.in_flight.pop(lease.run_id, None)
            slot.unassign(lease)
            self.changed.notify_all()
        self._post_now.set()

    def _give_back(self, slot: EngineSlot | None, lease: ShardLease, reason: str) -> None:
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
            self._post_now.wait(timeout=self._post_wait())
            self._post_now.clear()
            if self._post_due():
                self.post_spooled()

    def _post_wait(self) -> float:
        """Seconds until the poster looks again: the oldest result's linger, else a poll."""
        since = self._waiting_since
        if since is None or self.options.post_linger_seconds <= 0:
            return self.options.poll_seconds
        left = since + self.options.post_linger_seconds - time.monotonic()
        return max(0.01, min(left, self.options.poll_seconds))

    def _post_due(self) -> bool:
        """Whether to post the spool now rather than let results gather for one batch.

        Now: lingering is off or pointless (one result per post), a batch is
        full, no other shard is in flight (no result is coming soon), the
        oldest result has waited ``post_linger_seconds``, or they are an
        earlier run's or were kept through an outage.
        """
        waiting = len(self.spool)
        if not waiting:
            return False
        since = self._waiting_since
        with self.lock:
            busy = bool(self.in_flight)
        return (
            self._batch_size == 1
            or self._post_first
            or since is None
            or not busy
            or waiting >= self._batch_size
            or time.monotonic() - since >= self.options.post_linger_seconds
        )

    def _spool_posted(self) -> bool:
        """Post what waits in the spool before leasing more; False while the platform is away.

        Only while results of an earlier run, or results kept through an outage,
        wait: the platform then hears of finished shards before it hands out
        their leases' successors. Otherwise the poster thread posts them.
        """
        self.post_spooled()
        return not len(self.spool)

    def post_spooled(self) -> int:
        """Post every spooled result the platform takes; returns how many were posted.

        Results go in batches (``results_per_post`` and ``BATCH_BYTES`` at most)
        where the platform takes them, else one by one. A result leaves the
        spool only when the platform's answer for it says it has it or refused
        it for good.
        """
        posted = 0
        with self._post_lock:  # the poster thread and the loop never post one result twice
            pending = self.spool.pending()
            while pending:
                batch, pending = _next_batch(pending, self._batch_size)
                try:
                    took = self._post_batch(batch) if len(batch) > 1 else None
                    if took is None:  # one result, or a platform that takes one per post
                        took = sum(self._post_one(result) for result in batch)
                except PlatformUnavailable as exc:
                    log.warning("%s", exc)
                    self._post_first = True  # until the platform has heard of them all
                    return posted  # what was not answered stays in the spool
                posted += took
            self._post_first = False
            self._waiting_since = time.monotonic() if len(self.spool) else None
        return posted

    def _post_one(self, result: ShardResult) -> int:
        """Post one result; returns 1 if the platform took it (see ``post_spooled``)."""
        try:
            receipt = self.client.submit(result)
        except PlatformRefused as exc:  # refused for good: keeping it cannot help
            log.warning("the platform refused run %d: %s", result.run_id, exc)
            self.summary.refused += 1
            self.spool.remove(result.run_id)
            return 0
        self.spool.remove(result.run_id)
        self.summary.posted += 1
        self.report(posted_line(result.run_id, receipt, len(result.results)))
        return 1

    def _post_batch(self, batch: list[ShardResult]) -> int | None:
        """Post results in one call; None when they must go one by one (see ``post_spooled``).

        A batch the platform refuses whole (too large for its limits) changes
        nothing there: the agent halves its batches and posts these one by one.
        """
        try:
            outcomes = self.client.submit_batch(batch)
        except PlatformRefused as exc:
            self._batch_size = max(1, len(batch) // 2)
            log.warning("the platform refused a batch of %d results: %s", len(batch), exc)
            return None
        if outcomes is None:  # an older platform: one by one from now on
            self._batch_size = 1
            return None
        sizes = {result.run_id: len(result.results) for result in batch}
        posted, done = 0, []
        for outcome in outcomes:
            done.append(outcome.run_id)
            if outcome.receipt is None:
                detail = outcome.refusal.detail if outcome.refusal else "no reason given"
                log.warning("the platform refused run %d: %s", outcome.run_id, detail)
                self.summary.refused += 1
                continue
            posted += 1
            self.report(posted_line(outcome.run_id, outcome.receipt, sizes.get(outcome.run_id)))
        self.spool.remove_all(done)
        self.summary.posted += posted
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


def _next_batch(
    pending: list[ShardResult], most: int
) -> tuple[list[ShardResult], list[ShardResult]]:
    """The first results of ``pending`` that fit one post (``most``, ``BATCH_BYTES``); the rest."""
    batch: list[ShardResult] = []
    size = 0
    for result in pending[:most]:
        size += len(result.model_dump_json())
        if batch and size > BATCH_BYTES:
            break
        batch.append(result)
    return batch, pending[len(batch) :]
