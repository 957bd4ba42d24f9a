"""``scripts/admin``: the admin commands with the demo's settings.

Run as a user runs them, in a subprocess, on a throw-away SQLite file and the
run's SoftHSM token; a wrong setting must come out as one ``Error:`` line.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.server.server_testing import unique
from webapp.cli import main

pytestmark = pytest.mark.softhsm

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ROOT / "scripts" / "admin"


def admin(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("POWERAUTH_")
    }
    environ["DATABASE_URL"] = f"sqlite:///{tmp_path / 'admin.sqlite'}"
    environ.update(env)
    return subprocess.run(
        [str(ADMIN), *args],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_admin_creates_an_activation_without_secret_key(tmp_path: Path) -> None:
    application_id = unique("admin")
    assert admin(tmp_path, "db", "init").returncode == 0
    created = admin(tmp_path, "application", "create", application_id)
    assert created.returncode == 0, created.stderr
    assert f"applicationId:    {application_id}" in created.stdout

    init = admin(
        tmp_path, "activation", "init", "--application", application_id, "--user", "bob"
    )

    assert init.returncode == 0, init.stderr
    assert "activationCode:" in init.stdout
    listed = admin(tmp_path, "activation", "list", "--user", "bob")
    assert "\tbob\tCREATED" in listed.stdout
    # The throw-away SECRET_KEY of the development environment is not news.
    assert init.stderr == ""


def test_admin_help_has_a_short_alias(tmp_path: Path) -> None:
    result = admin(tmp_path, "-h")
    assert result.returncode == 0, result.stderr
    assert "activation" in result.stdout
    sub = admin(tmp_path, "activation", "-h")
    assert sub.returncode == 0, sub.stderr
    assert "init" in sub.stdout


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"POWERAUTH_SIGNATURE_LOOKAHEAD": "999"}, "SIGNATURE_LOOKAHEAD"),
        ({"POWERAUTH_ENVIRONMENT": "staging"}, "ENVIRONMENT"),
        ({"DATABASE_URL": "mysql://db/powerauth"}, "DATABASE_URL"),
    ],
)
def test_a_wrong_setting_is_one_error_line(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = admin(tmp_path, "activation", "list", **env)

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and named in lines[0]


def test_a_wrong_pin_is_one_error_line_without_the_pin(tmp_path: Path) -> None:
    application_id = unique("admin-pin")
    assert admin(tmp_path, "db", "init").returncode == 0
    result = admin(
        tmp_path, "application", "create", application_id, PKCS11_USER_PIN="97531"
    )

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "PKCS11_USER_PIN" in lines[0]
    assert "97531" not in result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"POWERAUTH_MAX_FAILED_ATTEMPTS": "0"}, "MAX_FAILED_ATTEMPTS"),
        ({"PKCS11_TOKEN_LABEL": ""}, "PKCS11_TOKEN_LABEL"),
    ],
)
def test_main_turns_a_setup_error_into_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    named: str,
) -> None:
    monkeypatch.setenv("POWERAUTH_ENVIRONMENT", "development")
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SystemExit) as exited:
        main(["db", "revision"])

    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("Error: ") and named in captured.err
    assert len(captured.err.splitlines()) == 1
