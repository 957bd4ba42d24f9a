"""Strict Base64 for the API's binary fields (SPEC 1.2: standard, padded)."""

from __future__ import annotations

import base64
import binascii
import re

from webapp.services.errors import InvalidRequestError

_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_b64(field: str, text: str, *, length: int | None = None) -> bytes:
    """Decode canonical padded Base64 of field ``field``.

    :raises InvalidRequestError: naming the field, when the text is not
        canonical Base64 or, with ``length``, does not decode to that many bytes.
    """
    if not _B64.fullmatch(text):
        raise InvalidRequestError(f"{field} must be standard padded Base64")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError(f"{field} must be standard padded Base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise InvalidRequestError(f"{field} must be canonical Base64")
    if length is not None and len(data) != length:
        raise InvalidRequestError(
            f"{field} must be Base64 of {length} bytes, got {len(data)}"
        )
    return data
