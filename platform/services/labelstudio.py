"""Which Label Studio Sabha talks to, and running one on this machine.

Two ways: an existing server (``SABHA_LABEL_STUDIO_URL`` and
``SABHA_LABEL_STUDIO_TOKEN``), or the server ``sabha labelstudio start`` runs
from its own virtualenv with a data dir under Sabha's (migrated once, reused).
While that server runs, ``server.json`` in its data dir says where it listens,
so other ``sabha`` commands find it.

Items of the private held-out split live on a second, private server
(``SABHA_LABEL_STUDIO_PRIVATE_URL``/``_TOKEN``, or ``sabha labelstudio start
--private``): Label Studio Community shows every project of a server to every
member, so a project of its own is not enough. Its ids start at
``PRIVATE_ID_BASE``, so the annotations of both servers share Sabha's tables.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sabha.annotation.labelstudio import LabelStudioClient
from sabha.annotation.labelstudio_server import (
    PRIVATE_ID_BASE,
    LabelStudioAccount,
    LabelStudioServer,
    find_labelstudio_command,
    initialise_data_dir,
    number_ids_from,
    read_admin_account,
)
from sabha.platform.domain import AnnotationProject
from sabha.platform.errors import SabhaError
from sabha.platform.settings import Settings

__all__ = [
    "announce_labelstudio",
    "connect_labelstudio",
    "labelstudio_for",
    "labelstudio_task_url",
    "start_labelstudio",
    "stop_labelstudio",
]

_SERVER_FILE = "server.json"


def start_labelstudio(
    settings: Settings,
    *,
    port: int | None = None,
    allow_loopback_webhooks: bool = False,
    private: bool = False,
) -> tuple[LabelStudioServer, LabelStudioAccount]:
    """Set up (once) and start the local Label Studio server.

    Args:
        settings: Where the data dir and the virtualenv are.
        port: The port on 127.0.0.1; ``SABHA_LABEL_STUDIO_PORT`` (private:
            ``SABHA_LABEL_STUDIO_PRIVATE_PORT``) when omitted.
        allow_loopback_webhooks: Let it call webhooks on 127.0.0.1 (development
            and tests only: it turns off Label Studio's SSRF protection).
        private: The private server (its own data dir, port and accounts; its
            ids start at ``PRIVATE_ID_BASE``), for items of the private split.

    Returns:
        The running server (stop it with ``stop_labelstudio``) and its admin account.
    """
    command = find_labelstudio_command(settings.label_studio_venv)
    data_dir = _data_dir(settings, private)
    admin = initialise_data_dir(data_dir, command)
    if private:
        number_ids_from(data_dir, PRIVATE_ID_BASE)  # before it runs: it reads them at start
    default_port = settings.label_studio_private_port if private else settings.label_studio_port
    server = LabelStudioServer(
        command,
        data_dir,
        port or default_port,
        allow_loopback_webhooks=allow_loopback_webhooks,
    )
    server.start()
    announce_labelstudio(server)
    return server, admin


def _data_dir(settings: Settings, private: bool) -> Path:
    if private:
        return settings.resolved_label_studio_private_data_dir
    return settings.resolved_label_studio_data_dir


def announce_labelstudio(server: LabelStudioServer) -> None:
    """Write where a running server listens into its data dir, for other ``sabha`` commands."""
    (server.data_dir / _SERVER_FILE).write_text(
        json.dumps({"url": server.url, "pid": server.process.pid if server.process else None}),
        encoding="utf-8",
    )


def stop_labelstudio(settings: Settings, server: LabelStudioServer) -> None:
    """Stop a server ``start_labelstudio`` started and forget where it listened."""
    server.stop()
    (server.data_dir / _SERVER_FILE).unlink(missing_ok=True)


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


def connect_labelstudio(settings: Settings, *, private: bool = False) -> LabelStudioClient:
    """A client for the configured server, or for the local one while it runs.

    Args:
        settings: Which servers there are.
        private: The private server (items of the private split) instead of
            the community one.

    Raises:
        SabhaError: no server is configured and none runs here, or the private
            server is the community one.
    """
    url, token = settings.label_studio_url, settings.label_studio_token
    if private:
        url, token = settings.label_studio_private_url, settings.label_studio_private_token
    prefix = "SABHA_LABEL_STUDIO_PRIVATE" if private else "SABHA_LABEL_STUDIO"
    if url:
        if not token:
            raise SabhaError(
                f"{prefix}_URL is set but {prefix}_TOKEN is not.",
                f"Set {prefix}_TOKEN to an API token of that server "
                "(Label Studio: Account & Settings > Legacy token).",
            )
        if private and url.rstrip("/") == (settings.label_studio_url or "").rstrip("/"):
            raise SabhaError(
                "SABHA_LABEL_STUDIO_PRIVATE_URL is the community Label Studio's address.",
                "Private items need a separate Label Studio server: every member of one "
                "server can read all of its projects.",
            )
        return LabelStudioClient(url, token, private=private)
    data_dir = _data_dir(settings, private)
    local = _running_local_url(data_dir)
    if local is None:
        which = "private Label Studio server" if private else "Label Studio server"
        option = " --private" if private else ""
        raise SabhaError(
            f"No {which} is configured and none runs here.",
            f"Start one with `sabha labelstudio start{option}` (in another terminal), or set "
            f"{prefix}_URL and {prefix}_TOKEN.",
        )
    return LabelStudioClient(local, token or read_admin_account(data_dir).token, private=private)


def labelstudio_for(settings: Settings, project: AnnotationProject) -> LabelStudioClient:
    """The Label Studio a project lives in: the private server for a private project."""
    return connect_labelstudio(settings, private=project.private)


def labelstudio_task_url(
    settings: Settings, *, private: bool, project_id: int, task_id: int
) -> str | None:
    """Where a person opens one task in the browser; None when no such server is known.

    Reads only settings and the local server's ``server.json``: no request to
    Label Studio, so a page can link to tasks while Label Studio is down.
    """
    url = settings.label_studio_private_url if private else settings.label_studio_url
    if not url:
        url = _running_local_url(_data_dir(settings, private))
    if not url:
        return None
    return f"{url.rstrip('/')}/projects/{project_id}/data?task={task_id}"
