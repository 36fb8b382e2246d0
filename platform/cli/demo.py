"""`sabha demo`: Sabha's three stories on one machine, on defaults.

1. The leaderboard: two tiny models evaluated on the starter benchmarks by
   this machine's own pool (`sabha eval`'s), and the site that shows them.
2. Annotation: Label Studio with a sample project and a demo annotator (when
   Label Studio is installed and starts; otherwise the demo says why and goes on).
3. Volunteers: two demo volunteers' agents (the `sabha worker run` code path)
   lease the shards of a third tiny model's job from the demo's own server over
   HTTP and post their results. Both pools are new, so each result counts only
   once the other owner's pool ran the same shard and agreed: the demo follows
   the verification rules of every pool.
"""

from __future__ import annotations

import logging
import secrets
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..errors import PrerequisiteError, SabhaError
from ..settings import Settings
from .catalog import make_demo_model, read_benchmark_files, register_benchmarks
from .context import database, settings_of, stand_in_engine_option
from .evaluation import evaluate

if TYPE_CHECKING:
    from sabha.annotation.labelstudio_server import LabelStudioServer

    from ..services.annotation.demo import DemoAnnotation
    from ..services.demo_volunteers import DemoVolunteer, VolunteerJobOutcome

__all__ = ["demo", "start_demo_labelstudio"]

DEMO_MODELS = (("tiny-chat", 1, True), ("tiny-base", 2, False))
# The volunteers' job: a model no local pool evaluates, on one starter benchmark.
VOLUNTEER_MODEL = ("tiny-volunteer", 3, True)
VOLUNTEER_BENCHMARK = "kisan-advisory"


@click.command("demo")
@click.option("--serve/--no-serve", "serve_after", default=True, help="Serve the site afterwards.")
@click.option(
    "--labelstudio/--no-labelstudio",
    "with_labelstudio",
    default=True,
    help="Start Label Studio with a sample project and a demo annotator.",
)
@click.option(
    "--volunteers/--no-volunteers",
    "with_volunteers",
    default=True,
    help="Run two demo volunteers' agents: their pools lease a job's shards from the "
    "demo's server over HTTP and verify each other's results.",
)
@stand_in_engine_option
@click.pass_context
def demo(
    ctx: click.Context,
    serve_after: bool,
    with_labelstudio: bool,
    with_volunteers: bool,
    stand_in_seconds: float | None,
) -> None:
    """Set everything up on defaults and show Sabha's three stories.

    \b
    1. Leaderboard: evaluates two tiny models on the starter benchmarks.
    2. Annotation: starts Label Studio (installed by `make labelstudio`) with a
       sample project of kisan-advisory questions and a demo annotator.
    3. Volunteers: two demo volunteers' agents lease a third tiny model's
       shards from the demo's own server over HTTP and post the results, which
       count once the two pools (two owners) agree.

    Ends with what to open for each story and the demo accounts' sign-ins
    (new passwords on every run), then serves the site until Ctrl-C. Runs
    again quickly: whatever exists already is reused.
    """
    from .signals import Terminated, stop_on_sigterm

    try:
        with stop_on_sigterm():  # SIGTERM stops the demo's Label Studio too, as Ctrl-C does
            _run_demo(ctx, serve_after, with_labelstudio, with_volunteers, stand_in_seconds)
    except Terminated:
        click.echo("Stopped.")


def _heading(text: str) -> None:
    click.echo()
    click.secho(text, bold=True)


