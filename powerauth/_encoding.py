"""Small strict encoders shared by the modules (private)."""

from __future__ import annotations

import base64
import binascii
import re

from powerauth.errors import InvalidParameterError

# Standard alphabet with canonical padding: a length multiple of four and at
# most two '=' at the end. Python's decoder alone tolerates some sloppy forms.
_B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def b64encode(data: bytes) -> str:
    """Standard Base64 with padding (SPEC 1.2)."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str) -> bytes | None:
    """Decode canonical standard Base64, or return None when it is not."""
    if not _B64_RE.fullmatch(text):
        return None
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Refuse non-zero pad bits, so each value has exactly one text form.
    if base64.b64encode(decoded).decode("ascii") != text:
        return None
    return decoded


def require_length(name: str, value: bytes, length: int) -> None:
    """Raise :class:`InvalidParameterError` unless ``value`` has ``length`` bytes."""
    if not isinstance(value, bytes | bytearray):
        raise InvalidParameterError(f"{name} must be bytes")
    if len(value) != length:
        raise InvalidParameterError(f"{name} must be {length} bytes, got {len(value)}")
