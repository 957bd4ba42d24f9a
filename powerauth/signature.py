"""Offline signature codes: computation and server-side verification (SPEC 5, 6).

The functions take keys, CTR_DATA and text and return digits; they never read
the clock or a database. The caller owns the counter state: on a match it
stores :attr:`OfflineMatch.next_ctr_data`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from powerauth._encoding import b64decode_strict, b64encode, require_length
from powerauth.crypto import FactorKeys, advance_counter, next_counter
from powerauth.errors import (
    InvalidParameterError,
    MalformedCodeError,
    MalformedPayloadError,
    SignatureMismatchError,
)

__all__ = [
    "DEFAULT_COMPONENT_LENGTH",
    "MAX_LOOKAHEAD",
    "OFFLINE_APPLICATION_SECRET",
    "OFFLINE_URI_ID",
    "BaseString",
    "OfflineMatch",
    "SignatureType",
    "base_string_with_totp",
    "compute_offline_code",
    "decimal_signature",
    "http_base_string",
    "keys_for_type",
    "normalize_code",
    "offline_body",
    "offline_hmac_input",
    "parse_base_string",
    "signature_base_string",
    "signature_components",
    "validate_nonce",
    "verify_offline_code",
]

OFFLINE_URI_ID = "/operation/authorize/offline"
"""Default uriId of offline signatures (SPEC 5.2); client and server must agree."""

# A fixed public constant of the protocol, not a secret.
OFFLINE_APPLICATION_SECRET = "offline"  # noqa: S105
"""Takes the place of APPLICATION_SECRET in the offline HMAC input (SPEC 5.2)."""

DEFAULT_COMPONENT_LENGTH = 8
MIN_COMPONENT_LENGTH = 4
MAX_COMPONENT_LENGTH = 8
MAX_LOOKAHEAD = 64
"""Upper bound of the server's signatureValidationLookahead (SPEC 6.2)."""

NONCE_LENGTH = 24
"""A nonce is Base64 of 16 bytes: always 24 characters (SPEC 3.9)."""


class SignatureType(StrEnum):
    """Factor combinations; the values are the upstream enum names (SPEC 5.3)."""

    POSSESSION = "POSSESSION"
    KNOWLEDGE = "KNOWLEDGE"
    BIOMETRY = "BIOMETRY"
    POSSESSION_KNOWLEDGE = "POSSESSION_KNOWLEDGE"
    POSSESSION_BIOMETRY = "POSSESSION_BIOMETRY"
    POSSESSION_KNOWLEDGE_BIOMETRY = "POSSESSION_KNOWLEDGE_BIOMETRY"

    @classmethod
    def from_name(cls, name: str) -> SignatureType:
        """Look a type up by name, ignoring case (vectors use lower case)."""
        try:
            return cls(name.upper())
        except ValueError:
            raise InvalidParameterError(f"unknown signature type {name!r}") from None


_FACTORS: dict[SignatureType, tuple[str, ...]] = {
    SignatureType.POSSESSION: ("possession",),
    SignatureType.KNOWLEDGE: ("knowledge",),
    SignatureType.BIOMETRY: ("biometry",),
    SignatureType.POSSESSION_KNOWLEDGE: ("possession", "knowledge"),
    SignatureType.POSSESSION_BIOMETRY: ("possession", "biometry"),
    SignatureType.POSSESSION_KNOWLEDGE_BIOMETRY: (
        "possession",
        "knowledge",
        "biometry",
    ),
}


def keys_for_type(keys: FactorKeys, signature_type: SignatureType) -> tuple[bytes, ...]:
    """The ordered factor keys of a signature type (SPEC 5.3)."""
    return tuple(getattr(keys, name) for name in _FACTORS[signature_type])


