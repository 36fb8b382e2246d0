"""How many of a run's answers stopped at their budget of new tokens, per language.

An answer that ends because it reached ``max_tokens`` (``finish_reason``
``length``) was cut, and a cut answer scores lower than the same answer
whole. Budgets differ by language (``decoding.budget``), and so can the share
of cut answers: the run page shows it per language, so a language whose
answers are cut more often than the others' is visible beside its scores.
"""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import Session, col, func, select

from sabha.platform.domain import PUBLIC_SPLITS, Item, Job, Output, Shard
from sabha.platform.wire import DecodingParams

from .public import AnswerLengthPublic

__all__ = ["LENGTH_FINISH_REASON", "answer_lengths"]

LENGTH_FINISH_REASON = "length"


def answer_lengths(session: Session, job: Job) -> list[AnswerLengthPublic]:
    """Per language (public splits), the accepted answers and how many hit their budget."""
    decoding = DecodingParams.model_validate(job.decoding)
    counts: dict[str, dict[bool, int]] = defaultdict(lambda: {True: 0, False: 0})
    for language, finish_reason, n in session.exec(
        select(Item.language, Output.finish_reason, func.count())
        .join(Shard, col(Shard.accepted_run_id) == Output.shard_run_id)
        .join(Item, col(Item.id) == Output.item_id)
        .where(
            Shard.job_id == job.id,
            col(Item.split).in_(PUBLIC_SPLITS),
            col(Output.error).is_(None),
        )
        .group_by(col(Item.language), col(Output.finish_reason))
    ):
        counts[language][finish_reason == LENGTH_FINISH_REASON] += int(n)
    return [
        AnswerLengthPublic(
            language=language,
            max_tokens=decoding.max_tokens_for(language),
            answers=found[True] + found[False],
            hit_limit=found[True],
            share=round(found[True] / (found[True] + found[False]), 4),
        )
        for language, found in sorted(counts.items())
    ]
