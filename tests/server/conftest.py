"""Fixtures of the server tests: an app on a fresh SQLite file, its HTTP client,
an enrolled device; the helpers they use are in ``server_testing``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.server.server_testing import (
    Api,
    Enrolled,
    enroll,
    make_app,
    stored_activation,
    unique,
)
from webapp import services


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(tmp_path)
    yield app
    app.extensions["powerauth.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def api(client: FlaskClient) -> Api:
    return Api(client)


@pytest.fixture
def application(api: Api) -> dict[str, Any]:
    created: dict[str, Any] = api.call(
        "/application/create", {"applicationId": unique("app")}
    )
    return created


@pytest.fixture
def enrolled(api: Api, application: dict[str, Any]) -> Enrolled:
    return enroll(api, application["applicationId"])


@pytest.fixture
def activation_state(app: Flask) -> Callable[[str], services.ActivationView]:
    """Read an activation's stored state (counter included) through the services."""
    return functools.partial(stored_activation, app)
