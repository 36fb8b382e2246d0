"""Users, passwords, external identities and roles.

Every function takes the caller's session and only flushes: the caller's
``session_scope`` decides when the change commits. Import these names from
``sabha.platform.services.accounts``, the public face of accounts.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from collections.abc import Iterable
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from sabha.platform.domain import (
    ROLE_SCOPES,
    Identity,
    Role,
    RoleGrant,
    TokenScope,
    User,
    id_of,
    utcnow,
)
from sabha.platform.errors import (
    AuthenticationFailed,
    NotFoundError,
    PermissionDenied,
    SabhaError,
    ValidationFailed,
)

from .web_sessions import end_user_web_sessions

__all__ = [
    "PASSWORD_MAX_CHARS",
    "PASSWORD_MIN_CHARS",
    "USERNAME_MAX_CHARS",
    "USERNAME_MIN_CHARS",
    "allowed_scopes",
    "authenticate_password",
    "check_text",
    "create_admin",
    "create_user",
    "dummy_hash",
    "find_or_create_oidc_user",
    "get_user",
    "grant_role",
    "list_users",
    "parse_role",
    "password_hasher",
    "revoke_role",
    "roles_of",
    "set_password",
    "username_key",
]

USERNAME_MIN_CHARS = 3
USERNAME_MAX_CHARS = 64
PASSWORD_MIN_CHARS = 12
PASSWORD_MAX_CHARS = 1024
_USERNAME_PUNCTUATION = frozenset("._-")
_SIGN_IN_FAILED = "The username or password is not correct."
_SIGN_IN_HINT = "Check both and try again; an admin can reset a forgotten password."


def password_hasher() -> PasswordHasher:
    """The one Argon2id hasher: argon2-cffi's RFC 9106 low-memory profile.

    ``SABHA_PASSWORD_HASHING=fast-insecure-for-tests`` (a setting that
    ``Settings.check_production`` refuses) makes it Argon2id at its cheapest,
    so a test suite that creates hundreds of accounts does not spend minutes
    hashing.
    """
    return _hasher(os.environ.get("SABHA_PASSWORD_HASHING", "argon2id"))


@cache
def _hasher(profile: str) -> PasswordHasher:
    if profile == "fast-insecure-for-tests":
        return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return PasswordHasher()


def dummy_hash() -> str:
    """An Argon2 hash of nothing anyone knows: verified against when the user or client
    is unknown, so that answer takes as long as a wrong password."""
    return _dummy_hash(os.environ.get("SABHA_PASSWORD_HASHING", "argon2id"))


@cache
def _dummy_hash(profile: str) -> str:
    return _hasher(profile).hash(secrets.token_urlsafe(16))


def _invalid(field: str, problem: str, hint: str) -> ValidationFailed:
    return ValidationFailed(f"The {field} is not valid.", [f"{field}: {problem}"], hint)


def check_text(field: str, value: str, max_chars: int, *, required: bool = True) -> str:
    """``value`` NFC-normalised, checked for length and control characters.

    Raises:
        ValidationFailed: empty (when required), too long, or holding control characters.
    """
    value = unicodedata.normalize("NFC", value)
    if required and not value.strip():
        raise _invalid(field, "it is empty", f"Give a {field} of 1 to {max_chars} characters.")
    if len(value) > max_chars:
        raise _invalid(
            field,
            f"it has {len(value)} characters, more than {max_chars}",
            f"Shorten the {field} to at most {max_chars} characters.",
        )
    if any(unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co", "Cn"} for c in value):
        raise _invalid(
            field,
            "it holds control or invisible characters",
            f"Remove them from the {field}.",
        )
    return value


def _username_char_ok(char: str) -> bool:
    return char in _USERNAME_PUNCTUATION or unicodedata.category(char)[0] in "LMN"


def _check_username(username: str) -> str:
    name = unicodedata.normalize("NFC", username)
    rule = (
        f"Use {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} letters or digits of any script, "
        "'.', '_' or '-', starting with a letter or digit and with at least one letter."
    )
    if not USERNAME_MIN_CHARS <= len(name) <= USERNAME_MAX_CHARS:
        raise _invalid("username", f"it has {len(name)} characters", rule)
    bad = sorted({c for c in name if not _username_char_ok(c)})
    if bad:
        shown = ", ".join(repr(c) if c.isprintable() else f"U+{ord(c):04X}" for c in bad)
        raise _invalid("username", f"it contains {shown}", rule)
    if unicodedata.category(name[0])[0] not in "LN":
        raise _invalid("username", f"it starts with {name[0]!r}", rule)
    if not any(unicodedata.category(c)[0] == "L" for c in name):
        raise _invalid("username", "it has no letter", rule)
    return name


def username_key(username: str) -> str:
    """The case-insensitive key a username is unique by (NFC, case-folded)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", username).casefold())


