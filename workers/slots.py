"""An agent's engine slots: one engine each, fed by its own thread (see ``agent``).

A slot streams the leases of one model into its engine while the engine
works, so vLLM's batch stays full as shards come and go; it closes its
engine when another model needs its GPUs (the agent's ``GpuLedger``), and
hands its leases back with the reason when the engine cannot run them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sabha.platform.wire import CANNOT_RUN_HERE, ShardLease

from .busy import BusyClock

if TYPE_CHECKING:
    from .agent import Agent
    from .contract import Engine, Work

__all__ = ["EnginePlacement", "EngineSlot", "model_key"]

log = logging.getLogger("sabha.worker")


@dataclass(frozen=True)
class EnginePlacement:
    """Where the agent put an engine.

    Attributes:
        tensor_parallel_size: GPUs the engine spans (1 on CPU).
        node: The Ray node address it must run on (None: anywhere, CPU pools).
    """

    tensor_parallel_size: int = 1
    node: str | None = None


def model_key(lease: ShardLease) -> tuple[str, str | None, int]:
    """What an engine is loaded for: the model, its revision and the context length."""
    return (lease.model.target, lease.model.revision, lease.max_model_len)


class EngineSlot:
    """One engine of an agent and the thread that feeds it."""

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

    def room(self, shard_items: int) -> int:
        """How many more leases of about ``shard_items`` items it may take (under the lock).

        The count ``has_room`` answers one at a time: up to ``shards_per_engine``
        leases, and once its engine is loaded as many as fill ``items_per_engine``.
        """
        options = self.agent.options
        shards = max(0, options.shards_per_engine - self.busy)
        target = options.items_per_engine or (2 * self.batch if self.batch else 0)
        if target > self.items:
            shards = max(shards, -(-(target - self.items) // max(1, shard_items)))
        return shards

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
            if model_key(lease) == key:
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
        key = model_key(first)
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
                    other = any(model_key(queued) != key for queued in self.queue)
                    if agent.stopping.is_set() or not self.pulled or other:
                        return
                    agent.changed.wait(timeout=0.02)
                    lease = self._take(key)
            if lease is None:
                yield None

    def _give_back_model(self, first: ShardLease, reason: str) -> None:
        """Hand back ``first``, what the engine took, and every queued lease of its model."""
        agent = self.agent
        key = model_key(first)
        with agent.lock:
            queued = [lease for lease in self.queue if model_key(lease) == key]
            for lease in queued:
                self.queue.remove(lease)
            pulled = [agent.in_flight[r] for r in self.pulled if r in agent.in_flight]
            self.pulled.clear()
        leases = {lease.run_id: lease for lease in [first, *pulled, *queued]}
        for lease in leases.values():
            agent._give_back(self, lease, reason)

    def _generate(self, first: ShardLease) -> None:
        agent = self.agent
        key = model_key(first)
        try:
            gpus = agent.gpus_for(first)
            if gpus > agent.gpus.largest_node:
                raise ValueError(
                    f"an engine of {gpus} GPUs does not fit a node of this pool "
                    f"(at most {agent.gpus.largest_node})"
                )
        except Exception as exc:  # this pool cannot run the model: someone else may
            reason = f"{CANNOT_RUN_HERE} {' '.join(str(exc).split())[:400]}"
            log.warning("engine %d: %s", self.index, reason)
            agent.summary.cannot_run.append(reason)
            self._give_back_model(first, reason)
            return
        if (self.model != key or self.engine is None) and self._hand_over(first, gpus):
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
            failed = not agent.stopping.is_set()
            if failed:
                log.warning("engine %d: %s", self.index, reason)
                agent.summary.engine_failures.append(reason)
                agent.summary.engine_error = agent.summary.engine_error or exc
            self._close()
            self._give_back_model(first, reason)
            if failed and agent.options.stop_on_engine_failure:
                agent.stop(reason)

    def _hand_over(self, first: ShardLease, gpus: int) -> bool:
        """Queue ``first`` (and this slot's other leases of its model) behind another slot
        that has the model loaded or loading, when a second copy would not fit now.

        Otherwise this slot would wait for GPUs and, once that engine fell idle, close it
        to load the same model again.
        """
        agent = self.agent
        key = model_key(first)
        with agent.changed:
            if gpus <= 1 or agent.gpus.fits_now(gpus):
                return False
            owner = next(
                (
                    s
                    for s in agent.slots
                    if s is not self
                    and (s.model == key or (s.expected == key and s.held is not None))
                ),
                None,
            )
            if owner is None:
                return False
            moved = [first, *(lease for lease in self.queue if model_key(lease) == key)]
            for lease in moved:
                if lease is not first:
                    self.queue.remove(lease)
                self.busy -= 1
                self.items -= len(lease.requests)
                owner.busy += 1
                owner.items += len(lease.requests)
                owner.queue.append(lease)
            owner.expected = key
            agent.changed.notify_all()
            return True

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
            agent.gpus.release(node, gpus)
            self.held = None
            agent.changed.notify_all()
        return engine
