"""Serving the site (`sabha serve`); the demo, which also serves it, is in ``demo.py``."""

from __future__ import annotations

import click

from ..errors import SabhaError
from ..settings import Settings
from .context import database, settings_of

__all__ = ["serve"]


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
