"""Run a real Label Studio server from its own virtualenv, offline, on loopback.

Label Studio pins versions that conflict with vLLM's, so ``make labelstudio``
installs it in ``.venv-labelstudio`` and Sabha runs its ``label-studio``
command as a subprocess. The subprocess gets a clean environment: Label
Studio reads bare variables such as ``USERNAME``, ``PASSWORD``, ``PORT`` and
``HOST``, so inheriting the caller's environment would change what it does.

A data dir is migrated once (``initialise_data_dir``, about half a minute on
two cores) and reused: later starts take a few seconds, and so does a start
from a copy of a migrated dir (how the tests get a fresh server).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from sabha.platform.errors import PrerequisiteError, SabhaError

__all__ = [
    "ADMIN_FILE",
    "PRIVATE_ID_BASE",
    "LabelStudioAccount",
    "LabelStudioServer",
    "add_labelstudio_user",
    "find_labelstudio_command",
    "initialise_data_dir",
    "new_password",
    "number_ids_from",
    "read_admin_account",
    "server_environment",
    "set_labelstudio_password",
]

ADMIN_FILE = "sabha-admin.json"
_READY_FILE = ".sabha-initialised"
_STARTED = re.compile(r"Starting development server at http://[^:/]+:(\d+)/")


class LabelStudioServerError(SabhaError):
    """Label Studio could not be set up or started."""


@dataclass(frozen=True)
class LabelStudioAccount:
    """A Label Studio user Sabha created: e-mail (its user name), password, API token."""

    username: str
    password: str
    token: str


def find_labelstudio_command(venv: Path | None = None) -> Path:
    """The ``label-studio`` executable of the dedicated virtualenv.

    Args:
        venv: The virtualenv; else ``.venv-labelstudio`` in the current folder
            or in the source checkout Sabha runs from.

    Raises:
        PrerequisiteError: Label Studio is not installed there.
    """
    candidates = (
        [venv]
        if venv is not None
        else [
            Path.cwd() / ".venv-labelstudio",
            Path(__file__).resolve().parents[1] / ".venv-labelstudio",
        ]
    )
    for folder in candidates:
        command = folder / "bin" / "label-studio"
        if command.is_file() and os.access(command, os.X_OK):
            return command
    raise PrerequisiteError(
        f"Label Studio is not installed in {', '.join(str(c) for c in candidates)}.",
        "Run `make labelstudio` in the Sabha checkout (it installs label-studio==1.23.2 in "
        "its own virtualenv), or set SABHA_LABEL_STUDIO_VENV to a virtualenv that has it.",
    )


def server_environment(
    data_dir: Path, home: Path, *, allow_loopback_webhooks: bool = False
) -> dict[str, str]:
    """The whole environment of a Label Studio process: nothing inherited.

    Args:
        data_dir: Label Studio's data dir (its SQLite database and media).
        home: A private home folder for the process.
        allow_loopback_webhooks: Turn off Label Studio's SSRF protection so it
            may call webhooks on 127.0.0.1; only for tests and development.
    """
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",  # its log shows the port it really took, as it starts
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        # Accounts come only through Sabha: Label Studio's own sign-up page refuses
        # everyone (403) unless they carry the organization's invite token.
        "DISABLE_SIGNUP_WITHOUT_LINK": "true",
    }
    if allow_loopback_webhooks:
        env["SSRF_PROTECTION_ENABLED"] = "false"
    return env


def _run_command(command: Path, data_dir: Path, arguments: list[str], what: str) -> str:
    """Run one ``label-studio`` management command on ``data_dir``; returns its output.

    The arguments are never echoed in errors or logs: they may carry a password.
    """
    with tempfile.TemporaryDirectory(prefix="sabha-ls-home-") as home:
        result = subprocess.run(
            [str(command), *arguments, f"--data-dir={data_dir}"],
            env=server_environment(data_dir, Path(home)),
            capture_output=True,
            text=True,
            timeout=600,
        )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise LabelStudioServerError(
            f"`label-studio {what}` failed in {data_dir}: " + " | ".join(tail),
            "Check that the data dir is writable; delete it to start afresh.",
        )
    return result.stdout


def _run_init(command: Path, data_dir: Path, account: LabelStudioAccount) -> None:
    _run_command(
        command,
        data_dir,
        [
            "init",
            "--quiet",
            "--enable-legacy-api-token",
            # "--opt=value": a random password may begin with "-", which
            # argparse would otherwise read as the next option.
            f"--username={account.username}",
            f"--password={account.password}",
            f"--user-token={account.token}",
        ],
        "init",
    )


def set_labelstudio_password(data_dir: Path, command: Path, email: str, password: str) -> None:
    """Set the password of an existing Label Studio user of ``data_dir``.

    Label Studio Community Edition's API cannot set another user's password,
    so this runs ``label-studio reset_password`` on the data dir (safe while
    the server runs).

    Raises:
        LabelStudioServerError: there is no such user, or the command failed.
    """
    said = _run_command(
        command,
        data_dir,
        ["reset_password", f"--username={email}", f"--password={password}"],
        "reset_password",
    )
    if "Password successfully changed" not in said:
        last = said.strip().splitlines()[-1:] or ["no answer"]
        raise LabelStudioServerError(
            f"Label Studio did not set the password of {email}: {last[0]}",
            f"Check that the user exists in that Label Studio (its data dir: {data_dir}).",
        )


def new_password() -> str:
    """A random password for a Label Studio account (24 URL-safe characters)."""
    return secrets.token_urlsafe(18)


def new_account(username: str) -> LabelStudioAccount:
    """An account with a random password and a random 40-character API token."""
    return LabelStudioAccount(username, new_password(), secrets.token_hex(20))


def initialise_data_dir(data_dir: Path, command: Path) -> LabelStudioAccount:
    """Migrate ``data_dir`` and create Sabha's admin account, once.

    A dir initialised before is reused as it is. The admin's e-mail, password
    and token are kept in ``sabha-admin.json`` (readable by its owner only).

    Returns:
        The admin account.
    """
    if (data_dir / _READY_FILE).is_file():
        return read_admin_account(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    admin = new_account("admin@sabha.local")
    _run_init(command, data_dir, admin)
    path = data_dir / ADMIN_FILE
    path.write_text(json.dumps(admin.__dict__), encoding="utf-8")
    path.chmod(0o600)
    (data_dir / _READY_FILE).write_text("label-studio init done\n", encoding="utf-8")
    return admin


def read_admin_account(data_dir: Path) -> LabelStudioAccount:
    """The admin account ``initialise_data_dir`` created in ``data_dir``."""
    try:
        return LabelStudioAccount(**json.loads((data_dir / ADMIN_FILE).read_text("utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise LabelStudioServerError(
            f"{data_dir / ADMIN_FILE} is missing or unreadable ({exc}).",
            f"Delete {data_dir} to set Label Studio up afresh.",
        ) from exc


def add_labelstudio_user(
    data_dir: Path, command: Path, username: str, password: str | None = None
) -> LabelStudioAccount:
    """Create a Label Studio user with a password and an API token in ``data_dir``.

    Label Studio Community Edition's API cannot set another user's password
    or token, so this runs ``label-studio init`` on the data dir (safe while
    the server runs). ``init`` makes every user a superuser (Django staff):
    fit for administrators and tests, not for annotators, whom
    ``sabha.platform.services.annotators`` creates through the API as plain
    users and gives a password with ``set_labelstudio_password``.
    """
    account = new_account(username)
    if password is not None:
        account = LabelStudioAccount(username, password, account.token)
    _run_init(command, data_dir, account)
    return account


PRIVATE_ID_BASE = 1_000_000_000
"""The first id of users, projects, tasks and annotations on the private Label Studio.

