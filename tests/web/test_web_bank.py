"""The demo bank's pages through the Flask test client, real SoftHSM token."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from mtoken import Device
from powerauth.operation_data import NoteField
from powerauth.payload import parse_offline_payload
from tests.server.server_testing import stored_activation
from tests.web.pages_testing import (
    PIN,
    Clock,
    csrf,
    enroll,
    login,
    make_app,
    payment_form,
    post,
    qr_text,
    unique,
)
from webapp import create_app
from webapp.config import SettingsError
from webapp.db import new_session
from webapp.models import BankOperation
from webapp.pages.client import _CLIENT_KEY, ClientError

pytestmark = pytest.mark.softhsm

NOT_ACCEPTED = "The code was not accepted"


def start_payment(client: FlaskClient, clock: Clock, **changes: str) -> tuple[str, str]:
    """Create a payment; return its confirmation URL and QR text."""
    response = post(client, "/payment/new", payment_form(clock, **changes))
    assert response.status_code == 302, response.get_data(as_text=True)
    url = response.headers["Location"]
    return url, qr_text(client.get(url).get_data(as_text=True))


def stored_operation(app: Flask, operation_id: str) -> BankOperation:
    with app.app_context():
        session = new_session()
        try:
            operation = session.get(BankOperation, operation_id)
            assert operation is not None
            return operation
        finally:
            session.close()


def wrong(code: str) -> str:
    """A well-formed code that differs from ``code`` in its last digit."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


@pytest.fixture
def logged_in(client: FlaskClient, user: str, device: Device) -> FlaskClient:
    login(client, user, device)
    return client


def test_home_page_has_security_headers_and_a_csrf_form(client: FlaskClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    page = response.get_data(as_text=True)
    assert 'name="csrf_token"' in page
    assert "<script" not in page
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # testing runs over plain HTTP


def test_login_with_a_personalized_qr(
    client: FlaskClient, user: str, device: Device
) -> None:
    started = post(client, "/login", {"username": user})
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    payload = parse_offline_payload(qr_text(page))

    assert payload.indicator == "1"
    assert payload.operation_data_text == "A2"
    assert "Log in as" in page and "Personalized QR code" in page
    png = client.get(started.headers["Location"] + "/qr.png")
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)).convert("L"))
    assert bytes(found[0].bytes).decode("utf-8") == qr_text(page)
    code = device.sign(qr_text(page), pin=PIN).code
    done = post(client, started.headers["Location"], {"code": code})
    assert done.status_code == 302 and done.headers["Location"].endswith("/account")
    account = client.get("/account").get_data(as_text=True)
    assert f"Account of {user}" in account and "No payments yet." in account


def test_login_with_a_non_personalized_qr_by_setting(
    tmp_path: Path, clock: Clock
) -> None:
    app = make_app(tmp_path, clock, BANK_LOGIN_QR="non-personalized")
    client = app.test_client()
    user = unique("bob")
    device = enroll(app, user, tmp_path / "phone")
    started = post(client, "/login", {"username": user})
    page = client.get(started.headers["Location"]).get_data(as_text=True)

    assert parse_offline_payload(qr_text(page)).indicator == "0"
    assert 'name="device"' not in page  # one device: nothing to choose
    code = device.sign(qr_text(page), pin=PIN).code
    done = post(client, started.headers["Location"], {"code": code})
    assert done.headers["Location"].endswith("/account")
    app.extensions["powerauth.engine"].dispose()


def test_user_with_two_devices_gets_a_non_personalized_qr_and_picks_one(
    app: Flask, client: FlaskClient, user: str, device: Device, tmp_path: Path
) -> None:
    second = enroll(app, user, tmp_path / "tablet", name="Tablet")
    second_id = second.activations()[0].activation_id
    started = post(client, "/login", {"username": user})
    url = started.headers["Location"]
    page = client.get(url).get_data(as_text=True)

    assert parse_offline_payload(qr_text(page)).indicator == "0"
    assert 'name="device"' in page and "Tablet" in page
    code = second.sign(qr_text(page), pin=PIN).code
    missing = post(client, url, {"code": code})
    assert missing.status_code == 400
    assert "Choose the device" in missing.get_data(as_text=True)
    done = post(client, url, {"code": code, "device": second_id})
    assert done.headers["Location"].endswith("/account")