def _check_password(password: str) -> str:
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        raise _invalid(
            "password",
            f"it has {len(password)} characters",
            f"Use {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters; "
            "a few unrelated words make a good one.",
        )
    return password


def _check_email(email: str | None) -> str | None:
    if email is None:
        return None
    email = check_text("email", email, 320)
    if re.fullmatch(r"[^@\s]+@[^@\s]+", email) is None:
        raise _invalid("email", f"{email!r} is not an email address", "Give name@example.org.")
    return email


def _username_taken(session: Session, key: str) -> bool:
    return session.exec(select(User.id).where(User.username_key == key)).first() is not None


def create_user(
    session: Session,
    username: str,
    *,
    password: str | None = None,
    display_name: str | None = None,
    email: str | None = None,
    roles: Iterable[Role | str] = (),
) -> User:
    """Create a user; without a password they can sign in only through an identity provider.

    Raises:
        ValidationFailed: a bad username, password, display name, email or role.
        SabhaError: the username is taken (regardless of case).
    """
    name = _check_username(username)
    role_list = [parse_role(r) for r in roles]
    if password is not None:
        _check_password(password)
    if display_name is not None:
        display_name = check_text("display name", display_name, 200)
    email = _check_email(email)
    key = username_key(name)
    if _username_taken(session, key):
        raise SabhaError(
            f"The username {name!r} is taken.",
            "Choose another username (usernames are unique regardless of case).",
        )
    user = User(
        username=name,
        username_key=key,
        display_name=display_name,
        email=email,
        password_hash=password_hasher().hash(password) if password is not None else None,
    )
    session.add(user)
    session.flush()
    for role in role_list:
        grant_role(session, user, role)
    return user


def create_admin(session: Session, username: str, password: str) -> User:
    """Create a user with a password and the admin role (the first admin of a deployment)."""
    return create_user(session, username, password=password, roles=[Role.ADMIN])


