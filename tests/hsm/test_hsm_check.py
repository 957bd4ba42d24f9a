"""The ``hsm-check`` conformance command on this run's SoftHSM token."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hsm import HSM
from hsm.check import main

pytestmark = pytest.mark.softhsm

OPERATIONS = [
    "open session, log in",
    "generate P-256 key pair",
    "private key CKA_SENSITIVE",
    "private key CKA_EXTRACTABLE",
    "private key CKA_NEVER_EXTRACTABLE",
    "private key CKA_VALUE unreadable",
    "export public key",
    "sign ECDSA P-256 SHA-256",
    "ECDH, uncompressed peer",
    "ECDH, compressed peer",
    "ECDH, peer X starts 0x3F, der",
    "ECDH leaves no derived object",
    "off-curve peer refused on the host",
    "import private key",
    "delete key pair",
]


def test_check_passes_on_softhsm_and_cleans_up(hsm: HSM) -> None:
    before = hsm.key_labels()

    result = CliRunner().invoke(main, ["--iterations", "20"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "0 required check(s) failed of 21; no key left"
    for operation in OPERATIONS:
        row = next(line for line in lines if line.startswith(operation + " "))
        assert "| ok" in row or "| refused" in row, row
    assert "CKM_ECDSA (SHA-256 on the host)" in result.output
    assert "FAIL" not in result.output
    assert hsm.key_labels() == before


def test_check_fails_with_a_wrong_pin(hsm: HSM) -> None:
    hsm.close()  # the token checks a PIN only when nobody is logged in

    result = CliRunner().invoke(main, ["--pin", "0000", "--iterations", "1"])

    assert result.exit_code == 1
    assert "FAIL: PKCS11_USER_PIN" in result.output
    assert "0000" not in result.output


def test_check_fails_with_a_missing_module() -> None:
    result = CliRunner().invoke(main, ["--module", "/nonexistent/lib.so"])

    assert result.exit_code == 1
    assert "FAIL: PKCS11_MODULE: no file at /nonexistent/lib.so" in result.output


def test_check_needs_a_token_label() -> None:
    result = CliRunner(env={"PKCS11_TOKEN_LABEL": None}).invoke(main, [])

    assert result.exit_code == 2
    assert "--token-label" in result.output


def test_check_with_raw_peer_encoding(hsm: HSM) -> None:
    result = CliRunner().invoke(
        main, ["--iterations", "5", "--ecdh-peer-encoding", "raw"]
    )

    assert result.exit_code == 0, result.output
    assert "CKM_ECDH1_DERIVE (CKD_NULL, peer raw)" in result.output


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_check_help_has_a_short_alias(flag: str) -> None:
    result = CliRunner().invoke(main, [flag])
    assert result.exit_code == 0, result.output
    assert "--token-label" in result.output
    assert "-h, --help" in result.output
