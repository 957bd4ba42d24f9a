"""Activation code, activation signature and fingerprint vectors (SPEC 8.2, 8.3)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from powerauth.activation import (
    activation_qr_text,
    crc16_arc,
    generate_activation_code,
    parse_activation_qr_text,
    public_key_fingerprint,
    validate_activation_code,
)
from powerauth.errors import (
    ActivationCodeError,
    InvalidKeyError,
    InvalidServerSignatureError,
)
from powerauth.keys import (
    private_key_from_java_bytes,
    public_key_from_private,
    sign_ecdsa_der,
    verify_ecdsa_der,
)
from tests.protocol.protocol_vectors import b64, data_cases, load

CODES = load("activation-code-cases.json")
SIGNED = data_cases("verify-activation-data-signature-v3.json")
FINGERPRINTS = data_cases("public-key-fingerprint-v3.json")


@pytest.mark.parametrize("code", CODES["valid"])
def test_valid_activation_code(code: str) -> None:
    assert validate_activation_code(code) == code
    # Regenerating from the first ten bytes gives the same code.
    raw = base64.b32decode(code.replace("-", "") + "====")
    assert generate_activation_code(raw[:10]) == code


@pytest.mark.parametrize("case", SIGNED, ids=lambda c: c["input"]["activationCode"])
def test_activation_signature(case: dict[str, Any]) -> None:
    given = case["input"]
    code = validate_activation_code(given["activationCode"])
    public_key = b64(given["masterPublicKey"])
    signature = b64(case["output"]["activationSignature"])
    verify_ecdsa_der(public_key, code.encode("ascii"), signature)
    scalar = private_key_from_java_bytes(b64(given["masterPrivateKey"]))
    assert public_key_from_private(scalar) == public_key
    # The QR form carries the same signature.
    qr = activation_qr_text(code, signature)
    assert parse_activation_qr_text(qr) == (code, signature)
    with pytest.raises(InvalidServerSignatureError):
        verify_ecdsa_der(public_key, code.lower().encode("ascii"), signature)


@pytest.mark.parametrize(
    "case", FINGERPRINTS, ids=lambda c: c["output"]["activationId"]
)
def test_fingerprint(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["output"]
    device, server = b64(given["devicePublicKey"]), b64(given["serverPublicKey"])
    # The vector's X coordinates are the minimal unsigned forms.
    assert b64(expected["devicePublicKeyCoordX"]).lstrip(b"\0") == device[1:33].lstrip(
        b"\0"
    )
    fingerprint = public_key_fingerprint(device, expected["activationId"], server)
    assert fingerprint == expected["fingerprint"]


def test_fingerprint_vectors_include_a_short_x() -> None:
    short = [
        c
        for c in FINGERPRINTS
        if len(b64(c["output"]["devicePublicKeyCoordX"])) < 32
        or len(b64(c["output"]["serverPublicKeyCoordX"])) < 32
    ]
    assert short, "the minimal-X rule needs a vector with a leading zero byte"


def test_crc16_arc_check_value() -> None:
    # The catalogue check value of CRC-16/ARC over "123456789".
    assert crc16_arc(b"123456789") == 0xBB3D


def test_generated_code_validates() -> None:
    code = generate_activation_code(bytes(range(10)))
    assert validate_activation_code(code) == code


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("AAAAA-AAAAA-AAAAA-AAAA", "23 characters"),
        ("AAAAA-AAAAA-AAAAA-AAAAAA", "23 characters"),
        ("AAAAAAAAAAAAAAAAAAAAAAA", "groups"),
        ("aaaaa-aaaaa-aaaaa-aaaaa", "Base32"),
        ("AAAAA-AAAAA-AAAAA-AAAA1", "Base32"),
        ("AAAAA_AAAAA-AAAAA-AAAAA", "groups"),
        ("AAAAA-AAAAA-AAAAA-AAAAB", "canonical"),
        ("LLLLL-LLLLL-LLLLL-LQJTQ", "checksum"),
        ("AAAAA-AAAAA-AAAAA-AAABA", "checksum"),
    ],
)
def test_invalid_activation_code(code: str, message: str) -> None:
    with pytest.raises(ActivationCodeError, match=message):
        validate_activation_code(code)


def test_generate_needs_ten_bytes() -> None:
    with pytest.raises(ActivationCodeError, match="10 random bytes"):
        generate_activation_code(bytes(9))


def test_activation_qr_text_errors() -> None:
    with pytest.raises(ActivationCodeError, match="CODE#SIGNATURE"):
        parse_activation_qr_text("AAAAA-AAAAA-AAAAA-AAAAA")
    with pytest.raises(ActivationCodeError, match="Base64"):
        parse_activation_qr_text("AAAAA-AAAAA-AAAAA-AAAAA#1234567890")
    with pytest.raises(ActivationCodeError, match="checksum"):
        activation_qr_text("AAAAA-AAAAA-AAAAA-AAABA", bytes(70))


def test_fingerprint_refuses_invalid_points() -> None:
    point = b"\x04" + bytes(64)
    with pytest.raises(InvalidKeyError):
        public_key_fingerprint(point, "id", point)


def test_software_signature_round_trip() -> None:
    scalar = 7
    code = generate_activation_code(bytes(10))
    signature = sign_ecdsa_der(scalar, code.encode())
    verify_ecdsa_der(public_key_from_private(scalar), code.encode(), signature)
