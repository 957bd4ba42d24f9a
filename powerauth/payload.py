"""The offline QR payload, ``offlineData`` (SPEC 3).

Lines are separated by one LF, with no trailing newline::

    OPERATION_ID \\n TITLE \\n MESSAGE \\n OPERATION_DATA \\n FLAGS
    [\\n TOTP [\\n reserved ...]] \\n NONCE \\n {indicator}{Base64 DER signature}

The ECDSA signature covers the UTF-8 bytes up to and including the indicator
character (SPEC 3.3). This module builds the bytes to sign and parses a
payload; signing and verifying belong to the caller's keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from powerauth._encoding import b64decode_strict, b64encode
from powerauth.errors import MalformedPayloadError
from powerauth.escaping import decode_text, encode_text, find_control_character
from powerauth.keys import verify_ecdsa_der
from powerauth.operation_data import OperationData, Template, parse_operation_data
from powerauth.signature import (
    OFFLINE_URI_ID,
    offline_body,
    signature_base_string,
    validate_nonce,
)

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_SIGNATURE_BYTES",
    "MIN_SIGNATURE_BYTES",
    "Flags",
    "KeyIndicator",
    "OfflinePayload",
    "PayloadData",
    "PayloadDraft",
    "build_offline_payload",
    "build_payload_data",
    "parse_offline_payload",
    "parse_payload_data",
]

MIN_SIGNATURE_BYTES = 64
MAX_SIGNATURE_BYTES = 255
"""The decoded signature length the mobile parsers accept (SPEC 3.4)."""

MAX_PAYLOAD_BYTES = 2953
"""Byte-mode capacity of the largest QR symbol (version 40, level L)."""

MAX_DATA_BYTES = 2048
"""Limit on the ``data`` lines a server accepts for a QR.

