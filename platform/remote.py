"""Talk to a Sabha server's JSON API: the stored sign-in, submissions, their status, reviews.

``sabha login`` stores ``{server, token}`` in ``$XDG_CONFIG_HOME/sabha/credentials.json``
(default ``~/.config/sabha``), readable by its owner only; ``sabha submit``,
``sabha status`` and ``sabha annotations review`` send that token as
``Authorization: Bearer``. Problem documents
(RFC 9457) from the server become one ``SabhaError`` with the server's fix.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .errors import SabhaError

__all__ = [
    "Credentials",
    "SabhaClient",
    "credentials_path",
    "load_credentials",
    "save_credentials",
]

TIMEOUT_SECONDS = 60


def credentials_path() -> Path:
    """Where ``sabha login`` keeps the server and token."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sabha" / "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """A server URL and a personal access token for it."""

    server: str
    token: str


def save_credentials(credentials: Credentials) -> Path:
    """Write the credentials file atomically, readable and writable by its owner only.

    Returns:
        The file's path.
    """
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    payload = json.dumps({"server": credentials.server, "token": credentials.token}, indent=2)
    # mkstemp creates the file with mode 0600 before anything is written to it.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".credentials.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(payload + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_credentials() -> Credentials:
    """The stored credentials.

    Raises:
        SabhaError: nobody signed in yet, or the file is broken.
    """
    path = credentials_path()
    if not path.is_file():
        raise SabhaError(
            "You are not signed in to a Sabha server.",
            "Run `sabha login --server URL` with a personal access token.",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(server=str(data["server"]), token=str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SabhaError(
            f"{path} cannot be read ({exc}).", "Run `sabha login --server URL` again."
        ) from exc


def _problem_error(response: requests.Response) -> SabhaError:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return SabhaError(
            f"The server answered {response.status_code} {response.reason} "
            f"for {response.request.method} {response.url}.",
            "Check the server URL (sabha login --server URL).",
        )
    lines = [str(problem.get("detail") or problem.get("title") or response.reason)]
    for error in problem.get("errors") or []:
        lines.append(f"  - {error.get('field')}: {error.get('message')} ({error.get('fix')})")
    hint = problem.get("fix")
    if response.status_code == 401:
        hint = "Create a new token in the web UI (or `sabha tokens create`) and run `sabha login`."
    return SabhaError("\n".join(lines), hint)


class SabhaClient:
    """A client of one server's ``/api/v1``.

    Args:
        server: The server's base URL, e.g. ``https://sabha.example.org``.
        token: A personal access token (``sabha_pat_...``).
    """

    def __init__(self, server: str, token: str) -> None:
        self.server = server.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.http.headers["Accept"] = "application/json, application/problem+json"

    @classmethod
    def from_stored_credentials(cls) -> SabhaClient:
        """A client for the server ``sabha login`` stored."""
        credentials = load_credentials()
        return cls(credentials.server, credentials.token)

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``/api/v1/me``."""
        return f"{self.server}{path}"

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        try:
            response = self.http.request(
                method, self.url(path), json=body, params=params, timeout=TIMEOUT_SECONDS
            )
        except requests.RequestException as exc:
            raise SabhaError(
                f"Cannot reach the Sabha server at {self.server} ({type(exc).__name__}).",
                "Check the URL and that the server is running.",
            ) from exc
        if response.status_code >= 400:
            raise _problem_error(response)
        try:
            return response.json()
        except ValueError as exc:
            raise SabhaError(
                f"{self.server} did not answer with JSON; is it a Sabha server?",
                "Check the server URL.",
            ) from exc

    def me(self) -> dict[str, Any]:
        """The signed-in user and the token's scopes."""
        result: dict[str, Any] = self._call("GET", "/api/v1/me")
        return result

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a submission; returns it with its jobs."""
        result: dict[str, Any] = self._call("POST", "/api/v1/submissions", body)
        return result

    def submission(self, submission_id: int) -> dict[str, Any]:
        """A submission with each benchmark's job and shard states."""
        result: dict[str, Any] = self._call("GET", f"/api/v1/submissions/{submission_id}")
        return result

    def cancel(self, submission_id: int) -> dict[str, Any]:
        """Cancel a submission."""
        result: dict[str, Any] = self._call("POST", f"/api/v1/submissions/{submission_id}/cancel")
        return result

    def reviews(
        self,
        *,
        dataset: str | None = None,
        language: str | None = None,
        include_reviewed: bool = False,
        page: int = 1,
    ) -> dict[str, Any]:
        """A page of annotations the token's user can review."""
        params: dict[str, Any] = {"page": page}
        if dataset:
            params["dataset"] = dataset
        if language:
            params["language"] = language
        if include_reviewed:
            params["include_reviewed"] = "true"
        result: dict[str, Any] = self._call("GET", "/api/v1/reviews", params=params)
        return result

    def review(
        self, annotation_id: int, verdict: str, comment: str, version: str
    ) -> dict[str, Any]:
        """Accept or reject the version of an annotation the reviewer saw."""
        body = {"verdict": verdict, "comment": comment, "version": version}
        result: dict[str, Any] = self._call(
            "POST", f"/api/v1/annotations/{annotation_id}/review", body
        )
        return result
