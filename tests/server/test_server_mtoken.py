"""The project's mobile token simulator against this server, in-process.

The simulator is written against the same REST contract from the device
side; these tests prove the two agree on every byte that matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from mtoken.device import Device
from mtoken.state import StateStore
from mtoken.transport import FlaskClientTransport
from powerauth.payload import parse_offline_payload
from tests.server.server_device import payload_data
from tests.server.server_testing import Api

pytestmark = pytest.mark.softhsm

PIN = "2580"


def test_mtoken_activates_scans_and_signs(
    tmp_path: Path, client: FlaskClient, api: Api, application: dict[str, Any]
) -> None:
    application_id = application["applicationId"]
    created = api.call(
        "/activation/init", {"userId": "mobile-user", "applicationId": application_id}
    )
    device = Device(StateStore(tmp_path / "phone"))

    result = device.activate(
        FlaskClientTransport(client),
        created["activationCode"],
        PIN,
        signature_b64=created["activationSignature"],
        application_id=application_id,
        commit=True,
    )
    activation_id = result.state.activation_id
    assert activation_id == created["activationId"]

    def verify(offline_data: str, code: str) -> dict[str, Any]:
        base = parse_offline_payload(offline_data).base_string()
        answer: dict[str, Any] = api.call(
            "/signature/offline/verify",
            {
                "activationId": activation_id,
                "data": base,
                "signature": code,
                "allowBiometry": True,
            },
        )
        return answer

    personalized = api.call(
        "/signature/offline/personalized/create",
        {"activationId": activation_id, "data": payload_data()},
    )["offlineData"]
    assert verify(personalized, device.sign(personalized, pin=PIN).code)[
        "signatureValid"
    ]

    # A wrong PIN still gives a code; the server refuses it (SPEC 10.5).
    wrong = verify(personalized, device.sign(personalized, pin="0000").code)
    assert wrong["signatureValid"] is False

    non_personalized = api.call(
        "/signature/offline/non-personalized/create",
        {"applicationId": application_id, "data": payload_data()},
    )["offlineData"]
    answer = verify(non_personalized, device.sign(non_personalized, biometry=True).code)
    assert answer["signatureValid"] is True
    assert answer["signatureType"] == "POSSESSION_BIOMETRY"
