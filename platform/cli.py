"""The ``sabha`` command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .errors import SabhaError, ValidationFailed
from .settings import Settings

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Prints user mistakes (``SabhaError``) as one clear message, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SabhaError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(1)


def _settings(ctx: click.Context) -> Settings:
    from pydantic import ValidationError

    settings = ctx.find_root().obj
    if settings is None:
        try:
            settings = ctx.find_root().obj = Settings()
        except ValidationError as exc:
            raise ValidationFailed(
                "Some SABHA_* environment variables are invalid:",
                [
                    f"SABHA_{'_'.join(map(str, e['loc'])).upper()}={e['input']!r}: {e['msg']}"
                    for e in exc.errors()
                ],
                "Correct or unset them.",
            ) from exc
    return settings


def _database(ctx: click.Context, migrate: bool = False) -> Engine:
    from .db import make_engine, require_schema, upgrade_database

    settings = _settings(ctx)
    engine = make_engine(settings.resolved_database_url)
    if migrate:
        upgrade_database(engine)
    else:
        require_schema(engine)
    return engine


@click.group(cls=_Group)
@click.version_option(package_name="sabha")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Sabha: community benchmarks for low-resource languages.

    Settings come from SABHA_* environment variables; by default everything
    lives under ~/.local/share/sabha (SABHA_DATA_DIR) with a SQLite database.
    """
    ctx.obj = None


# -- database -------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Create or migrate the database."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Run the database migrations up to the newest schema."""
    from .db import current_revision

    engine = _database(ctx, migrate=True)
    click.echo(
        f"Database {engine.url.render_as_string()} is at revision {current_revision(engine)}."
    )


# -- benchmarks -----------------------------------------------------------------------


@cli.group()
def benchmarks() -> None:
    """Validate, load and list benchmarks."""


@benchmarks.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def benchmarks_validate(paths: Sequence[Path]) -> None:
    """Check benchmark files (and their items) and report every problem."""
    from .benchmarks import load_benchmark_file

    failures: list[str] = []
    for path in paths:
        try:
            loaded = load_benchmark_file(path)
        except SabhaError as exc:
            failures.append(str(exc))
            continue
        click.echo(f"ok  {path}: {loaded.spec.name}, {len(loaded.items)} items")
    if failures:
        raise ValidationFailed(
            f"{len(failures)} of {len(paths)} benchmark file(s) have problems:",
            failures,
        )


@benchmarks.command("load")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.pass_context
def benchmarks_load(ctx: click.Context, paths: Sequence[Path]) -> None:
    """Release benchmark datasets and record the benchmarks (default: the starter ones)."""
    loaded = _load_files(paths)
    engine = _database(ctx)
    _register(engine, _settings(ctx), loaded)


def _load_files(paths: Sequence[Path]) -> list[Any]:
    from .benchmarks import load_benchmark_file, starter_benchmark_paths

    return [load_benchmark_file(p) for p in (paths or starter_benchmark_paths())]


def _register(engine: Engine, settings: Settings, loaded: Sequence[Any]) -> None:
    from sabha.annotation.release import register_benchmark

    from .db import session_scope

    settings.ensure_dirs()
    for benchmark_file in loaded:
        with session_scope(engine) as session:
            benchmark, created = register_benchmark(
                session, benchmark_file, settings.resolved_artifacts_dir
            )
            state = "loaded" if created else "unchanged"
            click.echo(
                f"{state:9} {benchmark.name} (dataset version "
                f"{benchmark_file.content_hash[:12]}, {len(benchmark_file.items)} items)"
            )


@benchmarks.command("list")
@click.pass_context
def benchmarks_list(ctx: click.Context) -> None:
    """List the loaded benchmarks."""
    from .catalog import latest_benchmarks
    from .domain import DatasetVersion

    with Session(_database(ctx)) as session:
        rows = latest_benchmarks(session)
        if not rows:
            click.echo("No benchmarks loaded. Run `sabha benchmarks load`.")
        for b in rows:
            version = session.get(DatasetVersion, b.dataset_version_id)
            assert version is not None
            click.echo(
                f"{b.name:20} {b.task:15} {version.item_count:5} items  "
                f"{', '.join(b.languages):32} {b.primary_metric} "
                f"(version {version.content_hash[:12]})"
            )


# -- data cards -----------------------------------------------------------------------


@cli.group()
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

    from .files import atomic_write_text

    stale = []
    for loaded in _load_files(paths):
        text = str(build_data_card(loaded))
        validate_data_card(text, loaded.spec.dataset.name)
        target = card_path(out, loaded.spec.dataset.name)
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


