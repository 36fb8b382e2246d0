"""A volunteer's agent: `sabha worker run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import SabhaError
from .context import settings_of, stand_in_engine_option

__all__ = ["worker"]


# -- volunteer pools --------------------------------------------------------------------


@click.group()
def worker() -> None:
    """Donate this machine's GPUs (or CPU) to a Sabha platform."""


@worker.command("run")
@click.option("--server", required=True, help="The platform's address, e.g. https://sabha.org")
@click.option(
    "--credential-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file with the pool credential: client_id and client_secret lines "
    "(else SABHA_POOL_CLIENT_ID and SABHA_POOL_CLIENT_SECRET).",
)
@click.option("--name", "pool_name", help="The pool's name (default: this host's name)")
@click.option("--ray-address", help="Join this Ray cluster instead of starting a local one")
@click.option(
    "--spool",
    "spool_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where finished results wait to be posted (default: <data dir>/spool)",
)
@click.option("--exit-when-idle", is_flag=True, help="Stop when there is no work left")
@stand_in_engine_option
@click.option(
    "--stand-in-variant",
    type=click.IntRange(min=0),
    default=0,
    hidden=True,  # tests only: another honest setup's drift
    help="TESTS ONLY: with --stand-in-engine, drift as another honest setup would.",
)
@click.pass_context
def worker_run(
    ctx: click.Context,
    server: str,
    credential_file: Path | None,
    pool_name: str | None,
    ray_address: str | None,
    spool_dir: Path | None,
    exit_when_idle: bool,
    stand_in_seconds: float | None,
    stand_in_variant: int,
) -> None:
    """Lease shards from the platform and run them on this pool until Ctrl-C.

    Ctrl-C hands back the leases in flight; finished results that could not
    be posted stay in the spool and are posted at the next start.
    """
    import os
    import socket

    from sabha.workers.volunteer import run_volunteer

    settings = settings_of(ctx)
    client_id, secret = _pool_credential(credential_file, os.environ)
    summary = run_volunteer(
        server,
        client_id,
        secret,
        pool_name or socket.gethostname().split(".")[0],
        spool_dir or settings.data_dir / "spool",
        ray_address or settings.ray_address,
        settings.vllm_memory_fraction,
        exit_when_idle,
        stand_in_seconds,
        report=lambda line: click.echo(line),
        stand_in_variant=stand_in_variant,
    )
    click.echo(
        f"Leased {summary.leased} shard(s), finished {summary.finished}, posted "
        f"{summary.posted}, handed back {summary.released}."
    )


def _pool_credential(path: Path | None, environ: Any) -> tuple[str, str]:
    values: dict[str, str] = {}
    if path is not None:
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=") if "=" in line else line.partition(":")
            values[key.strip().lower()] = value.strip()
    client_id = values.get("client_id") or environ.get("SABHA_POOL_CLIENT_ID")
    secret = values.get("client_secret") or environ.get("SABHA_POOL_CLIENT_SECRET")
    if not client_id or not secret:
        raise SabhaError(
            "The pool credential is missing (client id or secret).",
            "Set SABHA_POOL_CLIENT_ID and SABHA_POOL_CLIENT_SECRET, or pass --credential-file "
            "with client_id=... and client_secret=... lines (`sabha credentials create` "
            "makes one).",
        )
    return client_id, secret