def test_unknown_user_and_wrong_code_read_the_same(
    client: FlaskClient, app: Flask, user: str, device: Device
) -> None:
    stranger = app.test_client()
    started = post(stranger, "/login", {"username": unique("nobody")})
    page = stranger.get(started.headers["Location"]).get_data(as_text=True)
    assert parse_offline_payload(qr_text(page)).indicator == "0"
    unknown = post(stranger, started.headers["Location"], {"code": "1234567887654321"})

    started = post(client, "/login", {"username": user})
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    code = device.sign(qr_text(page), pin=PIN).code
    known = post(client, started.headers["Location"], {"code": wrong(code)})

    for response in (unknown, known):
        assert response.status_code == 400
        text = response.get_data(as_text=True)
        assert NOT_ACCEPTED in text and "4 attempts left" in text


@pytest.mark.parametrize("username", ["", " ", "a" * 65, "x<y>", "new\nline"])
def test_bad_usernames_are_form_errors(client: FlaskClient, username: str) -> None:
    response = post(client, "/login", {"username": username})
    assert response.status_code == 400
    assert "A username is 1 to 64" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "layout",
    [
        lambda c: c,
        lambda c: " ".join(c.replace("-", "")[i : i + 4] for i in range(0, 16, 4)),
        lambda c: c.replace("-", ""),
    ],
    ids=["dash", "groups-of-four", "plain"],
)
def test_payment_confirmed_with_each_code_layout(
    app: Flask, logged_in: FlaskClient, device: Device, clock: Clock, layout: object
) -> None:
    url, text = start_payment(logged_in, clock)
    code = device.sign(text, pin=PIN).code
    done = post(logged_in, url, {"code": layout(code), "nonce": "A" * 24})  # type: ignore[operator]

    assert done.status_code == 302 and done.headers["Location"].endswith(url)
    page = logged_in.get(url).get_data(as_text=True)
    assert "Payment confirmed" in page
    account = logged_in.get("/account").get_data(as_text=True)
    assert "1250.50 CZK" in account and "CZ2730300000001165254011" in account
    assert "Dárek pro Janu" in account


def test_payment_qr_carries_spec4_operation_data(
    app: Flask, logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    url, text = start_payment(logged_in, clock)
    payload = parse_offline_payload(text)
    due = payment_form(clock)["due_date"].replace("-", "")

    assert payload.indicator == "1"
    assert payload.operation_data_text == (
        f"A1*A1250.50CZK*ICZ2730300000001165254011,FIOBCZPP**D{due}*NDárek pro Janu"
    )
    assert payload.title == "Confirm payment"
    assert payload.message == "Pay 1,250.50 CZK to CZ2730300000001165254011"
    stored = stored_operation(app, url.rsplit("/", 1)[1])
    assert stored.nonce == payload.nonce and stored.offline_data == text
    assert (stored.expires_at - stored.created_at).total_seconds() == 300
    assert stored.attempts_left == 5


def test_qr_png_and_svg_hold_the_exact_utf8_bytes(
    logged_in: FlaskClient, clock: Clock
) -> None:
    url, text = start_payment(logged_in, clock, note="Žluťoučký kůň 😀 \u2013 ok")
    png = logged_in.get(url + "/qr.png")

    assert png.status_code == 200 and png.mimetype == "image/png"
    assert "attachment" in png.headers["Content-Disposition"]
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)).convert("L"))
    assert len(found) == 1
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode  # never Micro QR
    assert bytes(found[0].bytes) == text.encode("utf-8")
    page = logged_in.get(url).get_data(as_text=True)
    assert '<svg role="img" aria-label="QR code to scan' in page
    assert "Amount: 1,250.50 CZK" in page and "Note: Žluťoučký kůň 😀 \u2013 ok" in page


