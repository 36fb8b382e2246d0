"""Commands that talk to a Sabha server: login, submit, status."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import SabhaError
from ..wire import MAX_DB_ID

__all__ = ["login", "status", "submit"]


# -- a remote server ----------------------------------------------------------------


@click.command("login")
@click.option(
    "--server", required=True, help="The Sabha server's URL, e.g. https://sabha.example.org."
)
@click.option(
    "--token",
    envvar="SABHA_TOKEN",
    help="A personal access token (sabha_pat_...); asked for when omitted.",
)
def login(server: str, token: str | None) -> None:
    """Store a personal access token for a Sabha server.

    Create the token in the server's web UI (or with `sabha tokens create` on the
    server). It is checked against the server, then kept in
    ~/.config/sabha/credentials.json, readable only by you.
    """
    from ..remote import Credentials, SabhaClient, save_credentials

    if not server.startswith(("http://", "https://")):
        raise SabhaError(
            f"--server {server!r} is not an http(s) URL.", "Give e.g. https://sabha.example.org"
        )
    token = token or click.prompt("Personal access token", hide_input=True)
    token = token.strip()
    me = SabhaClient(server, token).me()
    path = save_credentials(Credentials(server.rstrip("/"), token))
    scopes = ", ".join(me.get("scopes", [])) or "none"
    click.echo(f"Signed in to {server} as {me['user']['username']} (scopes: {scopes}).")
    click.echo(f"Token stored in {path}.")


@click.command("submit")
@click.option("--model-path", type=click.Path(path_type=Path), help="A model folder on the server.")
@click.option("--repo-id", help="A hub repository, e.g. org/model.")
@click.option("--revision", help="The hub commit: a full 40-character SHA.")
@click.option("--name", help="The model's name on the leaderboard (default: from its source).")
@click.option(
    "--benchmark", "benchmark_names", multiple=True, required=True, help="Repeat for several."
)
@click.option("--license", "license_", required=True, help="The model's license, e.g. apache-2.0.")
@click.option("--temperature", type=float, help="Decoding override (0 to 2).")
@click.option("--top-p", type=float, help="Decoding override (above 0, at most 1).")
@click.option("--max-tokens", type=int, help="Decoding override (at most the benchmark's).")
def submit(
    model_path: Path | None,
    repo_id: str | None,
    revision: str | None,
    name: str | None,
    benchmark_names: Sequence[str],
    license_: str,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
) -> None:
    """Submit a model for evaluation to the server you signed in to.

    Give --repo-id and --revision, or --model-path (servers that allow local models).
    """
    from ..remote import SabhaClient

    if (model_path is None) == (repo_id is None):
        raise SabhaError(
            "Give exactly one model source.",
            "Pass --repo-id ORG/NAME --revision SHA, or --model-path DIR.",
        )
    model: dict[str, Any]
    if repo_id is not None:
        if not revision:
            raise SabhaError(
                "--repo-id needs --revision.", "Pass the full 40-character commit SHA."
            )
        model = {"source": "hub", "repo_id": repo_id, "revision": revision}
    else:
        model = {"source": "local", "path": str(model_path)}
    if name:
        model["name"] = name
    decoding = {
        key: value
        for key, value in (
            ("temperature", temperature),
            ("top_p", top_p),
            ("max_tokens", max_tokens),
        )
        if value is not None
    }
    client = SabhaClient.from_stored_credentials()
    created = client.submit(
        {
            "model": model,
            "benchmarks": list(benchmark_names),
            "license": license_,
            "decoding": decoding,
        }
    )
    click.echo(f"Submission {created['id']}: {created['status']}")
    for job in created["jobs"]:
        click.echo(f"  {job['benchmark']}: job {job['job_id']} ({job['status']})")
    click.echo(f"Status: {client.url(created['status_url'])}")
    click.echo(f"Follow it with `sabha status {created['id']}`.")


@click.command("status")
@click.argument("submission_id", type=click.IntRange(1, MAX_DB_ID))
def status(submission_id: int) -> None:
    """Show a submission's progress per benchmark and per shard."""
    from ..remote import SabhaClient

    shown = SabhaClient.from_stored_credentials().submission(submission_id)
    reason = f" ({shown['reason']})" if shown.get("reason") else ""
    click.echo(f"Submission {shown['id']} of {shown['model']}: {shown['status']}{reason}")
    for job in shown["job_states"]:
        click.echo(
            f"  {job['benchmark']} (job {job['id']}): {job['status']}, "
            f"{job['completed_shards']}/{job['shards']} shards, "
            f"{job['completed_items']}/{job['items']} items"
            + (f"  [{job['reason']}]" if job.get("reason") else "")
        )
        for shard in job["shard_states"]:
            where = f" on {shard['pool']}" if shard.get("pool") else ""
            why = f" — {shard['reason']}" if shard.get("reason") else ""
            click.echo(
                f"    shard {shard['index']:3} {shard['items']:4} items  "
                f"{shard['state']:9}{where}{why}"
            )
