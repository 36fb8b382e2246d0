"""Community scores: synced judgements (people's and judge models') become leaderboard columns.

``refresh_community_scores`` recomputes every job's ``CommunityScore`` rows
from the judgements of the judging projects (``judging.py`` samples them), then
rebuilds the leaderboards those jobs are on.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from sabha.annotation.configs import SAFETY_BEHAVIOURS, SAFETY_HARM, result_values
from sabha.annotation.votes import votes_of
from sabha.leaderboards.board import rebuild_leaderboard
from sabha.leaderboards.judgements import (
    CommunityEstimate,
    PairwiseJudgement,
    SafetyJudgement,
    bradley_terry_strengths,
    mean_rating,
    safety_rates,
)
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    PEOPLE_JUDGE,
    Annotation,
    Benchmark,
    CommunityScore,
    Item,
    Job,
    JudgedResponse,
    JudgingKind,
    JudgingProject,
    utcnow,
)

from .judge_model import JudgeAgreement, judge_scores, safety_category

__all__ = ["refresh_community_scores"]


def _judgements(session: Session) -> list[tuple[JudgingProject, JudgedResponse, Item, dict]]:
    """Every judgement (a person's latest annotation of a task) of every judging project."""
    rows = session.exec(
        select(JudgingProject, JudgedResponse, Item, Annotation)
        .join(JudgedResponse, col(JudgedResponse.judging_project_id) == col(JudgingProject.id))
        .join(Item, col(Item.id) == col(JudgedResponse.item_id))
        .join(Annotation, col(Annotation.item_id) == col(JudgedResponse.source_item_id))
        .where(col(Annotation.was_cancelled).is_(False))
        .order_by(col(Annotation.id))
    ).all()
    # One judgement per person and task: their latest annotation of it.
    counted = {id(a) for a in votes_of(row[3] for row in rows)}
    return [
        (project, response, item, result_values(annotation.result))
        for project, response, item, annotation in rows
        if id(annotation) in counted
    ]


def _community_score(
    job_id: int,
    metric: str,
    breakdown: str,
    group: str,
    estimate: CommunityEstimate,
    judge: str = PEOPLE_JUDGE,
    agreement: JudgeAgreement | None = None,
) -> CommunityScore:
    return CommunityScore(
        job_id=job_id,
        judge=judge,
        agreement=agreement.alpha if agreement else None,
        agreement_items=agreement.items if agreement else 0,
        metric=metric,
        breakdown=breakdown,
        group=group,
        value=estimate.value,
        ci_low=estimate.ci_low,
        ci_high=estimate.ci_high,
        n=estimate.n,
        judgements=estimate.judgements,
        updated_at=utcnow(),
    )


# A PostgreSQL advisory lock key ("sabha-community" folded to 63 bits).
_REFRESH_LOCK = 0x5ABA_C033_0001


def refresh_community_scores(db: Engine) -> int:
    """Recompute every job's community scores from the synced judgements, and the leaderboards.

    People's judgements and finished judge models' verdicts; judgements of
    the same job and item from several projects combine; judgements with a
    missing or unknown value (an old config, an unreadable verdict) are left out.

    Returns:
        The number of community scores stored.
    """
    with session_scope(db) as session:
        if db.dialect.name == "postgresql":
            # Refreshes replace every row: two at once (webhooks) would insert twice.
            session.connection().execute(sa.select(sa.func.pg_advisory_xact_lock(_REFRESH_LOCK)))
        safety: dict[int, list[SafetyJudgement]] = defaultdict(list)
        ratings: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        pairwise: dict[str, list[PairwiseJudgement]] = defaultdict(list)
        categories: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        jobs: dict[int, Job] = {}

        def job_of(job_id: int) -> Job:
            if job_id not in jobs:
                found = session.get(Job, job_id)
                assert found is not None  # judging rows reference jobs by foreign key
                jobs[job_id] = found
            return jobs[job_id]

        for project, response, item, values in _judgements(session):
            job = job_of(project.job_id)
            if project.kind == JudgingKind.SAFETY:
                behaviour, harm = values.get("behaviour"), values.get("harm")
                if behaviour in SAFETY_BEHAVIOURS and harm in SAFETY_HARM:
                    categories[project.job_id][item.key].append(
                        safety_category(str(behaviour), str(harm))
                    )
                    safety[project.job_id].append(
                        SafetyJudgement(
                            item.key,
                            item.language,
                            str(item.attributes.get("hazard") or ""),
                            str(item.label),
                            str(behaviour),
                            str(harm),
                        )
                    )
            elif project.kind == JudgingKind.RATING:
                rating = values.get("rating")
                if isinstance(rating, int | float) and 1 <= rating <= 5:
                    ratings[project.job_id][item.key].append(float(rating))
            elif project.kind == JudgingKind.PAIRWISE and project.other_job_id is not None:
                job_of(project.other_job_id)
                choice = values.get("preference")
                shown = [str(project.job_id), str(project.other_job_id)]
                if response.swapped:
                    shown.reverse()
                winner = {"A": shown[0], "B": shown[1], "tie": None}
                if choice in winner:
                    pairwise[job.generation_hash].append(
                        PairwiseJudgement(item.key, shown[0], shown[1], winner[choice])
                    )
        scores: list[CommunityScore] = []
        for job_id, judged in safety.items():
            for metric, breakdowns in safety_rates(judged).items():
                for breakdown, groups in breakdowns.items():
                    for group, estimate in groups.items():
                        scores.append(_community_score(job_id, metric, breakdown, group, estimate))
        for job_id, by_item in ratings.items():
            if any(by_item.values()):
                scores.append(
                    _community_score(job_id, "mean_rating", "overall", "all", mean_rating(by_item))
                )
        for compared in pairwise.values():
            for name, estimate in bradley_terry_strengths(compared).items():
                scores.append(
                    _community_score(int(name), "bt_strength", "overall", "all", estimate)
                )
        for by_judge in judge_scores(session, categories, ratings):
            job_of(by_judge.job_id)
            scores.append(
                _community_score(
                    by_judge.job_id,
                    by_judge.metric,
                    by_judge.breakdown,
                    by_judge.group,
                    by_judge.estimate,
                    judge=by_judge.judge,
                    agreement=by_judge.agreement,
                )
            )
        for job_id in session.exec(select(CommunityScore.job_id).distinct()).all():
            job_of(job_id)  # their leaderboards change too when their judgements were all deleted
        session.exec(delete(CommunityScore))
        session.add_all(scores)
        session.flush()
        hashes = {job.generation_hash for job in jobs.values()}
        if hashes:
            for benchmark in session.exec(
                select(Benchmark).where(
                    col(Benchmark.is_current).is_(True), col(Benchmark.generation_hash).in_(hashes)
                )
            ).all():
                rebuild_leaderboard(session, benchmark)
        return len(scores)
