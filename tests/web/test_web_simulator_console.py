"""The token simulator page and the pilot console through the Flask test client."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mtoken import Device, StateStore
from mtoken.errors import AmbiguousActivationError
from tests.server.server_testing import stored_activation
from tests.web.pages_testing import (
    CONSOLE_PASSWORD,
    PIN,
    Clock,
    enroll,
    login,
    make_app,
    payment_form,
    post,
    qr_text,
    unique,
)

pytestmark = pytest.mark.softhsm


def console(client: FlaskClient) -> FlaskClient:
    response = post(client, "/console/login", {"password": CONSOLE_PASSWORD})
    assert response.status_code == 302
    return client


def create_activation(client: FlaskClient, app: Flask, user: str) -> str:
    """Create an activation in the console; return its QR text CODE#SIGNATURE."""
    page = post(
        client,
        "/console/activations",
        {"user_id": user, "application_id": app.config["BANK_APPLICATION_ID"]},
    ).get_data(as_text=True)
    match = re.search(r'<pre id="activation-qr-text">(.*?)</pre>', page, re.S)
    assert match, page
    assert '<svg role="img" aria-label="Activation code' in page
    return html.unescape(match.group(1))


def simulator_activate(client: FlaskClient, code: str, **extra: str) -> str:
    data = {"activation_code": code, "pin": PIN, "pin_again": PIN, "commit": "on"}
    data.update(extra)
    return str(post(client, "/simulator/activate", data).get_data(as_text=True))


def test_console_needs_its_password(app: Flask, client: FlaskClient) -> None:
    assert client.get("/console/").headers["Location"].endswith("/console/login")
    wrong = post(client, "/console/login", {"password": "guess"})
    assert wrong.status_code == 403
    assert "The password is not right." in wrong.get_data(as_text=True)
    assert client.get("/console/audit").status_code == 302
    console(client)
    assert client.get("/console/").status_code == 200
    post(client, "/console/logout")
    assert client.get("/console/").status_code == 302


def test_console_is_off_without_a_password(tmp_path: Path, clock: Clock) -> None:
    app = make_app(tmp_path, clock, CONSOLE_PASSWORD="")
    client = app.test_client()
    assert client.get("/console/login").status_code == 404
    assert "Pilot console" not in client.get("/").get_data(as_text=True)
    app.extensions["powerauth.engine"].dispose()


def test_pilot_session_console_simulator_bank(app: Flask, client: FlaskClient) -> None:
    """Console creates the code, the simulator page activates, signs a payment."""
    user = unique("pilot")
    console(client)
    code = create_activation(client, app, user)

    mismatch = simulator_activate(client, code, pin_again="9999")
    assert "The two PINs differ." in mismatch
    done = simulator_activate(client, code, name="Pilot phone")
    assert "stored (ACTIVE)" in done and "Fingerprint" in done
    index = client.get("/simulator/").get_data(as_text=True)
    assert "SIMULATOR" in index and "Pilot phone" in index
    listed = client.get(f"/console/?user={user}").get_data(as_text=True)
    assert "ACTIVE" in listed and user in listed

    # Bank login and a payment, the codes read from the simulator page.
    def code_for(text: str) -> str:
        scanned = post(client, "/simulator/scan", {"payload": text})
        assert scanned.status_code == 200, scanned.get_data(as_text=True)
        signed = post(
            client, "/simulator/sign", {"payload": text, "pin": PIN}
        ).get_data(as_text=True)
        match = re.search(r'<p class="code" id="code"[^>]*>(.*?)</p>', signed)
        assert match, signed
        return match.group(1)

    started = post(client, "/login", {"username": user})
    url = started.headers["Location"]
    text = qr_text(client.get(url).get_data(as_text=True))
    assert post(client, url, {"code": code_for(text)}).status_code == 302
    clock_now = app.config["CLOCK"]
    created = post(client, "/payment/new", payment_form(clock_now))
    url = created.headers["Location"]
    page = client.get(url).get_data(as_text=True)
    text = qr_text(page)
    scanned = post(client, "/simulator/scan", {"payload": text}).get_data(as_text=True)
    assert "Confirm payment" in scanned and "1,250.50 CZK" in scanned
    assert post(client, url, {"code": code_for(text)}).status_code == 302
    assert "Payment confirmed" in client.get(url).get_data(as_text=True)