def _check_component_length(component_length: int) -> None:
    if not MIN_COMPONENT_LENGTH <= component_length <= MAX_COMPONENT_LENGTH:
        raise InvalidParameterError(
            f"component length must be {MIN_COMPONENT_LENGTH}.."
            f"{MAX_COMPONENT_LENGTH}, got {component_length}"
        )


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def signature_components(
    keys: Sequence[bytes], ctr_data: bytes, data: bytes
) -> list[bytes]:
    """The 32-byte signature component of each factor key, in order.

    SPEC 5.4: component i is keyed by a chain that starts from ``keys[i]`` and
    folds in ``keys[1..i]``; the possession key never enters later components.
    """
    if not 1 <= len(keys) <= 3:
        raise InvalidParameterError("between one and three factor keys are needed")
    for key in keys:
        require_length("factor key", key, 16)
    require_length("CTR_DATA", ctr_data, 16)

    components = []
    for i, key in enumerate(keys):
        chained = _hmac(key, ctr_data)
        for inner in keys[1 : i + 1]:
            chained = _hmac(_hmac(inner, ctr_data), chained)
        components.append(_hmac(chained, data))
    return components


def _decimal_component(component: bytes, component_length: int) -> str:
    # SPEC 5.5 and 11: the LAST four bytes, top bit cleared.
    number = int.from_bytes(component[-4:], "big") & 0x7FFFFFFF
    return str(number % 10**component_length).zfill(component_length)


def decimal_signature(
    keys: Sequence[bytes],
    ctr_data: bytes,
    data: bytes,
    component_length: int = DEFAULT_COMPONENT_LENGTH,
) -> str:
    """Decimal signature: one ``component_length``-digit group per key, dashed.

    :param data: the exact HMAC input (for offline codes,
        :func:`offline_hmac_input` of the base string).
    """
    _check_component_length(component_length)
    components = signature_components(keys, ctr_data, data)
    return "-".join(_decimal_component(c, component_length) for c in components)


def validate_nonce(nonce_b64: str) -> bytes:
    """Check that a nonce is 24 characters of Base64 of 16 bytes; return the bytes."""
    if len(nonce_b64) != NONCE_LENGTH:
        raise MalformedPayloadError(
            f"nonce must be {NONCE_LENGTH} characters, got {len(nonce_b64)}"
        )
    nonce = b64decode_strict(nonce_b64)
    if nonce is None or len(nonce) != 16:
        raise MalformedPayloadError("nonce must be Base64 of 16 bytes")
    return nonce


def _check_totp(totp: str) -> None:
    if not totp or not totp.isascii() or not totp.isdigit():
        raise MalformedPayloadError("TOTP must be one or more decimal digits")


def offline_body(
    operation_id: str, operation_data: str, totp: str | None = None
) -> bytes:
    """The signed body ``operationId&operationData[&totp]`` in UTF-8 (SPEC 5.1).

    ``operation_data`` is the raw line 4 of the QR, still escaped.
    """
    if not operation_id:
        raise MalformedPayloadError("operation id must not be empty")
    parts = [operation_id, operation_data]
    if totp is not None:
        _check_totp(totp)
        parts.append(totp)
    return "&".join(parts).encode("utf-8")


def http_base_string(
    method: str | None, uri_id: str | None, nonce_b64: str | None, body: bytes | None
) -> str:
    """The general normalized data ``METHOD&b64(uriId)&nonce&b64(body)``.

    Follows upstream's null handling (SPEC 5.2): a missing method is ``GET``,
    a missing or empty part is the empty string.
    """
    method_text = method.upper() if method else "GET"
    uri_text = b64encode(uri_id.encode("utf-8")) if uri_id else ""
    body_text = b64encode(body) if body else ""
    return "&".join((method_text, uri_text, nonce_b64 or "", body_text))


def signature_base_string(
    nonce_b64: str, body: bytes, uri_id: str = OFFLINE_URI_ID
) -> str:
    """The offline base string ``POST&b64(uriId)&nonce&b64(body)`` (SPEC 5.2).

    This is what the server's verify call receives as ``data``, without the
    ``&offline`` suffix.
    """
    validate_nonce(nonce_b64)
    if not uri_id:
        raise InvalidParameterError("uriId must not be empty")
    return http_base_string("POST", uri_id, nonce_b64, body)


@dataclass(frozen=True)
class BaseString:
    """The decoded parts of an offline signature base string (SPEC 5.2)."""

    uri_id: bytes
    nonce: bytes
    body: bytes


