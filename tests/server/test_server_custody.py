"""Key custody and the audit trail: keys stay in the token, secrets stay out of
the database, and the demo seed is idempotent."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from powerauth.payload import parse_offline_payload
from tests.server.server_device import b64, payload_data
from tests.server.server_testing import Api, Enrolled, database_dump, make_app, unique
from webapp import demo
from webapp.db import get_engine
from webapp.extensions import get_hsm

pytestmark = pytest.mark.softhsm


def test_generated_private_keys_are_sensitive_and_never_extractable(
    app: Flask, application: dict[str, Any], enrolled: Enrolled
) -> None:
    hsm = get_hsm(app)
    labels = [
        f"pa-master-{application['applicationId']}-1",
        f"pa-server-{enrolled.activation_id}",
    ]
    for label in labels:
        properties = hsm.private_key_properties(label)
        assert properties.token and properties.sensitive
        assert not properties.extractable and properties.never_extractable
        assert not properties.value_readable


def test_audit_trail_records_outcomes_but_never_codes(
    app: Flask, api: Api, enrolled: Enrolled
) -> None:
    created = api.call(
        "/signature/offline/personalized/create",
        {"activationId": enrolled.activation_id, "data": payload_data()},
    )
    base = parse_offline_payload(created["offlineData"]).base_string()
    good = enrolled.device.code(base, ahead=2)
    wrong = "87654321-12345678"
    for code in (wrong, good):
        api.call(
            "/signature/offline/verify",
            {"activationId": enrolled.activation_id, "data": base, "signature": code},
        )

    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT action, result, signature_type, counter_offset, actor"
            " FROM audit_record WHERE activation_id = ? ORDER BY id",
            (enrolled.activation_id,),
        ).fetchall()
    assert rows[-3:] == [
        ("payload_personalized", "OK", None, None, "rest"),
        ("verify", "signature_does_not_match", None, None, "rest"),
        ("verify", "signature_ok", "POSSESSION_KNOWLEDGE", 2, "rest"),
    ]
    dump = "\n".join(database_dump(app))
    for secret in (good, wrong, *good.split("-"), *wrong.split("-")):
        assert secret not in dump
    # Nothing derived is stored either: the device's factor keys are absent.
    keys = enrolled.device.keys
    assert keys is not None
    for key in (keys.possession, keys.knowledge, keys.biometry, keys.transport):
        assert b64(key) not in dump and key.hex().upper() not in dump.upper()


def test_demo_seed_is_idempotent_even_with_a_new_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A unique id, because the session's token outlives each test database.
    monkeypatch.setattr(demo, "DEMO_APPLICATION_ID", unique("demo"))
    first_db = tmp_path / "first"
    first_db.mkdir()
    first = make_app(first_db)
    seeded = demo.seed(first)
    again = demo.seed(first)
    assert again.application == seeded.application
    get_engine(first).dispose()

    # A fresh database finds the demo key still in the token and adopts it.
    second_db = tmp_path / "second"
    second_db.mkdir()
    second = make_app(second_db)
    adopted = demo.seed(second)

    assert adopted.application.master_public_key == (
        seeded.application.master_public_key
    )
    get_engine(second).dispose()
