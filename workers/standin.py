"""A stand-in engine for tests and benchmarks of the agent: no model, a fixed latency per item.

**Not for production.** ``sabha worker run --stand-in-engine SECONDS`` (a
hidden option) runs the agent with this engine instead of vLLM, so tests can
kill and restart agents many times, and ``benchmarks/scale_out.py`` can
measure the platform and the lease protocol, without paying the ~20-40 s a
vLLM engine takes to start on CPU. Its answers are deterministic functions of
the prompt, so two runs of a job score the same; its provenance says
``device="stand-in"`` so its results can never pass for a real engine's.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from sabha.platform.wire import (
    DecodingParams,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
)

from .contract import ShardWork

__all__ = ["StandInEngine", "stand_in_answer", "stand_in_results"]

K = TypeVar("K")

WORDS = ("mvua", "बारिश", "மழை", "مطر", "rain", "shamba", "खेत", "வயல்", "حقل", "field")


def stand_in_answer(prompt: str, variant: int = 0) -> str:
    """A deterministic answer to a prompt: its last words and a few picked by its hash.

    ``variant`` > 0 drifts as another honest setup (dtype, threads, batch) would:
    about one answer in four ends in another word.
    """
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    picked = [WORDS[b % len(WORDS)] for b in digest[:4]]
    if variant:
        drift = hashlib.sha256(f"{variant}:{prompt}".encode()).digest()
        if drift[0] % 4 == 0:
            picked[-1] = WORDS[(WORDS.index(picked[-1]) + 1 + drift[1] % 9) % len(WORDS)]
    return " ".join(prompt.split()[-3:] + picked)


def stand_in_results(
    requests: Iterable[GenerationRequest], decoding: DecodingParams, variant: int = 0
) -> list[GenerationResult]:
    """The stand-in engine's answers to a shard's requests (``benchmarks/thousand_pools.py``
    posts them too, so its simulated pools' results are accepted like the engine's)."""
    return [
        GenerationResult(
            item_id=r.item_id,
            prompt=r.text,
            text=stand_in_answer(r.text, variant),
            finish_reason="stop",
            num_tokens=min(7, decoding.max_tokens_for(r.language)),
        )
        for r in requests
    ]


class StandInEngine:
    """Answers every shard after ``seconds_per_item`` times its size (see the module).

    Args:
        seconds_per_item: Simulated generation time of one item.
        variant: Another honest setup's drift (``stand_in_answer``).
    """

    def __init__(self, seconds_per_item: float = 0.0, variant: int = 0) -> None:
        self.seconds_per_item = seconds_per_item
        self.variant = variant
        self._info = EngineInfo(host=socket.gethostname(), device="stand-in", vllm="none")

    def info(self) -> EngineInfo:
        """Provenance: ``device="stand-in"``."""
        return self._info

    def generate_shards(
        self,
        work: Iterable[ShardWork[K] | None],
        max_in_flight: int = 256,
    ) -> Iterator[tuple[K, list[GenerationResult]]]:
        """Answer shards one at a time, each after its simulated latency (None: nothing yet)."""
        for shard in work:
            if shard is None:
                continue
            key, requests, decoding, _policy = shard
            time.sleep(self.seconds_per_item * len(requests))
            yield key, stand_in_results(requests, decoding, self.variant)

    def close(self) -> None:
        """Nothing to free."""
