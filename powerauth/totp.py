"""RFC 6238 TOTP for the proximity check (SPEC 3.7).

Time is an argument: the caller reads the clock.
"""

from __future__ import annotations

import hmac

from powerauth.errors import InvalidParameterError

__all__ = ["PROXIMITY_DIGITS", "totp", "totp_candidates"]

PROXIMITY_DIGITS = 8
"""Upstream's default proximity OTP length (otp.length)."""

_HASHES = ("sha1", "sha256", "sha512")


def totp(
    seed: bytes,
    unix_time: int,
    step: int = 30,
    digits: int = PROXIMITY_DIGITS,
    *,
    hash_name: str = "sha256",
) -> str:
    """The zero-padded TOTP of ``seed`` at ``unix_time`` (seconds since 1970).

    The proximity check uses HMAC-SHA256 and 8 digits; SHA-1 and SHA-512 are
    accepted so the whole RFC 6238 table can be checked.
    """
    if not seed:
        raise InvalidParameterError("TOTP seed must not be empty")
    if unix_time < 0:
        raise InvalidParameterError("TOTP time must not be negative")
    if step < 1:
        raise InvalidParameterError("TOTP step must be at least one second")
    if not 4 <= digits <= 10:
        raise InvalidParameterError("TOTP digits must be 4..10")
    if hash_name not in _HASHES:
        raise InvalidParameterError(f"TOTP hash must be one of {', '.join(_HASHES)}")

    # RFC 4226 section 5.3: dynamic truncation from the low nibble.
    counter = (unix_time // step).to_bytes(8, "big")
    digest = hmac.digest(seed, counter, hash_name)
    offset = digest[-1] & 0x0F
    number = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def totp_candidates(
    seed: bytes,
    unix_time: int,
    step: int = 30,
    step_count: int = 1,
    digits: int = PROXIMITY_DIGITS,
) -> list[str]:
    """The TOTPs the server accepts: now, then ``step_count`` steps back.

    SPEC 3.7: candidates are for ``now - i*step``, i = 0..step_count; a
    ``step_count`` of 0 means the current step only.
    """
    if step_count < 0:
        raise InvalidParameterError("TOTP step count must not be negative")
    if unix_time - step_count * step < 0:
        raise InvalidParameterError("TOTP window reaches before 1970")
    return [
        totp(seed, unix_time - i * step, step, digits) for i in range(step_count + 1)
    ]
