"""Errors raised by the protocol core.

Every error derives from :class:`ProtocolError`, itself a ``ValueError``: the
core only ever rejects values, it has no I/O to fail. Messages name the rule
that was broken and never carry a key, a PIN or a computed or typed code.
"""

from __future__ import annotations

__all__ = [
    "ActivationCodeError",
    "EscapingError",
    "InvalidKeyError",
    "InvalidParameterError",
    "InvalidServerSignatureError",
    "MalformedCodeError",
    "MalformedPayloadError",
    "OperationDataError",
    "ProtocolError",
    "SignatureMismatchError",
    "StatusBlobError",
]


class ProtocolError(ValueError):
    """Base class of every error raised by :mod:`powerauth`."""


class InvalidParameterError(ProtocolError):
    """A caller passed an argument outside its allowed range.

    Examples: a component length outside 4..8, a counter that is not 16 bytes,
    a lookahead outside 1..64. These are programming or configuration errors,
    not bad user input.
    """


class MalformedPayloadError(ProtocolError):
    """The offline QR payload, or the data it is built from, breaks SPEC 3."""


class OperationDataError(MalformedPayloadError):
    """The operation data line (SPEC 4) is malformed or breaks a limit."""


class EscapingError(MalformedPayloadError):
    """Text cannot be escaped or unescaped (control characters, SPEC 3.6)."""


class MalformedCodeError(ProtocolError):
    """A typed offline code has the wrong shape (this is not a mismatch)."""


class SignatureMismatchError(ProtocolError):
    """A well-formed offline code matches no candidate in the window."""


class InvalidServerSignatureError(ProtocolError):
    """The ECDSA signature of a payload or activation code does not verify."""


class ActivationCodeError(ProtocolError):
    """An activation code is malformed or its CRC-16 does not match."""


class InvalidKeyError(ProtocolError):
    """A public or private key is malformed, off the curve or out of range."""


class StatusBlobError(ProtocolError):
    """An activation status blob cannot be decrypted or parsed (SPEC 8.6)."""
