"""Activation lifecycle through HTTP (SPEC 8.3): init, prepare, commit, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from powerauth.activation import public_key_fingerprint, validate_activation_code
from powerauth.payload import parse_offline_payload
from tests.server.server_device import SimulatedDevice, b64, payload_data, unb64
from tests.server.server_testing import Api, Enrolled, make_app, unique
from webapp.extensions import get_hsm

pytestmark = pytest.mark.softhsm


def verify_ecdsa(public_key: bytes, signature: bytes, message: bytes) -> None:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_init_signs_the_code_with_the_master_key(
    api: Api, application: dict[str, Any]
) -> None:
    created = api.call(
        "/activation/init",
        {"userId": "alice", "applicationId": application["applicationId"]},
    )

    assert set(created) == {
        "activationId",
        "activationCode",
        "activationSignature",
        "userId",
        "applicationId",
    }
    assert validate_activation_code(created["activationCode"])
    verify_ecdsa(
        unb64(application["masterPublicKey"]),
        unb64(created["activationSignature"]),
        created["activationCode"].encode("ascii"),
    )
    status = api.call("/activation/status", {"activationId": created["activationId"]})
    assert status["activationStatus"] == "CREATED"
    assert status["maxFailedAttempts"] == 5


def test_prepare_and_commit(api: Api, application: dict[str, Any]) -> None:
    created = api.call(
        "/activation/init",
        {"userId": "bob", "applicationId": application["applicationId"]},
    )
    device = SimulatedDevice()

    prepared = api.call(
        "/activation/prepare",
        {
            "activationCode": created["activationCode"],
            "devicePublicKey": b64(device.public_key),
            "activationName": "Bob's phone",
        },
    )

    assert prepared["activationId"] == created["activationId"]
    assert prepared["activationStatus"] == "PENDING_COMMIT"
    assert len(unb64(prepared["ctrData"])) == 16
    server_public_key = unb64(prepared["serverPublicKey"])
    status = api.call("/activation/status", {"activationId": created["activationId"]})
    assert status["activationName"] == "Bob's phone"
    assert status["devicePublicKeyFingerprint"] == public_key_fingerprint(
        device.public_key, created["activationId"], server_public_key
    )

    committed = api.call(
        "/activation/commit", {"activationId": created["activationId"]}
    )

    assert committed == {"activationId": created["activationId"], "activated": True}
    status = api.call("/activation/status", {"activationId": created["activationId"]})
    assert status["activationStatus"] == "ACTIVE"


def test_a_used_code_is_refused(api: Api, application: dict[str, Any]) -> None:
    created = api.call(
        "/activation/init",
        {"userId": "carol", "applicationId": application["applicationId"]},
    )
    request = {
        "activationCode": created["activationCode"],
        "devicePublicKey": b64(SimulatedDevice().public_key),
    }
    api.call("/activation/prepare", request)

    message = api.error("/activation/prepare", request, code="ERR0009")

    assert "activation code" in message


def test_an_expired_code_is_refused_and_its_key_deleted(tmp_path: Path) -> None:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    app = make_app(tmp_path, CLOCK=lambda: now[0], ACTIVATION_VALIDITY_MS=60_000)
    api = Api(app.test_client())
    application_id = unique("app")
    api.call("/application/create", {"applicationId": application_id})
    created = api.call(
        "/activation/init", {"userId": "dave", "applicationId": application_id}
    )
    status = api.call("/activation/status", {"activationId": created["activationId"]})
    assert status["timestampActivationExpire"] == "2030-01-01T00:01:00.000Z"
    label = f"pa-server-{created['activationId']}"
    assert get_hsm(app).has_keypair(label)

    now[0] += timedelta(seconds=61)
    api.error(
        "/activation/prepare",
        {
            "activationCode": created["activationCode"],
            "devicePublicKey": b64(SimulatedDevice().public_key),
        },
        code="ERR0007",
    )

    status = api.call("/activation/status", {"activationId": created["activationId"]})
    assert status["activationStatus"] == "REMOVED"
    assert not get_hsm(app).has_keypair(label)
    app.extensions["powerauth.engine"].dispose()


def test_caller_chosen_expiry_and_failure_count(
    api: Api, application: dict[str, Any]
) -> None:
    created = api.call(
        "/activation/init",
        {
            "userId": "erin",
            "applicationId": application["applicationId"],
            "maxFailureCount": 3,
            "timestampActivationExpire": "2999-01-01T10:00:00+02:00",
        },
    )

    status = api.call("/activation/status", {"activationId": created["activationId"]})

    assert status["maxFailedAttempts"] == 3
    assert status["timestampActivationExpire"] == "2999-01-01T08:00:00.000Z"


def test_block_unblock_remove_states(api: Api, enrolled: Enrolled) -> None:
    activation = {"activationId": enrolled.activation_id}
    assert api.call("/activation/block", activation)["blockedReason"] == (
        "NOT_SPECIFIED"
    )
    # Blocking twice keeps the first reason.
    again = api.call("/activation/block", {**activation, "reason": "OTHER"})
    assert again["blockedReason"] == "NOT_SPECIFIED"
    assert api.call("/activation/unblock", activation)["activationStatus"] == "ACTIVE"

    assert api.call("/activation/remove", activation) == {
        **activation,
        "removed": True,
    }
    assert api.call("/activation/remove", activation)["removed"] is True
    api.error("/activation/block", activation, code="ERR0008")
    api.error("/activation/unblock", activation, code="ERR0008")
    listed = api.call("/activation/list", {"userId": enrolled.user_id})
    assert [a["activationStatus"] for a in listed["activations"]] == ["REMOVED"]


def test_newest_master_key_signs_after_rotation(
    app: Flask, api: Api, application: dict[str, Any]
) -> None:
    application_id = application["applicationId"]
    result = app.test_cli_runner().invoke(
        args=["application", "rotate-key", application_id]
    )
    assert result.exit_code == 0, result.output
    assert f"pa-master-{application_id}-2" in result.output

    detail = api.call("/application/detail", {"applicationId": application_id})
    assert detail["masterPublicKey"] != application["masterPublicKey"]
    payload = api.call(
        "/signature/offline/non-personalized/create",
        {"applicationId": application_id, "data": payload_data()},
    )
    parse_offline_payload(payload["offlineData"]).verify_signature(
        unb64(detail["masterPublicKey"])
    )
    listed = api.call("/application/list", {})
    assert detail in listed["applications"]