def parse_base_string(text: str) -> BaseString:
    """Check that ``text`` is ``POST&b64(uriId)&nonce&b64(body)`` and decode it.

    The form :func:`signature_base_string` makes, without ``&offline``: the
    method ``POST``, a non-empty canonical Base64 uriId, a nonce of 16 bytes
    (SPEC 3.9) and a canonical Base64 body, empty for an empty body.

    :raises MalformedPayloadError: naming the part that is wrong.
    """
    parts = text.split("&")
    if len(parts) != 4:
        raise MalformedPayloadError(
            f"base string must have four '&'-separated parts, got {len(parts)}"
        )
    method, uri_b64, nonce_b64, body_b64 = parts
    if method != "POST":
        raise MalformedPayloadError("base string must start with POST")
    uri_id = b64decode_strict(uri_b64) if uri_b64 else None
    if not uri_id:
        raise MalformedPayloadError(
            "base string uriId must be non-empty canonical Base64"
        )
    nonce = validate_nonce(nonce_b64)
    body = b64decode_strict(body_b64)
    if body is None:
        raise MalformedPayloadError(
            "base string body must be canonical Base64 (empty for no body)"
        )
    return BaseString(uri_id, nonce, body)


def offline_hmac_input(base_string: str) -> bytes:
    """The HMAC input of an offline code: ``utf8(base_string + "&offline")``."""
    return f"{base_string}&{OFFLINE_APPLICATION_SECRET}".encode()


def base_string_with_totp(base_string: str, totp: str) -> str:
    """Append ``&totp`` to the body inside a base string (SPEC 3.7, verify step 2).

    The server receives the base string of the body without the TOTP and
    rebuilds one candidate per TOTP value this way.
    """
    _check_totp(totp)
    parts = base_string.split("&")
    if len(parts) != 4:
        raise MalformedPayloadError("base string must have four '&'-separated parts")
    body = b64decode_strict(parts[3])
    if body is None:
        raise MalformedPayloadError("base string body must be canonical Base64")
    parts[3] = b64encode(body + b"&" + totp.encode("ascii"))
    return "&".join(parts)


def compute_offline_code(
    keys: FactorKeys,
    ctr_data: bytes,
    base_string: str,
    signature_type: SignatureType,
    component_length: int = DEFAULT_COMPONENT_LENGTH,
) -> str:
    """The code a mobile token shows, for example ``12345678-87654321``."""
    return decimal_signature(
        keys_for_type(keys, signature_type),
        ctr_data,
        offline_hmac_input(base_string),
        component_length,
    )


def normalize_code(text: str, component_length: int = DEFAULT_COMPONENT_LENGTH) -> str:
    """Turn a typed two-component code into the canonical ``DDDD-DDDD`` form.

    Accepted, for component length L (2L digits in total), after stripping
    surrounding spaces: the digits alone; two L-digit groups; or groups of
    four digits from the left (the last one may be shorter). Groups are joined
    by one separator, a space or a dash, the same one throughout. Only ASCII
    digits count. Anything else raises :class:`MalformedCodeError`.
    """
    _check_component_length(component_length)
    stripped = text.strip(" ")
    total = 2 * component_length

    digits = stripped.replace("-", "").replace(" ", "")
    if len(digits) != total or not re.fullmatch(r"[0-9]+", digits, re.ASCII):
        raise MalformedCodeError(f"code must have {total} decimal digits")

    separators = {c for c in stripped if c in "- "}
    if len(separators) > 1:
        raise MalformedCodeError("code must use one kind of separator")
    if separators:
        groups = stripped.split(separators.pop())
        halves = [digits[:component_length], digits[component_length:]]
        fours = [digits[i : i + 4] for i in range(0, total, 4)]
        if groups not in (halves, fours):
            raise MalformedCodeError(
                f"code groups must be two of {component_length} digits "
                "or groups of four digits"
            )
    return f"{digits[:component_length]}-{digits[component_length:]}"


