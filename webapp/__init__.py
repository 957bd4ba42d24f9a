"""The Flask application: the PowerAuth-style server API and the web pages."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from webapp import config as settings_module
from webapp import db, extensions

logger = logging.getLogger(__name__)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application.

    Settings come from :data:`webapp.config.DEFAULTS`, then ``POWERAUTH_*``
    environment variables, then the shared plain names (``DATABASE_URL``,
    ``SECRET_KEY``, ``PKCS11_*``), then ``test_config``.

    :param test_config: settings that replace the defaults and the environment.
    :raises webapp.config.SettingsError: a setting is missing or out of range.
    :raises hsm.errors.ConfigurationError: the PKCS11_* settings are incomplete.
    """
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(settings_module.DEFAULTS)
    app.config.from_prefixed_env(settings_module.ENV_PREFIX)
    app.config.from_mapping(settings_module.plain_env())
    if test_config is not None:
        app.config.from_mapping(test_config)
    if app.config.get("TESTING"):
        app.config["ENVIRONMENT"] = "testing"

    settings = settings_module.validate(app.config)
    _require_secret_key(app)
    _require_rest_protection(app)

    db.init_app(app)
    extensions.init_app(app, settings)

    from webapp.cli import register_commands
    from webapp.rest import bp as rest_bp

    app.register_blueprint(rest_bp)
    register_commands(app)

    from webapp.pages import init_pages

    init_pages(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "OK"}

    return app


def _require_secret_key(app: Flask) -> None:
    """Fail fast without SECRET_KEY in production; make one up otherwise."""
    if app.config.get("SECRET_KEY"):
        return
    if app.config["ENVIRONMENT"] == "production":
        raise settings_module.SettingsError(
            "SECRET_KEY is not set: set SECRET_KEY (or POWERAUTH_SECRET_KEY) to a "
            "long random value, or POWERAUTH_ENVIRONMENT=development for a "
            "throw-away key"
        )
    # Development and tests: a random key per process (sessions end on restart).
    app.config["SECRET_KEY"] = os.urandom(32)
    logger.warning("SECRET_KEY is not set; using a random key for this process")


def _require_rest_protection(app: Flask) -> None:
    """Fail fast in production when nothing protects ``/rest/v3``.

    The API lists, blocks and removes activations and imports private keys
    into the token: it must never answer anyone who reaches the bank pages.
    """
    config = app.config
    if config["ENVIRONMENT"] != "production" or config["REST_BASIC_AUTH"]:
        return
    if config["REST_PROTECTED_BY_PROXY"]:
        logger.warning(
            "REST_PROTECTED_BY_PROXY is on: /rest/v3 answers without "
            "authentication and relies on what is in front of this app"
        )
        return
    raise settings_module.SettingsError(
        "REST_BASIC_AUTH is off in production, so anyone who reaches this app "
        "could call /rest/v3: set REST_BASIC_AUTH=true with "
        "REST_BASIC_AUTH_USERS (POWERAUTH_REST_BASIC_AUTH, "
        "POWERAUTH_REST_BASIC_AUTH_USERS), or REST_PROTECTED_BY_PROXY=true when "
        "a proxy or private network in front lets only the bank's backends "
        "reach /rest/v3"
    )
