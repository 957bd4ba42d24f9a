"""The server's core scenarios on SQLite and on PostgreSQL, through one API.

Every test here runs twice (the ``database_url`` fixture): on a SQLite file,
where ``BEGIN IMMEDIATE`` serializes writers, and on a database of the run's
throw-away PostgreSQL cluster, where ``SELECT ... FOR UPDATE`` of the
activation row does. The concurrent tests release 8 threads at once, each with
its own test client and so its own database session and connection.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from mtoken import Device, FlaskClientTransport, StateStore
from mtoken.errors import ServerError
from tests.scale.scale_testing import (
    PIN,
    WRONG_CODE,
    check_qr_signature,
    create_application,
    enroll,
    in_threads,
    payload_data,
    personalized_payload,
    record_counts,
    unique,
    verify_request,
)
from tests.server.server_testing import stored_activation
from webapp import services
from webapp.db import new_session
from webapp.extensions import get_hsm, get_settings
from webapp.models import Activation, AuditRecord
from webapp.services import activations as activation_services

pytestmark = pytest.mark.softhsm

THREADS = 8
VERIFY = "/rest/v3/signature/offline/verify"


def audit_count(app: Flask, activation_id: str, action: str, result: str) -> int:
    with app.app_context():
        session = new_session()
        try:
            count = session.scalar(
                select(func.count())
                .select_from(AuditRecord)
                .where(
                    AuditRecord.activation_id == activation_id,
                    AuditRecord.action == action,
                    AuditRecord.result == result,
                )
            )
        finally:
            session.close()
    return int(count or 0)


def backend(app: Flask) -> str:
    return str(app.extensions["powerauth.engine"].dialect.name)


def error_code(call: Callable[[], object]) -> str:
    """Run ``call``; the server's error code, or ``OK`` when it succeeded."""
    try:
        call()
    except ServerError as exc:
        return exc.code or "no code"
    return "OK"


# One request at a time -------------------------------------------------------


def test_offline_flow(
    app: Flask, transport: FlaskClientTransport, tmp_path: Path
) -> None:
    application = create_application(transport)
    enrolled = enroll(transport, application, tmp_path)
    device = enrolled.device

    qr = personalized_payload(transport, enrolled.activation_id)
    check_qr_signature(qr, enrolled.server_public_key)
    request = verify_request(enrolled.activation_id, qr, device.sign(qr, pin=PIN).code)
    assert transport.call(VERIFY, request)["signatureValid"] is True

    replay = transport.call(VERIFY, request)
    assert replay["signatureValid"] is False
    assert replay["remainingAttempts"] == 4

    # Codes computed but never typed: the third one is inside the window.
    qrs = [personalized_payload(transport, enrolled.activation_id) for _ in range(3)]
    codes = [device.sign(qr, pin=PIN).code for qr in qrs]
    third = verify_request(enrolled.activation_id, qrs[2], codes[2])
    assert transport.call(VERIFY, third)["signatureValid"] is True

    created = transport.call(
        "/rest/v3/signature/offline/non-personalized/create",
        {"applicationId": enrolled.application_id, "data": payload_data()},
    )
    master_qr = created["offlineData"]
    check_qr_signature(master_qr, enrolled.master_public_key)
    request = verify_request(
        enrolled.activation_id, master_qr, device.sign(master_qr, pin=PIN).code
    )
    assert transport.call(VERIFY, request)["signatureValid"] is True

    state = stored_activation(app, enrolled.activation_id)
    assert (state.counter, state.failed_attempts, str(state.status)) == (
        5,
        0,
        "ACTIVE",
    )


def test_block_unblock_remove(
    app: Flask, transport: FlaskClientTransport, tmp_path: Path
) -> None:
    application = create_application(transport)
    enrolled = enroll(transport, application, tmp_path, maxFailureCount=3)
    activation_id = enrolled.activation_id
    qr = personalized_payload(transport, activation_id)
    wrong = verify_request(activation_id, qr, WRONG_CODE)

    answers = [transport.call(VERIFY, wrong) for _ in range(3)]
    assert [a["remainingAttempts"] for a in answers] == [2, 1, 0]
    state = stored_activation(app, activation_id)
    assert (str(state.status), state.blocked_reason) == (
        "BLOCKED",
        "MAX_FAILED_ATTEMPTS",
    )
    good = verify_request(activation_id, qr, enrolled.device.sign(qr, pin=PIN).code)
    assert transport.call(VERIFY, good)["activationStatus"] == "BLOCKED"

    transport.call("/rest/v3/activation/unblock", {"activationId": activation_id})
    assert stored_activation(app, activation_id).failed_attempts == 0
    assert transport.call(VERIFY, good)["signatureValid"] is True

    transport.call(
        "/rest/v3/activation/block", {"activationId": activation_id, "reason": "LOST"}
    )
    assert error_code(lambda: personalized_payload(transport, activation_id)) == (
        "ERR0008"
    )
    transport.call("/rest/v3/activation/remove", {"activationId": activation_id})
    state = stored_activation(app, activation_id)
    assert str(state.status) == "REMOVED"
    assert state.server_key_label not in get_hsm(app).key_labels()
    assert transport.call(VERIFY, good)["activationStatus"] == "REMOVED"


