"""Offline verification rules (SPEC 6.2): replay, binding, lookahead, blocking."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from powerauth.payload import parse_offline_payload
from powerauth.signature import SignatureType
from tests.server.server_device import payload_data
from tests.server.server_testing import Api, Enrolled, enroll, make_app
from webapp import services
from webapp.extensions import get_hsm

pytestmark = pytest.mark.softhsm

StateReader = Callable[[str], services.ActivationView]


def qr_base_string(api: Api, activation_id: str, **data: Any) -> str:
    created = api.call(
        "/signature/offline/personalized/create",
        {"activationId": activation_id, "data": payload_data(**data)},
    )
    return parse_offline_payload(created["offlineData"]).base_string()


def verify(
    api: Api, activation_id: str, base_string: str, code: str, **extra: Any
) -> Any:
    return api.call(
        "/signature/offline/verify",
        {
            "activationId": activation_id,
            "data": base_string,
            "signature": code,
            **extra,
        },
    )


def test_same_code_twice_is_refused(
    api: Api, enrolled: Enrolled, activation_state: StateReader
) -> None:
    base = qr_base_string(api, enrolled.activation_id)
    code = enrolled.device.code(base)

    assert verify(api, enrolled.activation_id, base, code)["signatureValid"] is True
    again = verify(api, enrolled.activation_id, base, code)

    assert again["signatureValid"] is False
    assert again["remainingAttempts"] == 4
    state = activation_state(enrolled.activation_id)
    assert (state.counter, state.failed_attempts) == (1, 1)


def test_code_for_another_nonce_is_refused(api: Api, enrolled: Enrolled) -> None:
    shown = qr_base_string(api, enrolled.activation_id)
    other = qr_base_string(api, enrolled.activation_id)
    assert shown != other

    code = enrolled.device.code(other)

    assert verify(api, enrolled.activation_id, shown, code)["signatureValid"] is False


def test_code_for_other_operation_data_is_refused(api: Api, enrolled: Enrolled) -> None:
    nonce = "AD8bOO0Df73kNaIGb3Vmpg=="
    shown = api.call(
        "/signature/offline/personalized/create",
        {
            "activationId": enrolled.activation_id,
            "data": payload_data(),
            "nonce": nonce,
        },
    )
    assert shown["nonce"] == nonce
    signed = api.call(
        "/signature/offline/personalized/create",
        {
            "activationId": enrolled.activation_id,
            "data": payload_data(operation_data="A1*A999CZK*ICZ2730300000001165254011"),
            "nonce": nonce,
        },
    )
    shown_base = parse_offline_payload(shown["offlineData"]).base_string()
    signed_base = parse_offline_payload(signed["offlineData"]).base_string()

    code = enrolled.device.code(signed_base)

    verified = verify(api, enrolled.activation_id, shown_base, code)
    assert verified["signatureValid"] is False


def test_code_of_another_activation_is_refused(
    api: Api, application: dict[str, Any], enrolled: Enrolled
) -> None:
    other = enroll(api, application["applicationId"])
    base = qr_base_string(api, enrolled.activation_id)

    code = other.device.code(base)

    assert verify(api, enrolled.activation_id, base, code)["signatureValid"] is False


def test_lookahead_accepts_19_ahead_and_refuses_20(
    api: Api, application: dict[str, Any], activation_state: StateReader
) -> None:
    first = enroll(api, application["applicationId"])
    base = qr_base_string(api, first.activation_id)
    assert verify(api, first.activation_id, base, first.device.code(base, ahead=19))[
        "signatureValid"
    ]
    assert activation_state(first.activation_id).counter == 20

    second = enroll(api, application["applicationId"])
    base = qr_base_string(api, second.activation_id)
    refused = verify(
        api, second.activation_id, base, second.device.code(base, ahead=20)
    )
    assert refused["signatureValid"] is False
    assert activation_state(second.activation_id).counter == 0


def test_after_a_match_at_offset_k_the_window_moves_past_it(
    api: Api, enrolled: Enrolled, activation_state: StateReader
) -> None:
    device = enrolled.device
    start = device.ctr_data
    base = qr_base_string(api, enrolled.activation_id)
    assert verify(api, enrolled.activation_id, base, device.code(base, ahead=5))[
        "signatureValid"
    ]
    assert activation_state(enrolled.activation_id).counter == 6

    # A code from behind the new position (offset 3 of the old window) fails...
    behind = device.ctr_data
    device.ctr_data = start
    old = device.code(base, ahead=3)
    device.ctr_data = behind
    assert not verify(api, enrolled.activation_id, base, old)["signatureValid"]

    # ...and the device's next code, at position 6, is accepted at offset 0.
    assert verify(api, enrolled.activation_id, base, device.code(base))[
        "signatureValid"
    ]
    state = activation_state(enrolled.activation_id)
    assert (state.counter, state.failed_attempts) == (7, 0)


def test_five_wrong_codes_block_and_unblock_restores(
    api: Api, enrolled: Enrolled, activation_state: StateReader
) -> None:
    base = qr_base_string(api, enrolled.activation_id)
    for attempt in range(1, 6):
        answer = verify(api, enrolled.activation_id, base, "12345678-12345678")
        assert answer["signatureValid"] is False
        assert answer["remainingAttempts"] == 5 - attempt
    assert answer["activationStatus"] == "BLOCKED"
    assert answer["blockedReason"] == "MAX_FAILED_ATTEMPTS"

    good = enrolled.device.code(base)
    blocked = verify(api, enrolled.activation_id, base, good)
    assert blocked == {
        "signatureValid": False,
        "activationStatus": "BLOCKED",
        "activationId": enrolled.activation_id,
    }
    assert activation_state(enrolled.activation_id).failed_attempts == 5

    unblocked = api.call(
        "/activation/unblock", {"activationId": enrolled.activation_id}
    )
    assert unblocked["activationStatus"] == "ACTIVE"
    assert activation_state(enrolled.activation_id).failed_attempts == 0
    assert verify(api, enrolled.activation_id, base, good)["signatureValid"] is True


def test_manually_blocked_activation_is_not_valid(api: Api, enrolled: Enrolled) -> None:
    base = qr_base_string(api, enrolled.activation_id)
    blocked = api.call(
        "/activation/block",
        {"activationId": enrolled.activation_id, "reason": "LOST_PHONE"},
    )
    assert blocked["blockedReason"] == "LOST_PHONE"

    answer = verify(api, enrolled.activation_id, base, enrolled.device.code(base))

    assert answer["signatureValid"] is False
    assert answer["activationStatus"] == "BLOCKED"


def test_removed_activation_is_not_valid_and_its_key_is_gone(
    api: Api, app: Any, enrolled: Enrolled, activation_state: StateReader
) -> None:
    base = qr_base_string(api, enrolled.activation_id)
    label = activation_state(enrolled.activation_id).server_key_label
    assert get_hsm(app).has_keypair(label)

    api.call("/activation/remove", {"activationId": enrolled.activation_id})

    assert not get_hsm(app).has_keypair(label)
    answer = verify(api, enrolled.activation_id, base, enrolled.device.code(base))
    assert answer == {
        "signatureValid": False,
        "activationStatus": "REMOVED",
        "activationId": enrolled.activation_id,
    }


def test_unknown_activation_is_not_valid(api: Api, enrolled: Enrolled) -> None:
    base = qr_base_string(api, enrolled.activation_id)
    unknown = str(uuid.uuid4())

    answer = verify(api, unknown, base, enrolled.device.code(base))

    assert answer == {
        "signatureValid": False,
        "activationStatus": "REMOVED",
        "activationId": unknown,
    }


def test_biometry_only_when_allowed(
    api: Api, enrolled: Enrolled, activation_state: StateReader
) -> None:
    base = qr_base_string(api, enrolled.activation_id)
    code = enrolled.device.code(base, SignatureType.POSSESSION_BIOMETRY)

    refused = verify(api, enrolled.activation_id, base, code)
    assert refused["signatureValid"] is False
    accepted = verify(api, enrolled.activation_id, base, code, allowBiometry=True)

    assert accepted["signatureValid"] is True
    assert accepted["signatureType"] == "POSSESSION_BIOMETRY"
    assert activation_state(enrolled.activation_id).failed_attempts == 0


def test_component_length_downgrade_is_a_request_error(
    api: Api, enrolled: Enrolled, activation_state: StateReader
) -> None:
    base = qr_base_string(api, enrolled.activation_id)
    short = enrolled.device.code(base, component_length=4)

    message = api.error(
        "/signature/offline/verify",
        {
            "activationId": enrolled.activation_id,
            "data": base,
            "signature": short,
            "componentLength": 4,
        },
    )

    assert "componentLength" in message
    assert activation_state(enrolled.activation_id).failed_attempts == 0


def test_malformed_code_spends_no_attempt(
    api: Api, enrolled: Enrolled, activation_state: StateReader
) -> None:
    base = qr_base_string(api, enrolled.activation_id)

    message = api.error(
        "/signature/offline/verify",
        {"activationId": enrolled.activation_id, "data": base, "signature": "1234"},
    )

    assert "signature" in message
    state = activation_state(enrolled.activation_id)
    assert (state.failed_attempts, state.counter) == (0, 0)


def test_shorter_components_when_the_server_says_so(tmp_path: Path) -> None:
    app = make_app(tmp_path, OFFLINE_COMPONENT_LENGTH=6)
    api = Api(app.test_client())
    application = api.call(
        "/application/create", {"applicationId": f"app6-{uuid.uuid4().hex[:8]}"}
    )
    enrolled = enroll(api, application["applicationId"])
    base = qr_base_string(api, enrolled.activation_id)

    six = enrolled.device.code(base, component_length=6)
    assert len(six) == 13
    assert verify(api, enrolled.activation_id, base, six)["signatureValid"]
    # A caller may ask for longer components than the setting, never shorter.
    eight = enrolled.device.code(base, component_length=8)
    assert verify(api, enrolled.activation_id, base, eight, componentLength=8)[
        "signatureValid"
    ]
    api.error(
        "/signature/offline/verify",
        {
            "activationId": enrolled.activation_id,
            "data": base,
            "signature": "1234-5678",
            "componentLength": 4,
        },
    )
    app.extensions["powerauth.engine"].dispose()


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ("garbage", "four '&'-separated parts"),
        # A nonce that is not Base64 of 16 bytes (SPEC 3.9, 5.2).
        (
            "POST&L29wZXJhdGlvbi9hdXRob3JpemUvb2ZmbGluZQ==&short&YQ==",
            "nonce must be 24 characters",
        ),
        (
            "POST&L29wZXJhdGlvbi9hdXRob3JpemUvb2ZmbGluZQ==&AD8bOO0Df73kNaIGb3Vmpg==&YQ",
            "body must be canonical Base64",
        ),
        (
            "GET&L29wZXJhdGlvbi9hdXRob3JpemUvb2ZmbGluZQ==&AD8bOO0Df73kNaIGb3Vmpg==&YQ==",
            "must start with POST",
        ),
    ],
)
def test_malformed_base_string_is_refused_before_ecdh(
    app: Any,
    api: Api,
    enrolled: Enrolled,
    activation_state: StateReader,
    monkeypatch: pytest.MonkeyPatch,
    data: str,
    named: str,
) -> None:
    # Regression: no real client can produce a code for these, yet each one
    # ran ECDH and cost the user a failed attempt.
    hsm = get_hsm(app)
    calls: list[str] = []
    real_ecdh = hsm.ecdh

    def counting_ecdh(label: str, peer: bytes) -> bytes:
        calls.append(label)
        return real_ecdh(label, peer)

    monkeypatch.setattr(hsm, "ecdh", counting_ecdh)
    response = api.client.post(
        "/rest/v3/signature/offline/verify",
        json={
            "requestObject": {
                "activationId": enrolled.activation_id,
                "data": data,
                "signature": "12345678-12345678",
            }
        },
    )

    error = response.get_json()["responseObject"]
    assert (response.status_code, error["code"]) == (400, "ERR0024")
    assert error["message"].startswith("data: ") and named in error["message"]
    assert calls == []
    assert activation_state(enrolled.activation_id).failed_attempts == 0
