"""Escaping of title, message and field text (SPEC 3.6, 4)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from powerauth.errors import EscapingError
from powerauth.escaping import (
    decode_field_text,
    decode_text,
    encode_field_text,
    encode_text,
    normalize_whitespace,
)

printable = st.characters(blacklist_categories=("Cc", "Cs"))
AWKWARD = [
    "\n",
    "\\",
    "\\\\",
    "\\n",
    "\\*",
    "*",
    "😀",
    "👩‍💻",
    "中文",
    "שלום",
    "مرحبا",
    "\u202e",
]
text_with_newlines = st.lists(
    st.one_of(st.text(printable, max_size=8), st.sampled_from(AWKWARD)), max_size=12
).map("".join)


@given(text_with_newlines)
@example("\\n")
@example("\\*")
@example("a\\")
@example("\\\\*\\")
def test_text_round_trip(text: str) -> None:
    encoded = encode_text(text)
    assert "\n" not in encoded
    assert decode_text(encoded) == text


@given(text_with_newlines)
@example("\\*")
@example("*\\*\\\\*")
def test_field_text_round_trip(text: str) -> None:
    encoded = encode_field_text(text)
    assert "\n" not in encoded
    # Every asterisk left in the output is escaped.
    assert encoded.replace("\\\\", "").replace("\\*", "").count("*") == 0
    assert decode_field_text(encoded) == text


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("Hello\\nWorld\\\\xyz", "Hello\nWorld\\xyz"),
        ("Hello\\nWorld\\\\xyz\\*", "Hello\nWorld\\xyz\\*"),
        # One pass: an escaped backslash then "n" (the SDKs show a newline).
        ("a\\\\nb", "a\\nb"),
        ("trailing\\", "trailing\\"),
        ("unknown \\q", "unknown \\q"),
    ],
)
def test_decode_text(encoded: str, decoded: str) -> None:
    assert decode_text(encoded) == decoded


def test_decode_field_text_unescapes_asterisk() -> None:
    assert decode_field_text("R1 2/3\\*4") == "R1 2/3*4"
    assert decode_field_text("a\\\\*") == "a\\*"


@pytest.mark.parametrize(
    "char", ["\x00", "\t", "\r", "\x0b", "\x1b", "\x7f", "\x85", "\x9f"]
)
def test_encoders_refuse_control_characters(char: str) -> None:
    for encode in (encode_text, encode_field_text):
        with pytest.raises(EscapingError, match=f"U\\+{ord(char):04X}"):
            encode(f"a{char}b")


@pytest.mark.parametrize("char", ["\n", "\t", "\x00"])
def test_decoders_refuse_raw_control_characters(char: str) -> None:
    for decode in (decode_text, decode_field_text):
        with pytest.raises(EscapingError, match="control character"):
            decode(f"a{char}b")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("R1   2/3*4", "R1 2/3*4"),
        ("             -               ", " - "),
        ("tabs\tand\r\nnewlines", "tabs and\nnewlines"),
        ("a \n b", "a \n b"),
        ("cr\ronly", "cr only"),
        ("form\x0cfeed\x0bvt", "form feed vt"),
        ("PAYMENT 2FA 123", "PAYMENT 2FA 123"),
    ],
)
def test_normalize_whitespace(raw: str, normalized: str) -> None:
    assert normalize_whitespace(raw) == normalized


@given(text_with_newlines)
def test_normalized_text_always_encodes(text: str) -> None:
    assert decode_text(encode_text(normalize_whitespace(text))) == normalize_whitespace(
        text
    )
