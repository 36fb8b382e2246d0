"""Stored scores as the one cell type (``public.Cell``) that pages, JSON and CSV show."""

from __future__ import annotations

from sabha.platform.domain import CommunityScore, Score

from ..public import Cell, JudgedCell

__all__ = ["judged_cell", "score_cell"]

PLACES = 4  # the read model rounds; a run's page shows scores as stored


def _rounded(value: float, places: int | None) -> float:
    return value if places is None else round(value, places)


def score_cell(score: Score, places: int | None = PLACES) -> Cell:
    """A score with its interval, rounded to ``places`` (None: as stored).

    A too-few group has no interval (None, not its value twice).
    """
    return Cell(
        value=_rounded(score.value, places),
        ci_low=_rounded(score.ci_low, places),
        ci_high=_rounded(score.ci_high, places),
        n=score.n,
        too_few=score.too_few,
    )


def judged_cell(score: CommunityScore) -> JudgedCell:
    """A score from judgements with its interval, and a judge model's agreement with people."""
    return JudgedCell(
        value=round(score.value, PLACES),
        ci_low=round(score.ci_low, PLACES),
        ci_high=round(score.ci_high, PLACES),
        n=score.n,
        judgements=score.judgements,
        agreement=None if score.agreement is None else round(score.agreement, PLACES),
        agreement_items=score.agreement_items,
    )
