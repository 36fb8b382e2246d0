"""Load benchmark definitions: release their data, record them, keep scores in step.

A definition is found by its two identities. Loading a file whose wording
changed updates the current row in place; a file whose identities changed
needs a new ``version``; loading an earlier definition again makes it current
again, with its jobs and scores. When a new scoring identity becomes current,
the complete jobs of its generation identity are scored under it at once
(their outputs are reused, never regenerated), so the leaderboard does not
empty.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.release import release_dataset_version
from sabha.leaderboards.board import rebuild_leaderboard
from sabha.platform.benchmarks import (
    DatasetContent,
    DatasetRef,
    ItemSpec,
    LoadedBenchmark,
    benchmarks_together_problems,
    datasets_together_problems,
)
from sabha.platform.catalog import latest_benchmarks
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Benchmark,
    Dataset,
    DatasetVersion,
    Item,
    Job,
    JobStatus,
    id_of,
)
from sabha.platform.errors import ValidationFailed

from .scoring import score_job

__all__ = ["load_benchmarks", "rebuild_all_leaderboards", "register_benchmark", "release_datasets"]

# Presentation, and the judge: changed in place, no new definition.
_WORDING = ("title", "description", "primary_metric", "languages", "judge")


def register_benchmark(
    session: Session,
    loaded: LoadedBenchmark,
    artifacts_dir: Path,
    *,
    written: list[Path] | None = None,
) -> tuple[Benchmark, str]:
    """Release the dataset version and record the benchmark as the current definition.

    ``written`` collects the dataset files created (see ``release_dataset_version``).

    Returns:
        The benchmark row and what happened: ``loaded`` (new definition),
        ``unchanged``, ``updated`` (wording only) or ``current again`` (an
        earlier definition restored).

    Raises:
        ValidationFailed: the file reuses a version number for a different
            definition, or gives a new number to a known definition.
    """
    spec = loaded.spec
    generation_hash, scoring_hash = loaded.generation_hash, loaded.scoring_hash
    same_identity = session.exec(
        select(Benchmark).where(
            Benchmark.name == spec.name,
            Benchmark.generation_hash == generation_hash,
            Benchmark.scoring_hash == scoring_hash,
        )
    ).first()
    same_version = session.exec(
        select(Benchmark).where(Benchmark.name == spec.name, Benchmark.version == spec.version)
    ).first()
    if same_version is not None and same_version is not same_identity:
        raise ValidationFailed(
            f"{loaded.path} changes benchmark {spec.name!r} but keeps version {spec.version!r}.",
            [
                f"{loaded.where('version')}: version {spec.version!r} is already loaded "
                "with another prompt, decoding, dataset or scoring definition"
            ],
            "Give the changed definition a new version (e.g. version: "
            f"'{_next_version(spec.version)}'), or restore the earlier definition.",
        )
    if same_identity is not None and same_identity.version != spec.version:
        raise ValidationFailed(
            f"{loaded.path} is benchmark {spec.name!r} version {same_identity.version!r} "
            f"under another version number.",
            [
                f"{loaded.where('version')}: {spec.version!r}, but the same definition is "
                f"loaded as version {same_identity.version!r}"
            ],
            f"Write version: '{same_identity.version}'.",
        )
    ref = loaded.dataset_ref
    if ref is None:
        version, _ = release_dataset_version(session, loaded, artifacts_dir, written=written)
    else:
        version = _released_version(session, loaded, ref)
    if same_identity is None:
        benchmark = Benchmark(
            name=spec.name,
            version=spec.version,
            title=spec.title,
            description=spec.description,
            task=spec.task,
            dataset_version_id=id_of(version),
            prompt_template=spec.prompt.template,
            system_prompt=spec.prompt.system,
            chat_template=spec.prompt.chat_template,
            max_model_len=spec.max_model_len,
            labels=list(spec.labels),
            answer=loaded.answer_spec,
            metrics=list(spec.metrics),
            primary_metric=spec.primary_metric,
            breakdowns=list(spec.breakdowns),
            languages=list(spec.languages),
            decoding=spec.decoding.model_dump(mode="json"),
            generation_hash=generation_hash,
            scoring_hash=scoring_hash,
            definition_hash=loaded.definition_hash,
            judge=spec.judge.model_dump() if spec.judge else None,
        )
        session.add(benchmark)
        state = "loaded"
    else:
        benchmark = same_identity
        wording = {
            "title": spec.title,
            "description": spec.description,
            "primary_metric": spec.primary_metric,
            "languages": list(spec.languages),
            "judge": spec.judge.model_dump() if spec.judge else None,
        }
        changed = [name for name in _WORDING if getattr(benchmark, name) != wording[name]]
        for name in changed:
            setattr(benchmark, name, wording[name])
        state = (
            "current again" if not benchmark.is_current else "updated" if changed else "unchanged"
        )
    for other in session.exec(
        select(Benchmark).where(Benchmark.name == spec.name, col(Benchmark.is_current).is_(True))
    ):
        if other is not benchmark:
            other.is_current = False
    benchmark.is_current = True
    session.flush()
    if state != "unchanged":
        _score_complete_jobs(session, benchmark)
    return benchmark, state


def load_benchmarks(
    db: Engine, loaded: Sequence[LoadedBenchmark], artifacts_dir: Path
) -> list[tuple[Benchmark, str]]:
    """Record several benchmark files in one transaction: all of them, or none.

    The files are checked together first (``benchmarks_together_problems``:
    one definition per benchmark name, one licence per dataset); then every
    file is registered in one transaction. If any is refused, nothing is
    recorded and the dataset files written on the way are removed.

    Returns:
        Each file's benchmark and what happened to it (see ``register_benchmark``).

    Raises:
        ValidationFailed: the files clash, or one of them is refused.
    """
    problems = benchmarks_together_problems(loaded)
    if problems:
        raise ValidationFailed(
            f"These {len(loaded)} benchmark files cannot be loaded together; nothing was loaded.",
            problems,
        )
    with _all_or_nothing(db, len(loaded), "Nothing was loaded.") as (session, written):
        return [register_benchmark(session, one, artifacts_dir, written=written) for one in loaded]


def release_datasets(
    db: Engine, contents: Sequence[DatasetContent], artifacts_dir: Path
) -> list[tuple[DatasetVersion, bool]]:
    """Release several dataset files in one transaction: all of them, or none.

    Returns:
        Each file's version, and whether it was created now.

    Raises:
        ValidationFailed: two files name one dataset, or one of them is refused.
    """
    problems = datasets_together_problems(contents)
    if problems:
        raise ValidationFailed(
            f"These {len(contents)} dataset files cannot be released together; "
            "nothing was released.",
            problems,
        )
    with _all_or_nothing(db, len(contents), "Nothing was released.") as (session, written):
        return [
            release_dataset_version(session, one, artifacts_dir, written=written)
            for one in contents
        ]


@contextmanager
def _all_or_nothing(db: Engine, files: int, undone: str) -> Iterator[tuple[Session, list[Path]]]:
    """One transaction for several files, and the list their written artifacts go on.

    On any failure the artifacts written are removed; a refusal of one of
    several files adds ``undone`` ("Nothing was loaded.") to its message.
    """
    written: list[Path] = []
    try:
        with session_scope(db) as session:
            yield session, written
    except BaseException as exc:
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(exc, ValidationFailed) and files > 1:
            exc.message += f" {undone}"
        raise


def _score_complete_jobs(session: Session, benchmark: Benchmark) -> None:
    jobs = session.exec(
        select(Job).where(
            Job.generation_hash == benchmark.generation_hash,
            Job.status == JobStatus.COMPLETED,
            col(Job.superseded_by_id).is_(None),
        )
    ).all()
    for job in jobs:
        score_job(session, job, benchmark)
    rebuild_leaderboard(session, benchmark)


def _next_version(version: str) -> str:
    return str(int(version) + 1) if version.isdigit() else f"{version}.1"


def rebuild_all_leaderboards(db: Engine) -> int:
    """Rebuild the leaderboard of every current benchmark (after a migration).

    Returns:
        The number of benchmarks rebuilt.
    """
    with session_scope(db) as session:
        benchmarks = latest_benchmarks(session)
        for benchmark in benchmarks:
            rebuild_leaderboard(session, benchmark)
        return len(benchmarks)


def _released_version(session: Session, loaded: LoadedBenchmark, ref: DatasetRef) -> DatasetVersion:
    """The released version a benchmark file refers to, checked against the benchmark.

    Raises:
        ValidationFailed: no such version, or items that do not fit the benchmark
            (each named by the item's key and field).
    """
    found = session.exec(
        select(DatasetVersion)
        .join(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .where(Dataset.name == ref.name, DatasetVersion.content_hash == ref.content_hash)
    ).first()
    if found is None or found.released_at is None:
        raise ValidationFailed(
            f"{loaded.path} refers to a dataset version that is not released here.",
            [f"{loaded.where('dataset')}: no released version {ref}"],
            "Release it first (`sabha datasets release FILE`), or check the name and hash "
            "with `sabha datasets list`.",
        )
    problems: list[str] = []
    for item in session.exec(select(Item).where(Item.dataset_version_id == found.id)):
        spec_item = ItemSpec.model_construct(
            id=item.key,
            language=item.language,
            region=item.region,
            dialect=item.dialect,
            split=item.split,
            input=item.input,
            reference=item.reference,
            label=item.label,
            attributes=item.attributes,
        )
        problems.extend(
            f"{ref.name} item {item.key!r}: field '{field}': {message}"
            for field, message in spec_item.problems_against(loaded.spec)
        )
    if problems:
        raise ValidationFailed(
            f"{loaded.path} does not fit the items of {ref} ({len(problems)} problem(s)).",
            problems[:50],
            "Change the benchmark (languages, labels, template fields, attributes) to fit "
            "the released items, or release a dataset version that fits it.",
        )
    return found
