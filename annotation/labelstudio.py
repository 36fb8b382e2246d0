"""Sabha's one door to Label Studio: every call goes through ``label-studio-sdk`` 2.x.

``LabelStudioClient`` wraps the SDK's ``LabelStudio`` client with the few
operations Sabha needs (projects, tasks, annotations, users, webhooks) and
turns its errors into ``LabelStudioError`` with a fix. What Sabha reads back
is plain data (``LabelStudioAnnotation``), built the same way from an API
answer and from a webhook's payload, so both paths of the sync agree.

This module imports neither the services nor Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import httpx

from sabha.platform.errors import SabhaError

__all__ = [
    "WEBHOOK_ACTIONS",
    "WEBHOOK_SECRET_HEADER",
    "LabelStudioAnnotation",
    "LabelStudioClient",
    "LabelStudioError",
    "LabelStudioNotFound",
    "annotation_from_json",
]

WEBHOOK_SECRET_HEADER = "X-Sabha-Webhook-Secret"
"""The header Label Studio sends with every webhook call, carrying the shared secret."""

WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")

_T = TypeVar("_T")


class LabelStudioError(SabhaError):
    """Label Studio refused a call or could not be reached."""


class LabelStudioNotFound(LabelStudioError):
    """Label Studio answered 404: the project, task or annotation is not there."""


@dataclass(frozen=True)
class LabelStudioAnnotation:
    """One annotation as Label Studio reports it.

    ``user_id`` is its annotator (Label Studio's ``completed_by``), which any
    caller may set when creating or editing one; ``updated_by`` is who last
    created or changed it, which Label Studio sets itself. They differ when
    someone made or changed an annotation in another person's name.
    """

    id: int
    task_id: int
    user_id: int
    result: list[dict[str, Any]]
    was_cancelled: bool
    created_at: datetime
    updated_at: datetime
    updated_by: int | None = None

    @property
    def made_by_someone_else(self) -> bool:
        """Whether another user created or last changed it in its annotator's name."""
        return self.updated_by is not None and self.updated_by != self.user_id


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def annotation_from_json(data: Mapping[str, Any]) -> LabelStudioAnnotation:
    """An annotation from Label Studio's JSON (an API answer or a webhook payload).

    Raises:
        ValueError: a field Sabha needs is missing or has the wrong type.
    """
    try:
        task = data["task"]
        task_id = task["id"] if isinstance(task, Mapping) else task
        user = data.get("completed_by")
        user_id = user["id"] if isinstance(user, Mapping) else user
        if user_id is None:
            raise TypeError("completed_by is missing")
        editor = data.get("updated_by")
        editor_id = editor["id"] if isinstance(editor, Mapping) else editor
        result = data.get("result") or []
        if not isinstance(result, list):
            raise TypeError("result is not a list")
        return LabelStudioAnnotation(
            id=int(data["id"]),
            task_id=int(task_id),
            user_id=int(user_id),
            result=[dict(region) for region in result],
            was_cancelled=bool(data.get("was_cancelled", False)),
            created_at=_when(data.get("created_at")),
            updated_at=_when(data.get("updated_at") or data.get("created_at")),
            updated_by=None if editor_id is None else int(editor_id),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a Label Studio annotation: {exc}") from exc


class LabelStudioClient:
    """A Label Studio server reached through ``label-studio-sdk``.

    Args:
        url: The server's base URL, e.g. ``http://127.0.0.1:8080``.
        token: An API token (legacy token auth, as ``label-studio init
            --enable-legacy-api-token`` sets up).
        timeout: Seconds per request.
        private: The private server (items of the private split, trusted
            annotators only), whose ids start at ``PRIVATE_ID_BASE``; the
            community server's stay below it. New ids on the wrong side are
            refused before Sabha stores them.
    """

    def __init__(
        self, url: str, token: str, *, timeout: float = 60.0, private: bool = False
    ) -> None:
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        self.private = private
        self._sdk = LabelStudio(base_url=self.url, api_key=token, timeout=timeout)

    def _check_ids(self, what: str, ids: Sequence[int]) -> None:
        from .labelstudio_server import PRIVATE_ID_BASE

        wrong = [i for i in ids if (i >= PRIVATE_ID_BASE) != self.private]
        if not wrong:
            return
        if self.private:
            raise LabelStudioError(
                f"The private Label Studio at {self.url} numbered new {what} from {min(wrong)}, "
                f"below {PRIVATE_ID_BASE:,}: they could be taken for the community server's.",
                "Use a server whose ids start at 1,000,000,000 (`sabha labelstudio start "
                "--private` sets that up; for another server see README, 'Private items').",
            )
        raise LabelStudioError(
            f"The community Label Studio at {self.url} numbered new {what} from {min(wrong)}, "
            f"at or above {PRIVATE_ID_BASE:,}, where the private server's ids are.",
            "Point SABHA_LABEL_STUDIO_URL at the community server, not the private one.",
        )

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        from label_studio_sdk.core.api_error import ApiError

        try:
            return call()
        except ApiError as exc:
            if exc.status_code == 404:
                raise LabelStudioNotFound(
                    f"Label Studio at {self.url} has no such object ({what}: 404).",
                    "Check SABHA_LABEL_STUDIO_URL: it must be the server the projects were "
                    "provisioned on.",
                ) from exc
            if exc.status_code in (401, 403):
                raise LabelStudioError(
                    f"Label Studio at {self.url} refused the token ({what}: {exc.status_code}).",
                    "Set SABHA_LABEL_STUDIO_TOKEN to a valid API token of that server.",
                ) from exc
            raise LabelStudioError(
                f"Label Studio at {self.url} refused to {what}: "
                f"{exc.status_code} {str(exc.body)[:500]}",
                "Check the request against the Label Studio project; nothing was changed in Sabha.",
            ) from exc
        except httpx.HTTPError as exc:
            raise LabelStudioError(
                f"Label Studio at {self.url} did not answer ({what}: {exc}).",
                "Start it with `sabha labelstudio start`, or set SABHA_LABEL_STUDIO_URL to "
                "a running server.",
            ) from exc

    # -- server and users ----------------------------------------------------------------

    def version(self) -> str:
        """The server's Label Studio version (also proves the URL and token work)."""
        self._call("check the token", self._sdk.users.whoami)
        info = self._call("report its version", self._sdk.versions.get)
        release = getattr(info, "release", None)
        return str(release or "unknown")

    def whoami(self) -> int:
        """The id of the user the token belongs to."""
        user = self._call("say who the token belongs to", self._sdk.users.whoami)
        return int(user.id or 0)

    def list_users(self) -> dict[str, int]:
        """Every user of the server's organization: e-mail -> user id."""
        users = self._call("list users", self._sdk.users.list)
        return {str(u.email): int(u.id or 0) for u in users}

    def create_user(self, email: str, *, username: str, first_name: str = "") -> int:
        """Add a plain member (not a superuser) to the token's organization; returns its id.

        The new user has no password yet: only the server's own data dir can
        set one (``labelstudio_server.set_labelstudio_password``).
        """
        user = self._call(
            f"create user {email}",
            lambda: self._sdk.users.create(email=email, username=username, first_name=first_name),
        )
        if user.id is None:
            raise LabelStudioError(f"Label Studio created user {email} without an id.")
        self._check_ids("users", [int(user.id)])
        return int(user.id)

    def project_url(self, project_id: int) -> str:
        """Where a person opens a project in the browser."""
        return f"{self.url}/projects/{project_id}/data"

    # -- projects and tasks --------------------------------------------------------------

    def create_project(self, title: str, label_config: str, description: str = "") -> int:
        """Create a project with a labeling config; returns its id."""
        project = self._call(
            f"create project {title!r}",
            lambda: self._sdk.projects.create(
                title=title,
                description=description,
                label_config=label_config,
                show_skip_button=False,
            ),
        )
        if project.id is None:
            raise LabelStudioError(f"Label Studio created project {title!r} without an id.")
        self._check_ids("projects", [int(project.id)])
        return int(project.id)

    def label_config(self, project_id: int) -> str:
        """The labeling config Label Studio stores for a project."""
        project = self._call("read a project", lambda: self._sdk.projects.get(project_id))
        return str(project.label_config or "")

    def delete_project(self, project_id: int) -> None:
        """Delete a project with its tasks and annotations."""
        self._call("delete a project", lambda: self._sdk.projects.delete(project_id))

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Import tasks (each ``{"data": {...}}``); returns their ids in order."""
        if not tasks:
            return []
        answer = self._call(
            "import tasks",
            lambda: self._sdk.projects.import_tasks(
                project_id, request=cast(Any, list(tasks)), return_task_ids=True
            ),
        )
        # Community Edition answers at once with the new ids (a field the SDK leaves untyped).
        ids = [int(i) for i in (getattr(answer, "task_ids", None) or [])]
        if len(ids) != len(tasks):
            raise LabelStudioError(
                f"Label Studio imported {len(ids)} of {len(tasks)} tasks into project "
                f"{project_id}.",
                "Check the server's log; run the import again (Sabha imports only items "
                "without a task).",
            )
        self._check_ids("tasks", ids)
        return ids

    def task_ids(self, project_id: int) -> list[int]:
        """The ids of every task of a project."""
        pages: Any = self._call(
            "list tasks",
            lambda: self._sdk.tasks.list(project=project_id, fields="task_only", page_size=100),
        )
        return [int(task.id) for task in self._call("list tasks", lambda: list(pages))]

    def delete_task(self, task_id: int) -> bool:
        """Delete one task with its annotations; False when Label Studio has no such task."""
        from label_studio_sdk.core.api_error import ApiError

        def delete() -> bool:
            try:
                self._sdk.tasks.delete(str(task_id))  # the SDK types the id as a string
            except ApiError as exc:
                if exc.status_code == 404:
                    return False
                raise
            return True

        return self._call("delete a task", delete)

    # -- annotations ---------------------------------------------------------------------

    def task_annotations(self, task_id: int) -> list[LabelStudioAnnotation]:
        """Every annotation of one task that was not skipped (Label Studio lists no skips).

        Raises:
            LabelStudioNotFound: the task is not there (deleted, or another server).
        """
        found = self._call("list annotations", lambda: self._sdk.annotations.list(task_id))
        return [annotation_from_json(a.model_dump(mode="json")) for a in found]

    def has_project(self, project_id: int) -> bool:
        """Whether the server has this project."""
        try:
            self._call("read a project", lambda: self._sdk.projects.get(project_id))
        except LabelStudioNotFound:
            return False
        return True

    def project_annotations(self, project_id: int) -> Iterator[LabelStudioAnnotation]:
        """Every annotation of every task of a project, task by task."""
        for task_id in self.task_ids(project_id):
            yield from self.task_annotations(task_id)

    def create_annotation(
        self, task_id: int, result: Sequence[dict[str, Any]], *, lead_time: float = 1.0
    ) -> LabelStudioAnnotation:
        """Annotate a task as the token's user does in the labeling interface."""
        made = self._call(
            "create an annotation",
            lambda: self._sdk.annotations.create(
                task_id, result=list(result), lead_time=lead_time, was_cancelled=False
            ),
        )
        return annotation_from_json(made.model_dump(mode="json"))

    def update_annotation(
        self, annotation_id: int, result: Sequence[dict[str, Any]]
    ) -> LabelStudioAnnotation:
        """Replace an annotation's result."""
        made = self._call(
            "update an annotation",
            lambda: self._sdk.annotations.update(annotation_id, result=list(result)),
        )
        return annotation_from_json(made.model_dump(mode="json"))

    def delete_annotation(self, annotation_id: int) -> None:
        """Delete one annotation."""
        self._call("delete an annotation", lambda: self._sdk.annotations.delete(annotation_id))

    # -- webhooks ------------------------------------------------------------------------

    def add_webhook(self, project_id: int, url: str, secret: str) -> int:
        """Have Label Studio call ``url`` when an annotation of the project changes.

        Every call carries ``secret`` in the ``X-Sabha-Webhook-Secret`` header.
        """
        hook = self._call(
            "add a webhook",
            lambda: self._sdk.webhooks.create(
                url=url,
                project=project_id,
                actions=list(WEBHOOK_ACTIONS),
                send_for_all_actions=False,
                send_payload=True,
                headers={WEBHOOK_SECRET_HEADER: secret},
                is_active=True,
            ),
        )
        return int(hook.id or 0)

    def webhooks(self, project_id: int) -> list[str]:
        """The URLs of a project's webhooks."""
        hooks = self._call(
            "list webhooks", lambda: self._sdk.webhooks.list(project=str(project_id))
        )
        return [str(h.url) for h in hooks]