Sabha keeps the annotations of both servers in one table, keyed by Label
Studio's ids; the community server's ids stay below this and the private
server's start at it, so no id of one can be taken for the other's. It fits a
32-bit column, as Sabha's id columns are on PostgreSQL.
"""

# Label Studio's tables whose ids Sabha stores (users, projects, tasks, annotations).
_NUMBERED_TABLES = ("htx_user", "project", "task", "task_completion")


def number_ids_from(data_dir: Path, first_id: int) -> None:
    """Make a stopped Label Studio's new users, projects, tasks and annotations take ids
    from ``first_id`` on.

    Its SQLite tables count from their ``sqlite_sequence`` row, except imported
    tasks: on SQLite, Label Studio numbers a task import itself, from the
    highest task id + 1. So one placeholder task, in no project (no page or
    API lists it), holds ``first_id - 1``. Idempotent; ids already above are
    left as they are. Only for a data dir whose server is not running.
    """
    database = data_dir / "label_studio.sqlite3"
    if not database.is_file():
        raise LabelStudioServerError(
            f"{database} is missing.", "Initialise the data dir first (initialise_data_dir)."
        )
    with sqlite3.connect(database) as connection:
        for table in _NUMBERED_TABLES:
            updated = connection.execute(
                "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?",
                (first_id - 1, table),
            ).rowcount
            if not updated:
                connection.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, first_id - 1)
                )
        highest = connection.execute("SELECT MAX(id) FROM task").fetchone()[0] or 0
        if highest < first_id - 1:
            now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            connection.execute(
                "INSERT INTO task (id, data, created_at, updated_at, is_labeled, project_id, "
                "meta, overlap, total_annotations, cancelled_annotations, total_predictions, "
                "comment_count, unresolved_comment_count, allow_skip) "
                "VALUES (?, ?, ?, ?, 0, NULL, '{}', 1, 0, 0, 0, 0, 0, 0)",
                (
                    first_id - 1,
                    json.dumps({"sabha": f"holds the task ids below {first_id} free"}),
                    now,
                    now,
                ),
            )
    connection.close()


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class LabelStudioServer:
    """A Label Studio process on 127.0.0.1, in its own process group.

    Args:
        command: The ``label-studio`` executable.
        data_dir: An initialised data dir (``initialise_data_dir``).
        port: The port to listen on; must be free.
        allow_loopback_webhooks: See ``server_environment``.
        log_path: Where the server's output goes (default: ``server.log`` in
            the data dir).
    """

    def __init__(
        self,
        command: Path,
        data_dir: Path,
        port: int,
        *,
        allow_loopback_webhooks: bool = False,
        log_path: Path | None = None,
    ) -> None:
        self.command = command
        self.data_dir = data_dir
        self.port = port
        self.allow_loopback_webhooks = allow_loopback_webhooks
        self.log_path = log_path or data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._home: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait until it answers on ``port``.

        Label Studio silently moves to the next free port when its port is
        taken, so the port is checked first and the answer is checked to come
        from this process.

        Raises:
            LabelStudioServerError: the port is taken, the process exits, or
                it does not answer within ``timeout`` seconds.
        """
        if _port_in_use(self.port):
            raise LabelStudioServerError(
                f"Port {self.port} on 127.0.0.1 is already in use.",
                "Stop what listens there or choose another port (--port).",
            )
        self._home = tempfile.TemporaryDirectory(prefix="sabha-ls-home-")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log_start = log.tell()
        try:
            self.process = subprocess.Popen(
                [
                    str(self.command),
                    "start",
                    "--no-browser",
                    "--internal-host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=server_environment(
                    self.data_dir,
                    Path(self._home.name),
                    allow_loopback_webhooks=self.allow_loopback_webhooks,
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        finally:
            log.close()
        try:
            self._wait_until_ready(log_start, timeout)
        except BaseException:  # a failed start, Ctrl-C or SIGTERM: leave no server behind
            self.stop()
            raise

    def _wait_until_ready(self, log_start: int, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabelStudioServerError(
                    f"Label Studio exited with status {self.process.returncode} while starting.",
                    f"Read its log: {self.log_path}",
                )
            port = self._announced_port(log_start)
            if port is not None and port != self.port:
                raise LabelStudioServerError(
                    f"Label Studio moved to port {port} because {self.port} was taken.",
                    "Stop what listens on the port or choose another port (--port).",
                )
            if port == self.port and self._answers():
                return
            time.sleep(0.5)
        raise LabelStudioServerError(
            f"Label Studio did not answer on {self.url} within {timeout:.0f} s.",
            f"Read its log: {self.log_path}",
        )

    def _announced_port(self, log_start: int) -> int | None:
        """The port the server says it listens on (Django's runserver line), if said yet."""
        with self.log_path.open("rb") as log:
            log.seek(log_start)
            found = _STARTED.search(log.read().decode("utf-8", "replace"))
        return int(found.group(1)) if found else None

    def _answers(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server's whole process group: SIGTERM, then SIGKILL."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if process is not None:
            try:  # children left behind by a process that exited first
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._home is not None:
            self._home.cleanup()
            self._home = None

    def __enter__(self) -> LabelStudioServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
