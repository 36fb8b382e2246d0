"""Personal access tokens, pool credentials (OAuth2 clients) and worker tokens.

Plaintext tokens and secrets are returned once, when made, and never stored:
tokens as their SHA-256 (they are long random strings, so a fast hash is
safe and keeps every API call fast), client secrets as Argon2 hashes (checked
only when a pool asks for an access token). Every function takes the
caller's session and only flushes. Import these names from
``sabha.platform.services.accounts``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from sabha.platform.domain import (
    AccessToken,
    PoolCredential,
    Role,
    TokenScope,
    User,
    WorkerToken,
    as_utc,
    id_of,
    utcnow,
)
from sabha.platform.errors import (
    AuthenticationFailed,
    NotFoundError,
    PermissionDenied,
    ValidationFailed,
)
from sabha.platform.settings import Settings

from .users import allowed_scopes, check_text, dummy_hash, password_hasher, roles_of

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "POOL_CLIENT_PREFIX",
    "WORKER_SCOPE",
    "WORKER_TOKEN_PREFIX",
    "access_token_use_due",
    "create_access_token",
    "create_pool_credential",
    "identify_bearer_token",
    "issue_worker_token",
    "list_access_tokens",
    "list_pool_credentials",
    "revoke_access_token",
    "revoke_pool_credential",
    "revoke_worker_token",
    "verify_access_token",
    "verify_client_secret",
    "verify_worker_token",
]

ACCESS_TOKEN_PREFIX = "sabha_pat_"
WORKER_TOKEN_PREFIX = "sabha_wkr_"
POOL_CLIENT_PREFIX = "sabha_pool_"
_CLIENT_SECRET_PREFIX = "sabha_pcs_"
WORKER_SCOPE = "worker"
_TOKEN = re.compile(r"(sabha_(?:pat|wkr)_)([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_LAST_USED_RESOLUTION = timedelta(minutes=1)
_POOL_ROLES = frozenset({Role.VOLUNTEER, Role.ADMIN})


def _token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _new_token(prefix: str) -> tuple[str, str]:
    """A fresh (lookup, plaintext) pair: ``<prefix><16 hex>_<43 url-safe chars>``."""
    lookup = secrets.token_hex(8)
    return lookup, f"{prefix}{lookup}_{secrets.token_urlsafe(32)}"


def _lookup_of(plaintext: str, prefix: str) -> str | None:
    match = _TOKEN.fullmatch(plaintext.strip()) if len(plaintext) < 200 else None
    if match is None or match.group(1) != prefix:
        return None
    return match.group(2)


def _digest_matches(stored: str | None, plaintext: str) -> bool:
    # Compared even when no row was found, so unknown and wrong take as long.
    return hmac.compare_digest(stored or "0" * 64, _token_hash(plaintext)) and stored is not None


def _parse_scopes(scopes: Iterable[TokenScope | str]) -> frozenset[TokenScope]:
    parsed: set[TokenScope] = set()
    for scope in scopes:
        try:
            parsed.add(TokenScope(scope))
        except ValueError:
            known = ", ".join(s.value for s in TokenScope)
            raise ValidationFailed(
                "The scopes are not valid.",
                [f"scopes: {scope!r} is not a scope"],
                f"Use one or more of: {known}.",
            ) from None
    if not parsed:
        raise ValidationFailed(
            "The scopes are not valid.",
            ["scopes: none given"],
            "Give at least one scope: " + ", ".join(s.value for s in TokenScope) + ".",
        )
    return frozenset(parsed)


# -- personal access tokens ----------------------------------------------------------------


def create_access_token(
    session: Session,
    user: User,
    name: str,
    scopes: Iterable[TokenScope | str],
    *,
    expires_in_days: int = 90,
    max_days: int | None = None,
) -> tuple[AccessToken, str]:
    """A new personal access token for ``user`` and its plaintext (show it once).

    Args:
        expires_in_days: 1 to ``max_days`` (``SABHA_TOKEN_MAX_DAYS``, 366).

    Raises:
        ValidationFailed: bad name, unknown scope or lifetime out of range.
        PermissionDenied: a scope the user's roles do not allow, or a disabled user.
    """
    name = check_text("token name", name, 100)
    wanted = _parse_scopes(scopes)
    limit = max_days if max_days is not None else Settings().token_max_days
    if not 1 <= expires_in_days <= limit:
        raise ValidationFailed(
            "The token lifetime is not valid.",
            [f"expires_in_days: {expires_in_days} is not between 1 and {limit}"],
            f"Choose 1 to {limit} days.",
        )
    if not user.is_active:
        raise PermissionDenied(f"The account {user.username} is disabled.", "Ask an admin.")
    roles = roles_of(session, user)
    extra = wanted - allowed_scopes(roles)
    if extra:
        held = ", ".join(sorted(roles)) or "no roles"
        raise PermissionDenied(
            f"{user.username} may not hold tokens with scope "
            f"{', '.join(sorted(extra))} (roles: {held}).",
            "Ask an admin for the role that gives this scope, or leave the scope out.",
        )
    lookup, plaintext = _new_token(ACCESS_TOKEN_PREFIX)
    now = utcnow()
    token = AccessToken(
        user_id=id_of(user),
        name=name,
        lookup=lookup,
        token_hash=_token_hash(plaintext),
        scopes=sorted(wanted),
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days),
    )
    session.add(token)
    session.flush()
    return token, plaintext


def verify_access_token(
    session: Session, plaintext: str, record_use: bool = True
) -> tuple[User, frozenset[TokenScope]]:
    """The user a personal access token belongs to and the scopes it still carries.

    The scopes are those of the token that the user's roles allow now: a
    revoked role takes its scopes from existing tokens. With ``record_use``
    it records the time of use (at most once a minute), so call it inside
    ``session_scope``; without, it only reads (:func:`access_token_use_due`).

    Raises:
        AuthenticationFailed: a malformed, unknown, revoked or expired token,
            or a disabled user.
    """
    hint = "Create a new token with `sabha tokens create` or on your account page."
    lookup = _lookup_of(plaintext, ACCESS_TOKEN_PREFIX)
    token = None
    if lookup is not None:
        token = session.exec(select(AccessToken).where(AccessToken.lookup == lookup)).first()
    if not _digest_matches(token.token_hash if token else None, plaintext.strip()):
        raise AuthenticationFailed("The access token is not valid.", hint)
    assert token is not None
    now = utcnow()
    if token.revoked_at is not None:
        raise AuthenticationFailed("The access token was revoked.", hint)
    if as_utc(token.expires_at) <= now:
        raise AuthenticationFailed(
            f"The access token expired on {as_utc(token.expires_at):%Y-%m-%d %H:%M} UTC.", hint
        )
    user = session.get(User, token.user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("The account of this access token is disabled.", "Ask an admin.")
    if record_use and _use_due(token):
        token.last_used_at = now
        session.add(token)
        session.flush()
    known = {scope.value for scope in TokenScope}
    granted = frozenset(TokenScope(s) for s in token.scopes if s in known)
    return user, granted & allowed_scopes(roles_of(session, user))


def _use_due(token: AccessToken) -> bool:
    last = token.last_used_at
    return last is None or utcnow() - as_utc(last) >= _LAST_USED_RESOLUTION


def access_token_use_due(session: Session, plaintext: str) -> bool:
    """Whether a use of this access token is due to be recorded (reads only)."""
    lookup = _lookup_of(plaintext, ACCESS_TOKEN_PREFIX)
    query = select(AccessToken).where(AccessToken.lookup == lookup)
    token = session.exec(query).first() if lookup else None
    return token is not None and _use_due(token)


def identify_bearer_token(session: Session, plaintext: str) -> str | None:
    """Whose bearer token this is, for rate limits: ``user:<id>`` or ``pool:<credential id>``.

    None for anything that is not a valid, unexpired, unrevoked token of an
    active account. Reads only (records no use), so it can run before the
    request is authenticated; tokens of one user or one pool share a name, so
    making more tokens does not make more room.
    """
    plaintext = plaintext.strip()
    now = utcnow()
    if plaintext.startswith(WORKER_TOKEN_PREFIX):
        worker = _worker_token_row(session, plaintext)
        if worker is None or worker.revoked_at is not None or as_utc(worker.expires_at) <= now:
            return None
        credential = session.get(PoolCredential, worker.credential_id)
        if credential is None or not _credential_usable(session, credential):
            return None
        return f"pool:{credential.id}"
    lookup = _lookup_of(plaintext, ACCESS_TOKEN_PREFIX)
    token = None
    if lookup is not None:
        token = session.exec(select(AccessToken).where(AccessToken.lookup == lookup)).first()
    if not _digest_matches(token.token_hash if token else None, plaintext):
        return None
    assert token is not None
    if token.revoked_at is not None or as_utc(token.expires_at) <= now:
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.is_active:
        return None
    return f"user:{user.id}"


def list_access_tokens(session: Session, user: User) -> list[AccessToken]:
    """The tokens of ``user``, newest first, revoked and expired ones included."""
    return list(
        session.exec(
            select(AccessToken)
            .where(AccessToken.user_id == user.id)
            .order_by(col(AccessToken.created_at).desc(), col(AccessToken.id).desc())
        )
    )


def revoke_access_token(session: Session, actor: User, token_id: int) -> AccessToken:
    """Revoke a token: ``actor``'s own, or anyone's when ``actor`` is an admin.

    Revoking a revoked token changes nothing.

    Raises:
        NotFoundError: no such token among those ``actor`` may revoke.
    """
    token = session.get(AccessToken, token_id)
    if token is None or (token.user_id != actor.id and Role.ADMIN not in roles_of(session, actor)):
        raise NotFoundError(
            f"{actor.username} has no access token with id {token_id}.",
            "List the tokens with `sabha tokens list --user USERNAME`.",
        )
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
        session.flush()
    return token


# -- pool credentials and worker tokens ------------------------------------------------------


def create_pool_credential(session: Session, owner: User, name: str) -> tuple[PoolCredential, str]:
    """A new OAuth2 client for one of ``owner``'s pools, and its secret (show it once).

    Raises:
        ValidationFailed: a bad name.
        PermissionDenied: ``owner`` is neither a volunteer nor an admin, or is disabled.
    """
    name = check_text("credential name", name, 100)
    if not owner.is_active or not _POOL_ROLES & roles_of(session, owner):
        raise PermissionDenied(
            f"{owner.username} may not create pool credentials: that needs the volunteer role.",
            "Ask an admin to grant the volunteer role.",
        )
    secret = _CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)
    credential = PoolCredential(
        owner_id=id_of(owner),
        name=name,
        client_id=POOL_CLIENT_PREFIX + secrets.token_hex(12),
        secret_hash=password_hasher().hash(secret),
        scopes=[WORKER_SCOPE],
    )
    session.add(credential)
    session.flush()
    return credential, secret


def list_pool_credentials(session: Session, owner: User) -> list[PoolCredential]:
    """The pool credentials of ``owner``, newest first, revoked ones included."""
    return list(
        session.exec(
            select(PoolCredential)
            .where(PoolCredential.owner_id == owner.id)
            .order_by(col(PoolCredential.created_at).desc(), col(PoolCredential.id).desc())
        )
    )


def revoke_pool_credential(session: Session, actor: User, credential_id: int) -> PoolCredential:
    """Revoke a pool credential and every worker token issued to it.

    ``actor`` revokes their own credentials; an admin revokes anyone's.

    Raises:
        NotFoundError: no such credential among those ``actor`` may revoke.
    """
    credential = session.get(PoolCredential, credential_id)
    if credential is None or (
        credential.owner_id != actor.id and Role.ADMIN not in roles_of(session, actor)
    ):
        raise NotFoundError(
            f"{actor.username} has no pool credential with id {credential_id}.",
            "List them with `sabha credentials list --user USERNAME`.",
        )
    now = utcnow()
    if credential.revoked_at is None:
        credential.revoked_at = now
        session.add(credential)
    for token in session.exec(
        select(WorkerToken).where(
            WorkerToken.credential_id == credential.id, col(WorkerToken.revoked_at).is_(None)
        )
    ):
        token.revoked_at = now
        session.add(token)
    session.flush()
    return credential


def _credential_usable(session: Session, credential: PoolCredential) -> bool:
    if credential.revoked_at is not None:
        return False
    owner = session.get(User, credential.owner_id)
    return owner is not None and owner.is_active and bool(_POOL_ROLES & roles_of(session, owner))


def verify_client_secret(session: Session, client_id: str, secret: str) -> PoolCredential:
    """The pool credential ``client_id`` if ``secret`` is its secret and it is usable.

    A credential stops working when revoked, or when its owner is disabled
    or loses the volunteer role.

    Raises:
        AuthenticationFailed: unknown client, wrong secret, or unusable credential.
    """
    credential = None
    if len(client_id) <= 64 and len(secret) <= 200:
        credential = session.exec(
            select(PoolCredential).where(PoolCredential.client_id == client_id)
        ).first()
    hasher = password_hasher()
    stored = credential.secret_hash if credential is not None else None
    try:
        hasher.verify(stored or dummy_hash(), secret[:200])
        matches = stored is not None
    except (VerificationError, InvalidHashError):
        matches = False
    if credential is None or not matches or not _credential_usable(session, credential):
        raise AuthenticationFailed(
            "The client id or secret is not correct, or the credential was revoked.",
            "Create a new pool credential on your account page or with `sabha credentials create`.",
        )
    assert stored is not None
    if hasher.check_needs_rehash(stored):
        credential.secret_hash = hasher.hash(secret)
    credential.last_used_at = utcnow()
    session.add(credential)
    session.flush()
    return credential


def issue_worker_token(
    session: Session,
    credential: PoolCredential,
    scope: str = WORKER_SCOPE,
    *,
    lifetime_seconds: int | None = None,
) -> tuple[WorkerToken, str, int]:
    """A short-lived access token for a pool credential: (row, plaintext, expires_in seconds).

    Args:
        lifetime_seconds: defaults to ``SABHA_WORKER_TOKEN_SECONDS`` (900).

    Raises:
        PermissionDenied: ``scope`` is not one the credential may have.
    """
    if scope not in credential.scopes:
        raise PermissionDenied(
            f"The pool credential {credential.client_id} may not have scope {scope!r}.",
            f"Ask for one of: {', '.join(credential.scopes)}.",
        )
    seconds = lifetime_seconds if lifetime_seconds is not None else Settings().worker_token_seconds
    lookup, plaintext = _new_token(WORKER_TOKEN_PREFIX)
    now = utcnow()
    token = WorkerToken(
        credential_id=id_of(credential),
        lookup=lookup,
        token_hash=_token_hash(plaintext),
        scope=scope,
        issued_at=now,
        expires_at=now + timedelta(seconds=seconds),
    )
    session.add(token)
    session.flush()
    return token, plaintext, seconds


def _worker_token_row(session: Session, plaintext: str) -> WorkerToken | None:
    lookup = _lookup_of(plaintext, WORKER_TOKEN_PREFIX)
    token = None
    if lookup is not None:
        token = session.exec(select(WorkerToken).where(WorkerToken.lookup == lookup)).first()
    if not _digest_matches(token.token_hash if token else None, plaintext.strip()):
        return None
    return token


def verify_worker_token(session: Session, plaintext: str) -> PoolCredential:
    """The pool credential a worker access token was issued to.

    Raises:
        AuthenticationFailed: a malformed, unknown, revoked or expired token,
            or a credential that is revoked or whose owner lost the volunteer role.
    """
    token = _worker_token_row(session, plaintext)
    credential = session.get(PoolCredential, token.credential_id) if token else None
    if (
        token is None
        or credential is None
        or token.revoked_at is not None
        or as_utc(token.expires_at) <= utcnow()
        or not _credential_usable(session, credential)
    ):
        raise AuthenticationFailed(
            "The worker access token is not valid: unknown, expired or revoked.",
            "Ask for a new one with the pool's client credentials.",
        )
    return credential


def revoke_worker_token(
    session: Session, plaintext: str, credential: PoolCredential | None = None
) -> None:
    """Revoke a worker access token (RFC 7009: an unknown token is not an error).

    Args:
        credential: the client asking; a token issued to another client is
            left alone.
    """
    token = _worker_token_row(session, plaintext)
    if token is None or token.revoked_at is not None:
        return
    if credential is not None and token.credential_id != credential.id:
        return
    token.revoked_at = utcnow()
    session.add(token)
    session.flush()
