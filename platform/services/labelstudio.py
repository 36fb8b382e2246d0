"""Which Label Studio Sabha talks to, and running one on this machine.

Two ways: an existing server (``SABHA_LABEL_STUDIO_URL`` and
``SABHA_LABEL_STUDIO_TOKEN``), or the server ``sabha labelstudio start`` runs
from its own virtualenv with a data dir under Sabha's (migrated once, reused).
While that server runs, ``server.json`` in its data dir says where it listens,
so other ``sabha`` commands find it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sabha.annotation.labelstudio import LabelStudioClient
from sabha.annotation.labelstudio_server import (
    LabelStudioAccount,
    LabelStudioServer,
    find_labelstudio_command,
    initialise_data_dir,
    read_admin_account,
)
from sabha.platform.errors import SabhaError
from sabha.platform.settings import Settings

__all__ = [
    "announce_labelstudio",
    "connect_labelstudio",
    "start_labelstudio",
    "stop_labelstudio",
]

_SERVER_FILE = "server.json"


def start_labelstudio(
    settings: Settings, *, port: int | None = None, allow_loopback_webhooks: bool = False
) -> tuple[LabelStudioServer, LabelStudioAccount]:
    """Set up (once) and start the local Label Studio server.

    Args:
        settings: Where the data dir and the virtualenv are.
        port: The port on 127.0.0.1; ``SABHA_LABEL_STUDIO_PORT`` when omitted.
        allow_loopback_webhooks: Let it call webhooks on 127.0.0.1 (development
            and tests only: it turns off Label Studio's SSRF protection).

    Returns:
        The running server (stop it with ``stop_labelstudio``) and its admin account.
    """
    command = find_labelstudio_command(settings.label_studio_venv)
    data_dir = settings.resolved_label_studio_data_dir
    admin = initialise_data_dir(data_dir, command)
    server = LabelStudioServer(
        command,
        data_dir,
        port or settings.label_studio_port,
        allow_loopback_webhooks=allow_loopback_webhooks,
    )
    server.start()
    announce_labelstudio(server)
    return server, admin


def announce_labelstudio(server: LabelStudioServer) -> None:
    """Write where a running server listens into its data dir, for other ``sabha`` commands."""
    (server.data_dir / _SERVER_FILE).write_text(
        json.dumps({"url": server.url, "pid": server.process.pid if server.process else None}),
        encoding="utf-8",
    )


def stop_labelstudio(settings: Settings, server: LabelStudioServer) -> None:
    """Stop a server ``start_labelstudio`` started and forget where it listened."""
    server.stop()
    (settings.resolved_label_studio_data_dir / _SERVER_FILE).unlink(missing_ok=True)


def _running_local_url(data_dir: Path) -> str | None:
    """Where the local server listens, from ``server.json``; None when it no longer runs.

    A server killed without its clean-up (SIGKILL, a power cut) leaves the file
    behind: when its process is gone, the file is removed, so no command talks
    to whatever listens on that port now.
    """
    path = data_dir / _SERVER_FILE
    try:
        said = json.loads(path.read_text("utf-8"))
        url, pid = str(said["url"]), said.get("pid")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(pid, int) and not _alive(pid):
        path.unlink(missing_ok=True)
        return None
    return url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def connect_labelstudio(settings: Settings) -> LabelStudioClient:
    """A client for the configured server, or for the local one while it runs.

    Raises:
        SabhaError: no server is configured and none runs here.
    """
    if settings.label_studio_url:
        if not settings.label_studio_token:
            raise SabhaError(
                "SABHA_LABEL_STUDIO_URL is set but SABHA_LABEL_STUDIO_TOKEN is not.",
                "Set SABHA_LABEL_STUDIO_TOKEN to an API token of that server "
                "(Label Studio: Account & Settings > Legacy token).",
            )
        return LabelStudioClient(settings.label_studio_url, settings.label_studio_token)
    data_dir = settings.resolved_label_studio_data_dir
    url = _running_local_url(data_dir)
    if url is None:
        raise SabhaError(
            "No Label Studio server is configured and none runs here.",
            "Start one with `sabha labelstudio start` (in another terminal), or set "
            "SABHA_LABEL_STUDIO_URL and SABHA_LABEL_STUDIO_TOKEN.",
        )
    return LabelStudioClient(url, settings.label_studio_token or read_admin_account(data_dir).token)
