"""Serving the site, and the demo that sets everything up on defaults."""

from __future__ import annotations

import sys

import click
from sqlmodel import Session, select

from ..errors import SabhaError
from ..settings import Settings
from .catalog import make_demo_model, read_benchmark_files, register_benchmarks
from .context import database, settings_of
from .evaluation import evaluate

__all__ = ["demo", "serve"]


# -- web ------------------------------------------------------------------------------


@click.command("serve")
@click.option("--host", help="Address to listen on (default SABHA_HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default SABHA_PORT, 5000).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the leaderboard (Flask development server)."""
    settings = settings_of(ctx)
    database(ctx)
    _serve(settings, host or settings.host, port or settings.port)


def _serve(settings: Settings, host: str, port: int) -> None:
    import socket

    from ..app import create_app

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


@click.command("demo")
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
    from .signals import Terminated, stop_on_sigterm

    try:
        with stop_on_sigterm():  # SIGTERM stops the demo's Label Studio too, as Ctrl-C does
            _run_demo(ctx, serve_after, with_labelstudio)
    except Terminated:
        click.echo("Stopped.")


def _run_demo(ctx: click.Context, serve_after: bool, with_labelstudio: bool) -> None:
    from ..catalog import latest_benchmarks
    from ..domain import Model
    from .annotation import start_demo_labelstudio

    settings = settings_of(ctx)
    settings.ensure_dirs()
    click.echo(f"Data directory: {settings.data_dir}")
    db = database(ctx, migrate=True)
    from ..benchmarks import starter_benchmark_paths

    register_benchmarks(db, settings, read_benchmark_files(starter_benchmark_paths(), "load"))
    with Session(db) as session:
        existing = set(session.exec(select(Model.name)).all())
        benchmark_names = [b.name for b in latest_benchmarks(session)]
    for name, seed, chat_template in DEMO_MODELS:
        if name not in existing:
            make_demo_model(db, settings, name, seed, chat_template)
    evaluate(db, settings, [m[0] for m in DEMO_MODELS], benchmark_names)
    server = None
    if with_labelstudio:
        server, settings = start_demo_labelstudio(
            settings, db, f"http://{settings.host}:{settings.port}"
        )
    try:
        if serve_after:
            _serve(settings, settings.host, settings.port)
        elif server is not None:
            click.echo("Label Studio stops now; `sabha labelstudio start` runs it again.")
    finally:
        if server is not None:
            from ..services.labelstudio import stop_labelstudio

            stop_labelstudio(settings, server)
