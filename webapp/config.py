"""Settings of the server: defaults, the environment, and their validation.

Order of precedence, lowest first:

1. the defaults below;
2. ``POWERAUTH_<NAME>`` environment variables (values parsed as JSON when they
   parse, so ``POWERAUTH_SIGNATURE_LOOKAHEAD=30`` is an int);
3. the plain names ``DATABASE_URL``, ``SECRET_KEY``, ``PKCS11_MODULE``,
   ``PKCS11_TOKEN_LABEL`` and ``PKCS11_USER_PIN``, shared with the other tools;
4. the mapping given to ``create_app`` (tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ENV_PREFIX = "POWERAUTH"
PLAIN_ENV_NAMES = (
    "DATABASE_URL",
    "SECRET_KEY",
    "PKCS11_MODULE",
    "PKCS11_TOKEN_LABEL",
    "PKCS11_USER_PIN",
)
# Settings whose values never appear in a dump or a log line.
SECRET_NAMES = frozenset(
    {"SECRET_KEY", "PKCS11_USER_PIN", "REST_BASIC_AUTH_USERS", "DATABASE_URL"}
)

DEFAULTS: dict[str, Any] = {
    # "production" refuses to start without SECRET_KEY; "development" and
    # "testing" make a throw-away key for the process.
    "ENVIRONMENT": "production",
    # Empty: a SQLite file in the instance folder (instance/powerauth.sqlite).
    "DATABASE_URL": "",
    # SPEC 6.2: lookahead window of CTR_DATA values, upstream default 20 (1..64).
    "SIGNATURE_LOOKAHEAD": 20,
    # SPEC 6.1 / 10.3: digits per component; requests may ask for more, never less.
    "OFFLINE_COMPONENT_LENGTH": 8,
    # SPEC 6.2: failed attempts before an activation is blocked (upstream 5).
    "MAX_FAILED_ATTEMPTS": 5,
    # SPEC 11: upstream code uses 300000 ms (its docs say 120000); we follow the code.
    "ACTIVATION_VALIDITY_MS": 300_000,
    # Upper bound of the UTF-8 size of a payload's `data`, so that the QR code
    # (data + nonce + signature, byte mode) stays scannable.
    "PAYLOAD_DATA_MAX_BYTES": 2048,
    # HTTP basic auth on /rest/v3 (upstream powerauth.service.restrictAccess).
    # Production refuses to start with it off unless REST_PROTECTED_BY_PROXY.
    "REST_BASIC_AUTH": False,
    # {"username": "password", ...}; required when REST_BASIC_AUTH is on.
    "REST_BASIC_AUTH_USERS": {},
    # True: something in front of this app (a proxy that authenticates, a
    # private network) lets only the bank's backends reach /rest/v3, so
    # production may run without REST_BASIC_AUTH.
    "REST_PROTECTED_BY_PROXY": False,
    # Whole request body limit; Flask answers 413 above it, we turn it into 400.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so",
    "PKCS11_TOKEN_LABEL": "",
    "PKCS11_USER_PIN": "",
}

_RANGES = {
    "SIGNATURE_LOOKAHEAD": (1, 64),
    "OFFLINE_COMPONENT_LENGTH": (4, 8),
    "MAX_FAILED_ATTEMPTS": (1, 64),
    "ACTIVATION_VALIDITY_MS": (1_000, 30 * 24 * 3600 * 1000),
    "PAYLOAD_DATA_MAX_BYTES": (64, 2048),
    "MAX_CONTENT_LENGTH": (1024, 16 * 1024 * 1024),
}


class SettingsError(ValueError):
    """A setting is missing or out of its range; the message names it."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServerSettings:
    """The settings the service layer reads, validated once at app start."""

    lookahead: int = 20
    component_length: int = 8
    max_failed_attempts: int = 5
    activation_validity: timedelta = timedelta(milliseconds=300_000)
    payload_data_max_bytes: int = 2048
    clock: Callable[[], datetime] = utc_now

    def now(self) -> datetime:
        return self.clock()


def plain_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The unprefixed shared names that are set in the environment."""
    env = os.environ if environ is None else environ
    return {name: env[name] for name in PLAIN_ENV_NAMES if env.get(name)}


def _int_setting(config: Mapping[str, Any], name: str) -> int:
    value = config.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{name} must be an integer, got {type(value).__name__}")
    low, high = _RANGES[name]
    if not low <= value <= high:
        raise SettingsError(f"{name} must be within {low}..{high}, got {value}")
    return value


def validate(config: Mapping[str, Any]) -> ServerSettings:
    """Check every setting and build the service settings.

    :raises SettingsError: naming the first setting that is wrong.
    """
    for name in _RANGES:
        _int_setting(config, name)

    environment = config.get("ENVIRONMENT")
    if environment not in ("production", "development", "testing"):
        raise SettingsError(
            "ENVIRONMENT must be production, development or testing, "
            f"got {environment!r}"
        )

    for name in ("REST_BASIC_AUTH", "REST_PROTECTED_BY_PROXY"):
        if not isinstance(config.get(name), bool):
            raise SettingsError(f"{name} must be true or false")

    users = config.get("REST_BASIC_AUTH_USERS")
    if not isinstance(users, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in users.items()
    ):
        raise SettingsError(
            "REST_BASIC_AUTH_USERS must map user names to non-empty passwords"
        )

    if config["REST_BASIC_AUTH"] and not users:
        raise SettingsError("REST_BASIC_AUTH is on but REST_BASIC_AUTH_USERS is empty")

    clock = config.get("CLOCK", utc_now)
    if not callable(clock):
        raise SettingsError("CLOCK must be a callable returning an aware datetime")

    return ServerSettings(
        lookahead=config["SIGNATURE_LOOKAHEAD"],
        component_length=config["OFFLINE_COMPONENT_LENGTH"],
        max_failed_attempts=config["MAX_FAILED_ATTEMPTS"],
        activation_validity=timedelta(milliseconds=config["ACTIVATION_VALIDITY_MS"]),
        payload_data_max_bytes=config["PAYLOAD_DATA_MAX_BYTES"],
        clock=clock,
    )


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` safe to print: secrets are replaced by a marker."""
    return {
        name: ("<redacted>" if name in SECRET_NAMES and value else value)
        for name, value in config.items()
    }
