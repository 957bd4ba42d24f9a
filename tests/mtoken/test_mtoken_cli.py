"""The ``mtoken`` command over real HTTP (a loopback server) and its exit statuses."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import segno
from PIL import Image
from werkzeug.serving import make_server

from mtoken.cli import main
from mtoken.device import Device
from mtoken.state import StateStore
from powerauth.keys import public_key_from_private
from powerauth.payload import KeyIndicator
from powerauth.signature import SignatureType
from tests.mtoken.mtoken_softserver import APPLICATION_ID, PIN, SoftwareServer

PAYMENT = "\n".join(
    [
        "op-cli-1",
        "Platba",
        "Potvrďte prosím platbu\\nděkujeme",
        "A1*A1234.5CZK*ICZ2730300000001165254011,FIOBCZPP*D20260425*NPro Jana",
        "BF",
    ]
)
LOGIN = "\n".join(["op-cli-2", "", "", "A2*TPraha*TBrno*X42", "XC"])


def wsgi_app(server: SoftwareServer) -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length))
        answer = server.handle(environ["PATH_INFO"], request)
        body = json.dumps(answer).encode()
        status = "200 OK" if answer["status"] == "OK" else "400 BAD REQUEST"
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


@pytest.fixture
def http_server(server: SoftwareServer) -> Iterator[str]:
    httpd = make_server("127.0.0.1", 0, wsgi_app(server))
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join()


class Run:
    """Run ``mtoken`` in-process; returns (exit status, stdout, stderr)."""

    def __init__(
        self,
        state_dir: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.state_dir = state_dir
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        self.monkeypatch.setattr(
            sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        )
        self.capsys.readouterr()
        try:
            main(["--state", str(self.state_dir), *args])
            status = 0
        except SystemExit as exc:
            status = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return status, out, err

    def json(self, *args: str, stdin: bytes = b"") -> Any:
        status, out, err = self("--json", *args, stdin=stdin)
        assert status == 0, err
        return json.loads(out)


@pytest.fixture
def run(
    state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Run:
    monkeypatch.delenv("MTOKEN_STATE", raising=False)
    return Run(state_dir, capsys, monkeypatch)


def png_file(tmp_path: Path, payload: str, name: str = "qr.png") -> str:
    path = tmp_path / name
    segno.make(payload.encode("utf-8"), mode="byte").save(path, kind="png", scale=4)
    return str(path)


def activate(run: Run, server: SoftwareServer, url: str, *extra: str) -> str:
    activation, signature = server.init()
    result = run.json(
        "activate",
        "--server",
        url,
        "--code",
        activation.code,
        "--signature",
        signature,
        "--pin",
        PIN,
        "--application-id",
        APPLICATION_ID,
        "--commit",
        *extra,
    )
    assert result["fingerprint"] == activation.fingerprint
    assert result["status"] == "ACTIVE"
    return str(result["activationId"])


def test_activate_scan_sign_over_http(
    run: Run, server: SoftwareServer, http_server: str, tmp_path: Path
) -> None:
    activation_id = activate(run, server, http_server, "--name", "pilot")
    payload, _ = server.qr(PAYMENT, activation_id)
    image = png_file(tmp_path, payload)

    status, out, _ = run("scan", image)
    assert status == 0
    for expected in (
        "Platba",
        "Potvrďte prosím platbu\nděkujeme",
        "Amount      1,234.50 CZK",
        "CZ27 3030 0000 0011 6525 4011 (BIC FIOBCZPP)",
        "Due date    25 April 2026",
        "Note        Pro Jana",
        "WARNING: this may be fraud",
        "Biometry: allowed",
        f"personalized for activation {activation_id}",
    ):
        assert expected in out

    status, out, _ = run("sign", image, "--pin", PIN)
    assert status == 0
    code_line = next(line for line in out.splitlines() if line.startswith("Code: "))
    code = code_line.removeprefix("Code: ")
    read_line = next(line for line in out.splitlines() if line.startswith("Read: "))
    assert read_line.removeprefix("Read: ").replace(" ", "") == code.replace("-", "")
    base = run.json("scan", image)
    assert base["personalized"] is True
    verified = Device(StateStore(run.state_dir)).scan(payload)
    assert (
        server.verify(activation_id, verified.payload.base_string(), code, False)
        is SignatureType.POSSESSION_KNOWLEDGE
    )


def test_sign_from_stdin_with_biometry_json(
    run: Run, server: SoftwareServer, http_server: str
) -> None:
    activation_id = activate(run, server, http_server)
    payload, _ = server.qr(PAYMENT)  # non-personalized

    result = run.json("sign", "-", "--biometry", stdin=(payload + "\n").encode())

    assert result["signatureType"] == "POSSESSION_BIOMETRY"
    assert result["personalized"] is False
    assert result["flags"] == {
        "biometryAllowed": True,
        "fraudWarning": True,
        "flipButtons": False,
        "blockWhenOnCall": False,
    }
    assert [f["type"] for f in result["fields"]] == ["AMOUNT", "IBAN", "DATE", "NOTE"]
    assert result["activationId"] == activation_id
    assert len(result["code"]) == 17


def test_login_display_uses_template_texts_and_flags(
    run: Run, server: SoftwareServer, http_server: str
) -> None:
    activation_id = activate(run, server, http_server)
    payload, _ = server.qr(LOGIN, activation_id)

    status, out, _ = run("scan", "-", stdin=payload.encode())

    assert status == 0
    assert out.startswith("Login request\nPlease confirm login into internet banking.")
    assert "Attribute 1  Praha" in out
    assert "Attribute 2  Brno" in out
    assert "Field X      42" in out
    assert "Approve and Reject buttons are swapped" in out
    assert "blocked while a phone call" in out
    assert "Biometry: not allowed" in out


@pytest.mark.filterwarnings("ignore::getpass.GetPassWarning")
def test_pin_is_prompted_when_absent(
    run: Run, server: SoftwareServer, http_server: str, tmp_path: Path
) -> None:
    activation_id = activate(run, server, http_server)
    payload, _ = server.qr(PAYMENT, activation_id)
    image = png_file(tmp_path, payload)

    status, out, err = run("sign", image, stdin=f"{PIN}\n".encode())

    assert status == 0
    assert "PIN" in err
    assert PIN not in out


def test_list_status_remove(run: Run, server: SoftwareServer, http_server: str) -> None:
    first = activate(run, server, http_server)
    second = activate(run, server, http_server)

    listed = run.json("list")
    assert {item["activationId"] for item in listed} == {first, second}
    assert all("possessionKey" not in item for item in listed)

    status, _, err = run("status")
    assert status == 10
    assert "--activation" in err
    server.activations[first].status = "BLOCKED"
    assert run.json("status", "--activation", first, "--refresh")["status"] == (
        "BLOCKED"
    )
    assert run.json("remove", "--activation", first) == {"removed": first}
    assert run.json("status")["activationId"] == second
    status, out, _ = run("status")
    assert status == 0
    assert f"Activation:     {second}" in out
    assert "Codes computed: 0" in out
    status, out, _ = run("list")
    assert status == 0
    assert second in out


def exit_status_cases() -> list[tuple[str, int]]:
    return [
        ("unreadable image", 3),
        ("no QR code", 4),
        ("several QR codes", 5),
        ("malformed payload", 6),
        ("bad signature", 7),
        ("wrong indicator", 8),
        ("unknown activation", 9),
        ("ambiguous activation", 10),
        ("biometry not allowed", 11),
        ("bad activation code", 12),
        ("server unreachable", 13),
        ("damaged state file", 14),
        ("short PIN", 15),
        ("blocked activation", 16),
    ]


@pytest.mark.parametrize(("case", "expected"), exit_status_cases())
def test_exit_statuses(
    run: Run,
    server: SoftwareServer,
    http_server: str,
    tmp_path: Path,
    case: str,
    expected: int,
) -> None:
    activation_id = activate(run, server, http_server)
    payload, _ = server.qr(PAYMENT, activation_id)
    args: list[str]
    stdin = b""
    if case == "unreadable image":
        (tmp_path / "x.png").write_bytes(b"not an image")
        args = ["scan", str(tmp_path / "x.png")]
    elif case == "no QR code":
        Image.new("L", (100, 100), 255).save(tmp_path / "blank.png")
        args = ["scan", str(tmp_path / "blank.png")]
    elif case == "several QR codes":
        one = Image.open(png_file(tmp_path, payload))
        two = Image.new("L", (one.width * 2 + 10, one.height), 255)
        two.paste(one, (0, 0))
        two.paste(one, (one.width + 10, 0))
        two.save(tmp_path / "two.png")
        args = ["scan", str(tmp_path / "two.png")]
    elif case == "malformed payload":
        args, stdin = ["scan", "-"], b"one\ntwo"
    elif case == "bad signature":
        args, stdin = ["scan", "-"], payload.replace("Platba", "Platby").encode()
    elif case == "wrong indicator":
        wrong, _ = server.qr(
            PAYMENT, signer=server.master_scalar, indicator=KeyIndicator.PERSONALIZED
        )
        args, stdin = ["scan", "-"], wrong.encode()
    elif case == "unknown activation":
        args, stdin = ["scan", "-", "--activation", "nope"], payload.encode()
    elif case == "ambiguous activation":
        activate(run, server, http_server)
        args, stdin = ["sign", "-", "--pin", PIN], server.qr(PAYMENT)[0].encode()
    elif case == "biometry not allowed":
        login, _ = server.qr(LOGIN, activation_id)
        args, stdin = ["sign", "-", "--biometry"], login.encode()
    elif case == "bad activation code":
        args = [
            "activate",
            "--server",
            http_server,
            "--code",
            "AAAAA-AAAAA-AAAAA-AAAAB",
        ]
        args += ["--pin", PIN]
    elif case == "server unreachable":
        activation, _ = server.init()
        args = ["activate", "--server", "http://127.0.0.1:9", "--code", activation.code]
        args += ["--pin", PIN]
    elif case == "damaged state file":
        (run.state_dir / f"{activation_id}.json").write_text("{")
        args = ["status"]
    elif case == "short PIN":
        activation, _ = server.init()
        args = ["activate", "--server", http_server, "--code", activation.code]
        args += ["--pin", "12"]
    else:
        server.activations[activation_id].status = "BLOCKED"
        assert run("status", "--refresh")[0] == 0
        args, stdin = ["sign", "-", "--pin", PIN], payload.encode()

    status, out, err = run("--json", *args, stdin=stdin)

    assert status == expected, err
    assert err.startswith("mtoken: ")
    assert json.loads(out)["error"]["exitCode"] == expected
    assert PIN not in err


def test_state_unchanged_by_failures(
    run: Run, server: SoftwareServer, http_server: str
) -> None:
    activation_id = activate(run, server, http_server)
    path = run.state_dir / f"{activation_id}.json"
    before = path.read_bytes()
    login, _ = server.qr(LOGIN, activation_id)
    tampered = server.qr(PAYMENT, activation_id)[0].replace("A1234.5", "A9234.5")

    assert run("sign", "-", "--biometry", stdin=login.encode())[0] == 11
    assert run("sign", "-", "--pin", PIN, stdin=tampered.encode())[0] == 7
    assert path.read_bytes() == before


def test_console_script_exit_status(tmp_path: Path) -> None:
    """The installed command maps errors to statuses outside the process too."""
    executable = Path(sys.executable).with_name("mtoken")
    command = (
        [str(executable)]
        if executable.exists()
        else [
            sys.executable,
            "-m",
            "mtoken",
        ]
    )
    result = subprocess.run(
        [*command, "--state", str(tmp_path), "scan", "-"],
        input=SoftwareServer().qr(PAYMENT)[0].encode(),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 9
    assert b"no activation is stored" in result.stderr


def test_master_public_key_option(
    run: Run, server: SoftwareServer, http_server: str
) -> None:
    activation, signature = server.init()
    result = run.json(
        "activate",
        "--server",
        http_server,
        "--code",
        f"{activation.code}#{signature}",
        "--pin",
        PIN,
        "--master-public-key",
        base64.b64encode(public_key_from_private(server.master_scalar)).decode(),
    )
    assert result["hasMasterPublicKey"] is True
    assert result["status"] == "PENDING_COMMIT"


def run_detached(state_dir: Path, *args: str, stdin: bytes | None) -> Any:
    """``mtoken`` as a cron job runs it: a new session, so no terminal at all."""
    return subprocess.run(
        [sys.executable, "-m", "mtoken", "--state", str(state_dir), *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        start_new_session=True,
        timeout=60,
    )


def test_sign_from_stdin_without_a_terminal_asks_for_pin_option(
    run: Run, server: SoftwareServer, http_server: str, state_dir: Path
) -> None:
    activation_id = activate(run, server, http_server)
    payload, _ = server.qr(PAYMENT, activation_id)

    result = run_detached(state_dir, "sign", "-", stdin=payload.encode())

    assert result.returncode == 17
    err = result.stderr.decode()
    assert "no terminal to ask for the PIN: pass --pin" in err
    assert "Code:" not in result.stdout.decode()
    assert "Aborted" not in err
    # The same in --json mode, for scripts.
    as_json = run_detached(state_dir, "--json", "sign", "-", stdin=payload.encode())
    error = json.loads(as_json.stdout.decode().splitlines()[-1])["error"]
    assert error["type"] == "NoTerminalError" and error["exitCode"] == 17
    # With --pin the same script works.
    signed = run_detached(state_dir, "sign", "-", "--pin", PIN, stdin=payload.encode())
    assert signed.returncode == 0, signed.stderr
    assert "Code:" in signed.stdout.decode()


def test_sign_and_activate_with_empty_stdin_and_no_terminal(
    run: Run, server: SoftwareServer, http_server: str, state_dir: Path, tmp_path: Path
) -> None:
    activation_id = activate(run, server, http_server)
    payload, _ = server.qr(PAYMENT, activation_id)
    image = png_file(tmp_path, payload)

    signed = run_detached(state_dir, "sign", image, stdin=None)
    created, _ = server.init()
    activated = run_detached(
        state_dir,
        "activate",
        "--server",
        http_server,
        "--code",
        created.code,
        stdin=None,
    )

    for result in (signed, activated):
        assert result.returncode == 17, result.stderr
        assert "no terminal to ask for the PIN: pass --pin" in result.stderr.decode()
