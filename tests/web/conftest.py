"""Fixtures of the web page tests (Flask test client, real SoftHSM token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mtoken import Device
from tests.web.pages_testing import Clock, enroll, make_app, unique


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Iterator[Flask]:
    app = make_app(tmp_path, clock)
    yield app
    app.extensions["powerauth.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def user() -> str:
    return unique("alice")


@pytest.fixture
def device(app: Flask, user: str, tmp_path: Path) -> Device:
    return enroll(app, user, tmp_path / "phone")
