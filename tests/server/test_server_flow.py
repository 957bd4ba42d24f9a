"""End to end through HTTP: activation, personalized QR, verification."""

from __future__ import annotations

from typing import Any

import pytest

from powerauth.payload import KeyIndicator, parse_offline_payload
from tests.server.server_device import payload_data, unb64
from tests.server.server_testing import Api, Enrolled

pytestmark = pytest.mark.softhsm


def test_personalized_qr_signed_by_server_key_and_code_accepted(
    api: Api, enrolled: Enrolled
) -> None:
    created = api.call(
        "/signature/offline/personalized/create",
        {"activationId": enrolled.activation_id, "data": payload_data()},
    )
    payload = parse_offline_payload(created["offlineData"])
    assert payload.indicator == KeyIndicator.PERSONALIZED
    assert payload.nonce == created["nonce"]
    assert len(unb64(created["nonce"])) == 16
    payload.verify_signature(enrolled.server_public_key)

    base_string = payload.base_string()
    code = enrolled.device.code(base_string)
    verified = api.call(
        "/signature/offline/verify",
        {
            "activationId": enrolled.activation_id,
            "data": base_string,
            "signature": code,
        },
    )
    assert verified == {
        "signatureValid": True,
        "activationStatus": "ACTIVE",
        "blockedReason": None,
        "activationId": enrolled.activation_id,
        "userId": enrolled.user_id,
        "applicationId": enrolled.application_id,
        "signatureType": "POSSESSION_KNOWLEDGE",
        "remainingAttempts": 5,
        "applicationRoles": [],
        "activationFlags": [],
    }


def test_non_personalized_qr_verifies_with_master_key(
    api: Api, application: dict[str, Any]
) -> None:
    created = api.call(
        "/signature/offline/non-personalized/create",
        {"applicationId": application["applicationId"], "data": payload_data()},
    )
    payload = parse_offline_payload(created["offlineData"])
    assert payload.indicator == KeyIndicator.MASTER
    payload.verify_signature(unb64(application["masterPublicKey"]))