def _run_demo(
    ctx: click.Context,
    serve_after: bool,
    with_labelstudio: bool,
    with_volunteers: bool,
    stand_in_seconds: float | None,
) -> None:
    from ..benchmarks import starter_benchmark_paths
    from ..catalog import latest_benchmarks
    from ..domain import Model
    from .signals import reclaim_sigterm

    settings = settings_of(ctx)
    settings.ensure_dirs()
    click.echo(f"Data directory: {settings.data_dir}")
    db = database(ctx, migrate=True)
    register_benchmarks(db, settings, read_benchmark_files(starter_benchmark_paths(), "load"))
    with Session(db) as session:
        existing = set(session.exec(select(Model.name)).all())
        benchmark_names = [b.name for b in latest_benchmarks(session)]
    models = DEMO_MODELS + ((VOLUNTEER_MODEL,) if with_volunteers else ())
    for name, seed, chat_template in models:
        if name not in existing:
            make_demo_model(db, settings, name, seed, chat_template)
    _heading("1. Leaderboard: two tiny models on the starter benchmarks, on this machine")
    evaluate(
        db,
        settings,
        [m[0] for m in DEMO_MODELS],
        benchmark_names,
        stand_in_seconds=stand_in_seconds,
    )
    reclaim_sigterm()  # ray.init put its own SIGTERM handler in: Label Studio must stop too
    site = f"http://{settings.host}:{settings.port}"
    labelstudio: LabelStudioServer | None = None
    annotation: DemoAnnotation | None = None
    if with_labelstudio:
        _heading("2. Annotation: Label Studio with a sample project and a demo annotator")
        labelstudio, settings, annotation = start_demo_labelstudio(settings, db, site)
    web: _WebServer | None = None
    try:
        if serve_after or with_volunteers:
            # One machine: the demo's pools read the tiny models from this disk.
            served = settings.model_copy(update={"local_models_for_volunteers": True})
            # Only the agents use a server the demo does not keep: any free port does.
            web = _WebServer.start(served, settings.port if serve_after else 0)
        volunteers = None
        if with_volunteers and web is not None:
            _heading("3. Volunteers: two demo pools run a job over HTTP and verify each other")
            volunteers = _volunteer_story(db, settings, web.agent_url, stand_in_seconds)
        if "ray" in sys.modules:  # evaluation and the demo's agents are done: serving needs no Ray
            from sabha.workers.local import shutdown_ray

            shutdown_ray()
            reclaim_sigterm()  # Ray's shutdown takes SIGTERM's handler away at the C level
        _summary(site, serve_after, with_labelstudio, annotation, with_volunteers, volunteers)
        if serve_after and web is not None:
            click.echo("Press Ctrl+C to stop.")
            web.serve_until_interrupted()
        elif labelstudio is not None:
            click.echo("Label Studio stops now; `sabha labelstudio start` runs it again.")
    finally:
        if web is not None:
            web.stop()
        if labelstudio is not None:
            from ..services.labelstudio import stop_labelstudio

            stop_labelstudio(settings, labelstudio)


# -- the web server ----------------------------------------------------------------------


@dataclass
class _WebServer:
    """The demo's site in a thread: the agents talk to it, then people browse it."""

    server: Any
    thread: threading.Thread
    agent_url: str

    @classmethod
    def start(cls, settings: Settings, port: int) -> _WebServer:
        from werkzeug.serving import make_server

        from ..app import create_app

        host = settings.host
        # Quiet while the demo's agents poll; people's requests are logged once it serves.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            server = make_server(host, port, create_app(settings), threaded=True)
        except OSError as exc:
            raise SabhaError(
                f"Cannot serve on {host}:{port}: {exc.strerror or exc}.",
                "Stop the program using that port, or set SABHA_PORT.",
            ) from exc
        thread = threading.Thread(target=server.serve_forever, name="sabha-demo-web", daemon=True)
        thread.start()
        # An agent on this machine reaches a server listening on every address at loopback.
        reach = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
        if ":" in reach and not reach.startswith("["):
            reach = f"[{reach}]"
        return cls(server, thread, f"http://{reach}:{server.server_port}")

    def serve_until_interrupted(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.INFO)
        try:
            while self.thread.is_alive():
                self.thread.join(timeout=1.0)
        except KeyboardInterrupt:
            click.echo("Stopped.")

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


# -- story 2: annotation ------------------------------------------------------------------


def _demo_webhook_secret(settings: Settings) -> str:
    """The configured webhook secret, else one the demo keeps in Label Studio's data dir."""
    if settings.label_studio_webhook_secret:
        return settings.label_studio_webhook_secret
    path = settings.resolved_label_studio_data_dir / "sabha-demo-webhook-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text("utf-8").strip()


