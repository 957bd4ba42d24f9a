"""Helpers of the web page tests: an app on a SQLite file in a temp folder
with its own application in the run's SoftHSM token, simulated devices, and
form posts that carry the CSRF token."""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from mtoken import Device, FlaskClientTransport, StateStore
from webapp import create_app, services
from webapp.db import new_session
from webapp.extensions import get_hsm, get_settings

PIN = "1234"
CONSOLE_PASSWORD = "pilot-console-pass"


@dataclass
class Clock:
    """A settable clock for the app's CLOCK setting (no sleeping in tests)."""

    moment: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


def unique(prefix: str) -> str:
    """A fresh id: the token outlives each test's database."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_app(tmp_path: Path, clock: Clock, **overrides: Any) -> Flask:
    application_id = unique("bank")
    config = {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pages.sqlite'}",
        "CLOCK": clock,
        "CONSOLE_PASSWORD": CONSOLE_PASSWORD,
        "SIMULATOR_STATE_DIR": str(tmp_path / "mtoken"),
        "BANK_APPLICATION_ID": application_id,
        **overrides,
    }
    app = create_app(config)
    result = app.test_cli_runner().invoke(args=["db", "init"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        session = new_session()
        try:
            services.create_application(
                session,
                get_hsm(),
                get_settings(),
                application_id=application_id,
                name="Test bank",
                actor="test",
            )
        finally:
            session.close()
    return app


def init_activation(app: Flask, user_id: str) -> services.InitResult:
    with app.app_context():
        session = new_session()
        try:
            return services.init_activation(
                session,
                get_hsm(),
                get_settings(),
                user_id=user_id,
                application_id=app.config["BANK_APPLICATION_ID"],
                actor="test",
            )
        finally:
            session.close()


def enroll(app: Flask, user_id: str, store: Path, name: str = "Test phone") -> Device:
    """A simulated phone with one ACTIVE activation for ``user_id``."""
    device = Device(StateStore(store))
    created = init_activation(app, user_id)
    device.activate(
        FlaskClientTransport(app),
        created.activation_code,
        PIN,
        name=name,
        commit=True,
        application_id=app.config["BANK_APPLICATION_ID"],
    )
    return device


def csrf(client: FlaskClient) -> str:
    """The session's CSRF token (put there if the session has none yet)."""
    with client.session_transaction() as session:
        token = session.setdefault("csrf", uuid.uuid4().hex)
    return str(token)


def post(
    client: FlaskClient, url: str, data: dict[str, Any] | None = None, **kw: Any
) -> Any:
    return client.post(url, data={"csrf_token": csrf(client), **(data or {})}, **kw)


def qr_text(page: str) -> str:
    """The QR payload text a page shows under "QR text"."""
    match = re.search(r'<pre id="qr-text">(.*?)</pre>', page, re.S)
    assert match, "the page shows no QR text"
    return html.unescape(match.group(1))


def operation_url(response: Any) -> str:
    location = response.headers["Location"]
    return str(location)


def login(client: FlaskClient, user: str, device: Device) -> None:
    started = post(client, "/login", {"username": user})
    assert started.status_code == 302, started.get_data(as_text=True)
    url = operation_url(started)
    page = client.get(url).get_data(as_text=True)
    code = device.sign(qr_text(page), pin=PIN).code
    done = post(client, url, {"code": code})
    assert done.status_code == 302, done.get_data(as_text=True)
    assert done.headers["Location"].endswith("/account")


PAYMENT = {
    "amount": "1250.50",
    "currency": "CZK",
    "iban": "CZ2730300000001165254011",
    "bic": "FIOBCZPP",
    "due_date": "",
    "note": "Dárek pro Janu",
}


def payment_form(clock: Clock, **changes: str) -> dict[str, str]:
    form = dict(PAYMENT, due_date=(clock().date() + timedelta(days=3)).isoformat())
    form.update(changes)
    return form


class Served:
    """An app served by werkzeug on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app: Flask) -> None:
        import threading

        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