@cli.group()
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
    from .catalog import add_model
    from .db import session_scope

    with session_scope(_database(ctx)) as session:
        model = add_model(session, name, path, repo_id, revision, smoke_test)
        source = model.path if model.source == "local" else f"{model.repo_id}@{model.revision}"
        click.echo(f"registered {model.name}: {source}")


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """List registered models."""
    from .domain import Model

    with Session(_database(ctx)) as session:
        rows = session.exec(select(Model).order_by(Model.name)).all()
        if not rows:
            click.echo("No models registered. Try `sabha models make-tiny tiny-chat`.")
        for m in rows:
            source = m.path if m.source == "local" else f"{m.repo_id}@{m.revision}"
            flag = "  [smoke test]" if m.smoke_test else ""
            click.echo(f"{m.name:24} {source}{flag}")


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
def models_make_tiny(ctx: click.Context, name: str, seed: int, chat_template: bool) -> None:
    """Make a tiny random-weight model (smoke tests only) and register it."""
    engine = _database(ctx)
    path = _make_tiny(engine, _settings(ctx), name, seed, chat_template)
    click.echo(f"made smoke-test model {name} at {path}")


def _make_tiny(
    engine: Engine, settings: Settings, name: str, seed: int, chat_template: bool
) -> Path:
    from sabha.workers.tiny_models import SIMPLE_CHAT_TEMPLATE, make_tiny_model

    from .benchmarks import load_benchmark_file, starter_benchmark_paths
    from .catalog import add_model
    from .db import session_scope
    from .domain import Model

    with Session(engine) as session:
        if session.exec(select(Model).where(Model.name == name)).first() is not None:
            raise SabhaError(
                f"A model named {name!r} is already registered.", "Choose another name."
            )
    destination = settings.resolved_models_dir / name
    if destination.exists():
        raise SabhaError(
            f"{destination} already exists but is not registered.",
            f"Register it with `sabha models add {name} --path {destination}` "
            "or delete the folder.",
        )
    texts = []
    for path in starter_benchmark_paths():
        loaded = load_benchmark_file(path)
        texts.append(loaded.spec.prompt.template)
        texts.extend(loaded.spec.labels)
        for item in loaded.items:
            texts.extend(item.input.values())
            texts.extend(t for t in (item.reference, item.label) if t)
    with click.progressbar(length=1, label=f"Making tiny model {name}") as bar:
        make_tiny_model(
            destination,
            texts,
            seed=seed,
            chat_template=SIMPLE_CHAT_TEMPLATE if chat_template else None,
        )
        bar.update(1)
    try:
        with session_scope(engine) as session:
            add_model(
                session,
                name,
                path=destination,
                smoke_test=True,
                description="Random weights; for smoke tests only. Its scores mean nothing.",
            )
    except BaseException:
        import shutil

        shutil.rmtree(destination, ignore_errors=True)
        raise
    return destination


# -- evaluation -----------------------------------------------------------------------


@cli.command("eval")
@click.option("--model", "model_names", multiple=True, required=True, help="Registered model name.")
@click.option(
    "--benchmark", "benchmark_names", multiple=True, required=True, help="Loaded benchmark name."
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    help="Items per batch (default 64, SABHA_EVAL_BATCH_SIZE).",
)
@click.option("--verbose", is_flag=True, help="Show Ray's and vLLM's own logs.")
@click.pass_context
def eval_command(
    ctx: click.Context,
    model_names: Sequence[str],
    benchmark_names: Sequence[str],
    batch_size: int | None,
    verbose: bool,
) -> None:
    """Evaluate models on benchmarks with vLLM in a local Ray actor.

    Finished outputs are saved batch by batch: an interrupted run resumes.
    Options can be repeated to evaluate several models and benchmarks.
    """
    settings = _settings(ctx)
    engine = _database(ctx)
    evaluate(engine, settings, model_names, benchmark_names, batch_size, verbose)


