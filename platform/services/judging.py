"""People judging model answers: sample a finished job into a judging project.

A judging project is an annotation project (Label Studio) whose tasks are a
finished job's accepted answers: rated 1-5, compared with another model's
answers to the same items, or judged as responses to safe and unsafe prompts.
Each task links back to the output rows it shows (``JudgedResponse``). Once
annotations are synced, ``community_scores.refresh_community_scores`` turns
them into the community columns of the leaderboards (``CommunityScore``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.configs import LabelingOptions, labeling_config
from sabha.annotation.labelstudio import LabelStudioClient
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    PUBLIC_SPLITS,
    AnnotationProject,
    AnnotationTaskType,
    Benchmark,
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
)
from sabha.platform.errors import NotFoundError, SabhaError, ValidationFailed

from .annotation import provision_project

__all__ = [
    "JUDGING_LANGUAGE",
    "JudgingSample",
    "check_job_finished",
    "judging_project_named",
    "sample_job_for_judging",
]

# A judging project mixes the languages of its job's items; each task carries its own.
JUDGING_LANGUAGE = "mul-Zyyy"
SAFETY_LABELS = ("safe", "unsafe")


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
