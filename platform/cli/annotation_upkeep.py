"""Annotation commands that keep projects right between releases.

``sabha annotations sync [--every SECONDS]`` (reconciliation, once or on a
schedule), ``set-split`` and ``withdraw`` (a maintainer's corrections before
release). Thin: each parses its options, calls
``services/annotation/upkeep.py`` and prints the outcome.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from sqlalchemy.engine import Engine

from ..domain import AnnotationProject
from ..settings import Settings
from .annotation import annotations_group
from .context import database

__all__ = ["annotations_set_split", "annotations_sync", "annotations_withdraw"]


def _settings(ctx: click.Context) -> Settings:
    from .context import settings_of

    return settings_of(ctx)


@annotations_group.command("sync")
@click.argument("dataset", required=False)
@click.option(
    "--every",
    type=click.IntRange(1, 86_400),
    metavar="SECONDS",
    help="Keep running and sync again every SECONDS (until Ctrl-C or SIGTERM), so a "
    "missed webhook is healed within one period.",
)
@click.pass_context
def annotations_sync(ctx: click.Context, dataset: str | None, every: int | None) -> None:
    """Pull every annotation from Label Studio (all projects, or DATASET's); safe to repeat.

    With --every it runs until stopped, printing only changes and errors; run it
    beside the web app (infra/systemd/sabha-annotations-sync.service).
    """
    from .signals import Terminated, stop_on_sigterm

    db = database(ctx)
    settings = _settings(ctx)
    if every is None:
        if _sync_round(db, settings, dataset, quiet=False):
            sys.exit(1)
        return
    click.echo(f"Syncing with Label Studio every {every} s; Ctrl-C or SIGTERM stops.")
    try:
        with stop_on_sigterm():
            while True:
                _sync_round(db, settings, dataset, quiet=True)
                time.sleep(every)
    except (KeyboardInterrupt, Terminated):
        click.echo("Stopped.")


def _sync_round(db: Engine, settings: Settings, dataset: str | None, *, quiet: bool) -> bool:
    """Sync once and print what changed (quiet: only changes and errors); True on errors."""
    from ..services.annotation import sync_annotation_projects
    from ..services.labelstudio import labelstudio_for

    clients: dict[bool, Any] = {}

    def client_for(project: AnnotationProject) -> Any:
        if project.private not in clients:  # connected afresh each round: it may have moved
            clients[project.private] = labelstudio_for(settings, project)
        return clients[project.private]

    done = sync_annotation_projects(db, client_for, dataset, settings.max_field_chars)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S ") if quiet else ""
    for outcome in done.projects:
        if outcome.report is None:
            click.secho(f"{stamp}{outcome.title}: not synced: {outcome.error}", fg="red", err=True)
            continue
        report = outcome.report
        if quiet and not report.changed():
            continue
        click.echo(
            f"{stamp}{outcome.title}: {report.created} new, {report.updated} updated, "
            f"{report.deleted} deleted, {report.unchanged} unchanged, {report.refused} refused."
        )
        for problem in report.problems:  # what no annotator could have made in the interface
            click.secho(f"{stamp}  refused: {problem}", fg="yellow")
    if not done.projects and not quiet:
        click.echo("No annotation project is in Label Studio yet (sabha annotations provision).")
    if done.community_scores is not None and not quiet:
        click.echo(
            f"Community scores from judgements: {done.community_scores} stored; "
            "leaderboards updated."
        )
    return done.failed()


@annotations_group.command("set-split")
@click.argument("dataset")
@click.argument("item")
@click.argument("split")
@click.option("--language", required=True, help="The project's language.")
@click.option("--private", is_flag=True, help="An item of DATASET's private project.")
@click.pass_context
def annotations_set_split(
    ctx: click.Context, dataset: str, item: str, split: str, language: str, private: bool
) -> None:
    """Correct the SPLIT of ITEM (its uploaded id) in DATASET's project, before release."""
    from ..services.annotation import set_item_split

    old = set_item_split(database(ctx), dataset, language, item, split, private=private)
    if old == split:
        click.echo(f"{dataset} ({language}) item {item} is in split {split} already.")
    else:
        click.echo(f"{dataset} ({language}) item {item}: split {old} -> {split}.")


@annotations_group.command("withdraw")
@click.argument("dataset")
@click.argument("item")
@click.option("--language", required=True, help="The project's language.")
@click.option("--reason", required=True, help="Why (kept with the record of the item).")
@click.option("--private", is_flag=True, help="An item of DATASET's private project.")
@click.pass_context
def annotations_withdraw(
    ctx: click.Context, dataset: str, item: str, language: str, reason: str, private: bool
) -> None:
    """Withdraw ITEM from DATASET's project before release (its task and annotations too)."""
    from ..errors import SabhaError
    from ..services.annotation import withdraw_item
    from ..services.labelstudio import connect_labelstudio

    settings = _settings(ctx)
    try:
        client = connect_labelstudio(settings, private=private)
    except SabhaError:
        client = None  # an item never opened in Label Studio needs none
    record = withdraw_item(database(ctx), client, dataset, language, item, reason, private=private)
    click.echo(
        f"Withdrew {dataset} ({language}) item {item} with {record.annotations} "
        "annotation(s); it is in no later release."
    )