def test_simulator_scans_an_uploaded_png(
    app: Flask, client: FlaskClient, user: str, device: Device, clock: Clock
) -> None:
    login(client, user, device)
    url = post(client, "/payment/new", payment_form(clock)).headers["Location"]
    png = client.get(url + "/qr.png").data
    # The simulator page has its own device store: give it the same phone.
    store = StateStore(app.config["SIMULATOR_STATE_DIR"])
    store.save(device.activations()[0])

    scanned = post(
        client,
        "/simulator/scan",
        {"image": (__import__("io").BytesIO(png), "qr.png")},
        content_type="multipart/form-data",
    )

    assert scanned.status_code == 200
    assert "Dárek pro Janu" in scanned.get_data(as_text=True)
    bad = post(
        client,
        "/simulator/scan",
        {"image": (__import__("io").BytesIO(b"not an image"), "x.png")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400
    assert "not a PNG or JPEG" in bad.get_data(as_text=True)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "Paste the QR text"),
        ("garbage", "malformed"),
    ],
)
def test_simulator_refuses_bad_qr_text(
    client: FlaskClient, payload: str, message: str
) -> None:
    response = post(client, "/simulator/scan", {"payload": payload})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("12345", "activation code is invalid"),
        ("AAAAA-AAAAA-AAAAA-AAAAA", "no activation waits for this activation code"),
    ],
)
def test_simulator_bad_activation_code(
    client: FlaskClient, code: str, message: str
) -> None:
    page = simulator_activate(client, code)
    assert message in page


def test_simulator_wrong_pin_gives_a_code_the_bank_refuses(
    app: Flask, client: FlaskClient, user: str, device: Device, clock: Clock
) -> None:
    store = StateStore(app.config["SIMULATOR_STATE_DIR"])
    store.save(device.activations()[0])
    login(client, user, device)
    url = post(client, "/payment/new", payment_form(clock)).headers["Location"]
    text = qr_text(client.get(url).get_data(as_text=True))
    signed = post(client, "/simulator/sign", {"payload": text, "pin": "0000"})
    code = re.search(r'id="code"[^>]*>(.*?)</p>', signed.get_data(as_text=True))
    assert code
    refused = post(client, url, {"code": code.group(1)})
    assert "The code was not accepted" in refused.get_data(as_text=True)


def test_console_block_unblock_remove_and_audit(
    app: Flask, client: FlaskClient, user: str, device: Device
) -> None:
    activation_id = device.activations()[0].activation_id
    console(client)
    base = f"/console/activations/{activation_id}"

    blocked = post(client, f"{base}/block").get_data(as_text=True)
    assert "block done" in blocked
    assert stored_activation(app, activation_id).status == "BLOCKED"
    # The simulator page sees the new status after a refresh.
    StateStore(app.config["SIMULATOR_STATE_DIR"]).save(device.activations()[0])
    refreshed = post(client, f"/simulator/{activation_id}/refresh")
    assert "is BLOCKED" in refreshed.get_data(as_text=True)
    post(client, f"{base}/unblock")
    assert stored_activation(app, activation_id).status == "ACTIVE"
    post(client, f"{base}/remove")
    assert stored_activation(app, activation_id).status == "REMOVED"
    assert post(client, f"{base}/explode").status_code == 404
    again = post(client, f"{base}/unblock")
    assert again.status_code == 400 and "only a BLOCKED" in again.get_data(as_text=True)

    audit = client.get("/console/audit").get_data(as_text=True)
    for action in ("activation_block", "activation_unblock", "activation_remove"):
        assert action in audit
    assert PIN not in re.sub(r"<[^>]+>", " ", audit).split()

    forgotten = post(client, f"/simulator/{activation_id}/forget")
    assert forgotten.status_code == 302
    assert activation_id not in client.get("/simulator/").get_data(as_text=True)


