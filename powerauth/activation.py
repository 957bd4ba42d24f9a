"""Activation code and public key fingerprint (SPEC 8.2, 8.3).

Randomness is an argument: the caller draws the ten bytes of a new code.
"""

from __future__ import annotations

import base64
import hashlib
import re

from powerauth._encoding import b64decode_strict, b64encode
from powerauth.errors import ActivationCodeError
from powerauth.keys import validate_public_key

__all__ = [
    "ACTIVATION_CODE_RANDOM_BYTES",
    "activation_qr_text",
    "crc16_arc",
    "generate_activation_code",
    "parse_activation_qr_text",
    "public_key_fingerprint",
    "validate_activation_code",
]

ACTIVATION_CODE_RANDOM_BYTES = 10

_CODE_SHAPE = re.compile(r"[A-Z2-7]{5}(?:-[A-Z2-7]{5}){3}", re.ASCII)


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC: reflected polynomial 0xA001, initial 0, no final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def generate_activation_code(random10: bytes) -> str:
    """Build ``XXXXX-XXXXX-XXXXX-XXXXX`` from ten random bytes (SPEC 8.2)."""
    if len(random10) != ACTIVATION_CODE_RANDOM_BYTES:
        raise ActivationCodeError(
            f"activation code needs {ACTIVATION_CODE_RANDOM_BYTES} random bytes"
        )
    payload = random10 + crc16_arc(random10).to_bytes(2, "big")
    # 12 bytes give 20 Base32 characters and four '=' of padding.
    text = base64.b32encode(payload).decode("ascii").rstrip("=")
    return "-".join(text[i : i + 5] for i in range(0, 20, 5))


def validate_activation_code(code: str) -> str:
    """Check shape, alphabet, canonical Base32 and CRC; return the code.

    :raises ActivationCodeError: naming the broken rule.
    """
    if len(code) != 23:
        raise ActivationCodeError("activation code must be 23 characters")
    if not _CODE_SHAPE.fullmatch(code):
        raise ActivationCodeError(
            "activation code must be four groups of five Base32 characters "
            "(A-Z, 2-7) joined by '-'"
        )
    text = code.replace("-", "")
    payload = base64.b32decode(text + "====")
    # The last character carries four unused bits; they must be zero so each
    # code has one spelling.
    if base64.b32encode(payload).decode("ascii").rstrip("=") != text:
        raise ActivationCodeError("activation code is not canonical Base32")
    if crc16_arc(payload[:10]).to_bytes(2, "big") != payload[10:]:
        raise ActivationCodeError("activation code checksum does not match")
    return code


def activation_qr_text(code: str, signature_der: bytes) -> str:
    """The activation QR text ``CODE#Base64(signature)`` (SPEC 8.2)."""
    validate_activation_code(code)
    return f"{code}#{b64encode(signature_der)}"


def parse_activation_qr_text(text: str) -> tuple[str, bytes]:
    """Split an activation QR text into the code and the DER signature."""
    code, separator, signature_text = text.partition("#")
    if not separator:
        raise ActivationCodeError("activation QR text must be CODE#SIGNATURE")
    validate_activation_code(code)
    signature = b64decode_strict(signature_text)
    if not signature:
        raise ActivationCodeError("activation signature must be Base64")
    return code, signature


def _minimal_x(public_key: bytes) -> bytes:
    x = int.from_bytes(validate_public_key(public_key)[1:33], "big")
    # SPEC 8.3: minimal unsigned big-endian, so a leading zero byte is dropped.
    return x.to_bytes((x.bit_length() + 7) // 8, "big")


def public_key_fingerprint(
    device_public_key: bytes, activation_id: str, server_public_key: bytes
) -> str:
    """The eight-digit activation fingerprint for visual comparison (SPEC 8.3)."""
    digest = hashlib.sha256(
        _minimal_x(device_public_key)
        + activation_id.encode("utf-8")
        + _minimal_x(server_public_key)
    ).digest()
    number = int.from_bytes(digest[-4:], "big") & 0x7FFFFFFF
    return str(number % 10**8).zfill(8)
