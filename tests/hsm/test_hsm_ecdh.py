"""ECDH on P-256 in the token against cryptography's result (SPEC 1.3)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hsm import HSM, HSMConfig
from hsm.errors import InvalidPublicKeyError

pytestmark = pytest.mark.softhsm

P256 = ec.SECP256R1()
# First bytes of X that make the raw point 04||X||Y look like the start of a
# DER value: 0x3F turns "04 3F" into an OCTET STRING of exactly the 63 bytes
# that follow, 0x41 into the header of a 65-byte one, 0x30 and 0x81/0x82 into
# SEQUENCE and long-form length headers. 0x00 and 0xFF are the edges.
TRICKY_FIRST_BYTES = [0x3F, 0x41, 0x04, 0x30, 0x81, 0x82, 0x00, 0xFF]


def _peer_with_x_starting(first: int) -> ec.EllipticCurvePrivateKey:
    for _ in range(20000):
        peer = ec.generate_private_key(P256)
        x = peer.public_key().public_numbers().x
        if x.to_bytes(32, "big")[0] == first:
            return peer
    raise AssertionError(f"no peer key with X starting {first:#04x}")


def _uncompressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def _compressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


@pytest.fixture(params=["der", "raw"])
def encoded_hsm(request: pytest.FixtureRequest, hsm_config: HSMConfig) -> HSM:
    """The adapter passing the peer point in each encoding it supports."""
    return HSM(dataclasses.replace(hsm_config, ecdh_peer_encoding=request.param))


@pytest.mark.parametrize("form", ["uncompressed", "compressed"])
def test_ecdh_matches_cryptography(
    encoded_hsm: HSM,
    keypair: tuple[str, ec.EllipticCurvePublicKey],
    form: str,
) -> None:
    label, public = keypair
    for _ in range(20):
        peer = ec.generate_private_key(P256)
        point = (_uncompressed if form == "uncompressed" else _compressed)(
            peer.public_key()
        )

        shared = encoded_hsm.ecdh(label, point)

        assert shared == peer.exchange(ec.ECDH(), public)
        assert len(shared) == 32


@pytest.mark.parametrize("first", TRICKY_FIRST_BYTES, ids=lambda b: f"x0={b:#04x}")
def test_ecdh_with_peer_x_that_looks_like_der(
    encoded_hsm: HSM,
    keypair: tuple[str, ec.EllipticCurvePublicKey],
    first: int,
) -> None:
    label, public = keypair
    peer = _peer_with_x_starting(first)
    expected = peer.exchange(ec.ECDH(), public)

    assert encoded_hsm.ecdh(label, _uncompressed(peer.public_key())) == expected
    assert encoded_hsm.ecdh(label, _compressed(peer.public_key())) == expected


def test_ecdh_leaves_no_derived_object(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, _ = keypair
    peer = _uncompressed(ec.generate_private_key(P256).public_key())

    for _ in range(10):
        hsm.ecdh(label, peer)

    assert hsm.session_object_count() == 0


def _not_on_curve() -> bytes:
    point = bytearray(_uncompressed(ec.generate_private_key(P256).public_key()))
    point[-1] ^= 0x01
    return bytes(point)


P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1

BAD_POINTS = {
    "not on the curve": _not_on_curve(),
    "point at infinity": b"\x00",
    "empty": b"",
    "hybrid prefix 0x06": b"\x06" + _not_on_curve()[1:],
    "uncompressed without prefix": _not_on_curve()[1:],
    "compressed with 0x04 prefix": b"\x04" + b"\x01" * 32,
    "X beyond the field": b"\x02" + (P256_P + 1).to_bytes(32, "big"),
    "P-384 length": b"\x04" + b"\x01" * 96,
    "DER-wrapped point": b"\x04\x41" + _not_on_curve(),
    "text": "04aabb",
}


@pytest.mark.parametrize("point", BAD_POINTS.values(), ids=BAD_POINTS.keys())
def test_invalid_peer_is_refused_before_any_token_call(point: object) -> None:
    # This adapter's library path does not exist: any token call would raise
    # ModuleLoadError, so InvalidPublicKeyError proves the check came first.
    unreachable = HSM(
        HSMConfig(
            token_label="never-opened",
            user_pin="unused",
            module="/nonexistent/libpkcs11.so",
        )
    )

    with pytest.raises(InvalidPublicKeyError, match="peer public key"):
        unreachable.ecdh("any-key", point)  # type: ignore[arg-type]


def test_invalid_peer_is_refused_on_the_real_token(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, _ = keypair

    with pytest.raises(InvalidPublicKeyError, match="not a point on P-256"):
        hsm.ecdh(label, _not_on_curve())


def test_ecdh_is_symmetric_between_two_token_keys(
    hsm: HSM, new_label: Callable[[], str]
) -> None:
    alice, bob = new_label(), new_label()
    alice_point = hsm.generate_keypair(alice)
    bob_point = hsm.generate_keypair(bob)

    assert hsm.ecdh(alice, bob_point) == hsm.ecdh(bob, alice_point)
