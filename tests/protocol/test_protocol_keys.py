"""Key encodings: Java signed big-endian private keys and P-256 point checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerauth.errors import InvalidKeyError, InvalidServerSignatureError
from powerauth.keys import (
    P256_ORDER,
    ecdh_shared_x,
    private_key_from_java_bytes,
    private_key_to_java_bytes,
    public_key_from_private,
    sign_ecdsa_der,
    validate_public_key,
    verify_ecdsa_der,
)


@given(st.integers(1, P256_ORDER - 1))
def test_java_bytes_round_trip(scalar: int) -> None:
    raw = private_key_to_java_bytes(scalar)
    assert private_key_from_java_bytes(raw) == scalar
    # Minimal two's complement: a sign byte only when the top bit is set.
    assert len(raw) <= 33
    assert raw[0] & 0x80 == 0
    if len(raw) > 1:
        assert not (raw[0] == 0 and raw[1] & 0x80 == 0)


def test_java_bytes_forms() -> None:
    assert private_key_to_java_bytes(1) == b"\x01"
    assert private_key_to_java_bytes(0x80) == b"\x00\x80"
    top = P256_ORDER - 1
    assert len(private_key_to_java_bytes(top)) == 33
    assert private_key_from_java_bytes(b"\x00" * 32 + b"\x05") == 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "1..33 bytes"),
        (b"\x01" * 34, "1..33 bytes"),
        (b"\x00", "1..n-1"),
        (b"\xff", "1..n-1"),
        (b"\x80" + bytes(31), "1..n-1"),
        (P256_ORDER.to_bytes(33, "big"), "1..n-1"),
    ],
)
def test_invalid_private_keys(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidKeyError, match=message):
        private_key_from_java_bytes(raw)


def test_private_key_writer_checks_range() -> None:
    for scalar in (0, -1, P256_ORDER):
        with pytest.raises(InvalidKeyError):
            private_key_to_java_bytes(scalar)


def test_compressed_points_are_expanded() -> None:
    public = public_key_from_private(12345)
    prefix = b"\x03" if public[-1] & 1 else b"\x02"
    assert validate_public_key(prefix + public[1:33]) == public
    assert validate_public_key(public) == public


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (b"", "33- or 65-byte"),
        (b"\x04" + bytes(63), "33- or 65-byte"),
        (b"\x04" + bytes(64), "not a valid P-256 point"),
        (b"\x04" + b"\x01" * 64, "not a valid P-256 point"),
        (b"\x05" + bytes(64), "not a valid P-256 point"),
    ],
)
def test_invalid_public_keys(point: bytes, message: str) -> None:
    with pytest.raises(InvalidKeyError, match=message):
        validate_public_key(point)


def test_off_curve_peer_is_refused_in_ecdh() -> None:
    public = bytearray(public_key_from_private(99))
    public[-1] ^= 1
    with pytest.raises(InvalidKeyError):
        ecdh_shared_x(5, bytes(public))


def test_ecdh_is_symmetric() -> None:
    a, b = 1111, 2222
    shared = ecdh_shared_x(a, public_key_from_private(b))
    assert shared == ecdh_shared_x(b, public_key_from_private(a))
    assert len(shared) == 32


def test_ecdsa_refuses_garbage_and_other_keys() -> None:
    signature = sign_ecdsa_der(42, b"message")
    verify_ecdsa_der(public_key_from_private(42), b"message", signature)
    with pytest.raises(InvalidServerSignatureError):
        verify_ecdsa_der(public_key_from_private(43), b"message", signature)
    with pytest.raises(InvalidServerSignatureError):
        verify_ecdsa_der(public_key_from_private(42), b"message", b"\x30\x00")
