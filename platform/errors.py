"""Errors that users can fix: each carries the message and the fix."""

from __future__ import annotations


class SabhaError(Exception):
    """A problem the user can fix. The CLI prints it without a traceback.

    Args:
        message: What went wrong, naming the file, field or thing involved.
        hint: How to fix it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  Fix: {self.hint}" if self.hint else self.message


class NotFoundError(SabhaError):
    """A named thing (model, benchmark, job) does not exist."""


class ValidationFailed(SabhaError):
    """Input failed validation; ``problems`` lists every problem found."""

    def __init__(self, message: str, problems: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems

    def __str__(self) -> str:
        lines = [self.message, *(f"  - {p}" for p in self.problems)]
        if self.hint:
            lines.append(f"  Fix: {self.hint}")
        return "\n".join(lines)


class AuthenticationFailed(SabhaError):
    """Who are you? The credentials (password, token, client secret) are wrong or missing.

    HTTP 401. The message never says whether a username or token exists.
    """


class PermissionDenied(SabhaError):
    """You may not: the user or token lacks the role or scope for this. HTTP 403."""


class DatabaseUnavailable(SabhaError):
    """The configured database does not answer."""


class EngineError(SabhaError):
    """The inference engine could not load a model or generate."""


class PrerequisiteError(SabhaError):
    """An optional part of Sabha is not installed."""


class SettingsError(SabhaError):
    """A ``SABHA_*`` setting has a value Sabha cannot run with."""


class DatabaseBusy(SabhaError):
    """The database stayed locked by another writer for longer than the timeout."""


def translate_error(exc: BaseException) -> SabhaError | None:
    """The one clear message for an infrastructure error a user can act on, else None.

    The CLI and the web pages both call this, so a missing extra, a database
    that refuses a value or a locked database reads the same everywhere.
    """
    if isinstance(exc, SabhaError):
        return exc
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        extra = (
            "cpu" if exc.name.split(".")[0] in {"vllm", "torch", "ray", "transformers"} else "dev"
        )
        return PrerequisiteError(
            f"Sabha needs the Python package {exc.name!r}, which is not installed.",
            f"Install the '{extra}' extra: pip install -e '.[{extra}]' (make setup does this); "
            "on a CUDA machine use the 'gpu' extra instead of 'cpu'.",
        )
    if isinstance(exc, OSError) and "AF_UNIX path length" in str(exc):
        return SabhaError(
            f"Ray cannot start: its temporary folder's path is too long for a Unix socket ({exc}).",
            "Set RAY_TMPDIR to a short folder, e.g. RAY_TMPDIR=/tmp/ray.",
        )
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - sqlalchemy is a core dependency
        return None
    if isinstance(exc, sa_exc.OperationalError) and "locked" in str(exc.orig).lower():
        return DatabaseBusy(
            "The database is locked by another Sabha process and did not free up in time.",
            "Wait for the other command to finish and try again.",
        )
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError):
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return SabhaError(
            f"The database refused a value: {detail}",
            "Nothing was changed. Check the input against the limits in the README; "
            "if it was valid, please report this as a bug.",
        )
    return None
