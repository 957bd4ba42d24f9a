"""Helpers of the server tests: an app on a fresh SQLite file, and calls that
drive the REST API like an integrating backend and a device."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.server.server_device import SimulatedDevice, b64, unb64
from webapp import create_app, services
from webapp.db import new_session


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    """An app on ``tmp_path/powerauth.sqlite``, schema made by ``db init``."""
    config = {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'powerauth.sqlite'}",
        **overrides,
    }
    app = create_app(config)
    result = app.test_cli_runner().invoke(args=["db", "init"])
    assert result.exit_code == 0, result.output
    return app


class Api:
    """Calls /rest/v3 with the PowerAuth envelope and checks the HTTP status."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def call(self, path: str, request_object: Any, status: int = 200) -> Any:
        response = self.client.post(
            f"/rest/v3{path}", json={"requestObject": request_object}
        )
        body = response.get_json()
        assert response.status_code == status, body
        expected = "OK" if status == 200 else "ERROR"
        assert body["status"] == expected, body
        return body["responseObject"]

    def error(self, path: str, request_object: Any, code: str = "ERR0024") -> str:
        """Call expecting HTTP 400 with ``code``; return the message."""
        response = self.call(path, request_object, status=400)
        assert response["code"] == code, response
        message: str = response["message"]
        return message


def unique(prefix: str) -> str:
    """A fresh id: the token outlives each test's database."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Enrolled:
    activation_id: str
    device: SimulatedDevice
    server_public_key: bytes
    application_id: str
    user_id: str


def enroll(api: Api, application_id: str, **init: Any) -> Enrolled:
    """init, prepare and commit, as a backend plus a device would."""
    user_id = unique("user")
    created = api.call(
        "/activation/init",
        {"userId": user_id, "applicationId": application_id, **init},
    )
    device = SimulatedDevice()
    prepared = api.call(
        "/activation/prepare",
        {
            "activationCode": created["activationCode"],
            "devicePublicKey": b64(device.public_key),
        },
    )
    server_public_key = unb64(prepared["serverPublicKey"])
    device.activate(server_public_key, unb64(prepared["ctrData"]))
    api.call("/activation/commit", {"activationId": created["activationId"]})
    return Enrolled(
        created["activationId"], device, server_public_key, application_id, user_id
    )


def database_dump(app: Flask) -> list[str]:
    """Every row of every table, to prove a refused request changed nothing."""
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        return list(connection.iterdump())


def stored_activation(app: Flask, activation_id: str) -> services.ActivationView:
    """The activation as stored now, read through a session of its own."""
    with app.app_context(), new_session() as session:
        return services.get_activation(session, activation_id)
