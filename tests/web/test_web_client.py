"""The pages' client interface: in-process and HTTP give the same answers, and
the pages work unchanged in front of a server reached over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from mtoken import Device
from powerauth.payload import build_payload_data, parse_offline_payload
from powerauth.signature import offline_body, signature_base_string
from tests.web.pages_testing import (
    PIN,
    Clock,
    Served,
    enroll,
    login,
    make_app,
    payment_form,
    post,
    unique,
)
from webapp.pages.client import (
    ClientError,
    HttpClient,
    InProcessClient,
    NotSupportedError,
)

pytestmark = pytest.mark.softhsm


@pytest.fixture
def served(app: Flask) -> Iterator[Served]:
    server = Served(app)
    yield server
    server.close()


def test_http_and_in_process_clients_agree(
    app: Flask, served: Served, user: str, device: Device
) -> None:
    activation_id = device.activations()[0].activation_id
    http = HttpClient(served.url)
    data = build_payload_data(unique("op"), "Title", "Message", "A2")

    with app.test_request_context():
        local = InProcessClient()
        for client in (local, http):
            payload = client.create_personalized_payload(activation_id, data)
            parsed = parse_offline_payload(payload.offline_data)
            assert parsed.indicator == "1" and parsed.nonce == payload.nonce
            code = device.sign(payload.offline_data, pin=PIN).code
            base = signature_base_string(
                payload.nonce, offline_body(parsed.operation_id, "A2")
            )
            wrong = client.verify_offline(
                activation_id, base, "00000000-00000000", False
            )
            assert not wrong.valid and wrong.remaining_attempts == 4
            right = client.verify_offline(activation_id, base, code, False)
            assert right.valid and right.status == "ACTIVE"
            master = client.create_non_personalized_payload(
                app.config["BANK_APPLICATION_ID"], data
            )
            assert parse_offline_payload(master.offline_data).indicator == "0"

        assert [a.activation_id for a in local.list_activations(user)] == [
            a.activation_id for a in http.list_activations(user)
        ]
        assert http.get_activation(activation_id).status == "ACTIVE"
        names = {a.application_id for a in http.list_applications()}
        assert app.config["BANK_APPLICATION_ID"] in names
        assert {a.application_id for a in local.list_applications()} == names
        created = http.init_activation(
            unique("carol"), app.config["BANK_APPLICATION_ID"]
        )
        assert "#" in created.qr_text
        http.block_activation(activation_id)
        assert local.get_activation(activation_id).status == "BLOCKED"
        http.unblock_activation(activation_id)
        http.remove_activation(created.activation_id)
        assert local.get_activation(created.activation_id).status == "REMOVED"
        with pytest.raises(NotSupportedError, match="per user"):
            http.list_activations(None)
        with pytest.raises(NotSupportedError, match="audit trail"):
            http.audit_trail(10)
        assert local.audit_trail(5)
        with pytest.raises(ClientError) as refused:
            http.get_activation("no-such-activation")
        assert refused.value.code == "ERR0009"


def test_http_client_reports_an_unreachable_server() -> None:
    client = HttpClient("http://127.0.0.1:9")
    with pytest.raises(ClientError, match="unreachable"):
        client.list_applications()
    with pytest.raises(ClientError, match="http"):
        HttpClient("ftp://example")


def test_pages_front_a_server_over_http(
    app: Flask, served: Served, tmp_path: Path, clock: Clock
) -> None:
    """A second app whose pages use the first one's REST API over HTTP."""
    user = unique("dave")
    device = enroll(app, user, tmp_path / "phone")
    front_dir = tmp_path / "front"
    front_dir.mkdir()
    front = make_app(
        front_dir,
        clock,
        API_URL=served.url,
        BANK_APPLICATION_ID=app.config["BANK_APPLICATION_ID"],
    )
    client = front.test_client()

    login(client, user, device)
    url = post(client, "/payment/new", payment_form(clock)).headers["Location"]
    page = client.get(url).get_data(as_text=True)
    from tests.web.pages_testing import qr_text

    code = device.sign(qr_text(page), pin=PIN).code
    assert post(client, url, {"code": code}).status_code == 302
    assert "Payment confirmed" in client.get(url).get_data(as_text=True)
    front.extensions["powerauth.engine"].dispose()
