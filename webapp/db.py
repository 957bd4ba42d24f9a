"""Database engine, per-request sessions and the schema (Alembic) for the app."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DEFAULT_SQLITE_NAME = "powerauth.sqlite"
# How long a SQLite writer waits for the lock of another one (seconds).
SQLITE_BUSY_TIMEOUT = 30
# The first part of that wait polls the lock (see _poll_for_write_lock).
SQLITE_LOCK_POLL_SECONDS = 1.0
SQLITE_LOCK_POLL_INTERVAL = 0.0005


def database_url(app: Flask) -> str:
    """``DATABASE_URL``, or a SQLite file in the instance folder."""
    url = app.config.get("DATABASE_URL") or ""
    if url:
        return str(url)
    return f"sqlite:///{Path(app.instance_path) / DEFAULT_SQLITE_NAME}"


def make_engine(url: str) -> Engine:
    """Create an engine for SQLite or PostgreSQL.

    Verification reads an activation and writes it back. On PostgreSQL the
    services lock the row with ``SELECT ... FOR UPDATE`` in READ COMMITTED
    transactions: a second verification of the same activation waits for the
    first to commit, then reads the row as the first left it. SQLite ignores
    ``FOR UPDATE``, so there every transaction begins with ``BEGIN IMMEDIATE``
    instead, which takes the database write lock up front. A SQLite file runs
    in WAL mode with fully synced commits (see :func:`_use_wal`).

    :raises ValueError: another database, or an in-memory SQLite database.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return _forget_after_fork(_postgresql_engine(parsed))
    if backend != "sqlite":
        raise ValueError(
            f"DATABASE_URL: the {backend} backend is not supported; use "
            "postgresql+psycopg://... or sqlite:///path"
        )

    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        raise ValueError(
            "DATABASE_URL: an in-memory SQLite database is not supported "
            "(each connection would see its own empty database); use a file"
        )
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would
        # otherwise issue a deferred BEGIN of its own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        _use_wal(cursor, database)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not _poll_for_write_lock(connection.connection.driver_connection):
            # Still locked after the polling phase: wait in SQLite's own busy
            # handler, up to SQLITE_BUSY_TIMEOUT, and fail as it fails.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return _forget_after_fork(engine)


def _poll_for_write_lock(dbapi_connection: sqlite3.Connection) -> bool:
    """Try ``BEGIN IMMEDIATE`` every half millisecond for up to a second.

    SQLite's busy handler sleeps in growing steps (1, 2, 5, 10 ... 100 ms)
    and does not wake when the lock is freed. A write transaction here holds
    the lock for one or two milliseconds, so a worker that had to wait once
    slept far longer than the lock was held; with two workers that was the
    p99 of every request. Polling wakes within half a millisecond of the
    release. Semantics stay those of ``BEGIN IMMEDIATE``.

    :returns: whether the transaction has begun.
    """
    deadline = time.monotonic() + SQLITE_LOCK_POLL_SECONDS
    dbapi_connection.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError as exc:
                # The low byte is the primary code (extended codes such as
                # SQLITE_BUSY_RECOVERY are busy too).
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(SQLITE_LOCK_POLL_INTERVAL)
    finally:
        dbapi_connection.execute(
            f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}"
        )


def _use_wal(cursor: Any, database: str) -> None:
    """Put the database in WAL mode, with a durable commit.

    The default rollback journal creates, syncs and deletes a journal file in
    every write transaction, which cost more than everything else a payload
    creation or a verification does. With WAL a commit appends to one file
    and syncs it once. ``synchronous=FULL`` keeps that sync: with ``NORMAL``
    a power failure could lose the last commits, and a lost counter update
    would accept an already used offline code again.

    The journal mode is stored in the database file, so this is a no-op once
    any connection has set it. It fails on file systems without shared memory
    (network file systems); the database then keeps its rollback journal,
    which is slower but just as safe, and a warning says so.
    """
    mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        logger.warning(
            "SQLite database %s stays in journal mode %s (WAL is not available "
            "there); every write transaction will be slower",
            database,
            mode,
        )
    cursor.execute("PRAGMA synchronous = FULL")


def _postgresql_engine(parsed: URL) -> Engine:
    # A bare postgresql:// would pick psycopg2, which is not a dependency;
    # psycopg 3 is.
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    # READ COMMITTED whatever the server's default_transaction_isolation:
    # with row locks it never aborts a transaction for a serialization
    # failure, and a locked row is re-read at its newest committed version.
    return create_engine(parsed, isolation_level="READ COMMITTED", pool_pre_ping=True)


def lock_name(session: Session, name: str) -> None:
    """Serialize the transactions that create something called ``name``.

    A row lock cannot guard a row that does not exist yet: two workers could
    both find no application ``X`` and both generate its key pair in the
    token. On PostgreSQL this takes a transaction-scoped advisory lock on a
    hash of ``name`` (released at commit or rollback); on SQLite the
    ``BEGIN IMMEDIATE`` write lock already serializes every transaction.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
        {"name": name},
    )


def _forget_after_fork(engine: Engine) -> Engine:
    """Make a forked child (a pre-forking WSGI worker) open its own connections.

    Connections opened by the parent must not be shared with the child; the
    child drops the pool without closing the parent's connections.
    """
    ref = weakref.ref(engine)

    def _in_child() -> None:
        child_engine = ref()
        if child_engine is not None:
            child_engine.dispose(close=False)

    os.register_at_fork(after_in_child=_in_child)
    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the schema with the Alembic revisions (``upgrade head``)."""
    command.upgrade(alembic_config(engine), revision)


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head()


def init_app(app: Flask) -> None:
    """Create the engine and the session factory, and close sessions per request."""
    engine = make_engine(database_url(app))
    app.extensions["powerauth.engine"] = engine
    # expire_on_commit=False: views read the objects after the service commit
    # without a second round trip (and a second write lock on SQLite).
    app.extensions["powerauth.sessionmaker"] = sessionmaker(
        engine, expire_on_commit=False
    )
    app.teardown_appcontext(_close_session)


def get_engine(app: Flask | None = None) -> Engine:
    app = app or current_app
    engine: Engine = app.extensions["powerauth.engine"]
    return engine


def new_session(app: Flask | None = None) -> Session:
    """A new session not bound to the request.

    The caller closes it, most simply as ``with new_session() as session:``.
    """
    app = app or current_app
    factory: sessionmaker[Session] = app.extensions["powerauth.sessionmaker"]
    return factory()


def get_session() -> Session:
    """The session of the current request or app context."""
    if "db_session" not in g:
        g.db_session = new_session()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