def start_demo_labelstudio(
    settings: Settings, db: Engine, webhook_base_url: str
) -> tuple[LabelStudioServer | None, Settings, DemoAnnotation | None]:
    """Start Label Studio for the demo, with a sample project and a demo annotator.

    Prints where to annotate and the demo annotator's sign-ins. When Label
    Studio is not installed, does not start, or refuses the sample project,
    prints why and carries on without it.

    Args:
        settings: The demo's settings.
        db: Sabha's database.
        webhook_base_url: Where Sabha's web app will listen, for Label Studio's webhook.

    Returns:
        The running server (None when skipped), the settings to serve with
        (carrying the demo's webhook secret), and the demo's project and
        annotator (None when skipped).
    """
    from ..services.annotation.demo import set_up_demo_annotation
    from ..services.labelstudio import connect_labelstudio, start_labelstudio, stop_labelstudio

    if settings.label_studio_url:
        click.echo(f"Label Studio: using {settings.label_studio_url}; the demo starts none.")
        return None, settings, None
    secret = _demo_webhook_secret(settings)
    settings = settings.model_copy(update={"label_studio_webhook_secret": secret})
    click.echo("Starting Label Studio for the annotation demo ...")
    try:
        server, _admin = start_labelstudio(settings, allow_loopback_webhooks=True)
    except PrerequisiteError as exc:
        click.secho(f"Skipping the annotation demo: {exc.message}", fg="yellow")
        click.echo("  Install Label Studio with `make labelstudio` to include it.")
        return None, settings, None
    except SabhaError as exc:
        click.secho(f"Skipping the annotation demo: {exc}", fg="yellow")
        return None, settings, None
    try:
        annotation = set_up_demo_annotation(
            db,
            settings,
            connect_labelstudio(settings),
            webhook_url=f"{webhook_base_url.rstrip('/')}/hooks/labelstudio",
        )
    except (SabhaError, OSError) as exc:  # OSError: requests' errors too
        stop_labelstudio(settings, server)
        click.secho(f"Skipping the annotation demo: {exc}", fg="yellow")
        return None, settings, None
    except BaseException:
        stop_labelstudio(settings, server)
        raise
    click.secho(f"Label Studio: {annotation.labelstudio_url}/", fg="green", bold=True)
    click.echo(
        f"  Sample project ({annotation.items} kisan-advisory questions): {annotation.project_url}"
    )
    click.echo(
        f"  Demo annotator in Label Studio: {annotation.labelstudio_email} / "
        f"{annotation.labelstudio_password}"
    )
    click.echo(
        f"  The same annotator in Sabha (their credit on /account): "
        f"{annotation.sabha_username} / {annotation.sabha_password}"
    )
    return server, settings, annotation


# -- story 3: volunteers ------------------------------------------------------------------


def _reporter(pool_name: str) -> Any:
    def report(line: str) -> None:
        if not line.startswith("Waiting:"):  # the demo stops its agents when the work is done
            click.echo(f"  [{pool_name}] {line}")

    return report


def _outcome_line(outcome: VolunteerJobOutcome) -> str:
    done = f"Job {outcome.job_id}: {outcome.accepted} of {outcome.shards} shard(s) count"
    if outcome.complete:
        return (
            f"{done}: each was run by one demo pool and verified by the other owner's pool; "
            "the job is scored and on the leaderboard."
        )
    if outcome.waiting:
        return (
            f"{done}; {outcome.waiting} wait for a replica: a new pool's result counts only "
            "once another owner's pool has run the same shard and agreed."
        )
    return f"{done} ({outcome.status})."


