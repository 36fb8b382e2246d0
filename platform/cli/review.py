"""``sabha annotations review`` and ``sabha annotations blockers``: reviews and release readiness.

Reviewing talks to a Sabha server's JSON API with the token ``sabha login``
stored (it needs the ``review`` scope), as ``sabha submit`` does: reviewers
need no access to the server's database. ``blockers`` reads the database, as
``sabha annotations release`` does, with the same gate options.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import SabhaError

__all__ = ["annotations_blockers", "review_group"]


@click.group("review")
def review_group() -> None:
    """Review annotations on the server you signed in to (a token with the review scope)."""


def _shown(value: Any) -> str:
    return " ".join(str(value).split())[:200]


@review_group.command("list")
@click.option("--dataset", help="Only this dataset.")
@click.option("--language", help="Only this language (BCP-47 tag).")
@click.option("--all", "include_reviewed", is_flag=True, help="Also ones you reviewed already.")
@click.option("--page", default=1, show_default=True, type=click.IntRange(1, 1_000_000))
def review_list(
    dataset: str | None, language: str | None, include_reviewed: bool, page: int
) -> None:
    """List annotations to review, fewest reviews first, each with its version."""
    from ..remote import SabhaClient

    queue = SabhaClient.from_stored_credentials().reviews(
        dataset=dataset, language=language, include_reviewed=include_reviewed, page=page
    )
    click.echo(f"{queue['total']} annotation(s) to review (page {queue['page']}).")
    for entry in queue["annotations"]:
        mine = f", you {entry['my_verdict']} it" if entry.get("my_verdict") else ""
        outdated = ", edited since your review" if entry.get("my_review_outdated") else ""
        click.echo(
            f"\nannotation {entry['annotation_id']}  version {entry['version'][:12]}  "
            f"{entry['dataset']} {entry['language']} item {entry['item']} "
            f"({entry['reviews']} review(s){mine}{outdated})"
        )
        for name, value in entry["shown"].items():
            click.echo(f"  {name}: {_shown(value)}")
        for name, value in entry["answer"].items():
            click.echo(f"  answer {name}: {_shown(value)}")
    if queue["page"] * queue["per_page"] < queue["total"]:
        click.echo(f"\nMore: sabha annotations review list --page {queue['page'] + 1}")


def _review(annotation_id: int, verdict: str, comment: str, version: str) -> None:
    from ..remote import SabhaClient

    recorded = SabhaClient.from_stored_credentials().review(
        annotation_id, verdict, comment, version
    )
    click.echo(
        f"Annotation {recorded['annotation_id']} (version {recorded['version'][:12]}): "
        f"{recorded['verdict']}."
    )


_VERSION_HELP = "The version `review list` showed (12 characters are enough)."


@review_group.command("accept")
@click.argument("annotation_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--version", "version", required=True, help=_VERSION_HELP)
@click.option("--comment", default="", help="Optional.")
def review_accept(annotation_id: int, version: str, comment: str) -> None:
    """Accept ANNOTATION_ID in the version you saw."""
    _review(annotation_id, "accepted", comment, version)


@review_group.command("reject")
@click.argument("annotation_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--version", "version", required=True, help=_VERSION_HELP)
@click.option("--comment", required=True, help="What the annotator should fix.")
def review_reject(annotation_id: int, version: str, comment: str) -> None:
    """Reject ANNOTATION_ID in the version you saw, saying what to fix."""
    if not comment.strip():
        raise SabhaError("A rejection needs a comment.", "Say what the annotator should fix.")
    _review(annotation_id, "rejected", comment, version)


@click.command("blockers")
@click.argument("dataset")
@click.option("--min-annotations", default=2, show_default=True, type=int)
@click.option("--min-alpha", default=0.667, show_default=True, type=float)
@click.option("--min-chrf", type=float, help="Minimum mean pairwise chrF of free text.")
@click.option("--min-acceptance", default=0.8, show_default=True, type=float)
@click.pass_context
def annotations_blockers(
    ctx: click.Context,
    dataset: str,
    min_annotations: int,
    min_alpha: float,
    min_chrf: float | None,
    min_acceptance: float,
) -> None:
    """Show what still blocks DATASET's release, per language (exit 1 while anything does)."""
    from sabha.annotation.gates import ReleaseGates

    from ..services.annotation import release_blockers
    from .context import database as _database

    found = release_blockers(
        _database(ctx),
        dataset,
        ReleaseGates(
            min_annotations_per_item=min_annotations,
            min_alpha=min_alpha,
            min_chrf=min_chrf,
            min_acceptance=min_acceptance,
        ),
    )
    click.echo(
        f"{found.dataset} ({found.task_type}): "
        f"{'ready to release' if found.releasable else 'blocked'}"
    )
    for lang in found.languages:
        share = (
            "no votes yet"
            if lang.unreviewed_share is None
            else f"{lang.unreviewed} of {lang.votes} votes unreviewed "
            f"({100 * lang.unreviewed_share:.0f}%)"
        )
        click.echo(
            f"\n{lang.language}: {lang.items} items, {lang.short_items} short of "
            f"{min_annotations} distinct annotators; {share}"
        )
        if lang.shortest:
            listed = ", ".join(f"{key} ({n})" for key, n in lang.shortest)
            click.echo(
                f"  short: {listed}{', ...' if lang.short_items > len(lang.shortest) else ''}"
            )
        for gate in lang.gates:
            click.echo(f"  {'passes' if gate.passed else 'BLOCKS'}: {gate.describe()}")
        for reason, n in sorted(lang.left_out.items()):
            click.echo(f"  left out now: {n} ({reason})")
    if not found.releasable:
        ctx.exit(1)
