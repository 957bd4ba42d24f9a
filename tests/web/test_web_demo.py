"""The demo's seed of a user with one activated simulated device."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from mtoken import Device, StateStore
from tests.server.server_testing import stored_activation
from tests.web.pages_testing import PIN, login
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
    assert stored_activation(app, first.activation_id).status == "ACTIVE"
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


# Start-up of `python -m webapp.demo` (what scripts/demo runs), in a subprocess
# on a throw-away database and state folder and the run's SoftHSM token.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("POWERAUTH_", "DEMO_"))
    }
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite'}",
        POWERAUTH_SIMULATOR_STATE_DIR=str(tmp_path / "mtoken"),
    )
    env.update(extra)
    return env


def run_demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webapp.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_starts_and_prints_the_default_pin(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "webapp.demo"],
        env=demo_env(tmp_path, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "console password" in line:
                break
        banner = "".join(lines)
        assert (
            f"2. Token simulator:   http://127.0.0.1:{port}/simulator/  (PIN 1234)"
            in (banner)
        )
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)
        assert health.json() == {"status": "OK"}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_demo_refuses_a_port_in_use_before_the_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_demo(demo_env(tmp_path, port))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"demo: cannot start: cannot listen on 127.0.0.1:{port} "
        "(Address already in use); set PORT (or HOST) to a free one"
    ]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"PKCS11_USER_PIN": "97531"}, "PKCS11_USER_PIN"),
        ({"PKCS11_TOKEN_LABEL": "no-such-token"}, "PKCS11_TOKEN_LABEL"),
        ({"POWERAUTH_SIGNATURE_LOOKAHEAD": "0"}, "SIGNATURE_LOOKAHEAD"),
    ],
)
def test_demo_stops_on_a_wrong_setting_with_one_line(
    tmp_path: Path, extra: dict[str, str], named: str
) -> None:
    result = run_demo(demo_env(tmp_path, free_port(), **extra))

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("demo: cannot start: ") and named in lines[0]
    assert "97531" not in result.stderr
    # Stopped before the seed: no demo device was made.
    assert not (tmp_path / "mtoken").exists()


@pytest.mark.parametrize(
    ("pin", "hint"),
    [
        (None, "PIN 1234"),
        ("1234", "PIN 1234"),
        ("2468", "the PIN you set in DEMO_PIN"),
    ],
)
def test_banner_shows_only_the_default_pin(
    monkeypatch: pytest.MonkeyPatch, pin: str | None, hint: str
) -> None:
    if pin is None:
        monkeypatch.delenv("DEMO_PIN", raising=False)
    else:
        monkeypatch.setenv("DEMO_PIN", pin)
    assert demo.pin_hint() == hint
