"""P-256 key encodings and software EC helpers (SPEC 1.2, 10.12).

Server private keys live in the token; these helpers serve the vectors, the
mobile-token simulator (a software device) and key import. Private keys travel
as Java ``BigInteger.toByteArray()``: signed big-endian, minimal length.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from powerauth.errors import InvalidKeyError, InvalidServerSignatureError

__all__ = [
    "P256_ORDER",
    "ecdh_shared_x",
    "private_key_from_java_bytes",
    "private_key_to_java_bytes",
    "public_key_from_private",
    "sign_ecdsa_der",
    "validate_public_key",
    "verify_ecdsa_der",
]

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
"""The order n of the P-256 base point; a private scalar is in 1..n-1."""

_CURVE = ec.SECP256R1()


def _check_scalar(scalar: int) -> None:
    if not 1 <= scalar < P256_ORDER:
        raise InvalidKeyError("private key must be in 1..n-1 of P-256")


def private_key_from_java_bytes(data: bytes) -> int:
    """Read a private scalar from Java signed big-endian bytes (33 at most)."""
    if not 1 <= len(data) <= 33:
        raise InvalidKeyError(f"private key must be 1..33 bytes, got {len(data)}")
    scalar = int.from_bytes(data, "big", signed=True)
    _check_scalar(scalar)
    return scalar


def private_key_to_java_bytes(scalar: int) -> bytes:
    """Write a private scalar as Java does: minimal, with a sign byte if needed."""
    _check_scalar(scalar)
    return scalar.to_bytes(scalar.bit_length() // 8 + 1, "big", signed=True)


def _load_public(point: bytes) -> ec.EllipticCurvePublicKey:
    if len(point) not in (33, 65):
        raise InvalidKeyError(
            f"public key must be a 33- or 65-byte SEC1 point, got {len(point)}"
        )
    try:
        # cryptography checks that the point is on the curve.
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, point)
    except ValueError:
        raise InvalidKeyError("public key is not a valid P-256 point") from None


def _uncompressed(key: ec.EllipticCurvePublicKey) -> bytes:
    numbers = key.public_numbers()
    return b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def validate_public_key(point: bytes) -> bytes:
    """Validate a P-256 point (compressed or not) and return it uncompressed."""
    return _uncompressed(_load_public(point))


def _private_key(scalar: int) -> ec.EllipticCurvePrivateKey:
    _check_scalar(scalar)
    return ec.derive_private_key(scalar, _CURVE)


def public_key_from_private(scalar: int) -> bytes:
    """The 65-byte uncompressed public point of a private scalar."""
    return _uncompressed(_private_key(scalar).public_key())


def ecdh_shared_x(scalar: int, peer_public_key: bytes) -> bytes:
    """Software ECDH: the 32-byte X coordinate of ``scalar * peer`` (SPEC 1.3)."""
    peer = _load_public(peer_public_key)
    return _private_key(scalar).exchange(ec.ECDH(), peer)


def sign_ecdsa_der(scalar: int, message: bytes) -> bytes:
    """Software ECDSA P-256 SHA-256, DER output (for simulators and tests)."""
    return _private_key(scalar).sign(message, ec.ECDSA(hashes.SHA256()))


def verify_ecdsa_der(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Verify an ECDSA P-256 SHA-256 DER signature, or raise.

    :raises InvalidKeyError: the public key is not a valid point.
    :raises InvalidServerSignatureError: the signature does not verify.
    """
    key = _load_public(public_key)
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise InvalidServerSignatureError("ECDSA signature does not verify") from None
