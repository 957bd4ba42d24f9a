"""Settings, basic auth, schema creation and the admin CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from flask import Flask

from tests.server.server_testing import Api, make_app, unique
from webapp import create_app
from webapp.config import SettingsError, redacted
from webapp.db import alembic_config, get_engine, head_revision, schema_revision
from webapp.extensions import get_hsm, get_settings

pytestmark = pytest.mark.softhsm


PRODUCTION_REST_AUTH = {
    "REST_BASIC_AUTH": True,
    "REST_BASIC_AUTH_USERS": {"backend": "a-long-random-password"},
}


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'powerauth.sqlite'}"


def test_production_refuses_to_start_without_secret_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("POWERAUTH_SECRET_KEY", raising=False)

    with pytest.raises(SettingsError, match="SECRET_KEY"):
        create_app({"DATABASE_URL": sqlite_url(tmp_path)})


def test_production_starts_with_secret_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "a-long-random-value-for-this-test")

    app = create_app({"DATABASE_URL": sqlite_url(tmp_path), **PRODUCTION_REST_AUTH})

    assert app.config["ENVIRONMENT"] == "production"


def test_production_refuses_an_unauthenticated_rest_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: production used to serve /rest/v3 to anyone by default.
    monkeypatch.setenv("SECRET_KEY", "a-long-random-value-for-this-test")

    with pytest.raises(SettingsError, match="REST_BASIC_AUTH is off in production"):
        create_app({"DATABASE_URL": sqlite_url(tmp_path)})
    with pytest.raises(SettingsError, match="REST_PROTECTED_BY_PROXY=true"):
        create_app({"DATABASE_URL": sqlite_url(tmp_path)})
    with pytest.raises(SettingsError, match="REST_BASIC_AUTH_USERS is empty"):
        create_app({"DATABASE_URL": sqlite_url(tmp_path), "REST_BASIC_AUTH": True})


def test_production_without_basic_auth_needs_the_explicit_proxy_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "a-long-random-value-for-this-test")
    monkeypatch.setenv("POWERAUTH_REST_PROTECTED_BY_PROXY", "true")

    app = create_app({"DATABASE_URL": sqlite_url(tmp_path)})

    assert app.config["REST_PROTECTED_BY_PROXY"] is True
    assert app.test_cli_runner().invoke(args=["db", "init"]).exit_code == 0
    client = app.test_client()
    body = {"requestObject": {}}
    assert client.post("/rest/v3/application/list", json=body).status_code == 200
    get_engine(app).dispose()


def test_development_still_starts_without_rest_auth(tmp_path: Path) -> None:
    app = create_app(
        {"ENVIRONMENT": "development", "DATABASE_URL": sqlite_url(tmp_path)}
    )
    assert app.config["REST_BASIC_AUTH"] is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIGNATURE_LOOKAHEAD", 0),
        ("SIGNATURE_LOOKAHEAD", 65),
        ("OFFLINE_COMPONENT_LENGTH", 3),
        ("OFFLINE_COMPONENT_LENGTH", 9),
        ("MAX_FAILED_ATTEMPTS", 0),
        ("MAX_FAILED_ATTEMPTS", "5"),
        ("PAYLOAD_DATA_MAX_BYTES", 10_000),
        ("REST_BASIC_AUTH", "yes"),
        ("REST_PROTECTED_BY_PROXY", "yes"),
    ],
)
def test_out_of_range_settings_are_named(
    tmp_path: Path, name: str, value: object
) -> None:
    with pytest.raises(SettingsError, match=name):
        create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path), name: value})


def test_basic_auth_needs_users(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="REST_BASIC_AUTH_USERS"):
        create_app(
            {
                "TESTING": True,
                "DATABASE_URL": sqlite_url(tmp_path),
                "REST_BASIC_AUTH": True,
            }
        )


def test_prefixed_environment_and_plain_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERAUTH_SIGNATURE_LOOKAHEAD", "30")
    monkeypatch.setenv("POWERAUTH_ENVIRONMENT", "development")
    monkeypatch.setenv("DATABASE_URL", sqlite_url(tmp_path))

    app = create_app()

    assert get_settings(app).lookahead == 30
    assert str(get_engine(app).url) == sqlite_url(tmp_path)
    assert app.config["SECRET_KEY"]


def test_one_hsm_object_per_process(tmp_path: Path) -> None:
    first = create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path)})
    second = create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path)})

    assert get_hsm(first) is get_hsm(second)


def test_default_database_is_in_the_instance_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)

    app = create_app({"TESTING": True})

    assert str(get_engine(app).url) == (
        f"sqlite:///{Path(app.instance_path) / 'powerauth.sqlite'}"
    )
    get_engine(app).dispose()


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        create_app({"TESTING": True, "DATABASE_URL": "sqlite://"})


def test_basic_auth(tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        REST_BASIC_AUTH=True,
        REST_BASIC_AUTH_USERS={"integration": "s3cret-pass"},
    )
    client = app.test_client()
    body = {"requestObject": {}}

    anonymous = client.post("/rest/v3/application/list", json=body)
    wrong = client.post(
        "/rest/v3/application/list",
        json=body,
        auth=("integration", "guess"),
    )
    right = client.post(
        "/rest/v3/application/list",
        json=body,
        auth=("integration", "s3cret-pass"),
    )

    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert client.get("/health").status_code == 200
    get_engine(app).dispose()


def test_db_init_runs_the_migrations_and_is_idempotent(app: Flask) -> None:
    engine = get_engine(app)
    assert schema_revision(engine) == head_revision()

    result = app.test_cli_runner().invoke(args=["db", "init"])

    assert result.exit_code == 0, result.output
    assert head_revision() in result.output


def test_models_match_the_migrations(app: Flask) -> None:
    # Raises when autogenerate would find a difference between the two.
    command.check(alembic_config(get_engine(app)))


def test_cli_application_and_activation_commands(app: Flask, api: Api) -> None:
    runner = app.test_cli_runner()
    application_id = unique("cli")

    created = runner.invoke(
        args=["application", "create", application_id, "--role", "ADMIN"]
    )
    assert created.exit_code == 0, created.output
    assert "ADMIN" in created.output
    listed = runner.invoke(args=["application", "list"])
    assert application_id in listed.output
    shown = runner.invoke(args=["application", "show", application_id])
    detail = api.call("/application/detail", {"applicationId": application_id})
    assert detail["masterPublicKey"] in shown.output

    init = runner.invoke(
        args=["activation", "init", "--application", application_id, "--user", "u1"]
    )
    assert init.exit_code == 0, init.output
    activation_id = init.output.split()[1]
    assert "activationCode:" in init.output
    # A CREATED activation cannot be blocked: the CLI says why, with the code.
    refused = runner.invoke(args=["activation", "block", activation_id])
    assert refused.exit_code != 0
    assert "ERR0008" in refused.output
    removed = runner.invoke(args=["activation", "remove", activation_id])
    assert removed.exit_code == 0, removed.output
    shown = runner.invoke(args=["activation", "show", activation_id])
    assert "REMOVED" in shown.output
    assert "counter:" in shown.output
    listed = runner.invoke(args=["activation", "list", "--user", "u1"])
    assert activation_id in listed.output

    missing = runner.invoke(args=["activation", "show", "no-such-id"])
    assert missing.exit_code != 0
    assert "ERR0009" in missing.output


def test_redacted_config_hides_secrets() -> None:
    shown = redacted(
        {"PKCS11_USER_PIN": "1234", "SECRET_KEY": "k", "SIGNATURE_LOOKAHEAD": 20}
    )

    assert shown == {
        "PKCS11_USER_PIN": "<redacted>",
        "SECRET_KEY": "<redacted>",
        "SIGNATURE_LOOKAHEAD": 20,
    }


def test_settings_command_redacts_secrets(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["db", "settings"])

    assert result.exit_code == 0, result.output
    assert "SIGNATURE_LOOKAHEAD = 20" in result.output
    assert "PKCS11_USER_PIN = '<redacted>'" in result.output
    assert "1234" not in result.output
