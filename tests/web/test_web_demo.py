"""The demo's seed of a user with one activated simulated device."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mtoken import Device, StateStore
from tests.web.pages_testing import PIN, activation_view, login
from webapp import demo, services
from webapp.db import new_session
from webapp.extensions import get_settings

pytestmark = pytest.mark.softhsm


def test_demo_user_is_seeded_once_and_can_log_in(
    app: Flask, client: FlaskClient
) -> None:
    first = demo.seed_demo_user(app, PIN)
    again = demo.seed_demo_user(app, PIN)

    assert first.created and not again.created
    assert again.activation_id == first.activation_id
    assert activation_view(app, first.activation_id).status == "ACTIVE"
    phone = Device(StateStore(app.config["SIMULATOR_STATE_DIR"]))
    login(client, demo.DEMO_USER, phone)

    # A device the server no longer accepts is replaced by a new one.
    with app.app_context():
        session = new_session()
        services.block_activation(
            session, get_settings(), activation_id=first.activation_id, actor="t"
        )
        session.close()
    replaced = demo.seed_demo_user(app, PIN)
    assert replaced.created and replaced.activation_id != first.activation_id
    assert [s.activation_id for s in phone.activations()] == [replaced.activation_id]
