"""Database engine, sessions, migrations and the immutability guard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import Session

from .domain import DatasetVersion, Item
from .errors import DatabaseUnavailable, SabhaError
from .settings import current_settings

__all__ = [
    "ImmutableVersionError",
    "get_engine",
    "get_session",
    "init_app",
    "check_connection",
    "current_revision",
    "make_engine",
    "session_scope",
    "upgrade_database",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Where a Flask app keeps its engine (``init_app``, ``get_engine``).
_APP_KEY = "sabha.db"


class ImmutableVersionError(SabhaError):
    """Someone tried to change a released dataset version or its items."""


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; SQLite gets foreign keys and a busy timeout.

    Raises:
        SabhaError: the URL is malformed or names a driver that is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SabhaError(
            f"SABHA_DATABASE_URL is not a valid database URL: {url!r}.",
            "Use a URL like postgresql+psycopg://user@host:5432/dbname, "
            "or unset SABHA_DATABASE_URL to use the default SQLite file.",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    elif parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except NoSuchModuleError as exc:
        raise SabhaError(
            f"SABHA_DATABASE_URL names a database driver Sabha does not have: {parsed.drivername}.",
            "Use sqlite:///path or postgresql+psycopg://user@host/db.",
        ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Sabha issues BEGIN itself (see _sqlite_begin), not the sqlite3 module.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL: readers (the web pages) never wait for a writer (an evaluation).
    if cursor.execute("PRAGMA database_list").fetchone()[2]:
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    """Write transactions take SQLite's write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes can find another writer
    in the way and fail at once with "database is locked"; an immediate one
    waits its turn (the busy timeout), so writers such as two pools leasing
    shards are serialised.
    """
    immediate = connection.get_execution_options().get("sabha_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def check_connection(engine: Engine) -> None:
    """Open one connection, turning a dead server into a clear error.

    Raises:
        DatabaseUnavailable: the database does not answer.
    """
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(
            f"The database at {_safe_url(str(engine.url))} does not answer ({reason}).",
            "Start the database server or correct SABHA_DATABASE_URL; "
            "unset SABHA_DATABASE_URL to use the default SQLite file.",
        ) from exc


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (default: the newest)."""
    from alembic import command

    check_connection(engine)
    command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None if never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest migration revision this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def require_schema(engine: Engine) -> None:
    """Fail clearly when the database was never migrated or is out of date."""
    check_connection(engine)
    current = current_revision(engine)
    if current != head_revision():
        raise SabhaError(
            f"The database at {_safe_url(str(engine.url))} is at schema revision "
            f"{current or '(none)'}, but this Sabha needs {head_revision()}.",
            "Run `sabha db upgrade`.",
        )


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A write transaction: commits on success, rolls back on any error.

    On SQLite it takes the write lock when it begins, so concurrent writers
    queue instead of failing; keep these transactions short.
    """
    session = Session(engine.execution_options(sabha_write=True), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@event.listens_for(Session, "before_flush")
def _guard_released_versions(session: Session, _context: Any, _instances: Any) -> None:
    """Released dataset versions are immutable: refuse changes to them and their items."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, DatasetVersion):
            history = sa.inspect(obj).attrs.released_at.history
            original = (history.unchanged or history.deleted or [None])[0]
            if original is not None and (obj in session.deleted or session.is_modified(obj)):
                raise ImmutableVersionError(
                    f"Dataset version {obj.content_hash[:12]} is released and cannot change.",
                    "Release a new version instead.",
                )
        elif isinstance(obj, Item) and (obj in session.deleted or session.is_modified(obj)):
            version = session.get(DatasetVersion, obj.dataset_version_id)
            if version is not None and version.released_at is not None:
                raise ImmutableVersionError(
                    f"Item {obj.key!r} belongs to released dataset version "
                    f"{version.content_hash[:12]} and cannot change.",
                    "Release a new version instead.",
                )
    for obj in session.new:
        if isinstance(obj, Item):
            version = session.get(DatasetVersion, obj.dataset_version_id)
            if version is not None and version.released_at is not None:
                raise ImmutableVersionError(
                    f"Cannot add item {obj.key!r} to released dataset version "
                    f"{version.content_hash[:12]}.",
                    "Release a new version instead.",
                )


def init_app(app: Any) -> None:
    """Give a Flask app one engine (``SABHA_*`` settings) and a session per request."""
    from flask import g

    app.extensions[_APP_KEY] = make_engine(current_settings(app).resolved_database_url)

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("sabha_session", None)
        if session is not None:
            session.close()


def get_engine(app: Any = None) -> Engine:
    """The database engine of ``app`` (a Flask app), or of the current app when none is given.

    Write transactions open on it with ``session_scope(get_engine())``.
    """
    from flask import current_app

    engine: Engine = (app or current_app).extensions[_APP_KEY]
    return engine


def get_session() -> Session:
    """The current request's database session (read-only use; writes use ``session_scope``)."""
    from flask import g

    if "sabha_session" not in g:
        g.sabha_session = Session(get_engine())
    session: Session = g.sabha_session
    return session
