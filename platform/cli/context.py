"""What every command shares: the settings, the database, errors shown without tracebacks."""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy.engine import Engine

from ..errors import ValidationFailed, translate_error
from ..settings import Settings

__all__ = ["SabhaGroup", "database", "settings_of", "stand_in_engine_option"]


class SabhaGroup(click.Group):
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


def settings_of(ctx: click.Context) -> Settings:
    """The settings of this command line (read once from SABHA_* variables)."""
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


def database(ctx: click.Context, migrate: bool = False) -> Engine:
    """The database engine; ``migrate`` upgrades it first, else it must be migrated."""
    from ..db import make_engine, require_schema, upgrade_database

    settings = settings_of(ctx)
    db = make_engine(settings.resolved_database_url)
    if migrate:
        from ..db import check_connection, current_revision
        from ..services.benchmarks import rebuild_all_leaderboards

        check_connection(db)
        before = current_revision(db)
        upgrade_database(db)
        if before is not None and before != current_revision(db):
            rebuild_all_leaderboards(db)  # the read model is new or changed
    else:
        require_schema(db)
    return db


stand_in_engine_option = click.option(
    "--stand-in-engine",
    "stand_in_seconds",
    type=click.FloatRange(min=0),
    hidden=True,  # tests and benchmarks only: answers are not a model's
    help="TESTS ONLY: no Ray or vLLM; answer every item after this many seconds "
    "with a deterministic stand-in text (workers/standin.py).",
)
"""The hidden ``--stand-in-engine SECONDS`` of ``eval``, ``demo`` and ``worker run``."""
