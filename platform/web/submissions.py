"""Model submissions in the web UI: the form, my submissions, each one's status, cancel.

The form is read into a :class:`SubmissionCreate` and handed to the same
service function as the JSON API (:func:`create_submission`), so every check
(benchmarks, decoding bounds, model source, memory estimate against the
pools, license, quota) is the service's. Its refusals are shown beside the
form field they name, with the fix, and the form keeps what the user typed.

Pages are for users holding the submitter or admin role; a submission of
someone else reads as missing (404), except to admins. Writes are form POSTs
with a CSRF token and count against the app-wide write rate limit.

While a submission has a job queued or running, its page and the list that
shows it reload themselves every ``REFRESH_SECONDS`` (the ``Refresh`` header:
no JavaScript, so the strict Content-Security-Policy stays as it is); a
finished or cancelled submission's page is not reloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import ValidationError
from sqlmodel import col, select

from sabha.platform.db import get_engine, get_session
from sabha.platform.domain import Benchmark, Role
from sabha.platform.errors import NotFoundError, SabhaError
from sabha.platform.services.estimate import ModelTooLarge, format_gb
from sabha.platform.services.submission_status import (
    get_submission,
    list_submissions,
    shards_done,
)
from sabha.platform.services.submissions import (
    QuotaExceeded,
    SubmissionInvalid,
    cancel_submission,
    create_submission,
)
from sabha.platform.settings import current_settings
from sabha.platform.wire import SubmissionCreate, SubmissionPublic

from .auth import current_roles, render_refusal, role_required, signed_in_user

__all__ = [
    "FORM_FIELDS",
    "REFRESH_SECONDS",
    "blueprint",
    "form_field",
    "init_app",
    "submission_from_form",
]

blueprint = Blueprint("submissions", __name__, template_folder="templates")
blueprint.register_error_handler(SabhaError, render_refusal)
SUBMIT_ROLES = (Role.SUBMITTER, Role.ADMIN)
FINISHED = frozenset({"completed", "failed", "cancelled"})
LIVE_JOBS = frozenset({"queued", "running"})
REFRESH_SECONDS = 5
"""How often a page of a submission still at work reloads itself (the ``Refresh`` header)."""

# The form's fields: the label errors name, and the fix shown when pydantic refuses a value.
FORM_FIELDS: dict[str, tuple[str, str]] = {
    "source": (
        "Model source",
        "Choose where the model is: a hub repository or a folder on this server.",
    ),
    "repo_id": (
        "Hub repository",
        "Write it as owner/name, e.g. meta-llama/Llama-3.2-1B.",
    ),
    "revision": (
        "Revision",
        "Paste the full 40-character commit SHA (0-9 and a-f), not a branch name.",
    ),
    "path": ("Folder on this server", "Give the absolute path of the model folder."),
    "name": (
        "Name on leaderboards",
        "Use up to 200 Latin letters, digits, dots, dashes or underscores, or leave it empty.",
    ),
    "benchmarks": ("Benchmarks", "Tick at least one benchmark (at most 20)."),
    "temperature": (
        "Temperature",
        "Give a number from 0 to 2, or leave it empty for the benchmark's own.",
    ),
    "top_p": ("Top-p", "Give a number above 0 and at most 1, or leave it empty."),
    "max_tokens": (
        "Max tokens",
        "Give a whole number from 1 up to the benchmark's limit, or leave it empty.",
    ),
    "license": ("License", "Give the model's license (up to 50 characters), e.g. apache-2.0."),
}
_MODEL_FIELDS = ("source", "repo_id", "revision", "path", "name")
_DECODING_FIELDS = ("temperature", "top_p", "max_tokens")


def init_app(app: Flask) -> None:
    """Register the submission pages."""
    app.register_blueprint(blueprint)


def _is_admin() -> bool:
    return Role.ADMIN in current_roles()


def form_field(location: str | tuple[int | str, ...]) -> str:
    """The form field a service or pydantic error location names.

    ``body.model.hub.revision`` and ``("model", "hub", "revision")`` are
    ``revision``; ``body.benchmarks.1`` is ``benchmarks``; anything the form
    has no field for is ``form`` (shown above the form).
    """
    parts = location.split(".") if isinstance(location, str) else [str(p) for p in location]
    parts = [p for p in parts if p != "body"]
    if not parts:
        return "form"
    head, rest = parts[0], parts[1:]
    if head == "model":
        named = [p for p in rest if p in _MODEL_FIELDS]
        return named[-1] if named else "source"
    if head == "decoding":
        return rest[0] if rest and rest[0] in _DECODING_FIELDS else "form"
    return head if head in ("benchmarks", "license") else "form"


def submission_from_form(form: dict[str, Any]) -> SubmissionCreate:
    """The submission the form describes (empty optional fields left out).

    Raises:
        ValidationError: a value has the wrong form (pydantic's errors).
    """
    text = {key: str(value).strip() for key, value in form.items() if key != "benchmarks"}
    source = text.get("source") or "hub"
    model: dict[str, str] = {"source": source}
    keys = ("repo_id", "revision") if source == "hub" else ("path",)
    model.update({key: text.get(key, "") for key in keys})
    if text.get("name"):
        model["name"] = text["name"]
    decoding = {key: text[key] for key in _DECODING_FIELDS if text.get(key)}
    return SubmissionCreate.model_validate(
        {
            "model": model,
            "benchmarks": list(form.get("benchmarks", [])),
            "decoding": decoding,
            "license": text.get("license", ""),
        }
    )


def _read_form() -> dict[str, Any]:
    values: dict[str, Any] = {
        key: request.form.get(key, "").strip()[:1000]
        for key in (*_MODEL_FIELDS, *_DECODING_FIELDS, "license")
    }
    values["benchmarks"] = request.form.getlist("benchmarks")[:50]
    return values


def _current_benchmarks() -> list[Benchmark]:
    query = select(Benchmark).where(col(Benchmark.is_current).is_(True)).order_by(Benchmark.name)
    return list(get_session().exec(query))


Problems = dict[str, list[tuple[str, str]]]


def _render_form(form: dict[str, Any], problems: Problems, status: int) -> ResponseReturnValue:
    settings = current_settings()
    page = render_template(
        "submission_new.html",
        form=form,
        problems=problems,
        benchmarks=_current_benchmarks(),
        allow_local=settings.allow_local_models,
        quota=settings.submissions_per_day,
    )
    return page, status


def _add(problems: Problems, field: str, message: str, fix: str) -> None:
    """Note a problem under ``field``; the message starts with the field's label."""
    if field in FORM_FIELDS:
        message = f"{FORM_FIELDS[field][0]}: {message}"
    problems.setdefault(field, []).append((message, fix))


def _pydantic_message(error: Any) -> str:
    """Pydantic's message in the form's words (no regular expressions shown)."""
    if error["type"] == "string_pattern_mismatch":
        return f"{str(error.get('input', ''))[:100]!r} is not in the expected form"
    if error["type"] == "missing":
        return "is missing"
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _not_yours(exc: NotFoundError) -> NotFoundError:
    return NotFoundError(exc.message, "Pick one from your submissions at /submissions.")


def _at_work(submission: SubmissionPublic, job_statuses: Iterable[str]) -> bool:
    """Whether the submission still waits for one of its jobs (not cancelled, not finished)."""
    return submission.status not in FINISHED and any(s in LIVE_JOBS for s in job_statuses)


def _page(template: str, live: bool, **context: Any) -> ResponseReturnValue:
    """The page; while ``live``, with a ``Refresh`` header and the time it shows."""
    refresh = REFRESH_SECONDS if live else None
    response = make_response(
        render_template(template, refresh=refresh, now=datetime.now(UTC), **context)
    )
    if refresh:
        response.headers["Refresh"] = str(refresh)
    return response


@blueprint.get("/submissions")
@role_required(*SUBMIT_ROLES)
def submissions_page() -> ResponseReturnValue:
    """My submissions, newest first, with their status and how many shards are done."""
    rows = list_submissions(get_engine(), signed_in_user().id or 0)
    done = shards_done(get_engine(), [job.job_id for s in rows for job in s.jobs])
    live = any(_at_work(s, (job.status for job in s.jobs)) for s in rows)
    return _page("submissions.html", live, submissions=rows, done=done)


@blueprint.get("/submissions/new")
@role_required(*SUBMIT_ROLES)
def new_submission() -> ResponseReturnValue:
    """The submission form."""
    form = {"source": "hub", "benchmarks": request.args.getlist("benchmark")}
    return _render_form(form, {}, 200)


@blueprint.post("/submissions/new")
@role_required(*SUBMIT_ROLES)
def create() -> ResponseReturnValue:
    """Check the form through the submissions service; queue it, or show what to fix."""
    form = _read_form()
    problems: Problems = {}
    try:
        submission = submission_from_form(form)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field = form_field(tuple(error["loc"]))
            fix = FORM_FIELDS[field][1] if field in FORM_FIELDS else ""
            _add(problems, field, _pydantic_message(error), fix)
        return _render_form(form, problems, 422)
    try:
        created = create_submission(
            get_engine(), current_settings(), signed_in_user().id or 0, submission
        )
    except SubmissionInvalid as exc:
        for location, message, fix in exc.field_problems:
            _add(problems, form_field(location), message, fix)
        return _render_form(form, problems, 422)
    except ModelTooLarge as exc:  # its message starts with "Model ...": no label needed
        problems["source"] = [(exc.message, exc.hint or "")]
        return _render_form(form, problems, 422)
    except QuotaExceeded as exc:
        _add(problems, "form", exc.message, exc.hint or "")
        return _render_form(form, problems, 429)
    return redirect(url_for("submissions.submission_page", submission_id=created.id), 303)


@blueprint.get("/submissions/<dbid:submission_id>")
@role_required(*SUBMIT_ROLES)
def submission_page(submission_id: int) -> ResponseReturnValue:
    """One submission: each benchmark's job and each shard's state (owner or admin)."""
    try:
        shown = get_submission(get_engine(), submission_id, signed_in_user().id or 0, _is_admin())
    except NotFoundError as exc:
        raise _not_yours(exc) from None
    titles = {b.name: b.title for b in _current_benchmarks()}
    live = _at_work(shown, (job.status for job in shown.job_states))
    return _page(
        "submission.html", live, submission=shown, titles=titles, finished=FINISHED, gb=format_gb
    )


@blueprint.post("/submissions/<dbid:submission_id>/cancel")
@role_required(*SUBMIT_ROLES)
def cancel(submission_id: int) -> ResponseReturnValue:
    """Cancel a submission (owner or admin); a finished one stays as it is."""
    try:
        cancel_submission(get_engine(), submission_id, signed_in_user().id or 0, _is_admin())
    except NotFoundError as exc:
        raise _not_yours(exc) from None
    return redirect(url_for("submissions.submission_page", submission_id=submission_id), 303)
