"""The two identities of a benchmark definition.

A **generation identity** keys jobs: everything that changes what a model is
asked and how it answers. A **scoring identity** keys scoring runs:
everything that changes the numbers computed from the same answers. Wording
(title, description, card prose) and presentation (primary metric, language
order) change neither, so fixing a typo never regenerates outputs or empties a
leaderboard.

These functions are frozen: changing what they hash would orphan every job
and scoring run already stored (a test pins their output).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["generation_identity", "scoring_identity", "definition_identity"]


def _digest(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def generation_identity(
    dataset_hash: str,
    prompt_template: str,
    system_prompt: str | None,
    decoding: dict[str, Any],
    chat_template: str,
    max_model_len: int,
) -> str:
    """SHA-256 of what decides a model's outputs on a benchmark."""
    return _digest(
        {
            "kind": "sabha.generation/1",
            "dataset": dataset_hash,
            "prompt_template": prompt_template,
            "system_prompt": system_prompt,
            "decoding": decoding,
            "chat_template": chat_template,
            "max_model_len": max_model_len,
        }
    )


def scoring_identity(
    task: str,
    metrics: list[str],
    labels: list[str],
    answer: dict[str, Any],
    breakdowns: list[str],
) -> str:
    """SHA-256 of what decides the numbers computed from a job's outputs."""
    return _digest(
        {
            "kind": "sabha.scoring/1",
            "task": task,
            "metrics": sorted(metrics),
            "labels": list(labels),
            "answer": answer,
            "breakdowns": sorted(breakdowns),
        }
    )


def definition_identity(name: str, generation_hash: str, scoring_hash: str) -> str:
    """SHA-256 naming one benchmark definition (a ``benchmark`` row)."""
    return _digest({"name": name, "generation": generation_hash, "scoring": scoring_hash})
