"""ECDSA P-256 SHA-256 in the token, returned as minimal DER (SPEC 1.1)."""

from __future__ import annotations

import hashlib

import pytest
from asn1crypto.algos import DSASignature
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from hsm import HSM

pytestmark = pytest.mark.softhsm

SIGNATURES = 2000
# Signing goes on past SIGNATURES until every shape of r and s below was seen;
# a short value has odds 1/256 per signature, so this bound is never reached
# by chance (the odds of missing one are below 1e-30).
MAX_SIGNATURES = 20000


def _shapes(value: int) -> set[str]:
    """How an INTEGER of a 256-bit value looks in DER (X.690 8.3.2)."""
    length = (value.bit_length() + 7) // 8
    shapes = set()
    if value.bit_length() == 256:
        shapes.add("high bit: 0x00 pad, 33 bytes")
    if length < 32:
        shapes.add("leading zero byte dropped, 31 bytes or fewer")
    if not shapes:
        shapes.add("plain 32 bytes")
    return shapes


def _assert_minimal_der(der: bytes) -> None:
    r, s = decode_dss_signature(der)
    # Re-encoding with a strict encoder gives the same bytes only when the
    # token's r||s became minimal DER: no extra zero bytes, no missing pad.
    assert encode_dss_signature(r, s) == der
    # asn1crypto parses strictly too and must agree on the values.
    parsed = DSASignature.load(der, strict=True)
    assert (parsed["r"].native, parsed["s"].native) == (r, s)
    assert der[0] == 0x30
    assert der[1] == len(der) - 2


def test_signatures_verify_and_are_minimal_der(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair
    seen: dict[str, set[str]] = {"r": set(), "s": set()}
    wanted = {
        "high bit: 0x00 pad, 33 bytes",
        "leading zero byte dropped, 31 bytes or fewer",
        "plain 32 bytes",
    }

    count = 0
    while count < SIGNATURES or seen["r"] != wanted or seen["s"] != wanted:
        assert count < MAX_SIGNATURES, f"shapes never seen: {seen}"
        message = count.to_bytes(4, "big") + b" offline payload"

        der = hsm.sign(label, message)

        public.verify(der, message, ec.ECDSA(hashes.SHA256()))
        _assert_minimal_der(der)
        r, s = decode_dss_signature(der)
        seen["r"] |= _shapes(r)
        seen["s"] |= _shapes(s)
        count += 1

    assert count >= SIGNATURES


def test_signature_covers_sha256_of_the_message(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair
    message = b"A" * 1000

    der = hsm.sign(label, message)

    # Verifying the prehashed digest proves the hash is SHA-256 of the bytes.
    digest = hashlib.sha256(message).digest()
    public.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    with pytest.raises(InvalidSignature):
        public.verify(der, message + b"!", ec.ECDSA(hashes.SHA256()))


def test_empty_message_can_be_signed(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair

    der = hsm.sign(label, b"")

    public.verify(der, b"", ec.ECDSA(hashes.SHA256()))


def test_message_must_be_bytes(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, _ = keypair

    with pytest.raises(TypeError, match="message must be bytes"):
        hsm.sign(label, "text")  # type: ignore[arg-type]


def test_token_reports_its_sign_mechanism(hsm: HSM) -> None:
    info = hsm.token_info()

    # SoftHSM 2.6 offers CKM_ECDSA only, so the adapter hashes on the host;
    # the CKM_ECDSA_SHA256 branch is exercised only by tokens that offer it.
    if "CKM_ECDSA_SHA256" in info.mechanisms:
        assert info.sign_mechanism == "CKM_ECDSA_SHA256"
    else:
        assert info.sign_mechanism == "CKM_ECDSA (SHA-256 on the host)"
