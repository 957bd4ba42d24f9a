"""Process-wide objects of the app: the HSM adapter and the service settings."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, current_app

from hsm import HSM, HSMConfig
from webapp.config import ServerSettings

_HSM_KEY = "powerauth.hsm"
_SETTINGS_KEY = "powerauth.settings"

# One HSM object per process and token configuration: the adapter owns the
# PKCS#11 library state, which is per process, so every app built in the same
# process (tests build many) shares it.
_hsm_cache: dict[HSMConfig, HSM] = {}
_hsm_lock = threading.Lock()


def hsm_config(config: Any) -> HSMConfig:
    """The adapter's settings from the app config (PKCS11_* names)."""
    return HSMConfig.from_env(
        {
            name: str(config.get(name) or "")
            for name in (
                "PKCS11_MODULE",
                "PKCS11_TOKEN_LABEL",
                "PKCS11_USER_PIN",
                "PKCS11_ECDH_PEER_ENCODING",
            )
            if config.get(name)
        }
    )


def shared_hsm(config: HSMConfig) -> HSM:
    """The process's HSM object for ``config`` (lazy: opens nothing yet)."""
    with _hsm_lock:
        hsm = _hsm_cache.get(config)
        if hsm is None:
            hsm = _hsm_cache[config] = HSM(config)
        return hsm


def init_app(app: Flask, settings: ServerSettings) -> None:
    app.extensions[_HSM_KEY] = shared_hsm(hsm_config(app.config))
    app.extensions[_SETTINGS_KEY] = settings


def get_hsm(app: Flask | None = None) -> HSM:
    hsm: HSM = (app or current_app).extensions[_HSM_KEY]
    return hsm


def get_settings(app: Flask | None = None) -> ServerSettings:
    settings: ServerSettings = (app or current_app).extensions[_SETTINGS_KEY]
    return settings
