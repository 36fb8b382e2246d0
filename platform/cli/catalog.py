"""The catalog: the database, benchmarks, datasets, data cards and models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..errors import SabhaError, ValidationFailed
from ..settings import Settings
from .context import database, settings_of

__all__ = [
    "benchmarks",
    "cards",
    "datasets",
    "db",
    "make_demo_model",
    "models",
    "read_benchmark_files",
    "register_benchmarks",
]

T = TypeVar("T")


# -- database -------------------------------------------------------------------------


@click.group()
def db() -> None:
    """Create or migrate the database."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Run the database migrations up to the newest schema."""
    from ..db import current_revision

    db = database(ctx, migrate=True)
    click.echo(f"Database {db.url.render_as_string()} is at revision {current_revision(db)}.")


# -- benchmarks -----------------------------------------------------------------------


@click.group()
def benchmarks() -> None:
    """Validate, load and list benchmarks."""


@benchmarks.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def benchmarks_validate(paths: Sequence[Path]) -> None:
    """Check benchmark files (and their items), alone and together, and report every problem."""
    loaded = read_benchmark_files(paths, "validate")
    for path, one in zip(paths, loaded, strict=True):
        click.echo(f"ok  {path}: {one.spec.name}, {len(one.items)} items")


@benchmarks.command("load")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.pass_context
def benchmarks_load(ctx: click.Context, paths: Sequence[Path]) -> None:
    """Release benchmark datasets and record the benchmarks (default: the starter ones).

    Every file is checked, alone and together, before anything is written;
    then all are recorded in one transaction, or none.
    """
    from ..benchmarks import starter_benchmark_paths

    loaded = read_benchmark_files(paths or starter_benchmark_paths(), "load")
    db = database(ctx)
    register_benchmarks(db, settings_of(ctx), loaded)


def _read_each(
    paths: Sequence[Path], read: Callable[[Path], T], kind: str, nothing_done: str
) -> list[T]:
    """Every file read; a file's problems do not stop the others from being read.

    Raises:
        ValidationFailed: every problem of every file ("2 of 3 dataset file(s) have
            problems" and ``nothing_done``, e.g. "; nothing was released").
    """
    loaded, failures = [], []
    for path in paths:
        try:
            loaded.append(read(path))
        except SabhaError as exc:
            failures.append(str(exc))
    if failures:
        raise ValidationFailed(
            f"{len(failures)} of {len(paths)} {kind} file(s) have problems{nothing_done}:",
            failures,
        )
    return loaded


def read_benchmark_files(paths: Sequence[Path], verb: str) -> list[Any]:
    """Every file read and checked, alone and then together.

    Raises:
        ValidationFailed: every problem of every file, and of the files together.
    """
    from ..benchmarks import benchmarks_together_problems, load_benchmark_file

    loaded = _read_each(
        paths, load_benchmark_file, "benchmark", "; nothing was loaded" if verb == "load" else ""
    )
    together = benchmarks_together_problems(loaded)
    if together:
        raise ValidationFailed(
            f"These {len(paths)} benchmark files cannot be loaded together"
            + ("; nothing was loaded:" if verb == "load" else ":"),
            together,
        )
    return loaded


def register_benchmarks(db: Engine, settings: Settings, loaded: Sequence[Any]) -> None:
    from ..services.benchmarks import load_benchmarks

    settings.ensure_dirs()
    for benchmark_file, (benchmark, state) in zip(
        loaded, load_benchmarks(db, loaded, settings.resolved_artifacts_dir), strict=True
    ):
        click.echo(
            f"{state:9} {benchmark.name} version {benchmark.version} (dataset version "
            f"{benchmark_file.content_hash[:12]}, {len(benchmark_file.items)} items)"
        )


@benchmarks.command("list")
@click.pass_context
def benchmarks_list(ctx: click.Context) -> None:
    """List the loaded benchmarks."""
    from ..catalog import latest_benchmarks
    from ..domain import DatasetVersion

    with Session(database(ctx)) as session:
        rows = latest_benchmarks(session)
        if not rows:
            click.echo("No benchmarks loaded. Run `sabha benchmarks load`.")
        for b in rows:
            version = session.get(DatasetVersion, b.dataset_version_id)
            assert version is not None
            click.echo(
                f"{b.name:20} v{b.version:5} {b.task:15} {version.item_count:5} items  "
                f"{', '.join(b.languages):32} {b.primary_metric} "
                f"(dataset {version.content_hash[:12]})"
            )


# -- datasets ---------------------------------------------------------------------------


@click.group()
def datasets() -> None:
    """Release datasets (rows and card metadata, no benchmark needed) and list them."""


@datasets.command("release")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def datasets_release(ctx: click.Context, paths: Sequence[Path]) -> None:
    """Release dataset files as immutable versions; benchmarks refer to them as NAME@HASH.

    Every file is checked before anything is written; then all are released
    in one transaction, or none.
    """
    from ..benchmarks import load_dataset_file
    from ..services.benchmarks import release_datasets

    loaded = _read_each(paths, load_dataset_file, "dataset", "; nothing was released")
    db = database(ctx)
    settings = settings_of(ctx)
    settings.ensure_dirs()
    released = release_datasets(db, loaded, settings.resolved_artifacts_dir)
    for data_set, (_, created) in zip(loaded, released, strict=True):
        state = "released" if created else "unchanged"
        click.echo(
            f"{state:9} {data_set.name}@{data_set.content_hash} ({len(data_set.items)} items)"
        )


