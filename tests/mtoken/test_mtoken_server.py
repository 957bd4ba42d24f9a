"""The simulator against the real web app: SoftHSM token, SQLite file.

The backend side of each exchange (creating QR codes, verifying typed codes)
calls the server's REST API the way an integrating bank backend would, and
rebuilds the verify base string from its own operation data and nonce, never
from the device.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import segno
from flask import Flask
from werkzeug.serving import make_server

from mtoken.cli import main
from mtoken.device import Device
from mtoken.errors import IndicatorMismatchError, PayloadSignatureError
from mtoken.transport import FlaskClientTransport, Transport
from powerauth.signature import offline_body, signature_base_string

pytestmark = pytest.mark.softhsm

PIN = "2580"
OPERATION_DATA = (
    "A1*A1999.9EUR*IDE89370400440532013000,COBADEFFXXX*D20261231*NMiete Dezember"
)
PAYMENT = "\n".join(
    ["op-{}", "Überweisung", "Bitte bestätigen 💶", OPERATION_DATA, "B"]
)
LOGIN = "\n".join(["op-{}", "Вход", "Подтвердите вход", "A2", ""])


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    from webapp import create_app

    app = create_app(
        {"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'server.sqlite'}"}
    )
    result = app.test_cli_runner().invoke(args=["db", "init"])
    assert result.exit_code == 0, result.output
    yield app
    app.extensions["powerauth.engine"].dispose()


class Backend:
    """The bank's backend: it talks to the server and remembers what it sent."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.application_id = f"app-{uuid.uuid4().hex[:12]}"
        self.master_public_key = transport.call(
            "/rest/v3/application/create", {"applicationId": self.application_id}
        )["masterPublicKey"]

    def init_activation(self) -> dict[str, Any]:
        return self.transport.call(
            "/rest/v3/activation/init",
            {"userId": "pilot", "applicationId": self.application_id},
        )

    def qr(self, template: str, activation_id: str | None) -> tuple[str, str, str]:
        """(offlineData, operation id, nonce) of a new operation."""
        operation_id = uuid.uuid4().hex
        data = template.format(operation_id)
        if activation_id is None:
            answer = self.transport.call(
                "/rest/v3/signature/offline/non-personalized/create",
                {"applicationId": self.application_id, "data": data},
            )
        else:
            answer = self.transport.call(
                "/rest/v3/signature/offline/personalized/create",
                {"activationId": activation_id, "data": data},
            )
        return answer["offlineData"], f"op-{operation_id}", answer["nonce"]

    def verify(
        self,
        activation_id: str,
        operation_id: str,
        operation_data: str,
        nonce: str,
        code: str,
        allow_biometry: bool = False,
    ) -> dict[str, Any]:
        base = signature_base_string(nonce, offline_body(operation_id, operation_data))
        return self.transport.call(
            "/rest/v3/signature/offline/verify",
            {
                "activationId": activation_id,
                "data": base,
                "signature": code,
                "allowBiometry": allow_biometry,
            },
        )

    def status(self, activation_id: str) -> dict[str, Any]:
        return self.transport.call(
            "/rest/v3/activation/status", {"activationId": activation_id}
        )


@pytest.fixture
def transport(app: Flask) -> FlaskClientTransport:
    return FlaskClientTransport(app)


@pytest.fixture
def backend(transport: FlaskClientTransport) -> Backend:
    return Backend(transport)


def activate(device: Device, backend: Backend, transport: Transport) -> str:
    created = backend.init_activation()
    result = device.activate(
        transport,
        created["activationCode"],
        PIN,
        signature_b64=created["activationSignature"],
        application_id=backend.application_id,
        name="pilot phone",
        commit=True,
    )
    assert result.activation_id == created["activationId"]
    return result.activation_id


def test_activation_matches_the_server(
    device: Device, backend: Backend, transport: FlaskClientTransport
) -> None:
    created = backend.init_activation()
    result = device.activate(
        transport,
        created["activationCode"],
        PIN,
        signature_b64=created["activationSignature"],
        application_id=backend.application_id,
    )

    status = backend.status(result.activation_id)
    assert status["activationStatus"] == "PENDING_COMMIT"
    assert status["devicePublicKeyFingerprint"] == result.fingerprint
    assert result.state.master_public_key is not None

    state = device.commit(transport, result.activation_id)
    assert state.status == "ACTIVE"
    assert backend.status(result.activation_id)["activationStatus"] == "ACTIVE"