def test_a_reused_session_reads_what_another_committed(
    app: Flask, transport: FlaskClientTransport, tmp_path: Path
) -> None:
    """A session that read a row earlier must not decide on its old copy."""
    application = create_application(transport)
    enrolled = enroll(transport, application, tmp_path)
    qrs = [personalized_payload(transport, enrolled.activation_id) for _ in range(2)]
    codes = [enrolled.device.sign(qr, pin=PIN).code for qr in qrs]

    with app.app_context():
        session = new_session()
        try:
            # The caller keeps the row object, as a page building a view may;
            # the session then keeps its copy across transactions.
            with session.begin():
                kept = session.get(Activation, enrolled.activation_id)
            assert kept is not None and kept.counter == 0
            # Another worker accepts the first code meanwhile.
            first = verify_request(enrolled.activation_id, qrs[0], codes[0])
            assert transport.call(VERIFY, first)["signatureValid"] is True
            assert services.get_activation(session, enrolled.activation_id).counter == 1

            second = verify_request(enrolled.activation_id, qrs[1], codes[1])
            result = services.verify_offline_signature(
                session,
                get_hsm(app),
                get_settings(app),
                activation_id=enrolled.activation_id,
                data=second["data"],
                signature=second["signature"],
                actor="test",
            )
        finally:
            session.close()
    assert (result.signature_valid, result.counter_offset) == (True, 0)
    assert kept.counter == 2
    assert stored_activation(app, enrolled.activation_id).counter == 2


# Requests at the same moment -------------------------------------------------


def verify_in_threads(app: Flask, request: dict[str, Any]) -> list[dict[str, Any]]:
    def verify(_index: int) -> dict[str, Any]:
        return FlaskClientTransport(app).call(VERIFY, request)

    return in_threads(THREADS, verify)


def test_same_valid_code_is_accepted_once(
    app: Flask, transport: FlaskClientTransport, tmp_path: Path
) -> None:
    application = create_application(transport)
    enrolled = enroll(transport, application, tmp_path, maxFailureCount=20)
    qr = personalized_payload(transport, enrolled.activation_id)
    code = enrolled.device.sign(qr, pin=PIN).code

    answers = verify_in_threads(app, verify_request(enrolled.activation_id, qr, code))

    accepted = sum(answer["signatureValid"] for answer in answers)
    state = stored_activation(app, enrolled.activation_id)
    record_counts(
        f"threads-same-code-{backend(app)}",
        {
            "sent": THREADS,
            "accepted": accepted,
            "counter": state.counter,
            "failed_attempts": state.failed_attempts,
        },
    )
    assert accepted == 1
    # The losers come after the winner moved the counter: plain wrong codes.
    assert (state.counter, state.failed_attempts) == (1, THREADS - 1)


def test_wrong_codes_are_all_counted_up_to_the_block(
    app: Flask, transport: FlaskClientTransport, tmp_path: Path
) -> None:
    application = create_application(transport)
    enrolled = enroll(transport, application, tmp_path, maxFailureCount=5)
    qr = personalized_payload(transport, enrolled.activation_id)

    answers = verify_in_threads(
        app, verify_request(enrolled.activation_id, qr, WRONG_CODE)
    )

    counted = [a for a in answers if "remainingAttempts" in a]
    state = stored_activation(app, enrolled.activation_id)
    record_counts(
        f"threads-wrong-codes-{backend(app)}",
        {
            "sent": THREADS,
            "limit": 5,
            "counted": len(counted),
            "failed_attempts": state.failed_attempts,
            "status": str(state.status),
        },
    )
    assert not any(answer["signatureValid"] for answer in answers)
    assert sorted(a["remainingAttempts"] for a in counted) == [0, 1, 2, 3, 4]
    assert all(a["activationStatus"] == "BLOCKED" for a in answers if a not in counted)
    assert (str(state.status), state.failed_attempts) == ("BLOCKED", 5)
    assert audit_count(
        app, enrolled.activation_id, "verify", "signature_does_not_match"
    ) == len(counted)


