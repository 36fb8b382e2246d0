"""How a benchmark decodes: greedy parameters, per-language answer budgets, submitters' overrides.

Decoding flows one way. A benchmark file's ``DecodingSpec`` (with its
per-language ``AnswerBudget`` rule) is stored as the benchmark's
``decoding`` (``model_dump(mode="json")``) and is part of its generation
identity (see ``_identity``). A submission's ``DecodingOverrides`` (a wire
shape) change it within its bounds (``apply_decoding_overrides``), which
makes another generation identity. ``queue.create_job`` then measures the
budget with the model's tokenizer, and the job's decoding is a
``wire.DecodingParams``: stored with the job, carried by every lease of it
to the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from ..wire import DecodingOverrides
from ._fields import FieldProblems, Strict

__all__ = ["AnswerBudget", "DecodingSpec", "apply_decoding_overrides"]


class AnswerBudget(Strict):
    """Per-language budgets of new tokens, from the references' lengths in the model's tokens.

    Scripts cost different numbers of tokens for the same content (a Tamil
    sentence takes several times the tokens of a Swahili one under most
    tokenizers), so one ``max_tokens`` for every language cuts some
    languages' answers long before others'. With a budget, each language's
    limit is ``multiple`` × the ``quantile`` (1.0: the longest) of its
    references' lengths, counted with the evaluated model's own tokenizer
    when the job is created, rounded up, at least ``min_tokens`` and at most
    the decoding's ``max_tokens``. Without the model's ``tokenizer.json``,
    lengths are counted in UTF-8 bytes plus one, which no tokenizer exceeds.
    The rule is part of the generation identity; the numbers it gives for a
    model are stored with that model's job (``max_tokens_by_language``).
    """

    multiple: float = Field(default=1.5, ge=1.0, le=10.0)
    quantile: float = Field(default=1.0, gt=0.0, le=1.0)
    min_tokens: int = Field(default=16, ge=1, le=4096)


class DecodingSpec(Strict):
    """A benchmark file's decoding. Evaluations are greedy with a fixed seed.

    ``max_tokens`` is the most new tokens an answer gets; with ``budget``
    (generation benchmarks), each language gets its own limit up to it.
    This is the authoring shape: with a submission's ``DecodingOverrides``
    it makes each job's ``wire.DecodingParams`` (see the module docstring).
    """

    max_tokens: int = Field(default=64, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=0.0)
    seed: int = 0
    budget: AnswerBudget | None = Field(
        default=None,
        description="Per-language limits from the references' token lengths (generation only)",
    )

    @model_serializer(mode="wrap")
    def _leave_out_no_budget(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Decoding without a budget dumps as it always did: existing
        # generation identities are unchanged.
        data = handler(self)
        if isinstance(data, dict) and self.budget is None:
            data.pop("budget", None)
        return data

    @model_validator(mode="after")
    def _budget_within_max_tokens(self) -> DecodingSpec:
        if self.budget is not None and self.budget.min_tokens > self.max_tokens:
            raise FieldProblems(
                [
                    (
                        "budget.min_tokens",
                        f"{self.budget.min_tokens} is more than max_tokens {self.max_tokens}; "
                        "lower it or raise max_tokens",
                    )
                ]
            )
        return self


def apply_decoding_overrides(
    decoding: Mapping[str, Any], overrides: DecodingOverrides | None = None
) -> dict[str, Any]:
    """A benchmark's stored decoding with a submission's overrides applied (None: none).

    The result is the decoding a job's generation identity hashes; its keys
    keep their order, so a job's stored decoding keeps its bytes. A value
    equal to the default changes nothing (``top_p`` 1.0 is the default), so
    such a submission shares the benchmark's own job.

    Raises:
        FieldProblems: ``max_tokens`` above the benchmark's.
    """
    merged = dict(decoding)
    if overrides is None:
        return merged
    limit = int(str(decoding.get("max_tokens", 64)))
    if overrides.max_tokens is not None and overrides.max_tokens > limit:
        raise FieldProblems(
            [("max_tokens", f"{overrides.max_tokens} is more than this benchmark's {limit}")]
        )
    for key, value in overrides.model_dump(exclude_none=True).items():
        if key == "top_p" and value == 1.0:
            merged.pop("top_p", None)
        else:
            merged[key] = value
    return merged