def test_console_create_activation_errors(app: Flask, client: FlaskClient) -> None:
    console(client)
    response = post(
        client, "/console/activations", {"user_id": "", "application_id": "nope"}
    )
    assert response.status_code == 400
    assert "does not exist" in response.get_data(as_text=True) or "userId" in (
        response.get_data(as_text=True)
    )


def test_simulator_is_off_in_production(tmp_path: Path, clock: Clock) -> None:
    app = make_app(
        tmp_path,
        clock,
        TESTING=False,
        ENVIRONMENT="production",
        SECRET_KEY="s" * 40,
        REST_BASIC_AUTH=True,
        REST_BASIC_AUTH_USERS={"backend": "a-long-random-password"},
    )
    client = app.test_client()
    assert client.get("/simulator/").status_code == 404
    assert "Token simulator" not in client.get("/").get_data(as_text=True)
    app.extensions["powerauth.engine"].dispose()


def test_activation_committed_from_the_console(app: Flask, client: FlaskClient) -> None:
    user = unique("erin")
    console(client)
    code = create_activation(client, app, user)
    data = {"activation_code": code, "pin": PIN, "pin_again": PIN}
    page = post(client, "/simulator/activate", data).get_data(as_text=True)
    assert "waiting for the bank" in page
    activation_id = (
        Device(StateStore(app.config["SIMULATOR_STATE_DIR"]))
        .activations()[0]
        .activation_id
    )
    listed = client.get("/console/").get_data(as_text=True)
    assert "PENDING_COMMIT" in listed and ">Commit</button>" in listed

    done = post(client, f"/console/activations/{activation_id}/commit")

    assert f"Activation {activation_id}: commit done." in done.get_data(as_text=True)
    assert stored_activation(app, activation_id).status == "ACTIVE"


def test_simulator_refuses_a_short_pin(app: Flask, client: FlaskClient) -> None:
    console(client)
    code = create_activation(client, app, unique("frank"))
    page = simulator_activate(client, code, pin="12", pin_again="12")
    assert "the PIN must be 4 to 64 characters" in page


def test_simulator_with_two_devices_signs_a_master_key_qr(
    app: Flask, client: FlaskClient
) -> None:
    user = unique("gina")
    console(client)
    for name in ("Phone", "Tablet"):
        code = create_activation(client, app, user)
        assert "stored (ACTIVE)" in simulator_activate(client, code, name=name)
    tablet = next(
        s
        for s in Device(StateStore(app.config["SIMULATOR_STATE_DIR"])).activations()
        if s.activation_name == "Tablet"
    )
    started = post(client, "/login", {"username": user})
    url = started.headers["Location"]
    text = qr_text(client.get(url).get_data(as_text=True))
    assert "scan-device" in client.get("/simulator/").get_data(as_text=True)

    unnamed = post(client, "/simulator/scan", {"payload": text})
    assert unnamed.status_code == 400
    assert "Several devices are stored" in unnamed.get_data(as_text=True)
    named = post(
        client,
        "/simulator/scan",
        {"payload": text, "activation_id": tablet.activation_id},
    )
    assert named.status_code == 200
    signed = post(
        client,
        "/simulator/sign",
        {"payload": text, "pin": PIN, "activation_id": tablet.activation_id},
    ).get_data(as_text=True)
    code = re.search(r'id="code"[^>]*>(.*?)</p>', signed)
    assert code
    done = post(client, url, {"code": code.group(1), "device": tablet.activation_id})
    assert done.status_code == 302 and done.headers["Location"].endswith("/account")