def test_one_activation_code_is_prepared_once(
    app: Flask, transport: FlaskClientTransport, tmp_path: Path
) -> None:
    application = create_application(transport)
    created = transport.call(
        "/rest/v3/activation/init",
        {"userId": unique("user"), "applicationId": application["applicationId"]},
    )

    def prepare(index: int) -> str:
        device = Device(StateStore(tmp_path / f"phone-{index}"))
        return error_code(
            lambda: device.activate(
                FlaskClientTransport(app), created["activationCode"], PIN
            )
        )

    outcomes = in_threads(THREADS, prepare)
    assert sorted(outcomes) == ["ERR0009"] * (THREADS - 1) + ["OK"]
    assert (
        str(stored_activation(app, created["activationId"]).status) == "PENDING_COMMIT"
    )

    def commit(_index: int) -> str:
        return error_code(
            lambda: FlaskClientTransport(app).call(
                "/rest/v3/activation/commit",
                {"activationId": created["activationId"]},
            )
        )

    outcomes = in_threads(THREADS, commit)
    assert sorted(outcomes) == ["ERR0008"] * (THREADS - 1) + ["OK"]
    assert audit_count(app, created["activationId"], "activation_commit", "OK") == 1


def test_a_code_collision_loses_cleanly(
    app: Flask,
    transport: FlaskClientTransport,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two inits that pick one code: the unique index lets one of them in."""
    application = create_application(transport)
    monkeypatch.setattr(
        activation_services,
        "generate_activation_code",
        lambda _entropy: "AAAAA-AAAAA-AAAAA-AAAAA",
    )
    hsm = get_hsm(app)
    servers_before = {k for k in hsm.key_labels() if k.startswith("pa-server-")}

    def init(_index: int) -> str:
        return error_code(
            lambda: FlaskClientTransport(app).call(
                "/rest/v3/activation/init",
                {
                    "userId": unique("user"),
                    "applicationId": application["applicationId"],
                },
            )
        )

    outcomes = in_threads(4, init)
    servers_after = {k for k in hsm.key_labels() if k.startswith("pa-server-")}
    assert sorted(outcomes) == ["ERR0006"] * 3 + ["OK"]
    # The losers' server key pairs left the token again.
    assert len(servers_after - servers_before) == 1


def test_one_application_id_is_created_once(
    app: Flask, transport: FlaskClientTransport
) -> None:
    application_id = unique("app")

    def create(_index: int) -> str:
        return error_code(
            lambda: FlaskClientTransport(app).call(
                "/rest/v3/application/create", {"applicationId": application_id}
            )
        )

    outcomes = in_threads(THREADS, create)
    assert sorted(outcomes) == ["ERR0024"] * (THREADS - 1) + ["OK"]
    labels = [k for k in get_hsm(app).key_labels() if application_id in k]
    assert len(labels) == 1


def test_concurrent_key_rotations_get_distinct_labels(
    app: Flask, transport: FlaskClientTransport
) -> None:
    application_id = create_application(transport)["applicationId"]

    def rotate(_index: int) -> str:
        with app.app_context():
            session = new_session()
            try:
                view = services.rotate_master_key(
                    session,
                    get_hsm(app),
                    get_settings(app),
                    application_id=application_id,
                    actor="test",
                )
            finally:
                session.close()
        return str(view.master_key_label)

    labels = in_threads(4, rotate)
    assert len(set(labels)) == 4
    detail = transport.call(
        "/rest/v3/application/detail", {"applicationId": application_id}
    )
    token_labels = [k for k in get_hsm(app).key_labels() if application_id in k]
    assert len(token_labels) == 5
    assert detail["masterPublicKey"]


def test_payloads_created_at_once_all_verify(
    app: Flask, transport: FlaskClientTransport, tmp_path: Path
) -> None:
    application = create_application(transport)
    enrolled = enroll(transport, application, tmp_path)

    def create(_index: int) -> str:
        return personalized_payload(FlaskClientTransport(app), enrolled.activation_id)

    qrs = in_threads(THREADS, create)
    for qr in qrs:
        check_qr_signature(qr, enrolled.server_public_key)
    assert len(set(qrs)) == THREADS
