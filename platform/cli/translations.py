"""``sabha translations``: the interface's catalogs through the community's own review.

``export CODE`` writes a catalog as the rows of a ``post_edit`` annotation
project (the English as ``source``, the translation as ``draft``), ``import
CODE FILE`` writes a released version of that project (its Parquet file)
back into the catalog, all or nothing, and ``status`` says how complete each
catalog is. ``docs/translations.md`` walks through it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["translations"]

_SHOWN = 20


def _code(code: str) -> str:
    from sabha.platform.web.i18n import UI_LANGUAGES

    if code not in UI_LANGUAGES or code == "en":
        known = ", ".join(c for c in UI_LANGUAGES if c != "en")
        raise click.BadParameter(
            f"{code!r} is not a translated interface language; use one of {known}.",
            param_hint="CODE",
        )
    return code


@click.group()
def translations() -> None:
    """The interface's translations (Hindi, Swahili, Tamil) and their community review."""


@translations.command("status")
def status() -> None:
    """How many of the interface's strings each catalog translates."""
    from sabha.platform.web.catalogs import catalog_problems, extract_messages, read_catalog
    from sabha.platform.web.i18n import UI_LANGUAGES

    source = extract_messages()
    total = sum(1 for m in source if m.id)
    for code, autonym in UI_LANGUAGES.items():
        if code == "en":
            continue
        problems = catalog_problems(read_catalog(code), source)
        click.echo(f"{autonym} ({code}): {total - len(problems)} of {total} strings translated")
        for problem in problems[:_SHOWN]:
            click.echo(f"  {problem}")


@translations.command("export")
@click.argument("code")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file (default: stdout)",
)
def export(code: str, output: Path | None) -> None:
    """Catalog CODE as rows for `sabha annotations upload` into a post_edit project."""
    from sabha.platform.web.catalogs import review_rows

    rows = review_rows(_code(code))
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output is None:
        sys.stdout.write(lines)
        return
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(lines, encoding="utf-8")
    temporary.replace(output)
    click.echo(f"Wrote {len(rows)} rows to {output}", err=True)


@translations.command("import")
@click.argument("code")
@click.argument("release", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_release(code: str, release: Path) -> None:
    """Write a released post_edit dataset's reviewed translations (its Parquet file) into
    catalog CODE: every one, or none when any would break its string."""
    import pyarrow.parquet as pq

    from sabha.platform.web.catalogs import import_reviewed

    try:
        rows = pq.read_table(release, columns=["id", "reference"]).to_pylist()
    except (OSError, ValueError, KeyError) as exc:
        raise click.BadParameter(
            f"{release} is not a released dataset's Parquet file with id and "
            f"reference columns ({exc}). Download it from /datasets/<name> on the site.",
            param_hint="RELEASE",
        ) from exc
    outcome = import_reviewed(_code(code), rows)
    if outcome.problems:
        click.echo(
            f"Nothing written: {len(outcome.problems)} reviewed translations would break "
            "their strings:",
            err=True,
        )
        for problem in outcome.problems[:_SHOWN]:
            click.echo(f"  {problem}", err=True)
        raise SystemExit(1)
    click.echo(
        f"{code}.po: {len(outcome.changed)} translations changed, {outcome.unchanged} already "
        f"as reviewed, {len(outcome.unknown)} rows name strings the interface no longer has."
    )