def test_simulator_uses_rest_basic_auth_in_process(
    tmp_path: Path, clock: Clock
) -> None:
    app = make_app(
        tmp_path,
        clock,
        REST_BASIC_AUTH=True,
        REST_BASIC_AUTH_USERS={"integration": "s3cret-pass"},
    )
    client = app.test_client()
    console(client)
    code = create_activation(client, app, unique("hank"))
    assert "stored (ACTIVE)" in simulator_activate(client, code)
    app.extensions["powerauth.engine"].dispose()


def test_simulator_asks_for_the_device_list_not_a_cli_option(
    app: Flask, client: FlaskClient, user: str
) -> None:
    store = Path(app.config["SIMULATOR_STATE_DIR"])
    enroll(app, user, store, name="Phone")
    enroll(app, user, store, name="Tablet")
    chosen = Device(StateStore(store)).activations()[1].activation_id
    started = post(client, "/login", {"username": user})
    text = qr_text(client.get(started.headers["Location"]).get_data(as_text=True))

    ambiguous = post(client, "/simulator/scan", {"payload": text})

    page = html.unescape(ambiguous.get_data(as_text=True))
    assert ambiguous.status_code == 400
    assert 'pick one in the "Device" list' in page
    assert "--activation" not in page
    picked = post(client, "/simulator/scan", {"payload": text, "activation_id": chosen})
    assert picked.status_code == 200
    # The command line keeps the library's hint.
    with pytest.raises(AmbiguousActivationError, match="--activation"):
        Device(StateStore(store)).scan(text)


def test_simulator_ignores_whitespace_around_pasted_qr_text(
    app: Flask, client: FlaskClient, user: str, device: Device, clock: Clock
) -> None:
    login(client, user, device)
    url = post(client, "/payment/new", payment_form(clock)).headers["Location"]
    text = qr_text(client.get(url).get_data(as_text=True))
    StateStore(app.config["SIMULATOR_STATE_DIR"]).save(device.activations()[0])

    scanned = post(client, "/simulator/scan", {"payload": f" \r\n {text} \r\n"})

    assert scanned.status_code == 200, scanned.get_data(as_text=True)
    assert "1,250.50 CZK" in scanned.get_data(as_text=True)
    signed = post(client, "/simulator/sign", {"payload": f"  {text}\t", "pin": PIN})
    assert signed.status_code == 200
    # Inside the text, whitespace is the parser's to judge.
    first, rest = text.split("\n", 1)
    broken = post(client, "/simulator/scan", {"payload": f"{first} \n{rest}"})
    assert broken.status_code == 400


def test_console_sign_in_expires(app: Flask, client: FlaskClient, clock: Clock) -> None:
    # Regression: the signed cookie's console flag used to be valid forever.
    console(client)
    assert client.get("/console/").status_code == 200
    copied = app.test_client()
    cookie = client.get_cookie("session")
    assert cookie is not None
    copied.set_cookie("session", cookie.value)

    clock.advance(minutes=59)
    assert client.get("/console/").status_code == 200
    clock.advance(minutes=1, seconds=1)
    for browser in (client, copied):
        expired = browser.get("/console/")
        assert expired.status_code == 302
        assert expired.headers["Location"].endswith("/console/login")
    console(client)
    assert client.get("/console/").status_code == 200


def test_console_flag_without_a_sign_in_time_is_refused(client: FlaskClient) -> None:
    with client.session_transaction() as session:
        session["console"] = True  # a cookie made before sign-ins had a time

    assert client.get("/console/").headers["Location"].endswith("/console/login")


def test_console_sign_in_survives_a_bank_login_with_its_time(
    app: Flask, client: FlaskClient, clock: Clock, tmp_path: Path
) -> None:
    user = unique("dora")
    device = enroll(app, user, tmp_path / "phone")
    console(client)
    clock.advance(minutes=30)
    login(client, user, device)
    assert client.get("/console/").status_code == 200
    clock.advance(minutes=31)
    assert client.get("/console/").status_code == 302
