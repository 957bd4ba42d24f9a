"""PostgreSQL specifics: the row lock, the partial unique index, the schema,
the isolation level and the URL forms of ``DATABASE_URL``."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mtoken import FlaskClientTransport
from tests.pg_cluster import ClusterUnavailableError, find_bin_dir
from tests.scale.scale_testing import (
    WRONG_CODE,
    create_application,
    enroll,
    make_app,
    personalized_payload,
    verify_request,
)
from tests.support import in_ci
from webapp import services
from webapp.db import make_engine, new_session
from webapp.extensions import get_hsm, get_settings
from webapp.models import Activation, ActivationStatus, Base

pytestmark = [pytest.mark.postgres, pytest.mark.softhsm]

# Upper bound on waiting for a backend to show up as blocked on a lock; the
# tests never assert on how long anything took.
LOCK_WAIT_POLLS = 600


@pytest.fixture
def pg_app(postgres_url: str) -> Iterator[Flask]:
    app = make_app(postgres_url)
    yield app
    app.extensions["powerauth.engine"].dispose()


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def wait_for_lock_waiter(engine: Engine, fragment: str) -> None:
    """Return once some backend waits on a lock in a query containing ``fragment``."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND query LIKE :pattern"
    )
    with engine.connect() as connection:
        for _ in range(LOCK_WAIT_POLLS):
            waiting = connection.execute(query, {"pattern": f"%{fragment}%"}).scalar()
            connection.rollback()
            if waiting:
                return
            time.sleep(0.05)
    pytest.fail(f"no backend ever waited on a lock in a query with {fragment!r}")


def in_background(task: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(task())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_verify_waits_for_the_row_lock_and_reads_the_row_again(
    pg_app: Flask, engine: Engine, tmp_path: Path
) -> None:
    """Another transaction holds the row and changes it: verify sees the change."""
    transport = FlaskClientTransport(pg_app)
    enrolled = enroll(
        transport, create_application(transport), tmp_path, maxFailureCount=5
    )
    qr = personalized_payload(transport, enrolled.activation_id)
    request = verify_request(enrolled.activation_id, qr, WRONG_CODE)

    def verify() -> services.VerifyResult:
        with pg_app.app_context():
            session = new_session()
            try:
                return services.verify_offline_signature(
                    session,
                    get_hsm(pg_app),
                    get_settings(pg_app),
                    activation_id=request["activationId"],
                    data=request["data"],
                    signature=request["signature"],
                    actor="test",
                )
            finally:
                session.close()

    with engine.connect() as holder:
        holder.execute(
            text("SELECT id FROM activation WHERE id = :id FOR UPDATE"),
            {"id": enrolled.activation_id},
        )
        thread, outcome = in_background(verify)
        wait_for_lock_waiter(engine, "FOR UPDATE")
        assert thread.is_alive()
        # Four failures land while the verification waits for the lock.
        holder.execute(
            text("UPDATE activation SET failed_attempts = 4 WHERE id = :id"),
            {"id": enrolled.activation_id},
        )
        holder.commit()
    thread.join(timeout=60)

    [result] = outcome
    assert isinstance(result, services.VerifyResult), result
    assert (result.remaining_attempts, str(result.activation_status)) == (
        0,
        "BLOCKED",
    )


def activation_row(
    application_id: str, code: str, status: ActivationStatus
) -> Activation:
    now = datetime.now(UTC)
    activation_id = str(uuid.uuid4())
    return Activation(
        id=activation_id,
        application_id=application_id,
        user_id="user",
        status=status,
        activation_code=code,
        server_key_label=f"unused-{activation_id}",
        server_public_key=b"\x04" + bytes(64),
        counter=0,
        failed_attempts=0,
        max_failed_attempts=5,
        flags=[],
        created_at=now,
        changed_at=now,
    )


def test_pending_activation_code_is_unique_across_transactions(
    pg_app: Flask, engine: Engine
) -> None:
    application_id = create_application(FlaskClientTransport(pg_app))["applicationId"]
    code = "BBBBB-BBBBB-BBBBB-BBBBB"

    with Session(engine) as first:
        first.add(activation_row(application_id, code, ActivationStatus.CREATED))
        first.flush()

        def second_insert() -> None:
            with Session(engine) as second, second.begin():
                second.add(
                    activation_row(application_id, code, ActivationStatus.CREATED)
                )

        thread, outcome = in_background(second_insert)
        # The second insert waits on the first's uncommitted index entry.
        wait_for_lock_waiter(engine, "INSERT INTO activation")
        first.commit()
    thread.join(timeout=60)
    [error] = outcome
    assert isinstance(error, IntegrityError), error
    assert "uq_activation_pending_code" in str(error.orig)

    with Session(engine) as session, session.begin():
        # Used codes may repeat: the index covers CREATED and PENDING_COMMIT only.
        session.add(activation_row(application_id, code, ActivationStatus.ACTIVE))


def test_migrations_build_the_models_schema(engine: Engine) -> None:
    from webapp.db import upgrade_schema

    upgrade_schema(engine)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection)
        return list(compare_metadata(context, Base.metadata))

    with engine.connect() as connection:
        assert differences(connection) == []


def test_transactions_are_read_committed_whatever_the_server_default(
    postgres_url: str,
) -> None:
    # The connection's own default stands in for a server configured so.
    serializable = (
        f"{postgres_url}?options=-c%20default_transaction_isolation%3Dserializable"
    )
    engine = make_engine(serializable)
    try:
        with engine.connect() as connection:
            level = connection.execute(text("SHOW transaction_isolation")).scalar()
            default = connection.execute(
                text("SHOW default_transaction_isolation")
            ).scalar()
    finally:
        engine.dispose()
    assert (default, level) == ("serializable", "read committed")


def test_database_url_forms() -> None:
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        engine = make_engine(f"{scheme}://user@127.0.0.1:5432/powerauth")
        assert (engine.dialect.name, engine.dialect.driver) == (
            "postgresql",
            "psycopg",
        )
        engine.dispose()

    with pytest.raises(ValueError, match="DATABASE_URL: the mysql backend"):
        make_engine("mysql://user@127.0.0.1/powerauth")


def test_a_missing_server_is_named_in_the_reason(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*" / "bin")
    with pytest.raises(ClusterUnavailableError, match="no PostgreSQL server binaries"):
        find_bin_dir(pattern)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("", False), ("false", False), ("0", False)],
)
def test_ci_is_recognized(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected
