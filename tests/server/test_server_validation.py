"""Malformed requests: HTTP 400, the field named, and the database unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.server.server_device import b64, payload_data
from tests.server.server_testing import Api, Enrolled, database_dump
from tests.server.test_server_verify import qr_base_string

pytestmark = pytest.mark.softhsm

VERIFY = "/rest/v3/signature/offline/verify"
PERSONALIZED = "/rest/v3/signature/offline/personalized/create"
NON_PERSONALIZED = "/rest/v3/signature/offline/non-personalized/create"
BASE = "POST&L29wZXJhdGlvbi9hdXRob3JpemUvb2ZmbGluZQ==&AD8bOO0Df73kNaIGb3Vmpg==&YQ=="


def raw(client: FlaskClient, path: str, body: bytes, content_type: str) -> Any:
    return client.post(path, data=body, content_type=content_type)


@pytest.mark.parametrize(
    ("body", "content_type", "named"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"\xff\xfe", "application/json", "UTF-8"),
        (b"[]", "application/json", "JSON object"),
        (b"{}", "application/json", "requestObject is required"),
        (b'{"requestObject": 5}', "application/json", "requestObject must be"),
        (
            b'{"requestObject": {}, "extra": 1}',
            "application/json",
            "extra",
        ),
        (b'{"requestObject": {}}', "text/plain", "Content-Type"),
        (
            b'{"requestObject": {"applicationId": NaN}}',
            "application/json",
            "NaN",
        ),
        # Regressions of the security review: these used to end in HTTP 500.
        (
            b'{"requestObject": {"applicationId": ' + b"9" * 5000 + b"}}",
            "application/json",
            "number with too many digits",
        ),
        (
            b'{"requestObject": {"x": ' + b"[" * 30000 + b"]" * 30000 + b"}}",
            "application/json",
            "nested too deeply",
        ),
        (
            b'{"requestObject": {"applicationId": "a", "applicationId": "b"}}',
            "application/json",
            "member applicationId appears twice",
        ),
        (
            b'{"requestObject": {}, "requestObject": {}}',
            "application/json",
            "member requestObject appears twice",
        ),
    ],
)
def test_malformed_envelope(
    app: Flask, client: FlaskClient, body: bytes, content_type: str, named: str
) -> None:
    before = database_dump(app)

    response = raw(client, "/rest/v3/application/detail", body, content_type)

    assert response.status_code == 400
    error = response.get_json()
    assert error["status"] == "ERROR"
    assert error["responseObject"]["code"] == "ERR0024"
    assert named in error["responseObject"]["message"]
    assert database_dump(app) == before


def test_oversized_body(app: Flask, client: FlaskClient) -> None:
    before = database_dump(app)
    body = json.dumps(
        {"requestObject": {"applicationId": "a", "data": "x" * 70_000}}
    ).encode()

    response = raw(client, NON_PERSONALIZED, body, "application/json")

    assert response.status_code == 400
    assert "larger than" in response.get_json()["responseObject"]["message"]
    assert database_dump(app) == before


# Placeholders, replaced by the ids of the test's application and activation.
ACT = "<activation>"
APP = "<application>"
activation_id = ACT
application_id = APP
good = {"activationId": ACT, "data": BASE, "signature": "1-2"}

# (path, requestObject, what the message must name, error code)
BAD_REQUESTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("/rest/v3/application/create", {}, "applicationId", "ERR0024"),
    (
        "/rest/v3/application/create",
        {"applicationId": 5},
        "applicationId",
        "ERR0024",
    ),
    (
        "/rest/v3/application/create",
        {"applicationId": "bad id with spaces"},
        "applicationId",
        "ERR0024",
    ),
    (
        "/rest/v3/application/create",
        {"applicationId": application_id},
        "already exists",
        "ERR0024",
    ),
    (
        "/rest/v3/activation/init",
        {"userId": "u", "applicationId": application_id, "maxFailureCount": 0},
        "maxFailureCount",
        "ERR0024",
    ),
    (
        "/rest/v3/activation/init",
        {"userId": "u", "applicationId": application_id, "maxFailureCount": "5"},
        "maxFailureCount",
        "ERR0024",
    ),
    (
        "/rest/v3/activation/init",
        {
            "userId": "u",
            "applicationId": application_id,
            "timestampActivationExpire": "2001-01-01T00:00:00Z",
        },
        "timestampActivationExpire",
        "ERR0024",
    ),
    (
        "/rest/v3/activation/init",
        {"userId": "u", "applicationId": "no-such-app"},
        "no-such-app",
        "ERR0015",
    ),
    (
        "/rest/v3/activation/init",
        {"userId": "u", "applicationId": application_id, "activationOtp": "1"},
        "activationOtp",
        "ERR0024",
    ),
    (
        "/rest/v3/activation/prepare",
        {"activationCode": "AAAAA-AAAAA-AAAAA-AAAAB", "devicePublicKey": "BA=="},
        "activationCode",
        "ERR0024",
    ),
    (
        "/rest/v3/activation/prepare",
        {"activationCode": "AAAAA-AAAAA-AAAAA-AAAAA", "devicePublicKey": "BA=="},
        "devicePublicKey",
        "ERR0010",
    ),
    (
        "/rest/v3/activation/prepare",
        {
            "activationCode": "AAAAA-AAAAA-AAAAA-AAAAA",
            "devicePublicKey": b64(b"\x04" + bytes(64)),
        },
        "devicePublicKey",
        "ERR0010",
    ),
    (
        "/rest/v3/activation/prepare",
        {
            "activationCode": "AAAAA-AAAAA-AAAAA-AAAAA",
            "devicePublicKey": "BBBB",
            "extraField": 1,
        },
        "extraField",
        "ERR0024",
    ),
    (
        "/rest/v3/activation/prepare",
        {
            "activationCode": "AAAAA-AAAAA-AAAAA-AAAAA",
            "devicePublicKey": "not base64!",
        },
        "devicePublicKey",
        "ERR0024",
    ),
    (
        "/rest/v3/activation/commit",
        {"activationId": activation_id},
        "PENDING_COMMIT",
        "ERR0008",
    ),
    ("/rest/v3/activation/block", {"activationId": 7}, "activationId", "ERR0024"),
    (
        "/rest/v3/activation/status",
        {"activationId": "nope"},
        "nope",
        "ERR0009",
    ),
    (PERSONALIZED, {"activationId": activation_id}, "data", "ERR0024"),
    (
        PERSONALIZED,
        {"activationId": activation_id, "data": payload_data(), "nonce": "abc"},
        "nonce",
        "ERR0024",
    ),
    (
        PERSONALIZED,
        {
            "activationId": activation_id,
            "data": payload_data(),
            "nonce": b64(bytes(15)),
        },
        "nonce",
        "ERR0024",
    ),
    (
        PERSONALIZED,
        {"activationId": activation_id, "data": "only\ntwo lines"},
        "data",
        "ERR0024",
    ),
    (
        PERSONALIZED,
        {"activationId": activation_id, "data": payload_data(title="Pay\x07")},
        "data",
        "ERR0024",
    ),
    (
        PERSONALIZED,
        {"activationId": activation_id, "data": payload_data(message="x" * 3000)},
        "data",
        "ERR0024",
    ),
    (
        PERSONALIZED,
        {"activationId": activation_id, "data": "\ud800" + payload_data()},
        "data",
        "ERR0024",
    ),
    (
        PERSONALIZED,
        {
            "activationId": activation_id,
            "data": payload_data(),
            "proximityCheck": {"seed": "AA==", "stepLength": 30},
        },
        "proximityCheck",
        "ERR0024",
    ),
    (
        PERSONALIZED,
        {"activationId": "missing", "data": payload_data()},
        "missing",
        "ERR0009",
    ),
    (NON_PERSONALIZED, {"applicationId": application_id}, "data", "ERR0024"),
    (
        NON_PERSONALIZED,
        {"applicationId": application_id, "data": payload_data(), "nonce": "x"},
        "nonce",
        "ERR0024",
    ),
    (VERIFY, {**good, "signature": None}, "signature", "ERR0024"),
    (VERIFY, {**good, "signature": 12345678}, "signature", "ERR0024"),
    (VERIFY, {**good, "signature": "1234567a-12345678"}, "signature", "ERR0024"),
    (VERIFY, {**good, "signature": "123456789-1234567"}, "signature", "ERR0024"),
    (VERIFY, {**good, "allowBiometry": "true"}, "allowBiometry", "ERR0024"),
    (VERIFY, {**good, "componentLength": True}, "componentLength", "ERR0024"),
    (VERIFY, {**good, "componentLength": 9}, "componentLength", "ERR0024"),
    (VERIFY, {**good, "biometryAllowed": True}, "biometryAllowed", "ERR0024"),
    (VERIFY, {**good, "data": ""}, "data", "ERR0024"),
    (VERIFY, {**good, "data": ["x"]}, "data", "ERR0024"),
    (VERIFY, {**good, "activationId": "x" * 37}, "activationId", "ERR0024"),
    (VERIFY, {**good, "activationId": "a b"}, "activationId", "ERR0024"),
    (
        "/rest/v3/activation/block",
        {"activationId": ACT, "externalUserId": "u" * 256},
        "externalUserId",
        "ERR0024",
    ),
    (
        "/rest/v3/application/detail",
        {"applicationId": "x" * 65},
        "applicationId",
        "ERR0024",
    ),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return ids.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize(
    ("path", "request_object", "named", "code"),
    BAD_REQUESTS,
    ids=[f"{case[0].removeprefix('/rest/v3/')}-{case[2]}" for case in BAD_REQUESTS],
)
def test_refused_request_names_the_field_and_changes_nothing(
    app: Flask,
    client: FlaskClient,
    enrolled: Enrolled,
    path: str,
    request_object: dict[str, Any],
    named: str,
    code: str,
) -> None:
    ids = {ACT: enrolled.activation_id, APP: enrolled.application_id}
    before = database_dump(app)

    response = client.post(path, json={"requestObject": _fill(request_object, ids)})

    assert response.status_code == 400, response.get_json()
    error = response.get_json()["responseObject"]
    assert error["code"] == code, error
    assert _fill(named, ids) in error["message"], error
    assert database_dump(app) == before


def test_payload_needs_an_active_activation(
    api: Api, enrolled: Enrolled, app: Flask
) -> None:
    api.call("/activation/block", {"activationId": enrolled.activation_id})
    before = database_dump(app)

    message = api.error(
        "/signature/offline/personalized/create",
        {"activationId": enrolled.activation_id, "data": payload_data()},
        code="ERR0008",
    )

    assert "ACTIVE" in message
    assert database_dump(app) == before


def send_text(client: FlaskClient, path: str, body: str) -> Any:
    """Post a JSON body written by hand (json.dumps would escape a backslash)."""
    return client.post(path, data=body.encode("ascii"), content_type="application/json")


def test_lone_surrogate_in_verify_data_is_refused_before_the_token(
    app: Flask,
    client: FlaskClient,
    enrolled: Enrolled,
    activation_state: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: the surrogate reached the base string's encoding after ECDH
    # (HTTP 500, one attempt spent).
    hsm = app.extensions["powerauth.hsm"]
    calls: list[str] = []
    real_ecdh = hsm.ecdh

    def counting_ecdh(label: str, peer: bytes) -> bytes:
        calls.append(label)
        return real_ecdh(label, peer)

    monkeypatch.setattr(hsm, "ecdh", counting_ecdh)
    body = (
        f'{{"requestObject": {{"activationId": "{enrolled.activation_id}", '
        '"data": "POST&\\ud800", "signature": "12345678-12345678"}}'
    )

    response = send_text(client, VERIFY, body)

    assert response.status_code == 400
    error = response.get_json()["responseObject"]
    assert error["code"] == "ERR0024"
    assert error["message"].startswith("data is not valid Unicode text")
    assert calls == []
    assert activation_state(enrolled.activation_id).failed_attempts == 0


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/rest/v3/activation/init", "userId", "\\udc00"),
        ("/rest/v3/activation/init", "userId", "ok\\ud83d"),  # half an emoji
        ("/rest/v3/activation/block", "reason", "\\udc00"),
        ("/rest/v3/signature/offline/personalized/create", "data", "\\ud800x"),
    ],
)
def test_lone_surrogate_in_text_fields(
    app: Flask,
    client: FlaskClient,
    enrolled: Enrolled,
    path: str,
    field: str,
    value: str,
) -> None:
    # Regression: these used to end in HTTP 500 (after a key generation for
    # activation/init).
    base = {
        "/rest/v3/activation/init": {"applicationId": enrolled.application_id},
        "/rest/v3/activation/block": {"activationId": enrolled.activation_id},
        "/rest/v3/signature/offline/personalized/create": {
            "activationId": enrolled.activation_id
        },
    }[path]
    members = [f'"{k}": {json.dumps(v)}' for k, v in base.items()]
    members.append(f'"{field}": "{value}"')
    before = database_dump(app)

    response = send_text(
        client, path, '{"requestObject": {' + ", ".join(members) + "}}"
    )

    assert response.status_code == 400
    error = response.get_json()["responseObject"]
    assert (error["code"], error["message"].split(" ")[0]) == ("ERR0024", field)
    assert database_dump(app) == before


def test_duplicate_member_names_are_refused(
    api: Api, client: FlaskClient, enrolled: Enrolled, activation_state: Any
) -> None:
    # Regression: the last of two "signature" members was taken, while a proxy
    # or WAF in front may read the first.
    base = qr_base_string(api, enrolled.activation_id)
    code = enrolled.device.code(base)
    body = (
        f'{{"requestObject": {{"activationId": "{enrolled.activation_id}", '
        f'"data": "{base}", "signature": "00000000-00000000", '
        f'"signature": "{code}"}}}}'
    )

    response = send_text(client, VERIFY, body)

    assert response.status_code == 400
    error = response.get_json()["responseObject"]
    assert error["code"] == "ERR0024"
    assert "member signature appears twice" in error["message"]
    state = activation_state(enrolled.activation_id)
    assert (state.counter, state.failed_attempts) == (0, 0)
