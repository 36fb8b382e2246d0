"""The ``sabha`` command line: one click group, its commands in one module per group.

``context`` holds what every command shares (settings, the database, errors
without tracebacks); ``catalog`` the database, benchmarks, datasets, cards and
models; ``evaluation`` `sabha eval` and jobs; ``remote`` login, submit and
status against a server; ``serving`` serve; ``demo`` the demo; ``worker`` a volunteer's
agent; ``accounts`` users, tokens and pool credentials; ``annotation``,
``annotation_upkeep`` and ``review`` community annotation; ``audit``
`sabha audit` (offline, no database); ``translations`` the interface's
catalogs and their community review; ``signals``
SIGTERM handled as Ctrl-C. Commands parse, call a service and print: the
work is in ``sabha.platform.services``.
"""

from __future__ import annotations

import click

from .accounts import credentials, tokens, users
from .annotation import annotations_group, labelstudio
from .annotation_upkeep import annotations_sync  # noqa: F401  (registers its commands)
from .audit import audit_command
from .catalog import benchmarks, cards, datasets, db, models
from .context import SabhaGroup
from .demo import demo
from .evaluation import eval_command, evaluate, jobs
from .remote import login, status, submit
from .review import annotations_blockers, review_group
from .serving import serve
from .translations import translations
from .worker import worker

__all__ = ["cli", "evaluate", "main"]


@click.group(cls=SabhaGroup)
@click.version_option(package_name="sabha")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Sabha: community benchmarks for low-resource languages.

    Settings come from SABHA_* environment variables; by default everything
    lives under ~/.local/share/sabha (SABHA_DATA_DIR) with a SQLite database.
    """
    ctx.obj = None


annotations_group.add_command(review_group)
annotations_group.add_command(annotations_blockers)
for command in (
    db,
    benchmarks,
    datasets,
    cards,
    models,
    eval_command,
    jobs,
    login,
    submit,
    status,
    serve,
    demo,
    users,
    tokens,
    credentials,
    labelstudio,
    annotations_group,
    worker,
    audit_command,
    translations,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``sabha`` console script."""
    cli(prog_name="sabha")