@datasets.command("list")
@click.pass_context
def datasets_list(ctx: click.Context) -> None:
    """List released dataset versions as NAME@HASH, the form benchmark files refer to."""
    from ..domain import Dataset, DatasetVersion

    with Session(database(ctx)) as session:
        rows = session.exec(
            select(Dataset, DatasetVersion)
            .join(DatasetVersion, DatasetVersion.dataset_id == Dataset.id)  # type: ignore[arg-type]
            .order_by(Dataset.name, DatasetVersion.id)  # type: ignore[arg-type]
        ).all()
        if not rows:
            click.echo("No datasets released. Run `sabha datasets release FILE`.")
        for dataset, version in rows:
            click.echo(
                f"{dataset.name}@{version.content_hash}  {version.item_count:6} items  "
                f"{', '.join(version.languages)}  {dataset.license}"
            )


# -- data cards -----------------------------------------------------------------------


@click.group()
def cards() -> None:
    """Build data cards (Hugging Face dataset-card format)."""


@cards.command("build")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("data_cards"),
    show_default=True,
    help="Folder that holds one <dataset>/README.md per dataset.",
)
@click.option("--check", is_flag=True, help="Fail if a card on disk differs instead of writing.")
def cards_build(paths: Sequence[Path], out: Path, check: bool) -> None:
    """Write the data card of each benchmark's dataset (default: the starter ones)."""
    from sabha.annotation.cards import build_data_card, card_path, validate_data_card

    from ..files import atomic_write_text

    stale = []
    from ..benchmarks import starter_benchmark_paths

    for loaded in read_benchmark_files(paths or starter_benchmark_paths(), "validate"):
        if loaded.dataset_ref is not None:
            click.echo(f"skipped     {loaded.path}: its card is the one of {loaded.dataset_ref}")
            continue
        text = str(build_data_card(loaded))
        validate_data_card(text, loaded.dataset.name)
        target = card_path(out, loaded.dataset.name)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            click.echo(f"up to date  {target}")
        elif check:
            stale.append(str(target))
        else:
            atomic_write_text(target, text)
            click.echo(f"wrote       {target}")
    if stale:
        raise ValidationFailed(
            "Data cards are out of date:", stale, "Run `sabha cards build` and commit the result."
        )


# -- models ---------------------------------------------------------------------------


@click.group()
def models() -> None:
    """Register models and make smoke-test models."""


@models.command("add")
@click.argument("name")
@click.option("--path", type=click.Path(path_type=Path), help="Local Hugging Face model folder.")
@click.option("--hub", "repo_id", help="Hub repository id, e.g. org/model.")
@click.option("--revision", help="Full commit hash of the hub repository (required with --hub).")
@click.option("--smoke-test", is_flag=True, help="Mark as a smoke-test model on the leaderboard.")
@click.pass_context
def models_add(
    ctx: click.Context,
    name: str,
    path: Path | None,
    repo_id: str | None,
    revision: str | None,
    smoke_test: bool,
) -> None:
    """Register a model from a local folder or a pinned hub revision."""
    from ..catalog import add_model, local_model_revision
    from ..db import session_scope

    if path is not None:
        revision = local_model_revision(path.resolve())  # hashed before the write begins
    with session_scope(database(ctx)) as session:
        model = add_model(session, name, path, repo_id, revision, smoke_test)
    click.echo(f"registered {model.name}: {model.as_source().shown}")


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """List registered models."""
    from ..domain import Model

    with Session(database(ctx)) as session:
        rows = session.exec(select(Model).order_by(Model.name)).all()
        if not rows:
            click.echo("No models registered. Try `sabha models make-tiny tiny-chat`.")
        for m in rows:
            flag = "  [smoke test]" if m.smoke_test else ""
            click.echo(f"{m.name:24} {m.as_source().shown}{flag}")


@models.command("make-tiny")
@click.argument("name")
@click.option("--seed", default=0, show_default=True, help="Seed of the random weights.")
@click.option(
    "--chat-template/--no-chat-template",
    default=True,
    show_default=True,
    help="Store a simple chat template with the tokenizer.",
)
@click.pass_context
def modelsmake_demo_model(ctx: click.Context, name: str, seed: int, chat_template: bool) -> None:
    """Make a tiny random-weight model (smoke tests only) and register it."""
    db = database(ctx)
    path = make_demo_model(db, settings_of(ctx), name, seed, chat_template)
    click.echo(f"made smoke-test model {name} at {path}")


def make_demo_model(
    db: Engine, settings: Settings, name: str, seed: int, chat_template: bool
) -> Path:
    from ..services.models import make_tiny

    with click.progressbar(length=1, label=f"Making tiny model {name}") as bar:
        path = make_tiny(db, settings.resolved_models_dir, name, seed, chat_template)
        bar.update(1)
    return path
