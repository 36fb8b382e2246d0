"""``sabha audit BUNDLE``: recompute a scoring run's published numbers from its audit bundle.

Offline: no database, no network, no settings. Exit status 0 when every
public number matches and every hash and count checks out, 1 otherwise (and
for a file that is not a readable bundle).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sabha.leaderboards.audit import NumberCheck, PublishedScore
    from sabha.leaderboards.scoring import ScoreRow

__all__ = ["audit_command"]

_SHOWN_PROBLEMS = 20


def _cell(score: PublishedScore | ScoreRow | None) -> str:
    if score is None:
        return "—"
    if score.too_few:
        return f"{score.value:.4f} (too few items) n={score.n}"
    return f"{score.value:.4f} [{score.ci_low:.4f}, {score.ci_high:.4f}] n={score.n}"


def _exact(score: PublishedScore | ScoreRow | None) -> str:
    if score is None:
        return "none"
    return f"value={score.value!r} ci=[{score.ci_low!r}, {score.ci_high!r}] n={score.n}"


def _table(checks: list[NumberCheck]) -> None:
    from sabha.leaderboards.audit import MATCH, MISMATCH, PRIVATE

    header = ("metric", "breakdown", "group", "published", "recomputed", "result")
    rows = [
        (
            c.metric,
            c.breakdown,
            c.group,
            _cell(c.published),
            "—" if c.status == PRIVATE else _cell(c.recomputed),
            c.status,
        )
        for c in checks
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for row, check in zip(rows, checks, strict=True):
        line = "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        color = {MATCH: "green", MISMATCH: "red"}.get(check.status)
        click.secho(line, fg=color)
        if check.status == MISMATCH:
            click.echo(f"    published  {_exact(check.published)}")
            click.echo(f"    recomputed {_exact(check.recomputed)}")


@click.command("audit")
@click.argument("bundle", type=click.Path(path_type=Path))
def audit_command(bundle: Path) -> None:
    """Recompute every published number of a scoring run from its audit BUNDLE.

    Download the bundle from a job's page (/jobs/<id>) or from
    /api/v1/jobs/<id>/audit-bundle. Checks every member's SHA-256, each
    public item's hashes, the scoring identity and counts, then recomputes
    each public score (value, 95% interval, n) with sacrebleu and Sabha's
    scoring and compares it with the published one for equality. Scores of
    a private held-out split are reported as not recomputable (hashes only).
    """
    from sabha.leaderboards.audit import PRIVATE, audit_bundle, read_bundle

    content = read_bundle(bundle)
    manifest = content.manifest
    job, run = manifest.job, manifest.scoring_run
    click.echo(
        f"Audit bundle of job {job.id}: model {job.model.name} "
        f"(revision {job.model.revision or '—'}) on {', '.join(job.benchmarks) or '—'}; "
        f"scoring run {run.id}, {run.spec.task}, seed {run.seed}, "
        f"{run.n_resamples} resamples; {len(content.items)} public items, "
        f"{len(content.private_items)} private (hashes only)."
    )
    report = audit_bundle(content)
    _table(report.checks)
    for note in report.notes:
        click.echo(f"Note: {note}")
    if report.problems:
        click.secho("Problems:", fg="red")
        for problem in report.problems[:_SHOWN_PROBLEMS]:
            click.secho(f"  - {problem}", fg="red")
        if len(report.problems) > _SHOWN_PROBLEMS:
            click.secho(f"  ... and {len(report.problems) - _SHOWN_PROBLEMS} more", fg="red")
    public = [c for c in report.checks if c.status != PRIVATE and c.published is not None]
    private = sum(c.status == PRIVATE for c in report.checks)
    held = f"; {private} held-out number(s) not recomputable (private split)" if private else ""
    if report.matches:
        click.secho(
            f"MATCH: all {len(public)} public numbers of scoring run {run.id} "
            f"were reproduced exactly{held}.",
            fg="green",
        )
        return
    click.secho(
        f"NOT MATCHING: {len(report.mismatched)} of {len(report.checks) - private} numbers "
        f"differ and {len(report.problems)} check(s) failed{held}.",
        fg="red",
        err=True,
    )
    sys.exit(1)
