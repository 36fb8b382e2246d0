"""Label Studio's webhook read as a notice: an action and the ids it names, nothing more.

What a payload says an annotation contains is never read: ``readback``
reads the items the notice names from Label Studio itself.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from sabha.platform.errors import SabhaError
from sabha.platform.wire import MAX_DB_ID

__all__ = [
    "MAX_NOTICE_IDS",
    "WebhookNotice",
    "WebhookRefused",
    "webhook_notice",
    "webhook_secret_matches",
]

MAX_NOTICE_IDS = 1000
"""The most annotations one webhook notice may name (Label Studio names one per
annotation; a bulk deletion names each deleted one)."""


class WebhookRefused(SabhaError):
    """A webhook payload Sabha cannot read as a notice (HTTP 422)."""

    http_status = 422


def webhook_secret_matches(expected: str | None, given: str | None) -> bool:
    """Whether a webhook call carries the shared secret (constant-time comparison)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def _notice_id(value: Any, where: str) -> int:
    """An id from a webhook notice: a whole number Sabha's database can hold."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DB_ID:
        raise WebhookRefused(
            f"The webhook notice's {where} is {str(value)[:40]!r}, not an id from 1 to "
            f"{MAX_DB_ID}.",
            "Send Label Studio's own webhook JSON.",
        )
    return value


@dataclass(frozen=True)
class WebhookNotice:
    """What a webhook call names: an action and ids; nothing it says about content."""

    action: str
    annotation_ids: tuple[int, ...] = ()
    task_ids: tuple[int, ...] = ()


def webhook_notice(payload: Any) -> WebhookNotice:
    """Read the action and the ids a webhook payload names (nothing else is read from it).

    Raises:
        WebhookRefused: no action, no or too many annotations, or an id that is
            not a whole number from 1 to 2**31-1 (the field is named).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("action"), str):
        raise WebhookRefused("The webhook payload has no action.", "Send Label Studio's JSON.")
    action = str(payload["action"])[:100]
    named: Any
    if action in {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}:
        named, where = [payload.get("annotation")], "annotation"
    elif action == "ANNOTATIONS_CREATED":
        named, where = payload.get("annotation"), "annotation"
    elif action == "ANNOTATIONS_DELETED":
        named, where = payload.get("annotations"), "annotations"
    else:
        return WebhookNotice(action)  # other events do not concern Sabha
    if not isinstance(named, list) or not named or len(named) > MAX_NOTICE_IDS:
        raise WebhookRefused(
            f"The webhook notice {action} names no annotations, or more than "
            f"{MAX_NOTICE_IDS}, in '{where}'.",
            "Send Label Studio's own webhook JSON.",
        )
    annotations, tasks = [], []
    single = action in {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}
    for number, entry in enumerate(named):
        field = where if single else f"{where}[{number}]"
        if not isinstance(entry, dict):
            raise WebhookRefused(
                f"The webhook notice's {field} is not an object.",
                "Send Label Studio's own webhook JSON.",
            )
        annotations.append(_notice_id(entry.get("id"), f"{field}.id"))
        if entry.get("task") is not None:
            tasks.append(_notice_id(entry["task"], f"{field}.task"))
    if isinstance(payload.get("task"), dict) and payload["task"].get("id") is not None:
        tasks.append(_notice_id(payload["task"]["id"], "task.id"))
    return WebhookNotice(action, tuple(annotations), tuple(tasks))
