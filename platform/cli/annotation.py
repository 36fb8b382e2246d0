"""The annotation commands of the ``sabha`` CLI: the Label Studio server and annotation projects.

Thin: each command parses its options, calls a service and prints the outcome.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from sqlmodel import Session

from ..domain import AnnotationTaskType
from ..settings import Settings
from ..wire import MAX_DB_ID
from .context import database

__all__ = ["annotations_group", "labelstudio"]


def _settings(ctx: click.Context) -> Settings:
    from .context import settings_of

    return settings_of(ctx)


@click.group()
def labelstudio() -> None:
    """Run the Label Studio server annotators work in."""


@labelstudio.command("start")
@click.option("--port", type=click.IntRange(1, 65535), help="Port on 127.0.0.1 [default: 8080].")
@click.option(
    "--allow-loopback-webhooks",
    is_flag=True,
    help="Let Label Studio call webhooks on 127.0.0.1 (development only: turns off its "
    "SSRF protection).",
)
@click.option(
    "--private",
    is_flag=True,
    help="The private server, for items of the private split (its own data dir and "
    "accounts; port 8081 by default).",
)
@click.pass_context
def labelstudio_start(
    ctx: click.Context, port: int | None, allow_loopback_webhooks: bool, private: bool
) -> None:
    """Start Label Studio offline on 127.0.0.1 and keep it running until Ctrl-C or SIGTERM.

    The first start migrates its data dir (under Sabha's data dir) and creates
    an admin account; later starts reuse both. Sign-up is off: accounts come
    only through Sabha.
    """
    from ..services.labelstudio import start_labelstudio, stop_labelstudio
    from .signals import Terminated, stop_on_sigterm

    settings = _settings(ctx)
    data_dir = (
        settings.resolved_label_studio_private_data_dir
        if private
        else settings.resolved_label_studio_data_dir
    )
    which = "the private Label Studio" if private else "Label Studio"
    click.echo(f"Starting {which} (data in {data_dir}) ...")
    with stop_on_sigterm():  # SIGTERM stops the server too, as Ctrl-C does
        server, admin = start_labelstudio(
            settings, port=port, allow_loopback_webhooks=allow_loopback_webhooks, private=private
        )
        try:
            click.echo(f"Label Studio runs at {server.url}")
            click.echo(
                f"Admin sign-in: {admin.username} (password and API token in "
                f"{data_dir / 'sabha-admin.json'})"
            )
            click.echo("Press Ctrl-C to stop it.")
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)
            click.secho(
                f"Label Studio stopped by itself; see {server.log_path}", fg="red", err=True
            )
            sys.exit(1)
        except (KeyboardInterrupt, Terminated):
            click.echo("Stopping Label Studio ...")
        finally:
            stop_labelstudio(settings, server)


@click.group("annotations")
def annotations_group() -> None:
    """Annotation projects: create, upload items, provision in Label Studio, sync."""


@annotations_group.command("create")
@click.argument("dataset")
@click.option("--language", required=True, help="BCP-47 tag with script, e.g. sw-Latn.")
@click.option(
    "--task",
    "task_type",
    required=True,
    type=click.Choice([t.value for t in AnnotationTaskType]),
    help="What annotators do.",
)
@click.option("-k", "--annotations-per-item", default=2, show_default=True, type=int)
@click.option("--hazard", "hazards", multiple=True, help="A hazard category (label projects).")
@click.option("--instructions", default="", help="Shown to annotators above each task.")
@click.option(
    "--private",
    is_flag=True,
    help="The project of DATASET's private held-out items, on the private Label Studio.",
)
@click.pass_context
def annotations_create(
    ctx: click.Context,
    dataset: str,
    language: str,
    task_type: str,
    annotations_per_item: int,
    hazards: tuple[str, ...],
    instructions: str,
    private: bool,
) -> None:
    """Create DATASET's annotation project in one language."""
    from sabha.annotation.configs import LabelingOptions

    from ..services.annotation import create_annotation_project

    project = create_annotation_project(
        database(ctx),
        dataset,
        language,
        task_type,
        annotations_per_item=annotations_per_item,
        options=LabelingOptions(instructions=instructions, hazards=hazards),
        private=private,
    )
    click.echo(f"Created annotation project {project.id}: {project.title} ({task_type}).")


@annotations_group.command("upload")
@click.argument("dataset")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--language", required=True, help="The project's language.")
@click.option("--private", is_flag=True, help="To DATASET's private project (private items).")
@click.pass_context
def annotations_upload(
    ctx: click.Context, dataset: str, path: Path, language: str, private: bool
) -> None:
    """Add the rows of a JSONL or CSV file to DATASET's project: all of them or none.

    Items of the private split go to the private project (--private), never to
    the community one.
    """
    from ..services.annotation import get_annotation_project, upload_source_items

    db = database(ctx)
    with Session(db) as session:
        project = get_annotation_project(session, dataset, language, private)
    count = upload_source_items(
        db, project.id or 0, path, max_field_chars=_settings(ctx).max_field_chars
    )
    click.echo(f"Uploaded {count} items to {project.title}.")


def _say_webhook(settings: Settings, url: str | None) -> None:
    if url and settings.label_studio_webhook_secret:
        click.echo(f"Label Studio calls {url} when an annotation changes.")
        return
    missing = "SABHA_LABEL_STUDIO_WEBHOOK_SECRET" if url else "--webhook-url (or SABHA_PUBLIC_URL)"
    click.secho(
        f"No webhook ({missing} is not set): annotations reach Sabha only through "
        "`sabha annotations sync` (run `sabha annotations sync --every 300` beside the web app).",
        fg="yellow",
    )


@annotations_group.command("provision")
@click.argument("dataset")
@click.option("--language", required=True, help="The project's language.")
@click.option(
    "--webhook-url",
    help="Sabha's webhook endpoint as Label Studio reaches it [default: SABHA_PUBLIC_URL"
    "/hooks/labelstudio].",
)
@click.option(
    "--private", is_flag=True, help="DATASET's private project, on the private Label Studio."
)
@click.pass_context
def annotations_provision(
    ctx: click.Context, dataset: str, language: str, webhook_url: str | None, private: bool
) -> None:
    """Create DATASET's project in Label Studio (once) and import items not there yet."""
    from ..services.annotation import get_annotation_project, provision_project, webhook_url_for
    from ..services.labelstudio import labelstudio_for

    settings = _settings(ctx)
    db = database(ctx)
    with Session(db) as session:
        project = get_annotation_project(session, dataset, language, private)
    client = labelstudio_for(settings, project)
    hook = webhook_url_for(settings, webhook_url)
    ls_id = provision_project(
        db,
        client,
        project.id or 0,
        webhook_url=hook,
        webhook_secret=settings.label_studio_webhook_secret,
    )
    if project.labelstudio_project_id is None:  # the webhook is added when the project is made
        _say_webhook(settings, hook)
    click.echo(f"{project.title} is Label Studio project {ls_id}: {client.url}/projects/{ls_id}")


@annotations_group.command("judge")
@click.argument("job_id", type=click.IntRange(1, MAX_DB_ID))
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["rating", "pairwise", "safety"]),
    help="Rate answers 1-5, compare two models' answers, or judge safety responses.",
)
@click.option(
    "-n", "--items", "n", default=50, show_default=True, type=int, help="Items to sample."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the sample.")
@click.option(
    "--against",
    "other_job_id",
    type=click.IntRange(1, MAX_DB_ID),
    help="The other job (pairwise only).",
)
@click.option("-k", "--annotations-per-item", default=2, show_default=True, type=int)
@click.option("--instructions", default="", help="Shown to annotators above each task.")
@click.option(
    "--webhook-url",
    help="Sabha's webhook endpoint as Label Studio reaches it [default: SABHA_PUBLIC_URL"
    "/hooks/labelstudio].",
)
@click.pass_context
def annotations_judge(
    ctx: click.Context,
    job_id: int,
    kind: str,
    n: int,
    seed: int,
    other_job_id: int | None,
    annotations_per_item: int,
    instructions: str,
    webhook_url: str | None,
) -> None:
    """Sample a finished JOB's accepted answers into a judging project in Label Studio.

    After annotators judged them, `sabha annotations sync` updates the
    leaderboard's community columns.
    """
    from ..services.annotation import webhook_url_for
    from ..services.judging import check_job_finished, sample_job_for_judging
    from ..services.labelstudio import connect_labelstudio

    db = database(ctx)
    settings = _settings(ctx)
    check_job_finished(db, job_id)  # before reaching for Label Studio
    client = connect_labelstudio(settings)
    hook = webhook_url_for(settings, webhook_url)
    sample = sample_job_for_judging(
        db,
        job_id,
        kind,
        n,
        seed,
        other_job_id=other_job_id,
        annotations_per_item=annotations_per_item,
        instructions=instructions,
        client=client,
        webhook_url=hook,
        webhook_secret=settings.label_studio_webhook_secret,
    )
    _say_webhook(settings, hook)
    click.echo(
        f"Judging project {sample.dataset_name}: {sample.tasks} tasks in Label Studio project "
        f"{sample.labelstudio_project_id}: {client.url}/projects/{sample.labelstudio_project_id}"
    )


@annotations_group.command("release")
@click.argument("dataset")
@click.option("--version-note", default="", help="What changed in this version (on the card).")
@click.option(
    "--private-fraction",
    default=0.0,
    show_default=True,
    type=float,
    help="Share of test items held out on the server (chosen by a hash of their ids).",
)
@click.option("--title", help="The dataset's title [default: its name].")
@click.option("--license", "license_", default="CC-BY-4.0", show_default=True)
@click.option("--min-annotations", default=2, show_default=True, type=int)
@click.option("--min-alpha", default=0.667, show_default=True, type=float)
@click.option("--min-chrf", type=float, help="Minimum mean pairwise chrF of free text.")
@click.option("--min-acceptance", default=0.8, show_default=True, type=float)
@click.pass_context
def annotations_release(
    ctx: click.Context,
    dataset: str,
    version_note: str,
    private_fraction: float,
    title: str | None,
    license_: str,
    min_annotations: int,
    min_alpha: float,
    min_chrf: float | None,
    min_acceptance: float,
) -> None:
    """Check DATASET's gates and release its accepted annotations as a dataset version.

    Prints NAME@HASH, or each failed gate with its shortfall (and exits 1).
    """
    from sabha.annotation.gates import ReleaseGates

    from ..services.annotation import release_annotated_dataset

    settings = _settings(ctx)
    settings.ensure_dirs()
    released = release_annotated_dataset(
        database(ctx),
        dataset,
        settings.resolved_artifacts_dir,
        gates=ReleaseGates(
            min_annotations_per_item=min_annotations,
            min_alpha=min_alpha,
            min_chrf=min_chrf,
            min_acceptance=min_acceptance,
        ),
        title=title,
        license=license_,
        version_note=version_note,
        private_fraction=private_fraction,
    )
    state = "released" if released.created else "unchanged"
    click.echo(
        f"{state:9} {released.ref} ({released.public_items} public items, "
        f"{released.private_items} held out on the server)"
    )
    for language, reasons in sorted(released.left_out.items()):
        for reason, count in sorted(reasons.items()):
            click.echo(f"left out  {count} item(s) in {language}: {reason}")


@annotations_group.command("judge-model")
@click.argument("dataset")
@click.option(
    "--run",
    "run_here",
    is_flag=True,
    help="Run the judge here with vLLM (like sabha eval) instead of leaving it to the pools.",
)
@click.option("--verbose", is_flag=True, help="Show Ray's and vLLM's own logs.")
@click.pass_context
def annotations_judge_model(
    ctx: click.Context, dataset: str, run_here: bool, verbose: bool
) -> None:
    """Queue the benchmark's judge model on the tasks of judging project DATASET.

    The judge's job goes through the same queue as any job: a pool leases it,
    or --run runs it here. Its verdicts count once it has finished, at the
    next `sabha annotations sync`, next to people's, with its agreement with them.
    """
    from ..services.community_scores import refresh_community_scores
    from ..services.judge_model import create_judge_job
    from ..services.judging import judging_project_named

    settings = _settings(ctx)
    db = database(ctx)
    job_id = create_judge_job(db, judging_project_named(db, dataset))
    click.echo(f"The judge's job is job {job_id}.")
    if not run_here:
        click.echo("Any pool leases it (sabha worker run); then run `sabha annotations sync`.")
        return
    from sabha.workers.local import ensure_ray
    from sabha.workers.volunteer import engine_factory

    from ..services.evaluate import pending_items
    from ..services.local_pool import run_local_pool

    ensure_ray(settings.ray_address, quiet=not verbose)
    pending, total = pending_items(db, [job_id])
    with click.progressbar(length=total, label=f"judge job {job_id}", show_pos=True) as bar:
        bar.update(total - pending)
        run_local_pool(
            db,
            [job_id],
            engine_factory(settings.vllm_memory_fraction),
            lease_seconds=settings.lease_seconds,
            max_in_flight=settings.eval_batch_size,
            progress=bar.update,
        )
    stored = refresh_community_scores(db)
    click.echo(f"Community scores from judgements: {stored} stored; leaderboards updated.")