def evaluate(
    engine: Engine,
    settings: Settings,
    model_names: Sequence[str],
    benchmark_names: Sequence[str],
    batch_size: int | None = None,
    verbose: bool = False,
) -> None:
    """Evaluate each model on each benchmark, reusing finished jobs (used by eval and demo)."""
    from .catalog import check_model_unchanged, get_benchmark, get_model
    from .db import session_scope
    from .domain import JobStatus, id_of
    from .evaluation import count_pending, create_job

    plan: list[tuple[str, str, str | None, list[tuple[str, int]]]] = []
    with session_scope(engine) as session:
        benchmarks = [get_benchmark(session, name) for name in benchmark_names]
        for model_name in model_names:
            model = get_model(session, model_name)
            jobs: list[tuple[str, int]] = []
            for benchmark in benchmarks:
                job, _ = create_job(session, model, benchmark)
                if job.status == JobStatus.COMPLETED:
                    click.echo(f"{model.name} on {benchmark.name}: done already (job {job.id})")
                else:
                    jobs.append((benchmark.name, id_of(job)))
            if not jobs:
                continue
            if model.source == "local":
                check_model_unchanged(model)
                plan.append((model.name, str(model.path), None, jobs))
            else:
                plan.append((model.name, str(model.repo_id), model.revision, jobs))

    if not plan:
        return
    from sabha.workers.local import RayEngineClient, ensure_ray

    from .evaluation import run_job

    ensure_ray(settings.ray_address, quiet=not verbose)
    for model_name, target, revision, jobs in plan:
        click.echo(f"Starting vLLM for {model_name} (this takes about half a minute on CPU)...")
        client = RayEngineClient(
            target, revision=revision, memory_fraction=settings.vllm_memory_fraction
        )
        try:
            client.info()
            for benchmark_name, job_id in jobs:
                pending, total = count_pending(engine, job_id)
                label = f"{model_name} on {benchmark_name}"
                with click.progressbar(length=total, label=label, show_pos=True) as bar:
                    bar.update(total - pending)
                    run_job(
                        engine,
                        job_id,
                        client,
                        batch_size=batch_size or settings.eval_batch_size,
                        progress=bar.update,
                    )
                _print_summary(engine, job_id)
        finally:
            client.close()


def _print_summary(engine: Engine, job_id: int) -> None:
    from .domain import Benchmark, Job, Score

    with Session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        benchmark = session.get(Benchmark, job.benchmark_id)
        assert benchmark is not None
        score = session.exec(
            select(Score).where(
                Score.job_id == job_id,
                Score.metric == benchmark.primary_metric,
                Score.breakdown == "overall",
            )
        ).first()
        if score:
            click.echo(
                f"  {benchmark.primary_metric} = {score.value:.2f} "
                f"(95% CI {score.ci_low:.2f}–{score.ci_high:.2f}, n={score.n})"
            )


# -- web ------------------------------------------------------------------------------


@cli.command("serve")
@click.option("--host", help="Address to listen on (default SABHA_HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default SABHA_PORT, 5000).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the leaderboard (Flask development server)."""
    settings = _settings(ctx)
    _database(ctx)
    _serve(settings, host or settings.host, port or settings.port)


def _serve(settings: Settings, host: str, port: int) -> None:
    import socket

    from .app import create_app

    app = create_app(settings)
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise SabhaError(
            f"Cannot serve on {host}:{port}: {exc.strerror or exc}.",
            "Stop the program using that port, or pass --port (or set SABHA_PORT).",
        ) from exc
    click.secho(f"Leaderboard: http://{host}:{port}/", fg="green", bold=True)
    click.echo("Press Ctrl+C to stop.")
    app.run(host=host, port=port, debug=False, use_reloader=False)


# -- demo -----------------------------------------------------------------------------

DEMO_MODELS = (("tiny-chat", 1, True), ("tiny-base", 2, False))


@cli.command("demo")
@click.option("--serve/--no-serve", "serve_after", default=True, help="Serve the leaderboard.")
@click.pass_context
def demo(ctx: click.Context, serve_after: bool) -> None:
    """Set everything up on defaults, evaluate two tiny models, serve the leaderboard.

    Runs again quickly: whatever exists already is reused.
    """
    from .catalog import latest_benchmarks
    from .domain import Model

    settings = _settings(ctx)
    settings.ensure_dirs()
    click.echo(f"Data directory: {settings.data_dir}")
    engine = _database(ctx, migrate=True)
    _register(engine, settings, _load_files(()))
    with Session(engine) as session:
        existing = set(session.exec(select(Model.name)).all())
        benchmark_names = [b.name for b in latest_benchmarks(session)]
    for name, seed, chat_template in DEMO_MODELS:
        if name not in existing:
            _make_tiny(engine, settings, name, seed, chat_template)
    evaluate(engine, settings, [m[0] for m in DEMO_MODELS], benchmark_names)
    if serve_after:
        _serve(settings, settings.host, settings.port)


def main() -> None:
    """Entry point of the ``sabha`` console script."""
    cli(prog_name="sabha")


if __name__ == "__main__":
    main()
