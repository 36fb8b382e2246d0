"""The account commands of the ``sabha`` CLI: users, tokens and pool credentials.

They act as the operator of the deployment (whoever can reach its
database), so they need no sign-in. Tokens and secrets are printed once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import click

from ..domain import Role, TokenScope
from ..wire import MAX_DB_ID
from .context import database

if TYPE_CHECKING:
    from sqlmodel import Session

    from ..domain import User

__all__ = ["credentials", "tokens", "users"]

Row = TypeVar("Row")

_ROLE = click.Choice([r.value for r in Role])
_SCOPE = click.Choice([s.value for s in TokenScope])


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else "never"


def _state(revoked_at: datetime | None) -> str:
    return f"revoked {_when(revoked_at)}" if revoked_at else "active"


def _list_owned(
    ctx: click.Context,
    username: str,
    what: str,
    rows_of: Callable[[Session, User], list[Row]],
    line: Callable[[Row], str],
) -> None:
    """Print a line per thing ``username`` owns (``what``: "tokens"...), or that there are none."""
    from sqlmodel import Session

    from ..services.accounts import get_user

    with Session(database(ctx)) as session:
        user = get_user(session, username)
        rows = rows_of(session, user)
    if not rows:
        click.echo(f"{user.username} has no {what}.")
    for row in rows:
        click.echo(line(row))


def _revoke_owned(
    ctx: click.Context, username: str, revoke: Callable[[Session, User], Row]
) -> tuple[str, Row]:
    """Revoke one thing ``username`` owns, in one transaction: their name and what was revoked."""
    from ..db import session_scope
    from ..services.accounts import get_user

    with session_scope(database(ctx)) as session:
        user = get_user(session, username)
        return user.username, revoke(session, user)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: standard input had no password.")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password"))


# -- users ----------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Create users and grant or revoke their roles."""


