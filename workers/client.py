"""The engine client: streams shards through one ``StreamingEngine`` Ray actor.

``EngineClient.generate_shards`` keeps several shards in the engine at once,
pulls the next shard from the caller only when the engine has room, and
yields each shard's answers as soon as its last item is done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from sabha.platform.errors import EngineError
from sabha.platform.wire import (
    EngineInfo,
    GenerationRequest,
    GenerationResult,
    ModelSource,
)

from .contract import ShardWork
from .engine import engine_actor_request, place_engine_actor
from .local import ensure_ray, root_cause
from .streaming import StreamingEngine

__all__ = ["EngineClient"]

K = TypeVar("K")


class EngineClient:
    """Starts a vLLM engine in a Ray actor and streams shards through it.

    The actor asks Ray for one GPU when the cluster has any; with
    ``tensor_parallel_size`` above 1 it runs in a placement group of that many
    GPUs of one node (``engine.engine_actor_request``), reserved here first.
    Ray is started on loopback if this process has not joined a cluster yet
    (``ensure_ray``).

    Args:
        model: What to load.
        max_model_len: Longest prompt plus answer, in tokens.
        memory_fraction: Share of memory vLLM may take (see ``engine_options``).
        seed: Engine seed.
        tensor_parallel_size: GPUs of one node the model is split across.
        node: A Ray node's address to run on (None: wherever Ray finds room).

    Raises:
        EngineError: the GPUs for a tensor-parallel engine did not become free.
    """

    def __init__(
        self,
        model: ModelSource,
        max_model_len: int = 2048,
        memory_fraction: float | None = None,
        seed: int = 0,
        tensor_parallel_size: int = 1,
        node: str | None = None,
    ) -> None:
        ray = ensure_ray()
        self.model = model
        request = engine_actor_request(
            tensor_parallel_size, ray.cluster_resources().get("GPU", 0) >= 1, node
        )
        try:
            options, self.placement_group = place_engine_actor(request)
        except TimeoutError as exc:
            raise EngineError(
                f"No {tensor_parallel_size} GPUs of one node became free for {model.target}: "
                f"{exc}.",
                "Check `ray status`: another program may hold the GPUs.",
            ) from exc
        try:
            self.actor = (
                ray.remote(StreamingEngine)
                .options(**options)
                .remote(
                    model.target,
                    seed,
                    max_model_len,
                    model.revision,
                    memory_fraction,
                    tensor_parallel_size,
                )
            )
        except BaseException:
            self._remove_placement_group()
            raise
        self._info: EngineInfo | None = None

    def info(self) -> EngineInfo:
        """Provenance of the engine; waits until the model is loaded.

        Raises:
            EngineError: vLLM could not load the model.
        """
        if self._info is None:
            self._info = self._get(self.actor.info.remote())
        return self._info

    def generate_shards(
        self,
        work: Iterable[ShardWork[K] | None],
        max_in_flight: int = 256,
    ) -> Iterator[tuple[K, list[GenerationResult]]]:
        """Answer shards, keeping the engine's batch full; yields each shard when it is done.

        Shards are pulled from ``work`` lazily: the next one only while fewer
        than ``max_in_flight`` items are submitted but unanswered (judged by
        the size of the last shard pulled), and always while fewer than two
        shards are in flight, so one waits while another runs. ``work`` may
        yield None when it has no shard right now but may have more (a
        volunteer's agent waiting for its next lease): the client then waits
        a moment on the shards in flight and asks again, so finished shards
        are handed back while new ones are still coming. Shards may complete
        out of order. Closing the iterator early cancels the shards still in
        flight.

        Args:
            work: ``(key, requests, decoding, chat_template)`` per shard (or None,
                see above); the key is handed back with the shard's results.
            max_in_flight: Most items in flight at once (vLLM batches up to
                ``info().max_num_seqs`` of them).

        Yields:
            ``(key, results)``: one result per request, with the same item ids.

        Raises:
            EngineError: The model could not be loaded, the engine died while
                generating, or it answered other items than it was asked.
        """
        import ray

        self.info()  # load failures are reported as such, before any shard is pulled
        shards = iter(work)
        pending: dict[Any, tuple[K, list[GenerationRequest]]] = {}
        in_flight = 0
        next_size = 1
        exhausted = False
        try:
            while True:
                starved = False
                while not exhausted and (
                    len(pending) < 2 or in_flight + next_size <= max_in_flight
                ):
                    try:
                        shard = next(shards)
                    except StopIteration:
                        exhausted = True
                        break
                    if shard is None:  # nothing now; more may come
                        starved = True
                        break
                    key, requests, decoding, policy = shard
                    ref = self.actor.generate_shard.remote(requests, decoding, policy)
                    pending[ref] = (key, requests)
                    in_flight += len(requests)
                    next_size = max(len(requests), 1)
                if not pending:
                    if exhausted:
                        return
                    continue  # the source blocks a moment before it says "nothing"
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.05 if starved else None)
                if not ready:
                    continue
                key, requests = pending.pop(ready[0])
                in_flight -= len(requests)
                results: list[GenerationResult] = self._get(ready[0])
                if [r.item_id for r in results] != [r.item_id for r in requests]:
                    raise EngineError(
                        "The engine answered a different set of items than it was asked."
                    )
                yield key, results
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):  # the actor may be gone already
                    ray.cancel(ref)

    def close(self) -> None:
        """Stop the actor, free its memory and its GPUs (vLLM's workers die with it)."""
        import ray

        ray.kill(self.actor)
        self._remove_placement_group()

    def _remove_placement_group(self) -> None:
        if self.placement_group is not None:
            from ray.util.placement_group import remove_placement_group

            with contextlib.suppress(Exception):  # already gone
                remove_placement_group(self.placement_group)
            self.placement_group = None

    def _get(self, ref: Any) -> Any:
        import ray

        target = self.model.target
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            if self._info is None:
                raise EngineError(
                    f"vLLM could not load the model at {target}: {root_cause(exc)}",
                    "Check that the folder is a complete Hugging Face model that vLLM "
                    "supports (config.json, weights, tokenizer); run with --verbose for "
                    "vLLM's own log.",
                ) from exc
            raise EngineError(
                f"The vLLM engine for {target} died while generating: {_death_reason(exc)}",
                "Unfinished shards were not answered; run again to resume. If memory ran "
                "out, lower max_model_len or the memory fraction, or use a larger GPU.",
            ) from exc
        except ray.exceptions.RayTaskError as exc:
            if "EngineDeadError" in str(exc):
                raise EngineError(
                    f"The vLLM engine for {target} died while generating: "
                    "vLLM's engine process stopped (EngineDeadError)",
                    "Run with --verbose for vLLM's own log; run again to resume.",
                ) from exc
            raise EngineError(
                f"vLLM failed while generating with {target}: {root_cause(exc)}",
                "Run with --verbose for vLLM's own log.",
            ) from exc


def _death_reason(exc: BaseException) -> str:
    """Ray's reason for an actor's death, in one line."""
    text = " ".join(str(exc).split())
    for marker in ("The actor is dead because", "Worker exit detail:", "The actor died"):
        start = text.find(marker)
        if start >= 0:
            text = text[start:]
            break
    end = text.find(" There are some potential root causes")
    text = text[:end] if end > 0 else text
    return text if len(text) <= 300 else text[:297] + "..."
