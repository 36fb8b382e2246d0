"""A volunteer's pool page: machines, leases now, reputation and why, waiting results, credit.

``/pools/<id>`` is for the pool's owner and admins; for anyone else the pool
reads as missing (404), exactly as an id that was never used. The account
page's "Your pools" links here.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template
from flask.typing import ResponseReturnValue

from sabha.platform.db import get_engine
from sabha.platform.domain import Role
from sabha.platform.errors import SabhaError
from sabha.platform.services.pool_status import pool_status
from sabha.platform.services.verification import VerificationPolicy
from sabha.platform.settings import current_settings

from .auth import current_roles, login_required, render_refusal, signed_in_user

__all__ = ["blueprint", "init_app"]

blueprint = Blueprint("pools", __name__, template_folder="templates")
blueprint.register_error_handler(SabhaError, render_refusal)


def init_app(app: Flask) -> None:
    """Register the pool pages."""
    app.register_blueprint(blueprint)


@blueprint.get("/pools/<dbid:pool_id>")
@login_required
def pool_page(pool_id: int) -> ResponseReturnValue:
    """One of my pools (any pool, for an admin)."""
    shown = pool_status(
        get_engine(),
        pool_id,
        signed_in_user().id or 0,
        Role.ADMIN in current_roles(),
        VerificationPolicy.from_settings(current_settings()),
    )
    return render_template("pool.html", pool=shown, p=shown.activity)
