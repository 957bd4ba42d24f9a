"""Alembic environment of the server's schema.

The app runs it programmatically (``flask --app webapp db init``) and passes its
engine in ``config.attributes["engine"]``. From the command line, the database
comes from ``DATABASE_URL``:
``DATABASE_URL=sqlite:///instance/powerauth.sqlite alembic -c webapp/migrations/alembic.ini upgrade head``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Engine

from webapp.db import make_engine
from webapp.models import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if isinstance(engine, Engine):
        return engine
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set: name the database to migrate")
    return make_engine(url)


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things in place; batch mode copies tables.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
