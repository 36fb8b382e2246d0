"""When two runs of one shard agree: identical outputs, or within the measured tolerance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .policy import VerificationPolicy

__all__ = ["Comparison", "RunOutputs", "compare_runs"]


@dataclass(frozen=True)
class RunOutputs:
    """One run's answers by item id, ``(text, error)``, and the setup it ran on."""

    answers: Mapping[int, tuple[str, str | None]]
    setup: Mapping[str, Any]


@dataclass(frozen=True)
class Comparison:
    """Whether two runs agree, and the figures that decided it."""

    agree: bool
    exact: bool
    item_share: float
    score_delta: float


def _error_kind(error: str) -> str:
    return error.split(":", 1)[0].strip()


def _item_similarity(a: tuple[str, str | None], b: tuple[str, str | None]) -> float:
    from sacrebleu.metrics import CHRF

    (text_a, error_a), (text_b, error_b) = a, b
    if error_a or error_b:
        same = bool(error_a and error_b and _error_kind(error_a) == _error_kind(error_b))
        return 100.0 if same else 0.0
    if text_a.strip() == text_b.strip():
        return 100.0
    chrf = CHRF()  # symmetric: the mean of both directions
    return (
        chrf.sentence_score(text_a, [text_b]).score + chrf.sentence_score(text_b, [text_a]).score
    ) / 2


def _shard_chrf(run: RunOutputs, references: Mapping[int, str]) -> float:
    from sacrebleu.metrics import CHRF

    ids = sorted(references)
    hypotheses = [
        "" if run.answers[i][1] else run.answers[i][0].strip() for i in ids if i in run.answers
    ]
    return float(CHRF().corpus_score(hypotheses, [[references[i] for i in ids]]).score)


def compare_runs(
    a: RunOutputs, b: RunOutputs, references: Mapping[int, str], policy: VerificationPolicy
) -> Comparison:
    """Compare two runs of one shard with the documented tolerance.

    Identical outputs agree. Otherwise the tolerance decides, whatever the two
    setups: greedy outputs of one model already differ between two machines
    of the same kind (docs/verification.md has the measurements).

    Args:
        a: One run's answers and setup.
        b: The other's (the same items).
        references: Reference answers by item id (items without one are left out
            of the shard score).
        policy: The thresholds.
    """
    items = sorted(set(a.answers) | set(b.answers))
    if all(a.answers.get(i) == b.answers.get(i) for i in items):
        return Comparison(True, True, 1.0, 0.0)
    missing = ("", "missing")
    similar = [
        _item_similarity(a.answers.get(i, missing), b.answers.get(i, missing)) >= policy.item_chrf
        for i in items
    ]
    share = sum(similar) / len(similar) if similar else 1.0
    refs = {i: r for i, r in references.items() if i in a.answers and i in b.answers}
    delta = abs(_shard_chrf(a, refs) - _shard_chrf(b, refs)) if refs else 0.0
    agree = share >= policy.item_share and delta <= policy.score_delta
    return Comparison(agree, False, share, delta)