def test_malformed_codes_are_form_errors_that_spend_nothing(
    app: Flask, logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    url, _ = start_payment(logged_in, clock)
    activation_id = device.activations()[0].activation_id
    for typed in [
        "",
        "1234",
        "12345678-1234567",
        "1234-5678-8765-432a",
        "\uff11\uff12\uff13\uff14" * 4,  # full-width digits
        "12345678 87654321-",
    ]:
        response = post(logged_in, url, {"code": typed})
        assert response.status_code == 400, typed
        assert "Type the 16 digits" in response.get_data(as_text=True)
    assert stored_activation(app, activation_id).failed_attempts == 0
    assert stored_operation(app, url.rsplit("/", 1)[1]).attempts_left == 5


def test_wrong_code_shows_attempts_left_and_five_block(
    app: Flask, logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    url, text = start_payment(logged_in, clock)
    code = device.sign(text, pin=PIN).code
    activation_id = device.activations()[0].activation_id
    for left in (4, 3, 2, 1):
        response = post(logged_in, url, {"code": wrong(code)})
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert NOT_ACCEPTED in page
        assert f"{left} attempt{'s' if left > 1 else ''} left" in page
        assert wrong(code) not in page  # a typed code is never echoed back
    blocked = post(logged_in, url, {"code": wrong(code)})

    assert blocked.status_code == 403
    assert "Your mobile token is blocked" in blocked.get_data(as_text=True)
    assert "unblock" in blocked.get_data(as_text=True)
    view = stored_activation(app, activation_id)
    assert view.status == "BLOCKED" and view.blocked_reason == "MAX_FAILED_ATTEMPTS"
    # A new payment cannot start while the device is blocked.
    again = post(logged_in, "/payment/new", payment_form(clock))
    assert again.status_code == 403


def test_blocked_device_at_login_says_so(
    app: Flask, client: FlaskClient, user: str, device: Device
) -> None:
    activation_id = device.activations()[0].activation_id
    login(app.test_client(), user, device)  # proves the device works
    from tests.web.pages_testing import CONSOLE_PASSWORD  # noqa: F401 - same module

    with app.app_context():
        from webapp import services
        from webapp.extensions import get_settings

        session = new_session()
        services.block_activation(
            session, get_settings(), activation_id=activation_id, actor="test"
        )
        session.close()
    started = post(client, "/login", {"username": user})
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert parse_offline_payload(qr_text(page)).indicator == "0"
    response = post(client, started.headers["Location"], {"code": "1234567887654321"})
    assert response.status_code == 403
    assert "Your mobile token is blocked" in response.get_data(as_text=True)


def test_expired_operation_spends_no_attempt(
    app: Flask, logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    url, text = start_payment(logged_in, clock)
    code = device.sign(text, pin=PIN).code
    activation_id = device.activations()[0].activation_id
    clock.advance(seconds=301)

    shown = logged_in.get(url).get_data(as_text=True)
    typed = post(logged_in, url, {"code": code})

    assert "This request has expired" in shown
    assert typed.status_code == 400
    assert "This request has expired" in typed.get_data(as_text=True)
    assert stored_activation(app, activation_id).failed_attempts == 0
    assert logged_in.get(url + "/qr.png").status_code == 404


def test_used_operation_cannot_confirm_again(
    logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    url, text = start_payment(logged_in, clock)
    code = device.sign(text, pin=PIN).code
    assert post(logged_in, url, {"code": code}).status_code == 302

    again = post(logged_in, url, {"code": code})

    assert again.status_code == 400
    assert "already confirmed" in again.get_data(as_text=True)
    account = logged_in.get("/account").get_data(as_text=True)
    assert account.count("1250.50 CZK") == 1


def test_cancelled_operation_spends_no_attempt(
    app: Flask, logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    url, text = start_payment(logged_in, clock)
    code = device.sign(text, pin=PIN).code
    cancelled = post(logged_in, url + "/cancel")
    assert cancelled.status_code == 302

    typed = post(logged_in, url, {"code": code})

    assert "This request was cancelled" in typed.get_data(as_text=True)
    activation_id = device.activations()[0].activation_id
    assert stored_activation(app, activation_id).failed_attempts == 0
    assert "No payments yet." in logged_in.get("/account").get_data(as_text=True)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "abc", "Enter the amount as a number"),
        ("amount", "0", "above 0"),
        ("amount", "-5", "above 0"),
        ("amount", "1.234", "two decimal places"),
        ("amount", "1e12", "below 1,000,000,000"),
        ("currency", "CZ", "three letters"),
        ("currency", "C1K", "three letters"),
        ("iban", "CZ2730300000001165254012", "not a valid IBAN"),
        ("iban", "hello", "not a valid IBAN"),
        ("bic", "FIO", "8 or 11"),
        ("due_date", "2020-01-01", "must not be in the past"),
        ("due_date", "31.12.2026", "YYYY-MM-DD"),
        ("due_date", "2099-01-01", "within a year"),
        ("note", "x" * 141, "at most 140"),
        ("note", "bell\x07", "control characters"),
    ],
)
def test_payment_form_refuses_bad_input(
    logged_in: FlaskClient, clock: Clock, field: str, value: str, message: str
) -> None:
    response = post(logged_in, "/payment/new", payment_form(clock, **{field: value}))

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    assert f'id="{field}"' in page and 'aria-invalid="true"' in page


def test_pages_need_login_and_ownership(
    app: Flask, client: FlaskClient, logged_in: FlaskClient, clock: Clock
) -> None:
    url, _ = start_payment(logged_in, clock)
    anonymous = app.test_client()

    assert anonymous.get("/account").status_code == 302
    assert anonymous.get("/payment/new").status_code == 403
    assert anonymous.get(url).status_code == 403
    intruder = app.test_client()
    other = unique("mallory")
    enroll_device = enroll(app, other, Path(app.config["SIMULATOR_STATE_DIR"]) / "m")
    login(intruder, other, enroll_device)
    assert intruder.get(url).status_code == 404
    assert intruder.get(url + "/qr.png").status_code == 404
    assert post(intruder, url, {"code": "1234567887654321"}).status_code == 404
    # A login operation belongs to the browser that started it.
    started = post(anonymous, "/login", {"username": other})
    assert intruder.get(started.headers["Location"]).status_code == 404


def test_logout_ends_the_session(logged_in: FlaskClient) -> None:
    response = post(logged_in, "/logout")
    assert response.status_code == 302
    assert logged_in.get("/account").status_code == 302


def test_forms_without_a_valid_csrf_token_are_refused(
    client: FlaskClient, user: str
) -> None:
    csrf(client)
    missing = client.post("/login", data={"username": user})
    forged = client.post("/login", data={"username": user, "csrf_token": "x" * 43})

    for response in (missing, forged):
        assert response.status_code == 400
        assert "The form has expired" in response.get_data(as_text=True)


def test_code_entry_and_login_are_rate_limited(tmp_path: Path, clock: Clock) -> None:
    app = make_app(
        tmp_path, clock, RATE_LIMIT_CODE_PER_MINUTE=2, RATE_LIMIT_LOGIN_PER_MINUTE=3
    )
    client = app.test_client()
    statuses = [
        post(client, "/login", {"username": unique("u")}).status_code for _ in range(4)
    ]
    assert statuses == [302, 302, 302, 429]
    # The quota is per client address, not per browser session.
    same_address = post(app.test_client(), "/login", {"username": "x"})
    assert same_address.status_code == 429
    clock_client = app.test_client()
    started = post(
        clock_client,
        "/login",
        {"username": "y"},
        environ_base={"REMOTE_ADDR": "10.9.9.9"},
    )
    login_url = started.headers["Location"]
    codes = [
        post(
            clock_client,
            login_url,
            {"code": "1234567887654321"},
            environ_base={"REMOTE_ADDR": "10.9.9.9"},
        ).status_code
        for _ in range(3)
    ]
    assert codes == [400, 400, 429]
    page = post(
        clock_client, login_url, {"code": "1"}, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert "Too many attempts" in page.get_data(as_text=True)
    app.extensions["powerauth.engine"].dispose()


def test_secret_key_required_in_production_and_cookie_secure(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        create_app({"ENVIRONMENT": "production", "DATABASE_URL": url, "SECRET_KEY": ""})
    app = create_app(
        {
            "ENVIRONMENT": "production",
            "DATABASE_URL": url,
            "SECRET_KEY": "k" * 40,
            "REST_BASIC_AUTH": True,
            "REST_BASIC_AUTH_USERS": {"backend": "a-long-random-password"},
        }
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SIMULATOR_ENABLED"] is False
    app.extensions["powerauth.engine"].dispose()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BANK_LOGIN_QR", "sometimes"),
        ("BANK_OPERATION_TTL_SECONDS", 0),
        ("BANK_OPERATION_ATTEMPTS", "5"),
        ("RATE_LIMIT_CODE_PER_MINUTE", 0),
        ("LOGIN_LOCKOUT_MINUTES", 0),
        ("LOGIN_LOCKOUT_FAILURES", 5),  # not below MAX_FAILED_ATTEMPTS (5)
    ],
)
def test_page_settings_are_checked(tmp_path: Path, name: str, value: object) -> None:
    with pytest.raises(SettingsError, match=name):
        create_app(
            {
                "TESTING": True,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}",
                name: value,
            }
        )


def test_unknown_pages_get_an_html_page_and_rest_keeps_json(
    client: FlaskClient,
) -> None:
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert "There is nothing here." in page.get_data(as_text=True)
    assert page.headers["Content-Security-Policy"]
    rest = client.post("/rest/v3/application/list", json={"requestObject": {}})
    assert rest.status_code == 200 and rest.get_json()["status"] == "OK"
    wrong_method = client.get("/payment/new/cancel")
    assert wrong_method.status_code in (404, 405)


def test_removed_device_is_reported_as_no_longer_active(
    app: Flask, logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    from webapp import services
    from webapp.extensions import get_hsm, get_settings

    url, text = start_payment(logged_in, clock)
    code = device.sign(text, pin=PIN).code
    with app.app_context():
        session = new_session()
        services.remove_activation(
            session,
            get_hsm(),
            get_settings(),
            activation_id=device.activations()[0].activation_id,
            actor="test",
        )
        session.close()

    typed = post(logged_in, url, {"code": code})
    again = post(logged_in, "/payment/new", payment_form(clock))

    for response in (typed, again):
        assert response.status_code == 403
        assert "no longer active" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "note", ["a*b", "back\\slash", "star* and \\n", "  many   spaces  "]
)
def test_payment_notes_are_escaped_per_spec4(
    logged_in: FlaskClient, clock: Clock, device: Device, note: str
) -> None:
    url, text = start_payment(logged_in, clock, note=note)
    verified = device.scan(text)
    notes = [
        f for f in verified.payload.operation_data.fields if isinstance(f, NoteField)
    ]

    assert [n.text for n in notes] == [" ".join(note.split())]
    code = device.sign(verified, pin=PIN).code
    assert post(logged_in, url, {"code": code}).status_code == 302


class SecondSubmitDuringVerify:
    """A pages client that lets a second submission in while the first is checked."""

    def __init__(self, inner: Any, second: Callable[[], Any]) -> None:
        self._inner = inner
        self._second = second
        self.second_response: Any = None
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def verify_offline(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        result = self._inner.verify_offline(*args, **kwargs)
        if self.calls == 1:
            self.second_response = self._second()
        return result


def _double_submit(app: Flask, first: FlaskClient, url: str, code: str) -> Any:
    """Submit ``code`` twice on one session, the second during the first's check."""
    second = app.test_client()
    cookie = first.get_cookie("session")
    assert cookie is not None
    second.set_cookie("session", cookie.value)
    wrapper = SecondSubmitDuringVerify(
        app.extensions[_CLIENT_KEY], lambda: post(second, url, {"code": code})
    )
    app.extensions[_CLIENT_KEY] = wrapper
    try:
        response = post(first, url, {"code": code})
    finally:
        app.extensions[_CLIENT_KEY] = wrapper._inner
    return response, wrapper


def test_double_submission_reaches_the_server_once(
    app: Flask, logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    # Regression: the second submission used to re-send the used code, which
    # the server counted as a failed attempt on the device.
    url, text = start_payment(logged_in, clock)
    code = device.sign(text, pin=PIN).code
    activation_id = device.activations()[0].activation_id

    response, wrapper = _double_submit(app, logged_in, url, code)

    assert response.status_code == 302
    again = wrapper.second_response
    assert again.status_code == 409
    page = again.get_data(as_text=True)
    assert "being processed" in page and NOT_ACCEPTED not in page
    assert wrapper.calls == 1
    assert stored_activation(app, activation_id).failed_attempts == 0
    assert "already confirmed" in post(logged_in, url, {"code": code}).get_data(
        as_text=True
    )


def test_double_submission_on_the_last_attempts_books_the_payment(
    app: Flask, logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    # Regression: after three typos the second submission took the last
    # attempt and marked the operation FAILED while the server accepted the
    # first one: no payment was booked.
    url, text = start_payment(logged_in, clock)
    code = device.sign(text, pin=PIN).code
    for _ in range(3):
        assert post(logged_in, url, {"code": wrong(code)}).status_code == 400

    response, wrapper = _double_submit(app, logged_in, url, code)

    assert response.status_code == 302
    assert wrapper.calls == 1
    assert "Payment confirmed" in logged_in.get(url).get_data(as_text=True)
    account = logged_in.get("/account").get_data(as_text=True)
    assert account.count("1250.50 CZK") == 1


class UnreachableServer:
    """A pages client whose verify call fails as a lost connection would."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def verify_offline(self, *args: Any, **kwargs: Any) -> Any:
        raise ClientError("the PowerAuth server cannot be reached")


def test_server_error_puts_the_operation_back_to_pending(
    app: Flask, logged_in: FlaskClient, clock: Clock, device: Device
) -> None:
    url, text = start_payment(logged_in, clock)
    code = device.sign(text, pin=PIN).code
    inner = app.extensions[_CLIENT_KEY]
    app.extensions[_CLIENT_KEY] = UnreachableServer(inner)
    try:
        failed = post(logged_in, url, {"code": code})
    finally:
        app.extensions[_CLIENT_KEY] = inner

    assert failed.status_code == 503
    stored = stored_operation(app, url.rsplit("/", 1)[1])
    assert (stored.status, stored.attempts_left) == ("PENDING", 4)
    assert post(logged_in, url, {"code": code}).status_code == 302


LOCKED = "Too many failed logins for this username"


def failed_login(client: FlaskClient, username: str) -> Any:
    """Start a login for ``username`` and type a code no device made."""
    started = post(client, "/login", {"username": username})
    if started.status_code != 302:
        return started
    return post(client, started.headers["Location"], {"code": "1234567887654321"})


def test_anonymous_failed_logins_lock_the_login_not_the_device(
    app: Flask, user: str, device: Device
) -> None:
    # Regression: five anonymous wrong login codes used to block the device.
    activation_id = device.activations()[0].activation_id
    attacker = app.test_client()  # no session, knows only the user name

    answers = [failed_login(attacker, user) for _ in range(5)]

    assert [a.status_code for a in answers] == [400, 400, 429, 429, 429]
    assert "4 attempts left" in answers[0].get_data(as_text=True)
    for answer in answers[2:]:
        assert LOCKED in answer.get_data(as_text=True)
        assert "15 more minute(s)" in answer.get_data(as_text=True)
    view = stored_activation(app, activation_id)
    assert (view.status, view.failed_attempts) == ("ACTIVE", 3)


def test_login_lockout_reads_the_same_for_an_unknown_user(
    app: Flask, user: str, device: Device
) -> None:
    known = [failed_login(app.test_client(), user) for _ in range(4)]
    nobody = unique("nobody")
    unknown = [failed_login(app.test_client(), nobody) for _ in range(4)]

    for answers in (known, unknown):
        assert [a.status_code for a in answers] == [400, 400, 429, 429]
        assert [LOCKED in a.get_data(as_text=True) for a in answers] == [
            False,
            False,
            True,
            True,
        ]


def test_login_lockout_ends_and_a_success_resets_the_count(
    app: Flask, clock: Clock, user: str, device: Device
) -> None:
    for _ in range(3):
        failed_login(app.test_client(), user)
    locked = post(app.test_client(), "/login", {"username": user})
    assert locked.status_code == 429 and LOCKED in locked.get_data(as_text=True)

    clock.advance(minutes=15, seconds=1)
    # The count stays until a successful login: one more failure locks again.
    assert LOCKED in failed_login(app.test_client(), user).get_data(as_text=True)
    clock.advance(minutes=15, seconds=1)
    login(app.test_client(), user, device)
    activation_id = device.activations()[0].activation_id
    assert stored_activation(app, activation_id).failed_attempts == 0
    again = failed_login(app.test_client(), user)
    assert again.status_code == 400 and LOCKED not in again.get_data(as_text=True)


def test_one_login_code_per_username_is_checked_at_a_time(
    app: Flask, user: str, device: Device
) -> None:
    first, second = app.test_client(), app.test_client()
    first_url = post(first, "/login", {"username": user}).headers["Location"]
    second_url = post(second, "/login", {"username": user}).headers["Location"]
    code = device.sign(qr_text(first.get(first_url).get_data(as_text=True)), pin=PIN)
    wrapper = SecondSubmitDuringVerify(
        app.extensions[_CLIENT_KEY],
        lambda: post(second, second_url, {"code": "1234567887654321"}),
    )
    app.extensions[_CLIENT_KEY] = wrapper
    try:
        done = post(first, first_url, {"code": code.code})
    finally:
        app.extensions[_CLIENT_KEY] = wrapper._inner

    assert done.status_code == 302
    busy = wrapper.second_response
    assert busy.status_code == 409
    assert "being checked" in busy.get_data(as_text=True)
    assert wrapper.calls == 1
    # The busy answer spent nothing: the second login can still be tried.
    retried = post(second, second_url, {"code": "1234567887654321"})
    assert "4 attempts left" in retried.get_data(as_text=True)


def test_server_error_on_the_last_attempt_fails_the_operation(
    tmp_path: Path, clock: Clock
) -> None:
    app = make_app(tmp_path, clock, BANK_OPERATION_ATTEMPTS=1)
    try:
        user = unique("carol")
        device = enroll(app, user, tmp_path / "phone")
        client = app.test_client()
        login(client, user, device)
        url, _ = start_payment(client, clock)
        inner = app.extensions[_CLIENT_KEY]
        app.extensions[_CLIENT_KEY] = UnreachableServer(inner)
        try:
            assert post(client, url, {"code": "1234567887654321"}).status_code == 503
        finally:
            app.extensions[_CLIENT_KEY] = inner

        stored = stored_operation(app, url.rsplit("/", 1)[1])
        assert (stored.status, stored.attempts_left) == ("FAILED", 0)
        assert stored.finished_at == clock()
    finally:
        app.extensions["powerauth.engine"].dispose()