def _volunteer_story(
    db: Engine, settings: Settings, url: str, stand_in_seconds: float | None
) -> tuple[list[DemoVolunteer], VolunteerJobOutcome] | None:
    """Run each demo volunteer's agent against the demo's server until its work is done."""
    from sabha.workers.volunteer import run_volunteer

    from ..services.demo_volunteers import (
        demo_volunteer_job,
        set_up_demo_volunteers,
        volunteer_job_outcome,
    )
    from .signals import reclaim_sigterm

    folder = settings.data_dir / "demo"
    model, benchmark = VOLUNTEER_MODEL[0], VOLUNTEER_BENCHMARK
    try:
        volunteers = set_up_demo_volunteers(db, folder)
        job_id = demo_volunteer_job(db, model, benchmark, settings.shard_size)
    except SabhaError as exc:
        click.secho(f"Skipping the volunteer demo: {exc}", fg="yellow")
        return None
    outcome = volunteer_job_outcome(db, job_id)
    if outcome.complete:
        click.echo(f"{model} on {benchmark}: done already by the demo pools (job {job_id})")
        return volunteers, outcome
    click.echo(f"{model} on {benchmark} is job {job_id}, queued for volunteers' pools.")
    for volunteer in volunteers:
        click.echo(
            f"{volunteer.pool_name}: {volunteer.username}'s agent (`sabha worker run`) "
            f"asks {url} for work ..."
        )
        if stand_in_seconds is None:
            click.echo("  Its vLLM engine starts at its first lease (about half a minute on CPU).")
        try:
            summary = run_volunteer(
                url,
                volunteer.client_id,
                volunteer.client_secret,
                volunteer.pool_name,
                folder / f"spool-{volunteer.pool_name}",
                settings.ray_address,
                settings.vllm_memory_fraction,
                exit_when_idle=True,
                stand_in_seconds=stand_in_seconds,
                report=_reporter(volunteer.pool_name),
                idle_seconds=0,
            )
        except SabhaError as exc:
            click.secho(f"  {volunteer.pool_name} stopped: {exc}", fg="yellow")
            continue
        finally:
            reclaim_sigterm()  # where the agent started Ray, ray.init put its handler in
        if summary.interrupted:
            raise KeyboardInterrupt
        click.echo(
            f"  {volunteer.pool_name} leased {summary.leased} shard(s) and posted "
            f"{summary.posted} result(s) over HTTP."
        )
        for failure in summary.engine_failures:
            click.secho(f"  Engine failure: {failure}", fg="yellow")
        outcome = volunteer_job_outcome(db, job_id)
        click.echo(f"  {_outcome_line(outcome)}")
    return volunteers, outcome


# -- the summary ----------------------------------------------------------------------------


def _summary(
    site: str,
    serving: bool,
    with_labelstudio: bool,
    annotation: DemoAnnotation | None,
    with_volunteers: bool,
    volunteers: tuple[list[DemoVolunteer], VolunteerJobOutcome] | None,
) -> None:
    _heading("The demo" + (" is ready:" if serving else " is set up (`sabha serve` shows it):"))
    click.secho(f"Leaderboard: {site}/", fg="green", bold=True)
    if annotation is not None:
        click.echo(f"Annotation: {annotation.project_url}")
        click.echo(
            f"  Label Studio sign-in: {annotation.labelstudio_email} / "
            f"{annotation.labelstudio_password}; in Sabha: {annotation.sabha_username} / "
            f"{annotation.sabha_password}"
        )
    elif with_labelstudio:
        click.echo("Annotation: Label Studio is not running (see above why).")
    if volunteers is not None:
        people, outcome = volunteers
        click.echo(f"Volunteers: {site}/jobs/{outcome.job_id} (where each shard ran, who verified)")
        click.echo(f"  {_outcome_line(outcome)}")
        for person in people:
            click.echo(
                f"  {person.pool_name}: sign in at {site}/account as {person.username} / "
                f"{person.password} (posted {outcome.posted[person.pool_name]}, counted "
                f"{outcome.counted[person.pool_name]}, verified "
                f"{outcome.agreed[person.pool_name]} of the other's)"
            )
        first = people[0]
        click.echo(
            f"  Run a pool yourself: sabha worker run --server {site} "
            f"--credential-file {_shown(first.credential_file)} --name {first.pool_name}"
        )
    elif with_volunteers:
        click.echo("Volunteers: the volunteer demo did not run (see above why).")


def _shown(path: Path) -> str:
    """``path`` relative to the home folder where it is inside it (shorter to read)."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)
