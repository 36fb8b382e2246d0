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


class DatabaseUnavailable(SabhaError):
    """The configured database does not answer."""


class EngineError(SabhaError):
    """The inference engine could not load a model or generate."""
