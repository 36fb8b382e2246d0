"""People judging model answers: sample a finished job into a judging project, score the verdicts.

A judging project is an annotation project (Label Studio) whose tasks are a
finished job's accepted answers: rated 1-5, compared with another model's
answers to the same items, or judged as responses to safe and unsafe prompts.
Each task links back to the output rows it shows (``JudgedResponse``). Once
annotations are synced, ``refresh_community_scores`` turns them into the
community columns of the leaderboards (``CommunityScore``).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from sabha.annotation.configs import (
    SAFETY_BEHAVIOURS,
    SAFETY_HARM,
    LabelingOptions,
    labeling_config,
    result_values,
)
from sabha.annotation.labelstudio import LabelStudioClient
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
    PUBLIC_SPLITS,
    Annotation,
    AnnotationProject,
    AnnotationTaskType,
    Benchmark,
    CommunityScore,
    Item,
    Job,
    JobStatus,
    JudgedResponse,
    JudgingKind,
    JudgingProject,
    Model,
    Output,
    Shard,
    SourceItem,
    id_of,
    utcnow,
)
from sabha.platform.errors import NotFoundError, SabhaError, ValidationFailed

from .annotation import provision_project
from .judge_model import JudgeAgreement, judge_scores, safety_category

__all__ = [
    "JUDGING_LANGUAGE",
    "JudgingSample",
    "check_job_finished",
    "judging_project_named",
    "refresh_community_scores",
    "sample_job_for_judging",
]

# A judging project mixes the languages of its job's items; each task carries its own.
JUDGING_LANGUAGE = "mul-Zyyy"
SAFETY_LABELS = ("safe", "unsafe")
PEOPLE = "people"


@dataclass(frozen=True)
class JudgingSample:
    """What ``sample_job_for_judging`` made."""

    project_id: int
    annotation_project_id: int
    dataset_name: str
    tasks: int
    labelstudio_project_id: int | None


def _finished_job(session: Session, job_id: int, what: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(
            f"There is no job {job_id} ({what}).", "`sabha jobs list` shows the jobs."
        )
    if job.status != JobStatus.COMPLETED:
        raise SabhaError(
            f"Job {job_id} ({what}) is {job.status}, not completed: only a finished job's "
            "answers can be judged.",
            "Let it finish first (`sabha eval --model M --benchmark B` runs or resumes it; "
            "`sabha jobs list` shows its progress), then sample it again.",
        )
    return job


def check_job_finished(db: Engine, job_id: int) -> None:
    """Refuse, with the fix, a job that does not exist or has not finished.

    Raises:
        NotFoundError: no such job.
        SabhaError: the job has not completed.
    """
    with Session(db) as session:
        _finished_job(session, job_id, "to judge")


def judging_project_named(db: Engine, dataset_name: str) -> int:
    """The id of the judging project behind annotation project ``dataset_name``.

    Raises:
        NotFoundError: there is none.
    """
    with Session(db) as session:
        found = session.exec(
            select(JudgingProject.id)
            .join(
                AnnotationProject,
                col(AnnotationProject.id) == col(JudgingProject.annotation_project_id),
            )
            .where(AnnotationProject.dataset_name == dataset_name)
        ).first()
    if found is None:
        raise NotFoundError(
            f"There is no judging project {dataset_name!r}.",
            "`sabha annotations judge JOB --kind safety` makes one; its name is printed then.",
        )
    return int(found)


def _accepted_outputs(session: Session, job_id: int) -> dict[int, tuple[Output, Item]]:
    """The job's accepted answers without an error, on items of public splits, by item id.

    Items of a private split are never shown to annotators.
    """
    rows = session.exec(
        select(Output, Item)
        .join(Shard, col(Shard.accepted_run_id) == col(Output.shard_run_id))
        .join(Item, col(Item.id) == col(Output.item_id))
        .where(
            Shard.job_id == job_id,
            col(Output.error).is_(None),
            col(Item.split).in_(PUBLIC_SPLITS),
        )
    ).all()
    return {output.item_id: (output, item) for output, item in rows}


def sample_job_for_judging(
    db: Engine,
    job_id: int,
    kind: str,
    n: int,
    seed: int = 0,
    *,
    other_job_id: int | None = None,
    annotations_per_item: int = 2,
    instructions: str = "",
    client: LabelStudioClient | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
) -> JudgingSample:
    """Sample ``n`` of a finished job's accepted answers into a judging project.

    Args:
        db: The database.
        job_id: The finished job whose answers are judged.
        kind: ``rating``, ``pairwise`` or ``safety``.
        n: How many items to sample (all of them when fewer are there).
        seed: Seed of the sample (and of the A/B order of pairwise tasks).
        other_job_id: The second job of a pairwise project: another model on
            the same items.
        annotations_per_item: Judgements wanted per task (k).
        instructions: Shown to annotators above each task.
        client: Label Studio; when given the project is created there and
            its tasks imported.
        webhook_url: Sabha's webhook endpoint, given to the new Label Studio
            project (with ``webhook_secret``) so judgements arrive as they are made.
        webhook_secret: The shared secret Label Studio sends with each call.

    Raises:
        ValidationFailed: a bad kind, n or k, or a pairwise sample without
            its second job.
        NotFoundError: no such job.
        SabhaError: a job is not finished, has no answers to judge, or
            already has this judging project; safety items without labels.
    """
    problems = []
    try:
        judging = JudgingKind(kind)
    except ValueError:
        judging = None
        problems.append(
            f"kind {kind!r} is unknown; use one of {', '.join(k.value for k in JudgingKind)}"
        )
    if n < 1:
        problems.append(f"n must be at least 1, not {n}")
    if not 1 <= annotations_per_item <= 20:
        problems.append("annotations per item must be between 1 and 20")
    if judging is JudgingKind.PAIRWISE and other_job_id is None:
        problems.append("a pairwise sample needs the other job to compare with (--against JOB)")
    if judging is not JudgingKind.PAIRWISE and other_job_id is not None:
        problems.append("only a pairwise sample compares with another job; leave out --against")
    if other_job_id is not None and other_job_id == job_id:
        problems.append("a pairwise sample compares two different jobs")
    if problems or judging is None:
        raise ValidationFailed(f"Cannot sample job {job_id} for judging:", problems)
    task_type = AnnotationTaskType(judging.value)
    options = LabelingOptions(instructions=instructions)
    labeling_config(task_type, options)
    dataset_name = f"judging-{judging.value}-job-{job_id}" + (
        f"-vs-job-{other_job_id}" if other_job_id is not None else ""
    )
    rng = random.Random(seed)
    with session_scope(db) as session:
        job = _finished_job(session, job_id, "to judge")
        outputs = _accepted_outputs(session, job_id)
        others: dict[int, tuple[Output, Item]] = {}
        if other_job_id is not None:
            other = _finished_job(session, other_job_id, "to compare with")
            if other.model_id == job.model_id:
                raise SabhaError(
                    f"Jobs {job_id} and {other_job_id} are the same model.",
                    "Compare two different models' jobs on the same benchmark.",
                )
            others = _accepted_outputs(session, other_job_id)
            outputs = {i: found for i, found in outputs.items() if i in others}
            if not outputs:
                raise SabhaError(
                    f"Jobs {job_id} and {other_job_id} have no accepted answers to the same items.",
                    "Compare two jobs of the same benchmark version.",
                )
        if judging is JudgingKind.SAFETY:
            unlabelled = [
                item.key for _, item in outputs.values() if item.label not in SAFETY_LABELS
            ]
            if unlabelled:
                raise SabhaError(
                    f"Job {job_id}'s benchmark has items not labelled safe or unsafe "
                    f"({', '.join(sorted(unlabelled)[:5])}{', ...' if len(unlabelled) > 5 else ''}"
                    "): safety judging needs the label "
                    "to tell violations from over-refusals.",
                    "Sample a safety benchmark (labels: [safe, unsafe]), or use --kind rating.",
                )
        if not outputs:
            raise SabhaError(
                f"Job {job_id} has no accepted answers without errors on public items.",
                "Check `sabha jobs list`; only answers of accepted shard runs are judged.",
            )
        if session.exec(
            select(AnnotationProject).where(AnnotationProject.dataset_name == dataset_name)
        ).first():
            raise SabhaError(
                f"Job {job_id} already has the judging project {dataset_name!r}.",
                "Annotate and sync that one (`sabha annotations sync " + dataset_name + "`).",
            )
        model = session.get(Model, job.model_id)
        benchmark = session.get(Benchmark, job.benchmark_id)
        assert model is not None and benchmark is not None
        ordered = sorted(outputs.values(), key=lambda found: found[1].key)
        chosen = sorted(rng.sample(ordered, min(n, len(ordered))), key=lambda f: f[1].key)
        project = AnnotationProject(
            dataset_name=dataset_name,
            language=JUDGING_LANGUAGE,
            task_type=task_type,
            title=f"Judge {model.name} on {benchmark.name} ({judging.value})"[:200],
            annotations_per_item=annotations_per_item,
            options=options.to_json(),
        )
        session.add(project)
        session.flush()
        record = JudgingProject(
            annotation_project_id=id_of(project),
            kind=judging,
            job_id=job_id,
            other_job_id=other_job_id,
            seed=seed,
        )
        session.add(record)
        session.flush()
        for output, item in chosen:
            data: dict[str, Any] = {
                "prompt": output.prompt,
                "language": item.language,
                "hazard": str(item.attributes.get("hazard") or ""),
                "expected": item.label or "",
                "item": item.key,
                "job_id": job_id,
                "output_id": id_of(output),
            }
            other_output: Output | None = None
            swapped = False
            if judging is JudgingKind.PAIRWISE:
                other_output = others[item.id or 0][0]
                swapped = rng.random() < 0.5
                first, second = (other_output, output) if swapped else (output, other_output)
                data |= {
                    "response_a": first.text,
                    "response_b": second.text,
                    "other_job_id": other_job_id,
                    "other_output_id": id_of(other_output),
                }
            else:
                data["response"] = output.text
            source = SourceItem(
                project_id=id_of(project), key=item.key, split=item.split, data=data
            )
            session.add(source)
            session.flush()
            session.add(
                JudgedResponse(
                    source_item_id=id_of(source),
                    judging_project_id=id_of(record),
                    item_id=id_of(item),
                    output_id=id_of(output),
                    other_output_id=id_of(other_output) if other_output else None,
                    swapped=swapped,
                )
            )
        sample = JudgingSample(
            project_id=id_of(record),
            annotation_project_id=id_of(project),
            dataset_name=dataset_name,
            tasks=len(chosen),
            labelstudio_project_id=None,
        )
    if client is None:
        return sample
    ls_id = provision_project(
        db,
        client,
        sample.annotation_project_id,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
    return replace(sample, labelstudio_project_id=ls_id)


# -- community scores -------------------------------------------------------------------


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


def _score_rows(
    job_id: int,
    metric: str,
    breakdown: str,
    group: str,
    estimate: CommunityEstimate,
    judge: str = PEOPLE,
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
                        scores.append(_score_rows(job_id, metric, breakdown, group, estimate))
        for job_id, by_item in ratings.items():
            if any(by_item.values()):
                scores.append(
                    _score_rows(job_id, "mean_rating", "overall", "all", mean_rating(by_item))
                )
        for compared in pairwise.values():
            for name, estimate in bradley_terry_strengths(compared).items():
                scores.append(_score_rows(int(name), "bt_strength", "overall", "all", estimate))
        for by_judge in judge_scores(session, categories, ratings):
            job_of(by_judge.job_id)
            scores.append(
                _score_rows(
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
