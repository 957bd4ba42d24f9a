"""Migration from a PowerAuth server database: keys in Java integer form."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from powerauth.keys import private_key_to_java_bytes
from powerauth.payload import parse_offline_payload
from tests.server.server_device import (
    SimulatedDevice,
    b64,
    payload_data,
    public_bytes,
    unb64,
)
from tests.server.server_testing import Api, unique
from webapp import services
from webapp.extensions import get_hsm

pytestmark = pytest.mark.softhsm


def key_with_java_length(length: int) -> ec.EllipticCurvePrivateKey:
    """A P-256 key whose Java ``toByteArray()`` form has ``length`` bytes."""
    while True:
        key = ec.generate_private_key(ec.SECP256R1())
        if len(java_private(key)) == length:
            return key


def java_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key_to_java_bytes(key.private_numbers().private_value)


def exported_records(
    application_id: str, activation_id: str, **activation: Any
) -> tuple[dict[str, Any], dict[str, Any], SimulatedDevice]:
    """Key material as a PowerAuth server would hold it, plus the device."""
    master = key_with_java_length(33)  # top bit set: the sign byte is needed
    server = key_with_java_length(32)
    device = SimulatedDevice()
    ctr_data = os.urandom(16)
    # The device is three codes ahead of the server's stored counter.
    device.activate(public_bytes(server), ctr_data)
    application = {
        "applicationId": application_id,
        "masterPrivateKey": b64(java_private(master)),
        "masterPublicKey": b64(public_bytes(master)),
    }
    record = {
        "activationId": activation_id,
        "applicationId": application_id,
        "userId": "migrated-user",
        "serverPrivateKey": b64(java_private(server)),
        "serverPublicKey": b64(public_bytes(server)),
        "devicePublicKey": b64(device.public_key),
        "ctrData": b64(ctr_data),
        "counter": 41,
        "activationStatus": "ACTIVE",
        "failedAttempts": 2,
        **activation,
    }
    return application, record, device


def test_imported_activation_verifies_a_device_code(
    app: Flask,
    api: Api,
    activation_state: Callable[[str], services.ActivationView],
) -> None:
    application_id = unique("migrated")
    activation_id = str(uuid.uuid4())
    application, record, device = exported_records(application_id, activation_id)

    imported_app = api.call("/import/application", application)
    assert imported_app["masterPublicKey"] == application["masterPublicKey"]
    imported = api.call("/import/activation", record)
    assert imported["activationStatus"] == "ACTIVE"
    assert imported["failedAttempts"] == 2
    # In the token, unreadable from now on; the token knows it once was outside.
    properties = get_hsm(app).private_key_properties(f"pa-server-{activation_id}")
    assert properties.sensitive and not properties.extractable
    assert not properties.always_sensitive

    created = api.call(
        "/signature/offline/personalized/create",
        {"activationId": activation_id, "data": payload_data()},
    )
    payload = parse_offline_payload(created["offlineData"])
    payload.verify_signature(unb64(record["serverPublicKey"]))
    base = payload.base_string()
    code = device.code(base, ahead=3)

    answer = api.call(
        "/signature/offline/verify",
        {"activationId": activation_id, "data": base, "signature": code},
    )

    assert answer["signatureValid"] is True
    state = activation_state(activation_id)
    assert (state.counter, state.failed_attempts) == (45, 0)

    master_qr = api.call(
        "/signature/offline/non-personalized/create",
        {"applicationId": application_id, "data": payload_data()},
    )
    parse_offline_payload(master_qr["offlineData"]).verify_signature(
        unb64(application["masterPublicKey"])
    )


def test_import_refuses_a_public_key_of_another_private_key(
    app: Flask, api: Api
) -> None:
    application_id = unique("migrated")
    application, _record, _device = exported_records(application_id, "x")
    other = ec.generate_private_key(ec.SECP256R1())
    application["masterPublicKey"] = b64(public_bytes(other))

    message = api.error("/import/application", application, code="ERR0010")

    assert "masterPublicKey" in message
    api.error("/application/detail", {"applicationId": application_id}, "ERR0015")
    # The key written before the check failed is deleted again.
    assert not get_hsm(app).has_keypair(f"pa-master-{application_id}-1")


def test_cli_imports_from_json_files(
    app: Flask,
    tmp_path: Path,
    api: Api,
    activation_state: Callable[[str], services.ActivationView],
) -> None:
    application_id = unique("cli-migrated")
    activation_id = str(uuid.uuid4())
    application, record, device = exported_records(
        application_id,
        activation_id,
        activationStatus="BLOCKED",
        blockedReason="LOST_PHONE",
    )
    app_file = tmp_path / "applications.json"
    app_file.write_text(json.dumps([application]))
    act_file = tmp_path / "activations.json"
    act_file.write_text(json.dumps(record))
    runner = app.test_cli_runner()

    result = runner.invoke(args=["application", "import", str(app_file)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["activation", "import", str(act_file)])
    assert result.exit_code == 0, result.output
    assert "BLOCKED" in result.output
    # Private keys never show up in the output.
    assert record["serverPrivateKey"] not in result.output

    state = activation_state(activation_id)
    assert (str(state.status), state.blocked_reason) == ("BLOCKED", "LOST_PHONE")
    api.call("/activation/unblock", {"activationId": activation_id})
    payload = api.call(
        "/signature/offline/personalized/create",
        {"activationId": activation_id, "data": payload_data()},
    )
    base = parse_offline_payload(payload["offlineData"]).base_string()
    answer = api.call(
        "/signature/offline/verify",
        {"activationId": activation_id, "data": base, "signature": device.code(base)},
    )
    assert answer["signatureValid"] is True
