"""Web pages: the demo bank, the token simulator page and the pilot console.

Settings (``POWERAUTH_<NAME>`` in the environment, like the server's):

- ``API_URL``: empty for the in-process server (default), else the base URL of
  a server exposing the PowerAuth ``/rest/v3`` paths; ``API_USER`` and
  ``API_PASSWORD`` for its basic authentication.
- ``BANK_APPLICATION_ID``: the application the bank's devices belong to.
- ``BANK_LOGIN_QR``: ``auto`` (personalized when the user has exactly one
  device, else non-personalized) or ``non-personalized`` (always).
- ``BANK_OPERATION_TTL_SECONDS`` (300) and ``BANK_OPERATION_ATTEMPTS`` (5).
- ``RATE_LIMIT_CODE_PER_MINUTE`` and ``RATE_LIMIT_LOGIN_PER_MINUTE`` per client
  address (kept in process memory: per worker process).
- ``LOGIN_LOCKOUT_FAILURES`` (3) failed logins lock a username's login for
  ``LOGIN_LOCKOUT_MINUTES`` (15); kept in the database (all workers).
- ``CONSOLE_PASSWORD``: the pilot console's password; empty switches it off.
  ``CONSOLE_SESSION_MINUTES`` (60): how long a console sign-in lasts.
- ``SIMULATOR_ENABLED`` (on outside production) and ``SIMULATOR_STATE_DIR``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request

from webapp.config import SettingsError
from webapp.pages.client import init_client
from webapp.pages.security import check_csrf, init_security

PAGE_DEFAULTS: dict[str, Any] = {
    "API_URL": "",
    "API_USER": "",
    "API_PASSWORD": "",
    "BANK_APPLICATION_ID": "demo",
    "BANK_LOGIN_QR": "auto",
    "BANK_OPERATION_TTL_SECONDS": 300,
    "BANK_OPERATION_ATTEMPTS": 5,
    "RATE_LIMIT_CODE_PER_MINUTE": 20,
    "RATE_LIMIT_LOGIN_PER_MINUTE": 20,
    # Below the device's failed-attempt limit (MAX_FAILED_ATTEMPTS, 5), so
    # that failed logins alone never block a device.
    "LOGIN_LOCKOUT_FAILURES": 3,
    "LOGIN_LOCKOUT_MINUTES": 15,
    "CONSOLE_PASSWORD": "",
    "CONSOLE_SESSION_MINUTES": 60,
    "SIMULATOR_STATE_DIR": "",
}

_ERROR_TEXTS = {
    400: "The request was not understood.",
    403: "You are not signed in, or this is not yours.",
    404: "There is nothing here.",
    405: "This page does not take that kind of request.",
    413: "The upload is too large.",
    429: "Too many attempts from your address. Wait a minute and try again.",
}


def _validate(app: Flask) -> None:
    config = app.config
    if config["BANK_LOGIN_QR"] not in ("auto", "non-personalized"):
        raise SettingsError("BANK_LOGIN_QR must be auto or non-personalized")
    for name, low, high in (
        ("BANK_OPERATION_TTL_SECONDS", 10, 3600),
        ("BANK_OPERATION_ATTEMPTS", 1, 64),
        ("RATE_LIMIT_CODE_PER_MINUTE", 1, 10_000),
        ("RATE_LIMIT_LOGIN_PER_MINUTE", 1, 10_000),
        ("LOGIN_LOCKOUT_FAILURES", 1, 64),
        ("LOGIN_LOCKOUT_MINUTES", 1, 24 * 60),
        ("CONSOLE_SESSION_MINUTES", 1, 7 * 24 * 60),
    ):
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{name} must be an integer")
        if not low <= value <= high:
            raise SettingsError(f"{name} must be within {low}..{high}, got {value}")
    # The in-process server gives new devices MAX_FAILED_ATTEMPTS; a remote
    # one has its own setting, which this app cannot read.
    if (
        not config["API_URL"]
        and config["LOGIN_LOCKOUT_FAILURES"] >= config["MAX_FAILED_ATTEMPTS"]
    ):
        raise SettingsError(
            "LOGIN_LOCKOUT_FAILURES must be below MAX_FAILED_ATTEMPTS, so that "
            "failed logins cannot block a device"
        )


def init_pages(app: Flask) -> None:
    """Register the page blueprints, their settings and their security."""
    for name, value in PAGE_DEFAULTS.items():
        app.config.setdefault(name, value)
    app.config.setdefault(
        "SIMULATOR_ENABLED", app.config["ENVIRONMENT"] != "production"
    )
    _validate(app)
    init_security(app)
    init_client(app)

    from webapp.pages.bank import bp as bank_bp
    from webapp.pages.console import bp as console_bp
    from webapp.pages.simulator import bp as simulator_bp

    for blueprint in (bank_bp, simulator_bp, console_bp):
        app.register_blueprint(blueprint)
    page_blueprints = {bank_bp.name, simulator_bp.name, console_bp.name}

    @app.before_request
    def _csrf() -> None:
        # Every form of the pages carries the token; the JSON REST API does
        # not use cookies and is left out.
        if request.method == "POST" and request.blueprint in page_blueprints:
            check_csrf()

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    @app.errorhandler(429)
    def _error_page(exc: Any) -> Any:
        if request.path.startswith("/rest/"):
            return exc
        status = int(getattr(exc, "code", 400) or 400)
        message = _ERROR_TEXTS.get(status, "Something went wrong.")
        if getattr(exc, "description", None) == "csrf":
            message = "The form has expired. Go back, reload the page and try again."
        return render_template("error.html", message=message, status=status), status