def test_personalized_and_non_personalized_codes_are_accepted(
    device: Device, backend: Backend, transport: FlaskClientTransport
) -> None:
    activation_id = activate(device, backend, transport)

    for target in (activation_id, None):
        payload, operation_id, nonce = backend.qr(PAYMENT, target)
        verified = device.scan(payload)
        assert verified.personalized is (target is not None)
        assert verified.payload.title == "Überweisung"

        code = device.sign(verified, pin=PIN)

        answer = backend.verify(
            activation_id, operation_id, OPERATION_DATA, nonce, code.code
        )
        assert answer["signatureValid"] is True, answer
        assert answer["signatureType"] == "POSSESSION_KNOWLEDGE"


def test_biometry_code_is_accepted_only_when_allowed(
    device: Device, backend: Backend, transport: FlaskClientTransport
) -> None:
    activation_id = activate(device, backend, transport)
    payload, operation_id, nonce = backend.qr(PAYMENT, activation_id)

    code = device.sign(device.scan(payload), biometry=True)

    refused = backend.verify(
        activation_id, operation_id, OPERATION_DATA, nonce, code.code
    )
    assert refused["signatureValid"] is False
    accepted = backend.verify(
        activation_id, operation_id, OPERATION_DATA, nonce, code.code, True
    )
    assert accepted["signatureValid"] is True
    assert accepted["signatureType"] == "POSSESSION_BIOMETRY"


def test_wrong_pin_gives_a_code_the_server_refuses(
    device: Device, backend: Backend, transport: FlaskClientTransport
) -> None:
    activation_id = activate(device, backend, transport)
    payload, operation_id, nonce = backend.qr(PAYMENT, activation_id)
    verified = device.scan(payload)

    wrong = device.sign(verified, pin="0000")
    answer = backend.verify(
        activation_id, operation_id, OPERATION_DATA, nonce, wrong.code
    )

    assert answer["signatureValid"] is False
    assert answer["remainingAttempts"] == 4
    # The right PIN still works: the server looks ahead past the wasted step.
    right = device.sign(verified, pin=PIN)
    answer = backend.verify(
        activation_id, operation_id, OPERATION_DATA, nonce, right.code
    )
    assert answer["signatureValid"] is True


def test_payload_of_another_activation_or_application(
    device: Device, backend: Backend, transport: FlaskClientTransport
) -> None:
    first = activate(device, backend, transport)
    second = activate(device, backend, transport)
    payload, _, _ = backend.qr(LOGIN, second)
    with pytest.raises(IndicatorMismatchError, match=second):
        device.scan(payload, activation_id=first)

    other_app = Backend(transport)
    foreign, _, _ = other_app.qr(LOGIN, None)
    with pytest.raises(PayloadSignatureError, match="master key"):
        device.scan(foreign, activation_id=first)


@pytest.fixture
def http_url(app: Flask) -> Iterator[str]:
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join()


def test_cli_session_over_http(
    backend: Backend,
    http_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The pilot's session from the README, against a real HTTP server."""
    state = str(tmp_path / "phone")

    def mtoken(*args: str) -> Any:
        capsys.readouterr()
        try:
            main(["--state", state, "--json", *args])
        except SystemExit as exc:
            assert exc.code in (0, None), capsys.readouterr()
        return json.loads(capsys.readouterr().out)

    created = backend.init_activation()
    activated = mtoken(
        "activate",
        "--server",
        http_url,
        "--code",
        created["activationCode"],
        "--signature",
        created["activationSignature"],
        "--application-id",
        backend.application_id,
        "--pin",
        PIN,
        "--commit",
    )
    assert activated["status"] == "ACTIVE"
    activation_id = created["activationId"]

    image = tmp_path / "qr.png"
    for target, pin, valid in (
        (activation_id, PIN, True),
        (None, PIN, True),
        (activation_id, "0000", False),
    ):
        payload, operation_id, nonce = backend.qr(PAYMENT, target)
        qr = segno.make(payload.encode("utf-8"), mode="byte")
        qr.save(image, kind="png", scale=4)
        signed = mtoken("sign", str(image), "--pin", pin)

        assert signed["title"] == "Überweisung"
        assert signed["personalized"] is (target is not None)
        answer = backend.verify(
            activation_id, operation_id, OPERATION_DATA, nonce, signed["code"]
        )
        assert answer["signatureValid"] is valid
    assert mtoken("status", "--refresh")["status"] == "ACTIVE"
