"""Fixtures of the scale-out tests: a throw-away PostgreSQL cluster for the
session, and apps on SQLite or on a fresh PostgreSQL database.

When the cluster cannot start, tests that need it are skipped with the reason;
with ``CI`` set (GitHub Actions and most CI services set ``CI=true``) they fail
instead, because CI must run them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from mtoken import FlaskClientTransport
from tests.pg_cluster import ClusterUnavailableError, PostgresCluster
from tests.scale.scale_testing import make_app
from tests.support import in_ci


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One cluster for the whole run, stopped and deleted at its end."""
    try:
        cluster = PostgresCluster.start_new()
    except ClusterUnavailableError as exc:
        if in_ci():
            pytest.fail(f"CI must run the PostgreSQL tests, but {exc}")
        pytest.skip(f"no throw-away PostgreSQL cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database in the run's cluster."""
    return postgres_cluster.create_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or one in the PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'powerauth.sqlite'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database()


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    app = make_app(database_url)
    yield app
    app.extensions["powerauth.engine"].dispose()


@pytest.fixture
def transport(app: Flask) -> FlaskClientTransport:
    """The REST API in-process, as the token app and a backend call it."""
    return FlaskClientTransport(app)
