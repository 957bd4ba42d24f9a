"""Escaping of QR text (SPEC 3.6) and of operation data text fields (SPEC 4).

Title and message know two escapes, ``\\n`` (newline) and ``\\\\`` (backslash);
operation data text fields also know ``\\*`` (asterisk). Decoding is a single
left-to-right pass, so ``\\\\n`` is a backslash followed by ``n``; the mobile
SDKs' sequential replacement decodes that corner case differently.

Encoders refuse control characters (other than the newline they escape)
instead of dropping them. :func:`normalize_whitespace` is the separate,
lossy clean-up that generators apply first (SPEC 3.6 step 3).
"""

from __future__ import annotations

import re
import unicodedata

from powerauth.errors import EscapingError

__all__ = [
    "decode_field_text",
    "decode_text",
    "encode_field_text",
    "encode_text",
    "find_control_character",
    "normalize_whitespace",
]

_TEXT_ESCAPES = {"n": "\n", "\\": "\\"}
_FIELD_ESCAPES = {"n": "\n", "\\": "\\", "*": "*"}


def find_control_character(text: str, allowed: str = "") -> int | None:
    """Index of the first control character not in ``allowed``, or None.

    Control characters are Unicode category Cc: U+0000..U+001F (the ASCII
    range SPEC 3.6 forbids) plus DEL and U+0080..U+009F, which no display
    text needs either.
    """
    for index, char in enumerate(text):
        if char not in allowed and unicodedata.category(char) == "Cc":
            return index
    return None


def _refuse_controls(text: str, what: str, allowed: str = "") -> None:
    index = find_control_character(text, allowed)
    if index is not None:
        code = ord(text[index])
        raise EscapingError(
            f"{what} contains control character U+{code:04X} at index {index}"
        )


def _encode(text: str, specials: str, what: str) -> str:
    _refuse_controls(text, what, allowed="\n")
    out = []
    for char in text:
        if char == "\n":
            out.append("\\n")
        elif char in specials:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _decode(text: str, escapes: dict[str, str], what: str) -> str:
    _refuse_controls(text, what)
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            # Unknown escapes stay as they are (forward compatibility).
            out.append(escapes.get(following, "\\" + following))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def encode_text(text: str) -> str:
    """Escape a title or message: backslash and newline."""
    return _encode(text, "\\", "text")


def decode_text(text: str) -> str:
    """Unescape a title or message; ``\\*`` and unknown escapes stay literal."""
    return _decode(text, _TEXT_ESCAPES, "text")


def encode_field_text(text: str) -> str:
    """Escape an operation data text field: backslash, newline and asterisk."""
    return _encode(text, "\\*", "field text")


def decode_field_text(text: str) -> str:
    """Unescape an operation data text field."""
    return _decode(text, _FIELD_ESCAPES, "field text")


# Java's \s: space, tab, LF, VT, FF, CR.
_WHITESPACE_RUN = re.compile(r"[ \t\n\x0b\f\r]+")
_NEWLINE = re.compile(r"\r?\n")


def normalize_whitespace(text: str) -> str:
    """Collapse whitespace the way upstream generators do (SPEC 3.6).

    Line breaks (LF or CRLF) are kept as newlines; every other run of spaces,
    tabs, carriage returns, vertical tabs and form feeds becomes one space.
    Lossy on purpose: apply it before encoding, only when building new text.
    """
    lines = _NEWLINE.split(text)
    return "\n".join(_WHITESPACE_RUN.sub(" ", line) for line in lines)
