"""The ``sabha`` command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .errors import SabhaError, ValidationFailed, translate_error
from .settings import Settings
from .wire import MAX_DB_ID

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Prints user mistakes (``SabhaError``) as one clear message, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.secho("Interrupted: leases handed back, finished work kept.", fg="red", err=True)
            sys.exit(130)
        except Exception as exc:
            translated = translate_error(exc)
            if translated is None:
                raise
            click.secho(f"Error: {translated}", fg="red", err=True)
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
        from .db import check_connection, current_revision
        from .services.benchmarks import rebuild_all_leaderboards

        check_connection(engine)
        before = current_revision(engine)
        upgrade_database(engine)
        if before is not None and before != current_revision(engine):
            rebuild_all_leaderboards(engine)  # the read model is new or changed
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
    """Check benchmark files (and their items), alone and together, and report every problem."""
    loaded = _read_benchmark_files(paths, "validate")
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
    from .benchmarks import starter_benchmark_paths

    loaded = _read_benchmark_files(paths or starter_benchmark_paths(), "load")
    engine = _database(ctx)
    _register(engine, _settings(ctx), loaded)


def _read_benchmark_files(paths: Sequence[Path], verb: str) -> list[Any]:
    """Every file read and checked, alone and then together.

    Raises:
        ValidationFailed: every problem of every file, and of the files together.
    """
    from .benchmarks import benchmarks_together_problems, load_benchmark_file

    loaded, failures = [], []
    for path in paths:
        try:
            loaded.append(load_benchmark_file(path))
        except SabhaError as exc:
            failures.append(str(exc))
    if failures:
        raise ValidationFailed(
            f"{len(failures)} of {len(paths)} benchmark file(s) have problems"
            + ("; nothing was loaded:" if verb == "load" else ":"),
            failures,
        )
    together = benchmarks_together_problems(loaded)
    if together:
        raise ValidationFailed(
            f"These {len(paths)} benchmark files cannot be loaded together"
            + ("; nothing was loaded:" if verb == "load" else ":"),
            together,
        )
    return loaded


def _register(engine: Engine, settings: Settings, loaded: Sequence[Any]) -> None:
    from .services.benchmarks import load_benchmarks

    settings.ensure_dirs()
    for benchmark_file, (benchmark, state) in zip(
        loaded, load_benchmarks(engine, loaded, settings.resolved_artifacts_dir), strict=True
    ):
        click.echo(
            f"{state:9} {benchmark.name} version {benchmark.version} (dataset version "
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
                f"{b.name:20} v{b.version:5} {b.task:15} {version.item_count:5} items  "
                f"{', '.join(b.languages):32} {b.primary_metric} "
                f"(dataset {version.content_hash[:12]})"
            )


# -- datasets ---------------------------------------------------------------------------


@cli.group()
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
    from .benchmarks import load_dataset_file
    from .services.benchmarks import release_datasets

    loaded, failures = [], []
    for path in paths:
        try:
            loaded.append(load_dataset_file(path))
        except SabhaError as exc:
            failures.append(str(exc))
    if failures:
        raise ValidationFailed(
            f"{len(failures)} of {len(paths)} dataset file(s) have problems; nothing was released:",
            failures,
        )
    engine = _database(ctx)
    settings = _settings(ctx)
    settings.ensure_dirs()
    released = release_datasets(engine, loaded, settings.resolved_artifacts_dir)
    for data_set, (_, created) in zip(loaded, released, strict=True):
        state = "released" if created else "unchanged"
        click.echo(
            f"{state:9} {data_set.name}@{data_set.content_hash} ({len(data_set.items)} items)"
        )


@datasets.command("list")
@click.pass_context
def datasets_list(ctx: click.Context) -> None:
    """List released dataset versions as NAME@HASH, the form benchmark files refer to."""
    from .domain import Dataset, DatasetVersion

    with Session(_database(ctx)) as session:
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
    from .benchmarks import starter_benchmark_paths

    for loaded in _read_benchmark_files(paths or starter_benchmark_paths(), "validate"):
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
    from .services.models import register_model

    model = register_model(_database(ctx), name, path, repo_id, revision, smoke_test)
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
    from .services.models import make_tiny

    with click.progressbar(length=1, label=f"Making tiny model {name}") as bar:
        path = make_tiny(engine, settings.resolved_models_dir, name, seed, chat_template)
        bar.update(1)
    return path


# -- evaluation -----------------------------------------------------------------------


@cli.command("eval")
@click.option("--model", "model_names", multiple=True, required=True, help="Registered model name.")
@click.option(
    "--benchmark", "benchmark_names", multiple=True, required=True, help="Loaded benchmark name."
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    help="Most items in the engine at once (default: twice the engine's batch; "
    "SABHA_EVAL_BATCH_SIZE).",
)
@click.option("--verbose", is_flag=True, help="Show Ray's and vLLM's own logs.")
@click.option(
    "--stand-in-engine",
    "stand_in_seconds",
    type=click.FloatRange(min=0),
    hidden=True,  # tests only: answers are not a model's
    help="TESTS ONLY: no Ray or vLLM; answer every item after this many seconds "
    "with a deterministic stand-in text (workers/standin.py).",
)
@click.pass_context
def eval_command(
    ctx: click.Context,
    model_names: Sequence[str],
    benchmark_names: Sequence[str],
    batch_size: int | None,
    verbose: bool,
    stand_in_seconds: float | None,
) -> None:
    """Evaluate models on benchmarks with vLLM in a local Ray actor.

    Each shard is saved as soon as it completes: an interrupted run resumes, and
    two `sabha eval` processes on the same job share its shards.
    Options can be repeated to evaluate several models and benchmarks.
    """
    settings = _settings(ctx)
    engine = _database(ctx)
    evaluate(engine, settings, model_names, benchmark_names, batch_size, verbose, stand_in_seconds)


def evaluate(
    engine: Engine,
    settings: Settings,
    model_names: Sequence[str],
    benchmark_names: Sequence[str],
    batch_size: int | None = None,
    verbose: bool = False,
    stand_in_seconds: float | None = None,
) -> None:
    """Evaluate each model on each benchmark through the local pool (used by eval and demo).

    ``stand_in_seconds`` (tests only) answers with the stand-in engine instead of vLLM.
    """
    from .services.evaluate import pending_items, plan_evaluation, primary_summary, run_local_pool

    plans = plan_evaluation(engine, model_names, benchmark_names, settings.shard_size)
    for plan in plans:
        for benchmark_name, job_id in plan.done:
            click.echo(f"{plan.model} on {benchmark_name}: done already (job {job_id})")
    work = [plan for plan in plans if plan.jobs]
    if not work:
        return
    if stand_in_seconds is None:
        from sabha.workers.local import ensure_ray

        ensure_ray(settings.ray_address, quiet=not verbose)
    for plan in work:
        job_ids = [job_id for _, job_id in plan.jobs]
        pending, total = pending_items(engine, job_ids)
        names = ", ".join(name for name, _ in plan.jobs)
        if stand_in_seconds is None:
            click.echo(f"Starting vLLM for {plan.model} (about half a minute on CPU)...")
        with click.progressbar(
            length=total, label=f"{plan.model} on {names}", show_pos=True
        ) as bar:
            bar.update(total - pending)
            run_local_pool(
                engine,
                job_ids,
                _engine_factory(settings, stand_in_seconds),
                lease_seconds=settings.lease_seconds,
                max_in_flight=batch_size or settings.eval_batch_size,
                progress=bar.update,
            )
        for benchmark_name, job_id in plan.jobs:
            click.echo(f"{plan.model} on {benchmark_name} (job {job_id})")
            summary = primary_summary(engine, job_id)
            if summary:
                click.echo(f"  {summary}")


def _engine_factory(settings: Settings, stand_in_seconds: float | None = None) -> Any:
    def start(model: Any, max_model_len: int) -> Any:
        if stand_in_seconds is not None:
            from sabha.workers.standin import StandInEngine

            return StandInEngine(stand_in_seconds)
        from sabha.workers.client import EngineClient

        return EngineClient(
            model, max_model_len=max_model_len, memory_fraction=settings.vllm_memory_fraction
        )

    return start


# -- jobs -----------------------------------------------------------------------------


@cli.group()
def jobs() -> None:
    """Show jobs (a model on a benchmark) and their shards."""


@jobs.command("list")
@click.pass_context
def jobs_list(ctx: click.Context) -> None:
    """List jobs with their status and progress."""
    from .domain import Benchmark, Job, Model
    from .services.queue import job_progress

    with Session(_database(ctx)) as session:
        rows = session.exec(
            select(Job, Model.name, Benchmark.name)
            .join(Model, Model.id == Job.model_id)  # type: ignore[arg-type]
            .join(Benchmark, Benchmark.id == Job.benchmark_id)  # type: ignore[arg-type]
            .order_by(Job.id)  # type: ignore[arg-type]
        ).all()
        if not rows:
            click.echo("No jobs yet. Run `sabha eval --model M --benchmark B`.")
        for job, model, benchmark in rows:
            progress = job_progress(session, job.id)  # type: ignore[arg-type]
            note = f"  superseded by job {job.superseded_by_id}" if job.superseded_by_id else ""
            click.echo(
                f"{job.id:5}  {model:24} {benchmark:20} {job.status:10} "
                f"{progress.completed_shards}/{progress.shards} shards, "
                f"{progress.leased_shards} leased{note}"
            )


@jobs.command("show")
@click.argument("job_id", type=click.IntRange(1, MAX_DB_ID))
@click.pass_context
def jobs_show(ctx: click.Context, job_id: int) -> None:
    """Show one job's shards: their runs, leases and which pool's results count."""
    from .domain import Job
    from .errors import NotFoundError
    from .services.queue import shard_states

    with Session(_database(ctx)) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFoundError(f"There is no job {job_id}.", "List jobs with `sabha jobs list`.")
        click.echo(f"Job {job_id}: {job.status}" + (f" ({job.error})" if job.error else ""))
        for state in shard_states(session, job_id):
            runs = ", ".join(f"#{a} {s} by {p}" for a, s, p in state.runs) or "not run yet"
            click.echo(f"  shard {state.index:3} {state.items:4} items  {state.status:9}  {runs}")


# -- a remote server ----------------------------------------------------------------


@cli.command("login")
@click.option(
    "--server", required=True, help="The Sabha server's URL, e.g. https://sabha.example.org."
)
@click.option(
    "--token",
    envvar="SABHA_TOKEN",
    help="A personal access token (sabha_pat_...); asked for when omitted.",
)
def login(server: str, token: str | None) -> None:
    """Store a personal access token for a Sabha server.

    Create the token in the server's web UI (or with `sabha tokens create` on the
    server). It is checked against the server, then kept in
    ~/.config/sabha/credentials.json, readable only by you.
    """
    from .remote import Credentials, SabhaClient, save_credentials

    if not server.startswith(("http://", "https://")):
        raise SabhaError(
            f"--server {server!r} is not an http(s) URL.", "Give e.g. https://sabha.example.org"
        )
    token = token or click.prompt("Personal access token", hide_input=True)
    token = token.strip()
    me = SabhaClient(server, token).me()
    path = save_credentials(Credentials(server.rstrip("/"), token))
    scopes = ", ".join(me.get("scopes", [])) or "none"
    click.echo(f"Signed in to {server} as {me['user']['username']} (scopes: {scopes}).")
    click.echo(f"Token stored in {path}.")


@cli.command("submit")
@click.option("--model-path", type=click.Path(path_type=Path), help="A model folder on the server.")
@click.option("--repo-id", help="A hub repository, e.g. org/model.")
@click.option("--revision", help="The hub commit: a full 40-character SHA.")
@click.option("--name", help="The model's name on the leaderboard (default: from its source).")
@click.option(
    "--benchmark", "benchmark_names", multiple=True, required=True, help="Repeat for several."
)
@click.option("--license", "license_", required=True, help="The model's license, e.g. apache-2.0.")
@click.option("--temperature", type=float, help="Decoding override (0 to 2).")
@click.option("--top-p", type=float, help="Decoding override (above 0, at most 1).")
@click.option("--max-tokens", type=int, help="Decoding override (at most the benchmark's).")
def submit(
    model_path: Path | None,
    repo_id: str | None,
    revision: str | None,
    name: str | None,
    benchmark_names: Sequence[str],
    license_: str,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
) -> None:
    """Submit a model for evaluation to the server you signed in to.

    Give --repo-id and --revision, or --model-path (servers that allow local models).
    """
    from .remote import SabhaClient

    if (model_path is None) == (repo_id is None):
        raise SabhaError(
            "Give exactly one model source.",
            "Pass --repo-id ORG/NAME --revision SHA, or --model-path DIR.",
        )
    model: dict[str, Any]
    if repo_id is not None:
        if not revision:
            raise SabhaError(
                "--repo-id needs --revision.", "Pass the full 40-character commit SHA."
            )
        model = {"source": "hub", "repo_id": repo_id, "revision": revision}
    else:
        model = {"source": "local", "path": str(model_path)}
    if name:
        model["name"] = name
    decoding = {
        key: value
        for key, value in (
            ("temperature", temperature),
            ("top_p", top_p),
            ("max_tokens", max_tokens),
        )
        if value is not None
    }
    client = SabhaClient.from_stored_credentials()
    created = client.submit(
        {
            "model": model,
            "benchmarks": list(benchmark_names),
            "license": license_,
            "decoding": decoding,
        }
    )
    click.echo(f"Submission {created['id']}: {created['status']}")
    for job in created["jobs"]:
        click.echo(f"  {job['benchmark']}: job {job['job_id']} ({job['status']})")
    click.echo(f"Status: {client.url(created['status_url'])}")
    click.echo(f"Follow it with `sabha status {created['id']}`.")


@cli.command("status")
@click.argument("submission_id", type=click.IntRange(1, MAX_DB_ID))
def status(submission_id: int) -> None:
    """Show a submission's progress per benchmark and per shard."""
    from .remote import SabhaClient

    shown = SabhaClient.from_stored_credentials().submission(submission_id)
    reason = f" ({shown['reason']})" if shown.get("reason") else ""
    click.echo(f"Submission {shown['id']} of {shown['model']}: {shown['status']}{reason}")
    for job in shown["job_states"]:
        click.echo(
            f"  {job['benchmark']} (job {job['id']}): {job['status']}, "
            f"{job['completed_shards']}/{job['shards']} shards, "
            f"{job['completed_items']}/{job['items']} items"
            + (f"  [{job['reason']}]" if job.get("reason") else "")
        )
        for shard in job["shard_states"]:
            where = f" on {shard['pool']}" if shard.get("pool") else ""
            why = f" — {shard['reason']}" if shard.get("reason") else ""
            click.echo(
                f"    shard {shard['index']:3} {shard['items']:4} items  "
                f"{shard['state']:9}{where}{why}"
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
    if "ray" in sys.modules:  # the demo evaluated first: serving needs no Ray
        from sabha.workers.local import shutdown_ray

        shutdown_ray()
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
@click.option(
    "--labelstudio/--no-labelstudio",
    "with_labelstudio",
    default=True,
    help="Also start Label Studio with a sample project and a demo annotator.",
)
@click.pass_context
def demo(ctx: click.Context, serve_after: bool, with_labelstudio: bool) -> None:
    """Set everything up on defaults, evaluate two tiny models, serve the leaderboard.

    Also starts Label Studio (when installed: `make labelstudio`) with a
    sample project of kisan-advisory questions and prints a demo annotator's
    sign-in. Runs again quickly: whatever exists already is reused.
    """
    from .cli_signals import Terminated, stop_on_sigterm

    try:
        with stop_on_sigterm():  # SIGTERM stops the demo's Label Studio too, as Ctrl-C does
            _run_demo(ctx, serve_after, with_labelstudio)
    except Terminated:
        click.echo("Stopped.")


def _run_demo(ctx: click.Context, serve_after: bool, with_labelstudio: bool) -> None:
    from .catalog import latest_benchmarks
    from .cli_annotation import start_demo_labelstudio
    from .domain import Model

    settings = _settings(ctx)
    settings.ensure_dirs()
    click.echo(f"Data directory: {settings.data_dir}")
    engine = _database(ctx, migrate=True)
    from .benchmarks import starter_benchmark_paths

    _register(engine, settings, _read_benchmark_files(starter_benchmark_paths(), "load"))
    with Session(engine) as session:
        existing = set(session.exec(select(Model.name)).all())
        benchmark_names = [b.name for b in latest_benchmarks(session)]
    for name, seed, chat_template in DEMO_MODELS:
        if name not in existing:
            _make_tiny(engine, settings, name, seed, chat_template)
    evaluate(engine, settings, [m[0] for m in DEMO_MODELS], benchmark_names)
    server = None
    if with_labelstudio:
        server, settings = start_demo_labelstudio(
            settings, engine, f"http://{settings.host}:{settings.port}"
        )
    try:
        if serve_after:
            _serve(settings, settings.host, settings.port)
        elif server is not None:
            click.echo("Label Studio stops now; `sabha labelstudio start` runs it again.")
    finally:
        if server is not None:
            from .services.labelstudio import stop_labelstudio

            stop_labelstudio(settings, server)


# -- accounts (platform/cli_accounts.py) -----------------------------------------------

from .cli_accounts import credentials, tokens, users  # noqa: E402  (they use _database above)

cli.add_command(users)
cli.add_command(tokens)
cli.add_command(credentials)

# -- annotation (platform/cli_annotation.py) -------------------------------------------

from .cli_annotation import annotations_group, labelstudio  # noqa: E402  (they use _database above)
from .cli_annotation_upkeep import annotations_sync  # noqa: E402, F401  (registers its commands)

cli.add_command(labelstudio)
cli.add_command(annotations_group)

from .cli_review import annotations_blockers, review_group  # noqa: E402

annotations_group.add_command(review_group)
annotations_group.add_command(annotations_blockers)


# -- volunteer pools --------------------------------------------------------------------


@cli.group()
def worker() -> None:
    """Donate this machine's GPUs (or CPU) to a Sabha platform."""


@worker.command("run")
@click.option("--server", required=True, help="The platform's address, e.g. https://sabha.org")
@click.option(
    "--credential-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file with the pool credential: client_id and client_secret lines "
    "(else SABHA_POOL_CLIENT_ID and SABHA_POOL_CLIENT_SECRET).",
)
@click.option("--name", "pool_name", help="The pool's name (default: this host's name)")
@click.option("--ray-address", help="Join this Ray cluster instead of starting a local one")
@click.option(
    "--spool",
    "spool_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where finished results wait to be posted (default: <data dir>/spool)",
)
@click.option("--exit-when-idle", is_flag=True, help="Stop when there is no work left")
@click.option(
    "--stand-in-engine",
    "stand_in_seconds",
    type=click.FloatRange(min=0),
    hidden=True,  # tests and benchmarks only: answers are not a model's
    help="TESTS ONLY: no Ray or vLLM; answer every item after this many seconds "
    "with a deterministic stand-in text (workers/standin.py).",
)
@click.option(
    "--stand-in-variant",
    type=click.IntRange(min=0),
    default=0,
    hidden=True,  # tests only: another honest setup's drift
    help="TESTS ONLY: with --stand-in-engine, drift as another honest setup would.",
)
@click.pass_context
def worker_run(
    ctx: click.Context,
    server: str,
    credential_file: Path | None,
    pool_name: str | None,
    ray_address: str | None,
    spool_dir: Path | None,
    exit_when_idle: bool,
    stand_in_seconds: float | None,
    stand_in_variant: int,
) -> None:
    """Lease shards from the platform and run them on this pool until Ctrl-C.

    Ctrl-C hands back the leases in flight; finished results that could not
    be posted stay in the spool and are posted at the next start.
    """
    import os
    import socket

    from sabha.workers.volunteer import run_volunteer

    settings = _settings(ctx)
    client_id, secret = _pool_credential(credential_file, os.environ)
    summary = run_volunteer(
        server,
        client_id,
        secret,
        pool_name or socket.gethostname().split(".")[0],
        spool_dir or settings.data_dir / "spool",
        ray_address or settings.ray_address,
        settings.vllm_memory_fraction,
        exit_when_idle,
        stand_in_seconds,
        report=lambda line: click.echo(line),
        stand_in_variant=stand_in_variant,
    )
    click.echo(
        f"Leased {summary.leased} shard(s), finished {summary.finished}, posted "
        f"{summary.posted}, handed back {summary.released}."
    )


def _pool_credential(path: Path | None, environ: Any) -> tuple[str, str]:
    values: dict[str, str] = {}
    if path is not None:
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=") if "=" in line else line.partition(":")
            values[key.strip().lower()] = value.strip()
    client_id = values.get("client_id") or environ.get("SABHA_POOL_CLIENT_ID")
    secret = values.get("client_secret") or environ.get("SABHA_POOL_CLIENT_SECRET")
    if not client_id or not secret:
        raise SabhaError(
            "The pool credential is missing (client id or secret).",
            "Set SABHA_POOL_CLIENT_ID and SABHA_POOL_CLIENT_SECRET, or pass --credential-file "
            "with client_id=... and client_secret=... lines (`sabha credentials create` "
            "makes one).",
        )
    return client_id, secret


def main() -> None:
    """Entry point of the ``sabha`` console script."""
    cli(prog_name="sabha")


if __name__ == "__main__":
    main()