@users.command("create-admin")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def users_create_admin(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Create an admin who signs in with USERNAME and a password (asked twice, hidden)."""
    from ..db import session_scope
    from ..services.accounts import create_admin

    db = database(ctx)
    password = _read_password(password_stdin)
    with session_scope(db) as session:
        user = create_admin(session, username, password)
    click.echo(f"Created admin {user.username}. Sign in at the web UI with this password.")


@users.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, type=_ROLE, help="A role to grant (repeatable).")
@click.option("--display-name", help="The name pages show (default: the username).")
@click.option("--email", help="A contact address (never shown publicly).")
@click.option("--password-stdin", is_flag=True, help="Read a password from standard input.")
@click.option("--prompt-password", is_flag=True, help="Ask for a password (hidden, twice).")
@click.pass_context
def users_create(
    ctx: click.Context,
    username: str,
    roles: tuple[str, ...],
    display_name: str | None,
    email: str | None,
    password_stdin: bool,
    prompt_password: bool,
) -> None:
    """Create a user. Without a password they sign in only through an identity provider."""
    from ..db import session_scope
    from ..services.accounts import create_user, roles_of

    db = database(ctx)
    password = _read_password(password_stdin) if password_stdin or prompt_password else None
    with session_scope(db) as session:
        user = create_user(
            session,
            username,
            password=password,
            display_name=display_name,
            email=email,
            roles=[Role(r) for r in roles],
        )
        held = ", ".join(sorted(roles_of(session, user))) or "no roles"
    sign_in = "a password" if password else "an identity provider only"
    click.echo(f"Created user {user.username} ({held}); signs in with {sign_in}.")


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def users_set_password(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set or reset the password of USERNAME."""
    from ..db import session_scope
    from ..services.accounts import get_user, set_password

    db = database(ctx)
    password = _read_password(password_stdin)
    with session_scope(db) as session:
        user = get_user(session, username)
        set_password(session, user, password)
    click.echo(f"Set the password of {user.username}.")


@users.command("grant")
@click.argument("username")
@click.argument("role", type=_ROLE)
@click.pass_context
def users_grant(ctx: click.Context, username: str, role: str) -> None:
    """Grant ROLE to USERNAME."""
    from ..db import session_scope
    from ..services.accounts import get_user, grant_role, roles_of

    with session_scope(database(ctx)) as session:
        user = get_user(session, username)
        grant_role(session, user, role)
        held = ", ".join(sorted(roles_of(session, user)))
    click.echo(f"{user.username} now holds: {held}.")


@users.command("revoke")
@click.argument("username")
@click.argument("role", type=_ROLE)
@click.pass_context
def users_revoke(ctx: click.Context, username: str, role: str) -> None:
    """Revoke ROLE from USERNAME; their tokens lose the scopes it gave at once."""
    from ..db import session_scope
    from ..services.accounts import get_user, revoke_role, roles_of

    with session_scope(database(ctx)) as session:
        user = get_user(session, username)
        held_it = revoke_role(session, user, role)
        held = ", ".join(sorted(roles_of(session, user))) or "no roles"
    if held_it:
        click.echo(f"Revoked {role} from {user.username}; they now hold: {held}.")
    else:
        click.echo(f"{user.username} did not hold {role}; nothing changed (holds: {held}).")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List users with their roles and last sign-in."""
    from sqlmodel import Session

    from ..services.accounts import list_users, roles_of

    with Session(database(ctx)) as session:
        rows = list_users(session)
        if not rows:
            click.echo("No users yet. Create the first admin with `sabha users create-admin NAME`.")
        for user in rows:
            held = ",".join(sorted(roles_of(session, user))) or "-"
            state = "" if user.is_active else "  (disabled)"
            click.echo(
                f"{user.id:5}  {user.username:24} {held:32} "
                f"last sign-in {_when(user.last_login_at)}{state}"
            )


# -- personal access tokens ---------------------------------------------------------------


@click.group()
def tokens() -> None:
    """Create, list and revoke personal access tokens."""


@tokens.command("create")
@click.option("--user", "username", required=True, help="Whose token it is.")
@click.option("--name", required=True, help="What the token is for, e.g. 'laptop CLI'.")
@click.option("--scope", "scopes", multiple=True, required=True, type=_SCOPE, help="Repeatable.")
@click.option("--expires-in-days", type=int, default=90, show_default=True)
@click.pass_context
def tokens_create(
    ctx: click.Context, username: str, name: str, scopes: tuple[str, ...], expires_in_days: int
) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    from ..db import session_scope
    from ..services.accounts import create_access_token, get_user

    settings_max = _settings_token_max_days(ctx)
    with session_scope(database(ctx)) as session:
        user = get_user(session, username)
        token, plaintext = create_access_token(
            session, user, name, scopes, expires_in_days=expires_in_days, max_days=settings_max
        )
    click.echo(
        f"Token {token.id} ({', '.join(token.scopes)}) for {user.username}, "
        f"expires {_when(token.expires_at)} UTC:"
    )
    click.echo(plaintext)
    click.echo("Copy it now: it will not be shown again.", err=True)


def _settings_token_max_days(ctx: click.Context) -> int:
    from .context import settings_of as _settings

    return _settings(ctx).token_max_days


@tokens.command("list")
@click.option("--user", "username", required=True)
@click.pass_context
def tokens_list(ctx: click.Context, username: str) -> None:
    """List a user's tokens (never the tokens themselves)."""
    from ..services.accounts import AccessTokenPublic, list_access_tokens

    def line(token: AccessTokenPublic) -> str:
        return (
            f"{token.id:5}  {token.prefix}…  {token.name:20} {','.join(token.scopes):24} "
            f"expires {_when(token.expires_at)}  last used {_when(token.last_used_at)}  "
            f"{_state(token.revoked_at)}"
        )

    _list_owned(
        ctx,
        username,
        "tokens",
        lambda session, user: [AccessTokenPublic.of(t) for t in list_access_tokens(session, user)],
        line,
    )


@tokens.command("revoke")
@click.option("--user", "username", required=True)
@click.argument("token_id", type=click.IntRange(1, MAX_DB_ID))
@click.pass_context
def tokens_revoke(ctx: click.Context, username: str, token_id: int) -> None:
    """Revoke one of a user's tokens; it stops working at once."""
    from ..services.accounts import revoke_access_token

    owner, token = _revoke_owned(
        ctx, username, lambda session, user: revoke_access_token(session, user, token_id)
    )
    click.echo(f"Revoked token {token.id} ({token.name}) of {owner}.")


# -- pool credentials -------------------------------------------------------------------------


@click.group()
def credentials() -> None:
    """Create, list and revoke pool credentials (OAuth2 clients of volunteer pools)."""


@credentials.command("create")
@click.option("--user", "username", required=True, help="The volunteer who owns the pool.")
@click.option("--name", required=True, help="Which pool it is for, e.g. 'lab-a100'.")
@click.pass_context
def credentials_create(ctx: click.Context, username: str, name: str) -> None:
    """Create a pool credential; its secret is printed once and cannot be shown again."""
    from ..db import session_scope
    from ..services.accounts import create_pool_credential, get_user

    with session_scope(database(ctx)) as session:
        user = get_user(session, username)
        credential, secret = create_pool_credential(session, user, name)
    click.echo(f"Pool credential {credential.id} ({credential.name}) for {user.username}:")
    click.echo(f"client id:     {credential.client_id}")
    click.echo(f"client secret: {secret}")
    click.echo("Copy the secret now: it will not be shown again.", err=True)


@credentials.command("list")
@click.option("--user", "username", required=True)
@click.pass_context
def credentials_list(ctx: click.Context, username: str) -> None:
    """List a user's pool credentials (never the secrets)."""
    from ..services.accounts import PoolCredentialPublic, list_pool_credentials

    def line(credential: PoolCredentialPublic) -> str:
        return (
            f"{credential.id:5}  {credential.client_id}  {credential.name:20} "
            f"last used {_when(credential.last_used_at)}  {_state(credential.revoked_at)}"
        )

    _list_owned(
        ctx,
        username,
        "pool credentials",
        lambda session, user: [
            PoolCredentialPublic.of(c) for c in list_pool_credentials(session, user)
        ],
        line,
    )


@credentials.command("revoke")
@click.option("--user", "username", required=True)
@click.argument("credential_id", type=click.IntRange(1, MAX_DB_ID))
@click.pass_context
def credentials_revoke(ctx: click.Context, username: str, credential_id: int) -> None:
    """Revoke a pool credential and every access token issued to it."""
    from ..services.accounts import revoke_pool_credential

    _, credential = _revoke_owned(
        ctx, username, lambda session, user: revoke_pool_credential(session, user, credential_id)
    )
    click.echo(f"Revoked pool credential {credential.id} ({credential.client_id}).")
