"""The endpoint Label Studio calls when an annotation changes: a notice, never the data.

``POST /hooks/labelstudio`` takes Label Studio's webhook JSON. Every call must
carry the shared secret (``SABHA_LABEL_STUDIO_WEBHOOK_SECRET``) in the
``X-Sabha-Webhook-Secret`` header; a call without it is refused with 401 and
changes nothing. With no secret configured the endpoint refuses every call.

The secret keeps strangers out, but it is no proof: Label Studio Community
shows every webhook, headers included, to every member of its organization,
annotators too. So the call is only a notice: Sabha reads the named tasks'
annotations back from Label Studio with its own admin token and records what
Label Studio holds (``apply_webhook``); nothing the payload says about an
annotation is recorded. Bodies over ``WEBHOOK_MAX_BYTES`` are refused (413),
ids that are not whole numbers from 1 to 2**31-1 too (422). When Label Studio
cannot be read the answer is 503 and nothing changes; ``sabha annotations
sync`` recovers it later, as it recovers webhooks that never arrive. A call
that changes judgements of model answers refreshes the community columns of
the leaderboards before it answers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from flask import Blueprint, Flask, jsonify, request
from flask.typing import ResponseReturnValue

from sabha.annotation.labelstudio import WEBHOOK_SECRET_HEADER, LabelStudioClient, LabelStudioError
from sabha.annotation.sync import SyncReport
from sabha.platform.db import get_engine
from sabha.platform.errors import SabhaError
from sabha.platform.services.annotation import (
    WebhookRefused,
    apply_webhook,
    webhook_notice,
    webhook_secret_matches,
)
from sabha.platform.services.community_scores import refresh_community_scores
from sabha.platform.services.labelstudio import connect_labelstudio
from sabha.platform.settings import current_settings
from sabha.platform.web.security import set_request_size_limit

__all__ = ["WEBHOOK_MAX_BYTES", "init_app"]

WEBHOOK_MAX_BYTES = 1024 * 1024
"""The largest webhook body read (Label Studio's notices are a few kilobytes; a bulk
deletion of 10,000 annotations is about 200 kB)."""

hooks = Blueprint("labelstudio_hooks", __name__)
logger = logging.getLogger("sabha.web.labelstudio_hooks")


def _refusal(status: int, error: str, hint: str | None = None) -> ResponseReturnValue:
    return jsonify(error=error, hint=hint), status


def _read_payload() -> object:
    """The JSON body, at most ``WEBHOOK_MAX_BYTES`` of it.

    Raises:
        _TooLarge: the body is larger than ``WEBHOOK_MAX_BYTES``.
        _NotJson: it is not JSON.
    """
    length = request.content_length
    if length is not None and length > WEBHOOK_MAX_BYTES:
        raise _TooLarge(length)
    body = request.stream.read(WEBHOOK_MAX_BYTES + 1)
    if len(body) > WEBHOOK_MAX_BYTES:
        raise _TooLarge(None)
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise _NotJson(
            "The webhook body is not JSON (or is nested too deeply).", "Send Label Studio's JSON."
        ) from None


class _TooLarge(Exception):
    def __init__(self, length: int | None) -> None:
        super().__init__(length)
        self.length = length


class _NotJson(WebhookRefused):
    http_status = 400


@hooks.post("/hooks/labelstudio")
def labelstudio_webhook() -> ResponseReturnValue:
    """Treat one webhook call from Label Studio as a notice: read the tasks back, record that."""
    settings = current_settings()
    if not webhook_secret_matches(
        settings.label_studio_webhook_secret, request.headers.get(WEBHOOK_SECRET_HEADER)
    ):
        return _refusal(401, "unknown caller: the webhook secret is missing or wrong")
    db = get_engine()
    try:
        notice = webhook_notice(_read_payload())
        if not notice.annotation_ids:
            return jsonify(asdict(SyncReport())), 200  # an event that does not concern Sabha
        clients: dict[bool, LabelStudioClient] = {}

        def client_for(private: bool) -> LabelStudioClient:
            if private not in clients:  # the community or the private server, when needed
                clients[private] = connect_labelstudio(settings, private=private)
            return clients[private]

        report = apply_webhook(db, client_for, notice, max_text_chars=settings.max_field_chars)
    except _TooLarge as exc:
        size = f"{exc.length} bytes" if exc.length is not None else "too large"
        return _refusal(
            413,
            f"The webhook body is {size}; at most {WEBHOOK_MAX_BYTES} bytes are read.",
            "Label Studio's notices are small; nothing was changed.",
        )
    except WebhookRefused as exc:
        return _refusal(getattr(exc, "http_status", 422), exc.message, exc.hint)
    except (LabelStudioError, SabhaError) as exc:
        logger.warning("webhook notice not applied: Label Studio cannot be read: %s", exc)
        return _refusal(
            503,
            f"Sabha cannot read the annotations back from Label Studio: {exc.message}",
            "Nothing was changed; `sabha annotations sync` recovers it once Label Studio answers.",
        )
    if report.judged and report.changed():
        refresh_community_scores(db)  # stored first: a failure here loses no annotation
    return jsonify(asdict(report)), 200


def init_app(app: Flask) -> None:
    """Register the Label Studio webhook endpoint (exempt from CSRF: it is a machine caller)."""
    app.register_blueprint(hooks)
    # Label Studio's notices carry whole annotations: they get their own bound.
    set_request_size_limit(
        app, "labelstudio_hooks.labelstudio_webhook", WEBHOOK_MAX_BYTES, "WEBHOOK_MAX_BYTES"
    )
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(labelstudio_webhook)
