"""The endpoint Label Studio calls when an annotation changes.

``POST /hooks/labelstudio`` takes Label Studio's webhook JSON. Every call must
carry the shared secret (``SABHA_LABEL_STUDIO_WEBHOOK_SECRET``) in the
``X-Sabha-Webhook-Secret`` header; a call without it is refused with 401 and
changes nothing. With no secret configured the endpoint refuses every call.
A call that changes judgements of model answers (a judging project) refreshes
the community columns of the leaderboards before it answers. A webhook that
never arrives is recovered by ``sabha annotations sync``, which refreshes them too.
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from sabha.annotation.labelstudio import WEBHOOK_SECRET_HEADER
from sabha.platform.services.annotation import WebhookRefused, apply_webhook, webhook_secret_matches
from sabha.platform.services.judging import refresh_community_scores

__all__ = ["init_app"]

hooks = Blueprint("labelstudio_hooks", __name__)


@hooks.post("/hooks/labelstudio")
def labelstudio_webhook() -> ResponseReturnValue:
    """Apply one webhook call from Label Studio (an upsert by annotation id)."""
    settings = current_app.extensions["sabha.settings"]
    if not webhook_secret_matches(
        settings.label_studio_webhook_secret, request.headers.get(WEBHOOK_SECRET_HEADER)
    ):
        return jsonify(error="unknown caller: the webhook secret is missing or wrong"), 401
    payload = request.get_json(silent=True)
    db = current_app.extensions["sabha.db"]
    try:
        report = apply_webhook(db, payload)
    except WebhookRefused as exc:
        return jsonify(error=exc.message, hint=exc.hint), 400
    if report.judged and report.changed():
        refresh_community_scores(db)  # stored first: a failure here loses no annotation
    return jsonify(asdict(report)), 200


def init_app(app: Flask) -> None:
    """Register the Label Studio webhook endpoint (exempt from CSRF: it is a machine caller)."""
    app.register_blueprint(hooks)
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(labelstudio_webhook)