class _WindowStep:
    """The signature components of one counter value, for several types.

    Computes exactly what :func:`signature_components` computes, but each
    ``HMAC(key, CTR_DATA)`` and each component only once per counter value:
    the chain of SPEC 5.4 needs ``HMAC(knowledge, CTR_DATA)`` twice for a
    two-factor code, and the possession component is the same for every type.
    Values are cached by the bytes they are computed from, so a cached value
    is always the value the plain computation would give.
    """

    def __init__(self, ctr_data: bytes, data: bytes) -> None:
        self._ctr_data = ctr_data
        self._data = data
        self._keyed_ctr: dict[bytes, bytes] = {}
        self._components: dict[tuple[bytes, ...], bytes] = {}

    def _key_ctr(self, key: bytes) -> bytes:
        value = self._keyed_ctr.get(key)
        if value is None:
            value = self._keyed_ctr[key] = _hmac(key, self._ctr_data)
        return value

    def components(self, keys: Sequence[bytes]) -> list[bytes]:
        result = []
        for i in range(len(keys)):
            # Component i depends on keys[0..i] at most (SPEC 5.4).
            prefix = tuple(keys[: i + 1])
            component = self._components.get(prefix)
            if component is None:
                chained = self._key_ctr(keys[i])
                for inner in keys[1 : i + 1]:
                    chained = _hmac(self._key_ctr(inner), chained)
                component = self._components[prefix] = _hmac(chained, self._data)
            result.append(component)
        return result


@dataclass(frozen=True)
class OfflineMatch:
    """Where a code matched: its type and the counter offset in the window.

    ``next_ctr_data`` is CTR_DATA one step past the matched value: what the
    server stores on success (SPEC 6.2). ``totp`` is the proximity TOTP that
    matched, when candidates were given.
    """

    signature_type: SignatureType
    offset: int
    next_ctr_data: bytes = field(repr=False)
    totp: str | None = field(default=None, repr=False)


def verify_offline_code(
    keys: FactorKeys,
    ctr_data: bytes,
    base_string: str,
    code: str,
    allowed_types: Sequence[SignatureType],
    lookahead: int,
    component_length: int = DEFAULT_COMPONENT_LENGTH,
    *,
    totps: Sequence[str] = (),
) -> OfflineMatch:
    """Find a typed code in the lookahead window or raise.

    The window is ``[ctr, ctr + lookahead)`` and types are tried in the given
    order at each counter value (SPEC 6.2). Every candidate in the window is
    computed and compared with :func:`hmac.compare_digest`, with no early
    exit, so the time taken does not depend on where (or whether) it matched.

    :param base_string: the base string of the body *without* a TOTP.
    :param totps: proximity-check candidates, newest first (SPEC 3.7). When
        given, the code must match the body with one of them appended, and the
        first TOTP that matches wins.
    :raises MalformedCodeError: the code has the wrong shape.
    :raises SignatureMismatchError: no candidate matches.
    """
    _check_component_length(component_length)
    if not 1 <= lookahead <= MAX_LOOKAHEAD:
        raise InvalidParameterError(f"lookahead must be 1..{MAX_LOOKAHEAD}")
    if not allowed_types:
        raise InvalidParameterError("at least one signature type must be allowed")
    require_length("CTR_DATA", ctr_data, 16)
    typed = normalize_code(code, component_length).encode("ascii")

    candidates: list[tuple[str | None, bytes]]
    if totps:
        candidates = [
            (totp, offline_hmac_input(base_string_with_totp(base_string, totp)))
            for totp in totps
        ]
    else:
        candidates = [(None, offline_hmac_input(base_string))]

    # Checked once here rather than for every candidate of the window.
    type_keys = [(t, keys_for_type(keys, t)) for t in allowed_types]
    for _, factor_keys in type_keys:
        for key in factor_keys:
            require_length("factor key", key, 16)

    match: tuple[str | None, SignatureType, int] | None = None
    for totp, data in candidates:
        ctr = ctr_data
        for offset in range(lookahead):
            window = _WindowStep(ctr, data)
            for signature_type, factor_keys in type_keys:
                candidate = "-".join(
                    _decimal_component(component, component_length)
                    for component in window.components(factor_keys)
                )
                equal = hmac.compare_digest(candidate.encode("ascii"), typed)
                if equal and match is None:
                    match = (totp, signature_type, offset)
            ctr = next_counter(ctr)

    if match is None:
        raise SignatureMismatchError("code matches no signature in the window")
    totp, signature_type, offset = match
    return OfflineMatch(
        signature_type=signature_type,
        offset=offset,
        next_ctr_data=advance_counter(ctr_data, offset + 1),
        totp=totp,
    )
