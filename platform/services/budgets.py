"""Per-language budgets of new tokens, measured with the evaluated model's tokenizer.

A benchmark's ``decoding.budget`` (``AnswerBudget``) is a rule; this module
turns it into numbers for one model when its job is created: each
language's references are counted in the model's tokens, and the language
gets ``multiple`` × the ``quantile`` of those lengths, rounded up, between
``min_tokens`` and ``max_tokens``. The numbers go into the job's decoding
(``max_tokens_by_language``), which every lease of the job carries, so every
pool (and every replica) cuts answers at the same place; how they were
measured goes into the job's generation record (``answer_budget``), which the
run page shows.

The tokenizer is the model's ``tokenizer.json``, read with the ``tokenizers``
library (no torch): from the model folder, or from the hub at the model's
pinned revision. Load it (``load_token_counter``) before a write
transaction: fetching from the hub can take a while. Without it, lengths are
UTF-8 bytes plus one, an upper bound for byte-level and byte-fallback
tokenizers, so a budget is never tighter than the tokenizer's would be.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from sabha.platform.benchmarks import AnswerBudget
from sabha.platform.domain import Item
from sabha.platform.wire import LocalModelSource, ModelSource

__all__ = ["TokenCounter", "bytes_counter", "load_token_counter", "resolve_answer_budgets"]


@dataclass(frozen=True)
class TokenCounter:
    """Counts a text's tokens; ``source`` says how (shown on the run page)."""

    count: Callable[[str], int]
    source: str


def bytes_counter(reason: str) -> TokenCounter:
    """UTF-8 bytes plus one (a leading-space or byte-fallback token): no tokenizer exceeds it."""
    return TokenCounter(
        count=lambda text: len(text.encode("utf-8")) + 1,
        source=f"UTF-8 bytes + 1 ({reason})",
    )


def _from_file(path: Path, described: str) -> TokenCounter:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    return TokenCounter(
        count=lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids),
        source=f"the tokenizer.json of {described}",
    )


def load_token_counter(model: ModelSource) -> TokenCounter:
    """The model's own token counter, or the byte count when its tokenizer cannot be read."""
    named = model.name or model.target
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        return bytes_counter("the tokenizers package is not installed")
    try:
        if isinstance(model, LocalModelSource):
            path = Path(model.path) / "tokenizer.json"
            if not path.is_file():
                return bytes_counter(f"{named} has no tokenizer.json")
            return _from_file(path, named)
        from huggingface_hub import hf_hub_download

        found = hf_hub_download(
            repo_id=model.repo_id, filename="tokenizer.json", revision=model.revision
        )
        return _from_file(Path(found), f"{model.repo_id} at {model.revision[:12]}")
    except Exception as exc:  # the hub client and tokenizers raise many kinds
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return bytes_counter(f"the tokenizer of {named} could not be read: {first}")


def _quantile(lengths: list[int], q: float) -> int:
    """The ``q`` quantile of ``lengths`` by the nearest-rank rule (1.0: the longest)."""
    ordered = sorted(lengths)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def resolve_answer_budgets(
    session: Session, dataset_version_id: int, decoding: dict[str, Any], counter: TokenCounter
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job's decoding with its per-language budgets, and how they were measured.

    Args:
        session: Any session (reads the items).
        dataset_version_id: The job's dataset version.
        decoding: The benchmark's decoding (with a submission's overrides), with ``budget``.
        counter: The model's token counter (``load_token_counter``).

    Returns:
        The decoding for the job (``budget`` replaced by ``max_tokens_by_language``)
        and the record for the job's generation: the rule, how tokens were
        counted, and per language the reference length the budget came from.
    """
    rule = AnswerBudget.model_validate(decoding["budget"])
    ceiling = int(decoding.get("max_tokens", 64))
    lengths: dict[str, list[int]] = defaultdict(list)
    for language, reference in session.exec(
        select(Item.language, Item.reference).where(
            Item.dataset_version_id == dataset_version_id, col(Item.reference).is_not(None)
        )
    ):
        lengths[language].append(counter.count(reference or ""))
    reference_tokens = {
        language: _quantile(found, rule.quantile) for language, found in lengths.items()
    }
    budgets = {
        language: min(ceiling, max(rule.min_tokens, math.ceil(rule.multiple * tokens)))
        for language, tokens in sorted(reference_tokens.items())
    }
    job_decoding = {key: value for key, value in decoding.items() if key != "budget"}
    job_decoding["max_tokens_by_language"] = budgets
    record = {
        "rule": rule.model_dump(mode="json"),
        "counted_with": counter.source,
        "reference_tokens": dict(sorted(reference_tokens.items())),
        "capped_at": ceiling,
    }
    return job_decoding, record