def authenticate_password(session: Session, username: str, password: str) -> User:
    """The active user whose username and password these are; records the sign-in.

    Unknown users, wrong passwords, disabled accounts and accounts without a
    password all fail with the same message after the same Argon2 work.

    Raises:
        AuthenticationFailed: the username or password is not correct.
    """
    user = None
    plausible = len(password) <= PASSWORD_MAX_CHARS and len(username) <= 4 * USERNAME_MAX_CHARS
    if plausible:
        user = session.exec(select(User).where(User.username_key == username_key(username))).first()
    stored = user.password_hash if user is not None and user.password_hash else None
    hasher = password_hasher()
    try:
        hasher.verify(stored or dummy_hash(), password[:PASSWORD_MAX_CHARS])
    except (VerificationError, InvalidHashError):
        stored = None
    if user is None or stored is None or not user.is_active or not plausible:
        raise AuthenticationFailed(_SIGN_IN_FAILED, _SIGN_IN_HINT)
    if hasher.check_needs_rehash(stored):
        user.password_hash = hasher.hash(password)
    user.last_login_at = utcnow()
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Set or replace a user's password; every session of the user ends.

    Raises:
        ValidationFailed: the password is too short or too long.
    """
    user.password_hash = password_hasher().hash(_check_password(password))
    session.add(user)
    session.flush()
    end_user_web_sessions(session, id_of(user))


def _username_from_claims(preferred_username: str | None, email: str | None) -> str:
    for candidate in (preferred_username, (email or "").partition("@")[0]):
        if not candidate:
            continue
        name = unicodedata.normalize("NFC", candidate)
        name = "".join(c if _username_char_ok(c) else "-" for c in name)
        name = name.lstrip("._-")
        while name and unicodedata.category(name[0])[0] not in "LN":
            name = name[1:]
        name = name[: USERNAME_MAX_CHARS - 4]
        if len(name) >= USERNAME_MIN_CHARS and any(unicodedata.category(c)[0] == "L" for c in name):
            return name
    return "user"


def find_or_create_oidc_user(
    session: Session,
    issuer: str,
    subject: str,
    *,
    email: str | None = None,
    preferred_username: str | None = None,
    name: str | None = None,
) -> User:
    """The user linked to the provider account (issuer, subject); a new user the first time.

    Accounts are linked by (issuer, subject) only, never by email: an email
    claim is not proof of owning the Sabha account that has that address.
    A new user's username comes from ``preferred_username`` or the email's
    local part, with a numeric suffix when taken. New users get no roles.

    Raises:
        ValidationFailed: the issuer or subject is empty or too long.
        AuthenticationFailed: the linked account is disabled.
    """
    issuer = check_text("issuer", issuer, 500)
    subject = check_text("subject", subject, 255)
    try:
        email = _check_email(email)
    except ValidationFailed:
        email = None  # a provider's odd email claim is not worth refusing the sign-in
    identity = session.exec(
        select(Identity).where(Identity.issuer == issuer, Identity.subject == subject)
    ).first()
    if identity is not None:
        user = session.get(User, identity.user_id)
        assert user is not None
        if not user.is_active:
            raise AuthenticationFailed(
                "This account is disabled.", "Ask an admin of this Sabha to enable it."
            )
        if email and identity.email != email:
            identity.email = email
            session.add(identity)
    else:
        base = _username_from_claims(preferred_username, email)
        username, suffix = base, 1
        while _username_taken(session, username_key(username)):
            suffix += 1
            username = f"{base}-{suffix}"
        display_name = None
        if name:
            try:
                display_name = check_text("display name", name[:200], 200)
            except ValidationFailed:
                display_name = None
        user = User(
            username=username,
            username_key=username_key(username),
            display_name=display_name,
            email=email,
        )
        session.add(user)
        session.flush()
        session.add(Identity(user_id=id_of(user), issuer=issuer, subject=subject, email=email))
    user.last_login_at = utcnow()
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username_or_id: str | int) -> User:
    """The user with this id (an int) or username (any case).

    Raises:
        NotFoundError: no such user.
    """
    user: User | None
    if isinstance(username_or_id, int):
        user = session.get(User, username_or_id)
    else:
        user = session.exec(
            select(User).where(User.username_key == username_key(username_or_id))
        ).first()
        if user is None and username_or_id.isdigit():
            user = session.get(User, int(username_or_id))
    if user is None:
        raise NotFoundError(
            f"There is no user {username_or_id!r}.", "List the users with `sabha users list`."
        )
    return user


def list_users(session: Session) -> list[User]:
    """Every user, in order of username."""
    return list(session.exec(select(User).order_by(col(User.username_key))))


def parse_role(role: Role | str) -> Role:
    """The role named ``role``.

    Raises:
        ValidationFailed: no such role (the message lists the known ones).
    """
    try:
        return Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise _invalid("role", f"{role!r} is not a role", f"Use one of: {known}.") from None


def roles_of(session: Session, user: User) -> frozenset[Role]:
    """The roles ``user`` holds now."""
    rows = session.exec(select(RoleGrant.role).where(RoleGrant.user_id == user.id))
    return frozenset(Role(r) for r in rows)


def allowed_scopes(roles: Iterable[Role]) -> frozenset[TokenScope]:
    """The token scopes a user with ``roles`` may hold."""
    scopes: frozenset[TokenScope] = frozenset()
    for role in roles:
        scopes |= ROLE_SCOPES[Role(role)]
    return scopes


def grant_role(
    session: Session, user: User, role: Role | str, granted_by: User | None = None
) -> RoleGrant:
    """Give ``user`` the role (nothing changes if they hold it already)."""
    role = parse_role(role)
    grant = session.exec(
        select(RoleGrant).where(RoleGrant.user_id == user.id, RoleGrant.role == role)
    ).first()
    if grant is None:
        grant = RoleGrant(
            user_id=id_of(user),
            role=role,
            granted_by_id=granted_by.id if granted_by is not None else None,
        )
        session.add(grant)
        session.flush()
    return grant


def revoke_role(session: Session, user: User, role: Role | str) -> bool:
    """Take the role from ``user``; False if they did not hold it.

    The tokens of ``user`` lose the scopes the role gave at once (scopes are
    checked against the roles at every use).

    Raises:
        PermissionDenied: it would leave the deployment without an active admin.
    """
    role = parse_role(role)
    grant = session.exec(
        select(RoleGrant).where(RoleGrant.user_id == user.id, RoleGrant.role == role)
    ).first()
    if grant is None:
        return False
    if role == Role.ADMIN:
        other_admins = session.exec(
            select(User.id)
            .join(RoleGrant, col(RoleGrant.user_id) == User.id)
            .where(RoleGrant.role == Role.ADMIN, User.id != user.id, col(User.is_active))
        ).first()
        if other_admins is None:
            raise PermissionDenied(
                f"{user.username} is the last active admin; revoking the role would leave "
                "nobody able to manage accounts.",
                "Grant another user the admin role first.",
            )
    session.delete(grant)
    session.flush()
    return True
