"""Stored scores as the one cell type (``public.Cell``) that pages, JSON and CSV show."""

from __future__ import annotations

from typing import Any

from sabha.platform.domain import CommunityScore, Score

from ..public import Cell, JudgedCell

__all__ = ["judged_cell", "score_cell"]

PLACES = 4  # the read model rounds; a run's page shows scores as stored


def _interval(score: Score | CommunityScore, places: int | None) -> dict[str, Any]:
    """Value, 95% interval and ``n``, rounded to ``places`` (None: as stored)."""

    def rounded(value: float) -> float:
        return value if places is None else round(value, places)

    return {
        "value": rounded(score.value),
        "ci_low": rounded(score.ci_low),
        "ci_high": rounded(score.ci_high),
        "n": score.n,
    }


def score_cell(score: Score, places: int | None = PLACES) -> Cell:
    """A score with its interval; a too-few group has none (None, not its value twice)."""
    return Cell(**_interval(score, places), too_few=score.too_few)


def judged_cell(score: CommunityScore) -> JudgedCell:
    """A score from judgements with its interval, and a judge model's agreement with people."""
    return JudgedCell(
        **_interval(score, PLACES),
        judgements=score.judgements,
        agreement=None if score.agreement is None else round(score.agreement, PLACES),
        agreement_items=score.agreement_items,
    )
