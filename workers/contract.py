"""What an agent is made of: its options, its engines, and the summary of what it did.

``Agent`` (``agent.py``) takes an ``EngineFactory`` that builds an ``Engine``
for a model on one of its slots (``volunteer.engine_factory`` is the real
one, for ``sabha worker run`` and ``sabha eval`` alike), ``AgentOptions``
saying how it works, and reports an ``AgentSummary``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sabha.platform.wire import (
    ChatTemplatePolicy,
    DecodingParams,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
    ModelSource,
    ShardLease,
)

from .slots import EnginePlacement

__all__ = [
    "AgentOptions",
    "AgentSummary",
    "Engine",
    "EngineFactory",
    "GpusFor",
    "ShardWork",
    "Work",
]

K = TypeVar("K")
ShardWork = tuple[K, list[GenerationRequest], DecodingParams, ChatTemplatePolicy]
"""One shard's work for an engine, under the caller's key ``K``."""
Work = ShardWork[ShardLease]


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
        poll_seconds: Wait between lease requests when there is no work and the
            platform cannot hold a request until there is (older than protocol
            1.2, or its waiting places are taken).
        long_poll_seconds: How long a batch lease request asks the platform to
            wait for work when there is none (long-poll); also the most a
            ``stop`` from another thread waits for a lease call to end (Ctrl-C
            interrupts it at once).
        heartbeat_seconds: Most time between heartbeats of the leases in flight
            (shorter when the platform's leases are short: a third of a lease).
        exit_when_idle: Stop once there has been no work for ``idle_seconds``
            with nothing in flight and the spool empty (batch use and tests;
            shards can come back: a replica, an expired lease); otherwise run
            until stopped.
        idle_seconds: See ``exit_when_idle``.
        stop_on_engine_failure: Stop at the first engine failure (after handing
            its leases back) rather than lease the model again (``sabha eval``).
        results_per_post: Most spooled results posted in one call (a batch,
            protocol 1.2; also held to ``BATCH_BYTES``); 1 posts one by one.
        post_linger_seconds: How long a finished result may wait for others
            to share its post while more shards are in flight (0: post each at
            once). A full batch, or one with nothing else in flight, goes at once.
    """

    pool_name: str
    engines: int = 1
    gpus_per_node: tuple[tuple[str | None, int], ...] = ()
    shards_per_engine: int = 2
    items_per_engine: int | None = None
    poll_seconds: float = 10.0
    long_poll_seconds: float = 5.0
    heartbeat_seconds: float = 60.0
    exit_when_idle: bool = False
    idle_seconds: float = 30.0
    stop_on_engine_failure: bool = False
    results_per_post: int = 16
    post_linger_seconds: float = 0.0


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
    engine_error: BaseException | None = None  # the first engine failure itself
    interrupted: bool = False  # Ctrl-C