With the nonce, a TOTP and a 72-byte DER signature added, the payload stays
under 2331 bytes, the byte capacity of a version 40 QR at error level M.
"""

_MIN_PAYLOAD_LINES = 7
_DATA_LINES = 5
_TOTP_INDEX = 5


class KeyIndicator(StrEnum):
    """Which server key signed the payload (SPEC 3.4)."""

    MASTER = "0"
    PERSONALIZED = "1"


@dataclass(frozen=True)
class Flags:
    """The flags of line 5 (SPEC 3.5); unknown characters are ignored."""

    biometry: bool = False
    flip_buttons: bool = False
    fraud_warning: bool = False
    block_when_on_call: bool = False

    @classmethod
    def from_text(cls, text: str) -> Flags:
        """Read the flags line; order does not matter."""
        return cls(
            biometry="B" in text,
            flip_buttons="X" in text,
            fraud_warning="F" in text,
            block_when_on_call="C" in text,
        )

    def to_text(self) -> str:
        """The flags line, in the order B, X, F, C."""
        chosen = (
            ("B", self.biometry),
            ("X", self.flip_buttons),
            ("F", self.fraud_warning),
            ("C", self.block_when_on_call),
        )
        return "".join(char for char, on in chosen if on)


def _check_text(text: str, what: str, limit: int) -> bytes:
    """Refuse unencodable text, control characters and oversize input."""
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedPayloadError(f"{what} is not encodable as UTF-8") from None
    if len(encoded) > limit:
        raise MalformedPayloadError(f"{what} is longer than {limit} bytes")
    index = find_control_character(text, allowed="\n")
    if index is not None:
        code = ord(text[index])
        raise MalformedPayloadError(
            f"{what} contains control character U+{code:04X} at index {index}"
        )
    return encoded


@dataclass(frozen=True)
class _DataLines:
    operation_id: str
    title: str
    message: str
    operation_data_text: str
    operation_data: OperationData
    flags: Flags
    flags_text: str


def _parse_data_lines(lines: list[str]) -> _DataLines:
    operation_id, title, message, operation_data_text, flags_text = lines[:5]
    if not operation_id:
        raise MalformedPayloadError("operation id (line 1) must not be empty")
    return _DataLines(
        operation_id=operation_id,
        title=decode_text(title),
        message=decode_text(message),
        operation_data_text=operation_data_text,
        operation_data=parse_operation_data(operation_data_text),
        flags=Flags.from_text(flags_text),
        flags_text=flags_text,
    )


# Held by parse_payload_data only: PayloadData's constructor refuses any
# other caller, so a PayloadData is always the result of the full checks.
_PARSED = object()


class PayloadData:
    """A validated ``data`` input: the lines that precede the nonce.

    Only :func:`parse_payload_data` makes one (the constructor takes a private
    token) and its attributes are read-only. It is deliberately not a
    dataclass: ``dataclasses.replace`` would copy the token into an object
    whose fields skipped the checks, and :func:`build_offline_payload` trusts
    a PayloadData without parsing its text again.
    """

    __slots__ = ("_extra_lines", "_lines", "_text")

    _text: str
    _lines: _DataLines
    _extra_lines: tuple[str, ...]

    def __init__(
        self,
        token: object,
        text: str,
        lines: _DataLines,
        extra_lines: tuple[str, ...],
    ) -> None:
        if token is not _PARSED:
            raise TypeError("a PayloadData is made by parse_payload_data only")
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "_lines", lines)
        object.__setattr__(self, "_extra_lines", extra_lines)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PayloadData is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("PayloadData is read-only")

    def __reduce__(self) -> tuple[object, tuple[str]]:
        # Copies and pickles go through the checks again.
        return (parse_payload_data, (self._text,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PayloadData):
            return NotImplemented
        return self._text == other._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __repr__(self) -> str:
        return f"PayloadData(operation_id={self.operation_id!r})"

    @property
    def text(self) -> str:
        """The ``data`` text as given (lines joined by LF)."""
        return self._text

    @property
    def operation_id(self) -> str:
        return self._lines.operation_id

    @property
    def title(self) -> str:
        """Line 2, unescaped (SPEC 3.6)."""
        return self._lines.title

    @property
    def message(self) -> str:
        """Line 3, unescaped (SPEC 3.6)."""
        return self._lines.message

    @property
    def operation_data_text(self) -> str:
        """Line 4 as given, still escaped."""
        return self._lines.operation_data_text

    @property
    def operation_data(self) -> OperationData:
        return self._lines.operation_data

    @property
    def flags(self) -> Flags:
        return self._lines.flags

    @property
    def flags_text(self) -> str:
        return self._lines.flags_text

    @property
    def extra_lines(self) -> tuple[str, ...]:
        """Lines after the flags, reserved for future attributes."""
        return self._extra_lines


def parse_payload_data(data: str) -> PayloadData:
    """Validate the ``data`` a server receives to build a QR.

    ``data`` is operation id, title, message, operation data and flags, one
    per line, optionally followed by further lines reserved for future
    attributes. Title and message must be escaped (SPEC 3.6); the generic
    template needs both, because the app has no default text for it (SPEC 4).

    :raises MalformedPayloadError: (or a subclass) naming the broken rule.
    """
    _check_text(data, "data", MAX_DATA_BYTES)
    lines = data.split("\n")
    if len(lines) < _DATA_LINES:
        raise MalformedPayloadError(
            f"data must have at least {_DATA_LINES} lines, got {len(lines)}"
        )
    parsed = _parse_data_lines(lines)
    if parsed.operation_data.template_kind is Template.GENERIC and not (
        parsed.title and parsed.message
    ):
        raise MalformedPayloadError("the generic template needs a title and a message")
    return PayloadData(_PARSED, data, parsed, tuple(lines[_DATA_LINES:]))


def build_payload_data(
    operation_id: str,
    title: str,
    message: str,
    operation_data: str,
    flags: Flags | str = "",
) -> str:
    """Join the data lines, escaping title and message, and validate them.

    :param operation_data: the operation data text (line 4), already built.
    """
    flags_text = flags.to_text() if isinstance(flags, Flags) else flags
    data = "\n".join(
        (
            operation_id,
            encode_text(title),
            encode_text(message),
            operation_data,
            flags_text,
        )
    )
    parse_payload_data(data)
    return data


def _check_signature_length(length: int) -> None:
    if not MIN_SIGNATURE_BYTES <= length <= MAX_SIGNATURE_BYTES:
        raise MalformedPayloadError(
            f"signature must be {MIN_SIGNATURE_BYTES}..{MAX_SIGNATURE_BYTES} "
            f"bytes, got {length}"
        )


@dataclass(frozen=True)
class PayloadDraft:
    """A payload waiting for its signature.

    Sign :attr:`signed_bytes` (ECDSA P-256 SHA-256, DER) with the key the
    indicator names, then call :meth:`finish`.
    """

    unsigned_text: str

    @property
    def signed_bytes(self) -> bytes:
        """The exact bytes the ECDSA signature covers (SPEC 3.3)."""
        return self.unsigned_text.encode("utf-8")

    def finish(self, der_signature: bytes) -> str:
        """The final QR text: the draft followed by the Base64 signature.

        A P-256 DER signature is 70 to 72 bytes except with negligible
        probability; one outside 64..255 bytes is refused, as the mobile
        parsers would refuse it.
        """
        _check_signature_length(len(der_signature))
        return self.unsigned_text + b64encode(der_signature)


def build_offline_payload(
    data: str | PayloadData,
    nonce_b64: str,
    indicator: KeyIndicator | str,
    totp: str | None = None,
) -> PayloadDraft:
    """Assemble a payload from validated data, nonce and key indicator.

    The TOTP goes on line 6, right after the flags, because the mobile SDKs
    read line 6 as the TOTP whenever there are more than seven lines
    (SPEC 3.7). For the same reason further data lines are refused without a
    TOTP. (Upstream appends the TOTP after all data lines; the two agree
    whenever the data has exactly five lines, the only form upstream makes.)

    :param data: the data text, or what :func:`parse_payload_data` returned
        for it (then it is not parsed a second time).
    :raises MalformedPayloadError: naming the broken rule.
    """
    parsed = data if isinstance(data, PayloadData) else parse_payload_data(data)
    validate_nonce(nonce_b64)
    try:
        key = KeyIndicator(indicator)
    except ValueError:
        raise MalformedPayloadError("key indicator must be '0' or '1'") from None

    lines = parsed.text.split("\n")
    if totp is not None:
        # offline_body validates the TOTP the same way the signer will use it.
        offline_body(parsed.operation_id, parsed.operation_data_text, totp)
        lines.insert(_TOTP_INDEX, totp)
    elif parsed.extra_lines:
        raise MalformedPayloadError(
            "further data lines need a TOTP line: readers take line 6 as the TOTP"
        )
    return PayloadDraft("\n".join([*lines, nonce_b64, key.value]))


@dataclass(frozen=True)
class OfflinePayload:
    """A parsed and validated offline QR payload."""

    text: str = field(repr=False)
    operation_id: str
    title: str
    message: str
    operation_data_text: str
    operation_data: OperationData
    flags: Flags
    flags_text: str
    totp: str | None
    reserved_lines: tuple[str, ...]
    nonce: str
    indicator: KeyIndicator
    signature: bytes = field(repr=False)
    signed_bytes: bytes = field(repr=False)
    line_count: int

    @property
    def is_newer_format(self) -> bool:
        """More than eight lines: fields beyond the TOTP (SPEC 3.7)."""
        return self.line_count > 8

    def offline_body(self) -> bytes:
        """The body the offline code signs (SPEC 5.1)."""
        return offline_body(self.operation_id, self.operation_data_text, self.totp)

    def base_string(self, uri_id: str = OFFLINE_URI_ID) -> str:
        """The base string of the offline code, including the TOTP if any."""
        return signature_base_string(self.nonce, self.offline_body(), uri_id)

    def verify_signature(self, public_key: bytes) -> None:
        """Verify the ECDSA signature with the key the indicator names.

        :raises InvalidServerSignatureError: the signature does not verify.
        """
        verify_ecdsa_der(public_key, self.signed_bytes, self.signature)


def parse_offline_payload(text: str | bytes) -> OfflinePayload:
    """Parse and validate an offline QR payload (SPEC 3.9).

    :raises MalformedPayloadError: (or a subclass) naming the broken rule.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPayloadError("payload is not valid UTF-8") from None
    encoded = _check_text(text, "payload", MAX_PAYLOAD_BYTES)

    lines = text.split("\n")
    if len(lines) < _MIN_PAYLOAD_LINES:
        raise MalformedPayloadError(
            f"payload must have at least {_MIN_PAYLOAD_LINES} lines, got {len(lines)}"
        )
    parsed = _parse_data_lines(lines)

    totp = None
    reserved: tuple[str, ...] = ()
    if len(lines) > _MIN_PAYLOAD_LINES:
        totp = lines[_TOTP_INDEX]
        if not (totp.isascii() and totp.isdigit()):
            raise MalformedPayloadError("TOTP (line 6) must be decimal digits")
        reserved = tuple(lines[_TOTP_INDEX + 1 : -2])

    nonce = lines[-2]
    validate_nonce(nonce)

    last = lines[-1]
    if not last:
        raise MalformedPayloadError("the last line must hold a key indicator")
    try:
        indicator = KeyIndicator(last[0])
    except ValueError:
        raise MalformedPayloadError("key indicator must be '0' or '1'") from None
    signature_text = last[1:]
    signature = b64decode_strict(signature_text)
    if signature is None:
        raise MalformedPayloadError("signature must be canonical Base64")
    _check_signature_length(len(signature))

    return OfflinePayload(
        text=text,
        operation_id=parsed.operation_id,
        title=parsed.title,
        message=parsed.message,
        operation_data_text=parsed.operation_data_text,
        operation_data=parsed.operation_data,
        flags=parsed.flags,
        flags_text=parsed.flags_text,
        totp=totp,
        reserved_lines=reserved,
        nonce=nonce,
        indicator=indicator,
        signature=signature,
        signed_bytes=encoded[: len(encoded) - len(signature_text)],
        line_count=len(lines),
    )
