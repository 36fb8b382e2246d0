"""Sign-ins kept on the server: start, look up, end (one or all of a user's).

The browser's cookie holds only a random session id; the ``web_session``
table holds its SHA-256, so the database alone does not sign anyone in.
A session is valid while it has not ended (sign-out, password change), was
used within ``idle`` and began within ``lifetime``; re-signing or copying
the cookie extends neither. Every function takes the caller's session and
only flushes. Import these names from ``sabha.platform.services.accounts``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlmodel import Session, col, delete, or_, select, update

from sabha.platform.domain import WebSession, as_utc, utcnow

__all__ = [
    "end_user_web_sessions",
    "end_web_session",
    "find_web_session",
    "web_session_needs_touch",
    "start_web_session",
    "touch_web_session",
]

# How often a session's last use is written down: idle limits are hours, so a
# minute of slack saves a write on every page.
_LAST_SEEN_RESOLUTION = timedelta(minutes=1)
_MAX_SESSION_ID_CHARS = 100


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def start_web_session(session: Session, user_id: int, lifetime: timedelta) -> str:
    """Start a session for a user and return its id (for the cookie only; never stored).

    The user's sessions that have ended or outlived ``lifetime`` are deleted on the way.
    """
    now = utcnow()
    session.exec(
        delete(WebSession).where(
            col(WebSession.user_id) == user_id,
            or_(col(WebSession.ended_at).is_not(None), col(WebSession.created_at) < now - lifetime),
        )
    )
    session_id = secrets.token_urlsafe(32)
    session.add(
        WebSession(user_id=user_id, secret_hash=_hash(session_id), created_at=now, last_seen_at=now)
    )
    session.flush()
    return session_id


def find_web_session(
    session: Session, session_id: str, idle: timedelta, lifetime: timedelta
) -> WebSession | None:
    """The live session ``session_id`` names, or None (unknown, ended, idle or too old).

    Reads only; the caller checks that the user is still active.
    """
    if not session_id or len(session_id) > _MAX_SESSION_ID_CHARS:
        return None
    row = session.exec(
        select(WebSession).where(WebSession.secret_hash == _hash(session_id))
    ).first()
    now = utcnow()
    if (
        row is None
        or row.ended_at is not None
        or now - as_utc(row.last_seen_at) >= idle
        or now - as_utc(row.created_at) >= lifetime
    ):
        return None
    return row


def touch_web_session(session: Session, web_session_id: int) -> None:
    """Record a use of a live session (at most once a minute)."""
    now = utcnow()
    session.exec(
        update(WebSession)
        .where(
            col(WebSession.id) == web_session_id,
            col(WebSession.ended_at).is_(None),
            col(WebSession.last_seen_at) < now - _LAST_SEEN_RESOLUTION,
        )
        .values(last_seen_at=now)
    )


def web_session_needs_touch(row: WebSession) -> bool:
    """Whether ``row``'s last use is older than the resolution it is recorded at."""
    return utcnow() - as_utc(row.last_seen_at) >= _LAST_SEEN_RESOLUTION


def end_web_session(session: Session, session_id: str) -> None:
    """End the session ``session_id`` names (signing out); an unknown one is no error."""
    if not session_id or len(session_id) > _MAX_SESSION_ID_CHARS:
        return
    session.exec(
        update(WebSession)
        .where(col(WebSession.secret_hash) == _hash(session_id), col(WebSession.ended_at).is_(None))
        .values(ended_at=utcnow())
    )


def end_user_web_sessions(session: Session, user_id: int) -> int:
    """End every live session of a user (a password change, a disabled account).

    Returns:
        How many sessions ended.
    """
    result = session.exec(
        update(WebSession)
        .where(col(WebSession.user_id) == user_id, col(WebSession.ended_at).is_(None))
        .values(ended_at=utcnow())
    )
    return int(result.rowcount or 0)
